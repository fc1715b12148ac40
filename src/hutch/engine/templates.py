"""OS-container templates (LXC's -t): an image plus what makes it boot its own init.

``busybox``: busybox init with an inittab that starts a few services (syslogd,
crond, an httpd), a shell on the console, and shutdown actions that stop the
services and record that the shutdown was clean. Stopped with SIGUSR2 (busybox
init's poweroff), which the container's init turns into an orderly shutdown.
"""

from __future__ import annotations

import os

from hutch.errors import NotFound

BUSYBOX_INITTAB = """\
::sysinit:/bin/mkdir -p /run /var/log /var/spool/cron/crontabs /var/www
::sysinit:/bin/sh -c 'echo "hutch: $(hostname) booting" > /dev/console'
::respawn:/sbin/syslogd -n -O /var/log/messages
::respawn:/usr/sbin/crond -f -c /var/spool/cron/crontabs
::respawn:/usr/sbin/httpd -f -p 80 -h /var/www
::askfirst:-/bin/sh
::shutdown:/bin/sh -c 'echo "hutch: $(hostname) shutting down" > /dev/console'
::shutdown:/bin/sh -c 'killall syslogd crond httpd; echo clean > /var/log/shutdown'
"""

TEMPLATES = {
    "busybox": {"image": "busybox", "init": ["/sbin/init"], "stop_signal": "SIGUSR2",
                "files": {"etc/inittab": BUSYBOX_INITTAB,
                          "var/www/index.html": "<h1>hutch busybox</h1>\n"}},
}


def get(name: str) -> dict:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise NotFound(f"no such template: {name} (templates: {', '.join(TEMPLATES)})") \
            from None


def install(template: dict, rootfs: str, hostname: str) -> None:
    """Write the template's files into a container's (mounted) root file system."""
    for rel, text in {**template["files"], "etc/hostname": hostname + "\n"}.items():
        path = os.path.join(rootfs, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
