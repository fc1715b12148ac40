"""Run a command in a cgroup namespace whose cgroup mounts are rooted at our own cgroups.

Peers such as podman put their cgroups at absolute paths (``/libpod_parent``),
which would land at the root of each hierarchy, outside the cgroup the tests
run in. Inside this wrapper the same absolute paths land below our own cgroups,
so the peer can run without touching cgroups we do not own.
"""

from __future__ import annotations

SCRIPT = r"""
set -e
for m in $(awk '$3 == "cgroup" {print $2}' /proc/self/mounts); do
  opts=$(awk -v m="$m" '$2 == m {print $4}' /proc/self/mounts | tr , '\n' |
         grep -v -E '^(rw|ro|relatime|nosuid|nodev|noexec)$' | paste -sd, -)
  umount "$m"
  mount -t cgroup -o "$opts" cgroup "$m"
done
for m in $(awk '$3 == "cgroup2" {print $2}' /proc/self/mounts); do
  umount "$m"
  mount -t cgroup2 cgroup2 "$m"
done
status=0
"$@" || status=$?
# Remove what the command left in the cgroups of this namespace (only empty dirs).
for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts); do
  for d in ${HUTCH_CGROUP_LEFTOVERS:-}; do
    [ -d "$m/$d" ] && find "$m/$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
done
exit $status
"""


def wrap(argv: list[str], leftovers: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv that runs ``argv`` in the namespace; env to add (cgroup dirs to remove after)."""
    env = {"HUTCH_CGROUP_LEFTOVERS": " ".join(leftovers or [])}
    return (["unshare", "--cgroup", "--mount", "--propagation", "private",
             "sh", "-c", SCRIPT, "sh", *argv], env)
