"""convert.py: the checks, normal forms and v1 <-> v2 conversions of linux.resources,
and the BPF device program run through a small eBPF interpreter."""

from __future__ import annotations

import itertools
import struct
import sys

import pytest

from hutch.cgroups import NullCgroupManager, convert
from hutch.cgroups.convert import UNLIMITED, DeviceRule, check, device_state
from hutch.cgroups.v2 import devices as v2_devices
from hutch.errors import InvalidArgument, Unsupported

# --- conversions ----------------------------------------------------------------------------


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (256, 10), (512, 20),
                                                (262144, 10000)])
def test_shares_to_weight_is_runcs_linear_formula(shares: int, weight: int) -> None:
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize(("blkio", "io"), [(10, 1), (500, 4950), (1000, 10000), (100, 910)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert convert.blkio_weight_to_io_weight(blkio) == io


def test_cpu_max() -> None:
    assert convert.cpu_max(20000, 100000) == "20000 100000"
    assert convert.cpu_max(UNLIMITED, 100000) == "max 100000"
    assert convert.cpu_max(50000, None) == "50000"
    assert convert.cpu_max(None, None) == "max"


def test_swap_is_memory_plus_swap_on_oci_and_swap_alone_on_v2() -> None:
    assert convert.swap_only(96 << 20, 64 << 20) == 32 << 20
    assert convert.swap_only(64 << 20, 64 << 20) == 0  # no swap at all
    assert convert.swap_only(UNLIMITED, 64 << 20) == UNLIMITED
    with pytest.raises(InvalidArgument, match="needs a memory limit"):
        convert.swap_only(96 << 20, None)
    with pytest.raises(InvalidArgument, match="needs a memory limit"):
        convert.swap_only(96 << 20, UNLIMITED)
    with pytest.raises(InvalidArgument, match="must not be below"):
        convert.swap_only(32 << 20, 64 << 20)
    assert convert.v2_value(UNLIMITED) == "max" and convert.v1_value(UNLIMITED) == "-1"


def test_cpu_lists() -> None:
    assert convert.parse_list("0-3,5", "x") == {0, 1, 2, 3, 5}
    assert convert.parse_list(" 7 ", "x") == {7}
    assert convert.format_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    for bad in ("", "a", "1-", "3-1", "1,,2", "0-99999"):
        with pytest.raises(InvalidArgument):
            convert.parse_list(bad, "linux.resources.cpu.cpus")
    with pytest.raises(InvalidArgument, match=r"names cpu 99, which this host lacks \(this host"
                                              r" has cpus 0-1\)"):
        convert.check_subset(frozenset({1, 99}), "1,99", frozenset({0, 1}), "0-1", "w", "cpu",
                             "this host")


def test_page_sizes() -> None:
    assert convert.page_size_bytes("2MB", "x") == 2 << 20
    assert convert.page_size_bytes("1GB", "x") == 1 << 30
    assert convert.page_size_name(2 << 20) == "2MB"
    assert convert.page_size_name(64 << 10) == "64KB"
    assert convert.page_size_name(1 << 30) == "1GB"
    assert convert.page_size_name(32 << 20) == "32MB"
    for bad in ("2M", "MB", "02MB", "2 MB", "2mb"):
        with pytest.raises(InvalidArgument, match="not a page size"):
            convert.page_size_bytes(bad, "x")


# --- check() --------------------------------------------------------------------------------

def test_check_normalizes_and_drops_unset_values() -> None:
    res = check({
        "cpu": {"shares": 1024, "quota": -1, "period": 100000, "cpus": "0-1", "mems": "",
                "realtimeRuntime": 0},
        "memory": {"limit": 0, "swap": -1, "reservation": 1 << 20, "swappiness": -1,
                   "disableOOMKiller": False},
        "pids": {"limit": 0},
        "blockIO": {"weight": 0, "throttleReadBpsDevice": [{"major": 7, "minor": 0,
                                                            "rate": 1024}]},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"}],
        "hugepageLimits": [{"pageSize": "2048KB", "limit": 0}],
        "network": {},
        "unified": {"memory.high": "max"},
    })
    assert res["cpu"] == {"shares": 1024, "quota": UNLIMITED, "period": 100000,
                          "cpus": ("0-1", frozenset({0, 1})), "realtimeRuntime": 0}
    assert res["memory"] == {"swap": UNLIMITED, "reservation": 1 << 20,
                             "disableOOMKiller": False}
    assert res["pids"] == {"limit": UNLIMITED}
    assert res["blockIO"] == {"throttleReadBpsDevice": [((7, 0), 1024)]}
    assert [repr(r) for r in res["devices"]] == ["deny a", "allow c 1:3 rw"]
    assert res["hugepageLimits"] == [("2MB", 0)]
    assert "network" not in res
    assert res["unified"] == {"memory.high": "max"}
    assert check({}) == {} and check(None) == {}
    assert check({"cpu": {}, "memory": {"limit": 0}}) == {}


@pytest.mark.parametrize(("resources", "message"), [
    ([], r"linux\.resources: must be an object, not an array"),
    ({"cpus": {}}, r"unknown field 'cpus' \(known: devices, memory"),
    ({"cpu": {"shares": 1}}, r"cpu\.shares: 1 is out of range \(2\.\.262144\)"),
    ({"cpu": {"shares": True}}, r"cpu\.shares: must be an integer, not a boolean"),
    ({"cpu": {"quota": 500}}, r"cpu\.quota: 500 µs is below the kernel's minimum"),
    ({"cpu": {"period": 2000000}}, r"cpu\.period: 2000000 is out of range"),
    ({"cpu": {"cpus": "0-x"}}, r"cpu\.cpus: '0-x' is not a list"),
    ({"cpu": {"idle": 2}}, r"cpu\.idle: 2 is out of range \(0\.\.1\)"),
    ({"cpu": {"idle": 1, "shares": 100}}, r"cannot be combined with shares"),
    ({"cpu": {"realtimeRuntime": 2000, "realtimePeriod": 1000}}, r"more than the"),
    ({"cpu": {"quota": 10000, "burst": 20000}}, r"cpu\.burst: 20000 µs needs a quota"),
    ({"memory": {"limit": -2}}, r"memory\.limit: -2 is out of range"),
    ({"memory": {"limit": "1g"}}, r"memory\.limit: must be an integer, not a string"),
    ({"memory": {"limit": 64, "swap": 32}}, r"memory\.swap: 32 is memory\+swap and must not"),
    ({"memory": {"limit": -1, "swap": 32}}, r"cannot be finite while memory\.limit is -1"),
    ({"memory": {"limit": 64, "reservation": 128}}, r"reservation: 128 is above"),
    ({"memory": {"swappiness": 101}}, r"swappiness: 101 is out of range \(0\.\.100\)"),
    ({"memory": {"disableOOMKiller": 1}}, r"disableOOMKiller: must be true or false"),
    ({"pids": {}}, r"pids\.limit: missing"),
    ({"blockIO": {"weight": 5}}, r"blockIO\.weight: 5 is out of range \(10\.\.1000\)"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}},
     r"throttleReadBpsDevice\[0\]\.minor: missing"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 2000}]}},
     r"weightDevice\[0\]\.weight: 2000 is out of range"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, r"pageSize: '2M' is not a page"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, r"hugepageLimits\[0\]\.limit: missing"),
    ({"devices": [{"access": "rwm"}]}, r"devices\[0\]\.allow: missing"),
    ({"devices": [{"allow": True, "type": "x"}]}, r"devices\[0\]\.type: 'x' is not"),
    ({"devices": [{"allow": True, "type": "c", "access": "rwx"}]}, r"access: 'rwx' must be"),
    ({"devices": [{"allow": True, "type": "a", "major": 1}]}, r"type 'a' means every device"),
    ({"devices": [{"allow": True, "type": "c", "major": 1 << 40}]}, r"major: .* out of range"),
    ({"network": {"priorities": [{"name": "eth 0", "priority": 1}]}}, r"not a network interface"),
    ({"network": {"classID": 1 << 33}}, r"classID: .* out of range"),
    ({"rdma": {"mlx 5": {}}}, r"not an RDMA device name"),
    ({"rdma": {"mlx5": {"hcaHandles": -1}}}, r"hcaHandles: -1 is out of range"),
    ({"unified": {"../etc/passwd": "x"}}, r"not the name of a cgroup v2 file"),
    ({"unified": {"cgroup.procs": "1"}}, r"cgroup\.procs is not a resource setting"),
    ({"unified": {"memory.max": 5}}, r"memory\.max'\]: must be a string"),
])
def test_check_refuses_bad_input_naming_the_field(resources: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check(resources)


def test_null_manager_refuses_what_it_cannot_enforce() -> None:
    null = NullCgroupManager()
    null.apply({})
    null.update({"memory": {"limit": 0}})  # nothing asked
    with pytest.raises(Unsupported, match=r"cannot apply linux\.resources \(memory, pids\):"
                                          " this container runs without a cgroup"):
        null.apply({"memory": {"limit": 1 << 20}, "pids": {"limit": 5}})
    with pytest.raises(Unsupported, match="cannot update"):
        null.update({"devices": [{"allow": False}]})
    with pytest.raises(InvalidArgument):
        null.apply({"memory": {"limit": "lots"}})


def test_container_device_rules_follow_runc() -> None:
    rules = convert.container_device_rules({
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
    })
    checked = check({"devices": rules})["devices"]
    assert repr(checked[0]) == "deny a"
    assert repr(checked[-1]) == "allow c 10:229 rwm"
    state = device_state(checked)
    assert not state.default_allow
    for dev in ((1, 3), (1, 5), (1, 9), (136, 7), (5, 2), (10, 229)):
        assert state.allows("c", *dev, "rw"), dev
    assert state.allows("b", 8, 0, "m") and not state.allows("b", 8, 0, "r")


# --- device rules: the v1 kernel's semantics, and the BPF program ---------------------------

def rules(*specs: str) -> list[DeviceRule]:
    """ "+c 1:3 rw" / "-a" -> DeviceRules."""
    out = []
    for spec in specs:
        allow, body = spec[0] == "+", spec[1:].split()
        if body[0] == "a":
            out.append(DeviceRule(allow))
            continue
        major, minor = (-1 if x == "*" else int(x) for x in body[1].split(":"))
        out.append(DeviceRule(allow, body[0], major, minor, body[2]))
    return out


def test_device_state_models_the_v1_kernel() -> None:
    s = device_state(rules("-a", "+c 1:3 rw", "+c 1:3 m", "+c 136:* rwm", "-c 136:* w"))
    assert not s.default_allow
    assert s.exceptions == [["c", 1, 3, 7], ["c", 136, -1, 3]]  # merged; w removed
    assert s.allows("c", 1, 3, "rwm") and not s.allows("c", 1, 5, "r")
    assert s.allows("c", 136, 9, "r") and not s.allows("c", 136, 9, "rw")
    deny = device_state(rules("+a", "-c 1:5 w", "-b 8:* rwm", "+c 1:5 w"))
    assert deny.default_allow and deny.exceptions == [["b", 8, -1, 7]]
    assert deny.allows("c", 1, 5, "w") and not deny.allows("b", 8, 1, "r")
    assert not deny.allows("b", 8, 1, "m") and deny.allows("b", 9, 1, "rwm")
    assert device_state([]).default_allow  # nothing said: the parent decides


# A tiny interpreter for the instructions v2/devices.py emits; it also checks what the
# verifier would (forward jumps inside the program, R0 set before exit).
def run_bpf(code: bytes, access_type: int, major: int, minor: int) -> int:
    ctx = struct.pack("=III", access_type, major, minor)
    regs: list[int | str | None] = [None] * 11
    regs[1] = "ctx"
    pc, n = 0, len(code) // 8
    while True:
        assert 0 <= pc < n, f"pc {pc} left the program"
        op, r, off, imm = struct.unpack_from("=BBhi", code, pc * 8)
        dst, src = (r & 0xF, r >> 4) if sys.byteorder == "little" else (r >> 4, r & 0xF)
        pc += 1
        if op == 0x61:  # ldx w
            assert regs[src] == "ctx" and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("=I", ctx, off)[0]
        elif op == 0x54:
            regs[dst] = regs[dst] & (imm & 0xFFFFFFFF)  # type: ignore[operator]
        elif op == 0x74:
            regs[dst] = regs[dst] >> imm  # type: ignore[operator]
        elif op == 0xBC:
            regs[dst] = regs[src]
        elif op == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif op in (0x55, 0x15):  # jne / jeq imm
            assert off >= 0, "backward jump"
            if (regs[dst] != imm) == (op == 0x55):
                pc += off
        elif op == 0x95:
            assert regs[0] is not None, "exit without a return value"
            return regs[0]  # type: ignore[return-value]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


RULE_SETS = [
    ("-a", "+c 1:3 rw"),
    ("-a", "+c 1:3 rwm", "+c 1:5 r", "+c *:* m", "+b 7:* rw", "+c 136:* rwm"),
    ("+a", "-c 1:5 rwm", "-b *:* w", "-c 10:* m"),
    ("+c 1:3 rwm",),  # in default-allow mode this removes nothing: all allowed
    ("-c 1:9 w", "-c 1:9 r", "+c 1:9 w"),
    ("-a", "+c 1:3 r", "+c 1:3 w", "-c 1:3 r", "+a", "-b 8:0 rwm"),
]
DEVICES = [("c", 1, 3), ("c", 1, 5), ("c", 1, 9), ("c", 10, 200), ("c", 136, 4),
           ("b", 7, 0), ("b", 7, 1), ("b", 8, 0)]
ACCESSES = ["r", "w", "m", "rw", "rwm"]


@pytest.mark.parametrize("specs", RULE_SETS, ids=lambda s: " ".join(s))
def test_the_bpf_program_decides_as_the_v1_kernel(specs: tuple[str, ...]) -> None:
    rs = rules(*specs)
    code = v2_devices.program(rs)
    state = device_state(rs)
    for (kind, major, minor), access in itertools.product(DEVICES, ACCESSES):
        bits = convert.access_bits(access)
        ctx_type = (bits << 16) | (convert.DEV_CHAR if kind == "c" else convert.DEV_BLOCK)
        got = run_bpf(code, ctx_type, major, minor)
        assert got == int(state.allows(kind, major, minor, access)), (kind, major, minor, access)


def test_the_bpf_program_for_a_typical_container() -> None:
    rs = check({"devices": convert.container_device_rules(
        {"resources": {"devices": [{"allow": False, "access": "rwm"}]}})})["devices"]
    code = v2_devices.program(rs)
    read_write = (convert.ACC_READ | convert.ACC_WRITE) << 16 | convert.DEV_CHAR
    assert run_bpf(code, read_write, 1, 3) == 1  # /dev/null
    assert run_bpf(code, read_write, 8, 0) == 0  # a disk as char? no
    assert run_bpf(code, (convert.ACC_READ << 16) | convert.DEV_BLOCK, 8, 0) == 0  # sda
    assert run_bpf(code, (convert.ACC_MKNOD << 16) | convert.DEV_BLOCK, 8, 0) == 1  # mknod ok
    assert len(code) % 8 == 0 and len(code) // 8 < 200
