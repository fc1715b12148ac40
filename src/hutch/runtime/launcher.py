"""The parent side of ``create``: fork the children, drive them, record the container."""

from __future__ import annotations

import errno
import os
import socket
import sys
import time

from hutch import OCI_VERSION
from hutch.cgroups import NullCgroupManager, new_manager
from hutch.common.atomicfile import write_atomic
from hutch.errors import InvalidArgument
from hutch.linux import procfs
from hutch.oci.runtime_spec import load_config, validate
from hutch.oci.state import state_document
from hutch.runtime.channel import Channel
from hutch.runtime.hooks import run_hooks
from hutch.runtime.init import InitContext, run_intermediate
from hutch.runtime.namespaces import NamespacePlan
from hutch.runtime.statedir import StateDir
from hutch.runtime.userns import write_id_maps


# How long the runtime waits for one step of a child (hooks included) before it
# gives up and tears the container down.
PARENT_TIMEOUT = 300.0


class CreateOptions:
    __slots__ = ("bundle", "console_socket", "console_sock", "pid_file", "no_pivot",
                 "preserve_fds")

    def __init__(self, bundle: str, console_socket: str | None = None,
                 console_sock: socket.socket | None = None, pid_file: str | None = None,
                 no_pivot: bool = False, preserve_fds: int = 0) -> None:
        self.bundle = bundle
        self.console_socket = console_socket  # a path (--console-socket)
        self.console_sock = console_sock      # or a connected socket (run's own terminal)
        self.pid_file = pid_file
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds


def write_pid_file(path: str, pid: int) -> None:
    write_atomic(os.path.abspath(path), str(pid).encode())


def create(root: str, container_id: str, opts: CreateOptions) -> dict:
    """Create the container and leave its init blocked on the exec fifo. Returns the record."""
    bundle = os.path.abspath(opts.bundle)
    spec = load_config(bundle)
    validate(spec, bundle)
    spec["_bundle"] = bundle
    process = spec["process"]
    console = opts.console_sock
    if process.get("terminal"):
        if console is None and not opts.console_socket:
            raise InvalidArgument("cannot allocate a terminal when hutch-runtime detaches "
                                  "without --console-socket")
    elif opts.console_socket:
        raise InvalidArgument("--console-socket given but process.terminal is false")
    sd = StateDir(root, container_id)
    sd.create()
    plan = NamespacePlan((spec.get("linux") or {}).get("namespaces") or [])
    if not plan.has("mount"):
        sd.remove()
        raise InvalidArgument("config.json: linux.namespaces: a mount namespace is required")
    cgroup = None
    init_pid = 0
    try:
        cgroup = _new_cgroup(spec.get("linux") or {}, container_id)
        apply_resources(cgroup, spec.get("linux") or {})
        record = {
            "id": container_id, "pid": 0, "creating": True, "creator": os.getpid(),
            "creator_start": procfs.read_stat(os.getpid()).start_time,  # type: ignore[union-attr]
            "bundle": bundle, "cgroup": cgroup.state(),
            # No cgroupsPath: ours is hutch/<id>, and the shared "hutch" parent is ours too.
            "cgroup_default": not (spec.get("linux") or {}).get("cgroupsPath"),
        }
        sd.save(record)
        if process.get("terminal") and console is None:
            from hutch.runtime.console import connect
            console = connect(opts.console_socket)  # type: ignore[arg-type]
        init_pid = _launch(spec, bundle, sd, plan, cgroup, console, opts, container_id)
        st = procfs.read_stat(init_pid)
        record.update({
            "pid": init_pid, "start_time": st.start_time if st else 0, "creating": False,
            "rootfs": _rootfs(spec, bundle), "created": time.time_ns(),
            "annotations": spec.get("annotations") or {}, "spec": spec,
            "no_pivot": opts.no_pivot, "owner": "",
        })
        del record["creator"], record["creator_start"]
        sd.save(record)
        if opts.pid_file:
            write_pid_file(opts.pid_file, init_pid)
        return record
    except BaseException as e:
        _undo_create(sd, cgroup, init_pid, e,
                     default_cgroup=not (spec.get("linux") or {}).get("cgroupsPath"))
        raise
    finally:
        if console is not None and opts.console_sock is None:
            console.close()


def _new_cgroup(linux: dict, container_id: str):  # type: ignore[no-untyped-def]
    """The container's cgroup, made. A user without root and without a delegated cgroup
    runs the container without one when it asked for none (linux.cgroupsPath unset),
    as runc and crun do; with a cgroupsPath it gets an error saying so."""
    path = linux.get("cgroupsPath")
    cgroup = new_manager(path, container_id)
    try:
        cgroup.create()
    except OSError as e:
        if os.geteuid() == 0 or e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        try:
            cgroup.remove()
        except OSError:
            pass
        if not path:
            return NullCgroupManager()
        raise InvalidArgument(
            f"linux.cgroupsPath {path}: cannot make the cgroup as uid {os.geteuid()} "
            f"({os.strerror(e.errno or 0)}): a user without root needs a cgroup delegated to "
            "it; leave cgroupsPath out to run without a cgroup (no resource limits)") from None
    return cgroup


def apply_resources(cgroup: object, linux: dict) -> None:
    """linux.resources plus the device rules every container gets (as runc builds them).

    The device list is applied even when the spec has no resources: without it a
    process with CAP_MKNOD could make and open any device node, the host's disks
    included.
    """
    import warnings

    from hutch.cgroups import convert

    resources = dict(linux.get("resources") or {})
    if getattr(cgroup, "version", None) == 0:
        # No cgroup (rootless): the device rules cannot be applied, nor are they needed,
        # a user namespace cannot make device nodes; real limits are refused there.
        resources.pop("devices", None)
        cgroup.apply(resources)  # type: ignore[attr-defined]
        return
    resources["devices"] = convert.container_device_rules(linux)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", convert.IgnoredLimit)
        cgroup.apply(resources)  # type: ignore[attr-defined]
    for w in caught:
        print(f"hutch-runtime: warning: {w.message}", file=sys.stderr)


def _rootfs(spec: dict, bundle: str) -> str:
    return os.path.realpath(os.path.join(bundle, spec["root"]["path"]))


def _launch(spec: dict, bundle: str, sd: StateDir, plan: NamespacePlan, cgroup: object,
            console: socket.socket | None, opts: CreateOptions, container_id: str) -> int:
    linux = spec.get("linux") or {}
    join_fds = plan.open_join_fds()
    statedir_fd = os.open(sd.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    parent, child = Channel.pair()
    parent.set_timeout(PARENT_TIMEOUT)
    ctx = InitContext(spec, _rootfs(spec, bundle), child, statedir_fd, plan, join_fds, console,
                      opts.no_pivot, opts.preserve_fds,
                      cgroup.state().get("paths", {}))  # type: ignore[attr-defined]
    if (spec.get("linux") or {}).get("seccomp") is not None:
        from hutch.runtime import seccomp
        ctx.seccomp_filter = seccomp.for_spec(spec)
    init_pid = 0
    try:
        from hutch.runtime.idmapped import prepare as prepare_idmapped
        ctx.idmapped = prepare_idmapped(spec, bundle)
        pid = os.fork()
        if pid == 0:
            parent.close()
            run_intermediate(ctx)
        child.close()
        try:
            cgroup.add_pid(pid)  # type: ignore[attr-defined]
            parent.send("go")
            if "user" in plan.new:
                parent.recv("userns", "the container's intermediate process")
                allowed = write_id_maps(pid, linux.get("uidMappings") or [],
                                        linux.get("gidMappings") or [])
                parent.send("mapped", setgroups=allowed)
            init_pid = parent.recv("pid", "the container's intermediate process")["pid"]
        except BaseException:
            # The intermediate may be blocked waiting for us: end it before reaping.
            _kill_quietly(pid)
            raise
        finally:
            os.waitpid(pid, 0)
        parent.send("init")
        parent.recv("hooks", "the container's init")
        state = state_document(container_id, "creating", init_pid, bundle,
                               spec.get("annotations") or {}, rootfs=_rootfs(spec, bundle),
                               version=spec.get("ociVersion") or OCI_VERSION)
        run_hooks(spec.get("hooks"), "prestart", state)
        run_hooks(spec.get("hooks"), "createRuntime", state)
        state["status"] = "created"
        parent.send("resume", state=state)
        parent.recv("ready", "the container's init")
        return init_pid
    except BaseException:
        if init_pid:
            _kill_quietly(init_pid)
        raise
    finally:
        parent.close()
        os.close(statedir_fd)
        for fd in ctx.idmapped.values():
            os.close(fd)
        for _, fd in join_fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def _undo_create(sd: StateDir, cgroup: object, init_pid: int, error: BaseException,
                 default_cgroup: bool = False) -> None:
    """Roll back a failed create; cleanup failures are attached to the first error."""
    if init_pid:
        _kill_quietly(init_pid)
    if cgroup is not None:
        try:
            cgroup.kill_all(9)  # type: ignore[attr-defined]
            cgroup.remove()  # type: ignore[attr-defined]
            if default_cgroup:
                from hutch.runtime.container import remove_default_parent
                remove_default_parent(cgroup.state())  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001
            error.add_note(f"cleanup: {e}")
    try:
        sd.remove()
    except OSError as e:
        error.add_note(f"cleanup: remove {sd.path}: {e}")


__all__ = ["CreateOptions", "create", "write_pid_file", "OCI_VERSION"]
