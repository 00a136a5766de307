"""The sandbox of ``ddpm verify``: the file under test runs in a confined child; the parent decides.

The parent (this module, :func:`verify_file`) loads none of the student's code. It starts
``python -m ddpm.verify.child`` under a small reaper process, hands it the run's channel key and job
over stdin, reads the authenticated records (``ddpm.verify.channel``), and calls the course's
``decide`` on them. Every run is confined the same way:

- a private, empty working directory (also HOME and TMPDIR), removed afterwards;
- a scrubbed environment: PATH, HOME, LANG, PYTHONPATH, one thread for OpenMP/MKL/BLAS, nothing else;
- ``resource`` limits, soft = hard, set in the child before the file is imported: address space
  (beyond what the child maps by then), CPU time, file size, open files, processes, no core files;
- Landlock (Linux >= 5.13, no root needed) where the kernel has it: reads (and execution) only beneath
  :func:`readable_roots` — Python's prefixes and site-packages, the system's libraries, ddpm's own package
  directory and its specs, /dev/urandom, /proc/self, the CPU's description torch reads — and of the file
  under test; writes only in the private directory and /dev/null; from ABI 4 no TCP bind/connect, from
  ABI 6 no signals to processes outside the sandbox and no abstract unix sockets; no_new_privs;
- a seccomp filter (libseccomp, through pyseccomp) that refuses every new socket, of any family, and
  io_uring, whose socket operations would pass beside it; a syscall of another ABI (x32, i386) kills;
- as root, every capability dropped (bounding set included), so that the limits hold and cannot be raised;
- each protection a grader is told about (:data:`PROTECTIONS`) reported as in force or missing, with why;
  ``strict`` runs nothing of the file while one is missing;
- stdout and stderr kept up to :data:`OUTPUT_CAP` bytes each, the rest read, counted and dropped;
- nothing outlives the run: the child runs under a reaper (a child subreaper in its own session)
  that kills every descendant, orphans and new sessions included, when the child ends or time is up.

What it does not stop: code in the child can read and write its own process's memory, so it could
in principle find the channel's writer and emit records of its choosing. The verdict is a function of
raw observations computed in the parent; a forged, reordered or truncated stream is never a pass.
Nor does it hide what lies beneath the readable roots: a grader's file kept inside the Python prefix or
the ddpm package can be read.

Why these tools: the kernel's Landlock and seccomp work unprivileged, in Docker's default profile and
on GitHub's runners, where bubblewrap and nsjail need CAP_SYS_ADMIN or user namespaces (Docker refuses
both; Ubuntu 24.04's AppArmor restricts the latter). libseccomp writes the filter (pyseccomp is its
ctypes binding; Debian's python3-seccomp serves only the system Python). The Landlock calls are ctypes of
our own: the binding on PyPI, ``landlock`` 1.0.0.dev5, has filesystem rights only, no TCP rules and no scopes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ddpm.verify import channel

__all__ = [
    "OUTPUT_CAP",
    "PROTECTIONS",
    "STRICT_ENV",
    "ChildRun",
    "Confinement",
    "Limits",
    "adopt_orphans",
    "confine",
    "kill_adopted",
    "kill_cgroup",
    "landlock_abi",
    "missing_here",
    "pids_cgroup",
    "readable_roots",
    "refusal",
    "seccomp_available",
    "strict_from_env",
    "run_child",
]

OUTPUT_CAP = 64 * 1024  # bytes of the file's stdout (and of its stderr) the report keeps
STARTUP_SECONDS = 180.0  # the child's own start (Python, torch) before the file's time limit begins
JOB_BYTES = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What the child may use.

    Memory is address space (RLIMIT_AS) beyond what the child maps before the file loads: Python and
    torch map 0.6 GiB (a CPU build) to about 3 GiB (a CUDA build: its libraries), so a fixed total would
    refuse a CUDA build before the file ran.
    """

    memory: int = 3 * 2**30
    cpu_seconds: int = 300
    file_size: int = 64 * 2**20
    open_files: int = 256
    processes: int = 64

    def to_dict(self) -> dict:
        return dict(
            memory=self.memory,
            cpu_seconds=self.cpu_seconds,
            file_size=self.file_size,
            open_files=self.open_files,
            processes=self.processes,
        )


# ---------------------------------------------------------------------------------------------------------
# The child side: confine the process before the student's file is imported.

_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.restype = ctypes.c_int
    return _libc


SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # same on all arches
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_CAP_AMBIENT, PR_SET_CHILD_SUBREAPER = 38, 24, 28, 47, 36
PR_SET_DUMPABLE, PR_GET_SECCOMP = 4, 21
LANDLOCK_RULE_PATH_BENEATH = 1
# Landlock's filesystem rights (linux/landlock.h) and the ABI that added them; every one is handled, so what no
# rule allows is denied: reads as well as writes.
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: _REFER, 3: _TRUNCATE, 5: _IOCTL_DEV}
_READ = _EXECUTE | _READ_FILE | _READ_DIR
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # the rights a rule on a file may hold
_NET_TCP = (1 << 0) | (1 << 1)  # BIND_TCP, CONNECT_TCP (ABI 4)
_SCOPE = (1 << 0) | (1 << 1)  # ABSTRACT_UNIX_SOCKET, SIGNAL (ABI 6)

NO_LANDLOCK = "no Landlock here: it needs Linux 5.13 or later, and a container's seccomp profile may block it"
# The protections a grader is told about, in force or missing; --strict refuses to verify while one is missing.
READS, WRITES, NETWORK, SIGNALS = "reads", "writes", "network", "signals"
PROTECTIONS = {
    READS: "reads confined to Python, its packages, the system's libraries, ddpm and the file itself",
    WRITES: "writes confined to the run's private directory",
    NETWORK: "no network of any kind (no new socket: UDP, TCP, unix, raw; hence no name resolution)",
    SIGNALS: "no signals to processes outside the run",
}


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where it has none (or this is not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        abi = _lib().syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def readable_roots(file: str | None = None) -> list[str]:
    """What the child may read and execute: Python's prefixes and packages, system libraries, ddpm.

    Only paths that exist, each once; never ``/``. With an editable install ddpm is the checkout's ``ddpm/``
    and the ``specs/`` its link points to, not the whole checkout. ``file`` (the file under test) is added.
    """
    import site

    import ddpm

    package = Path(ddpm.__file__).resolve().parent
    roots = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *site.getsitepackages()]
    roots += [str(package), str((package / "specs").resolve())]
    roots += ["/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32", "/usr/local/lib", "/usr/bin", "/bin"]
    roots += ["/etc/ld.so.cache", "/dev/urandom", "/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/self"]
    roots += [file] if file else []
    found = []
    for root in roots:
        try:
            real = os.path.realpath(root)
        except OSError:
            continue
        if real != "/" and os.path.exists(real) and real not in found:
            found.append(real)
    return found


def _landlock(private_dir: str, reads: list[str]) -> tuple[list[str], dict[str, str]]:
    """Restrict this process and what it starts: reads beneath ``reads``, writes in ``private_dir``.

    Returns the notes on what is in force and the protections missing, each with why.
    """
    abi = landlock_abi()
    lacking = {p: "" for p in (READS, WRITES, SIGNALS)}
    if abi < 1:
        why = NO_LANDLOCK
        return [], {p: why for p in lacking}
    libc = _lib()
    handled = sum(v for k, v in _FS_BY_ABI.items() if k <= abi)
    attr = (ctypes.c_uint64 * 3)(handled, _NET_TCP if abi >= 4 else 0, _SCOPE if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        why = f"Landlock refused a ruleset ({os.strerror(ctypes.get_errno())})"
        return [], {p: why for p in lacking}
    try:
        rules = [(private_dir, handled), ("/dev/null", _READ_FILE | _WRITE_FILE | _TRUNCATE)]
        rules += [(path, _READ) for path in reads]
        for path, access in rules:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # gone since it was listed: nothing to allow
            try:
                is_dir = os.path.isdir(f"/proc/self/fd/{pfd}")
                rule = _PathBeneath(access & handled & (~0 if is_dir else _FILE_RIGHTS), pfd)
                if (
                    libc.syscall(
                        SYS_LANDLOCK_ADD_RULE,
                        ctypes.c_int(fd),
                        ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                        ctypes.byref(rule),
                        ctypes.c_uint32(0),
                    )
                    != 0
                ):
                    why = f"Landlock refused a rule for {path} ({os.strerror(ctypes.get_errno())})"
                    return [], {p: why for p in lacking}
            finally:
                os.close(pfd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            why = f"no_new_privs refused ({os.strerror(ctypes.get_errno())}), so Landlock could not be applied"
            return [], {p: why for p in lacking}
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            why = f"Landlock refused to restrict the child ({os.strerror(ctypes.get_errno())})"
            return [], {p: why for p in lacking}
    finally:
        os.close(fd)
    notes = [
        f"reads only of Python, its packages, the system's libraries, ddpm and the file itself (Landlock ABI {abi})",
        "writes only in the private directory" + ("" if abi >= 3 else " (truncating a file not blocked: ABI < 3)"),
    ]
    missing = {}
    if abi >= 6:
        notes.append("no signals to processes outside the run, no abstract unix sockets outside it (Landlock)")
    else:
        missing[SIGNALS] = f"this kernel's Landlock is ABI {abi}; scoping signals needs ABI 6 (Linux 6.12)"
    if abi >= 4:
        notes.append("no TCP bind or connect (Landlock, a second layer under the seccomp filter)")
    return notes, missing


# Syscalls that make a socket, or reach the network without one (io_uring's own socket operations bypass a
# filter on socket(2)); socketpair(2) stays: an unnamed pair reaches no one outside the process tree.
_NETWORK_SYSCALLS = ("socket", "socketcall", "io_uring_setup", "io_uring_enter", "io_uring_register")


def seccomp_available() -> str | None:
    """Why a seccomp filter cannot be loaded here (no libseccomp, no kernel support), or None."""
    if not sys.platform.startswith("linux"):
        return f"seccomp is Linux's; this is {sys.platform}"
    try:
        import pyseccomp  # noqa: F401 - its import finds libseccomp, or raises
    except (ImportError, RuntimeError, OSError) as exc:
        return f"pyseccomp or libseccomp is not installed ({exc})"
    if _lib().prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return f"this kernel has no seccomp ({os.strerror(ctypes.get_errno())})"
    return None


def _no_network() -> str | None:
    """A seccomp filter: every new socket fails with EPERM; why it could not be loaded, or None.

    libseccomp (through pyseccomp) writes the BPF, with its architecture checks: a syscall of another ABI
    (i386's int 0x80, x32) kills the process rather than slip past the filter.
    """
    why = seccomp_available()
    if why:
        return why
    import pyseccomp as seccomp

    try:
        flt = seccomp.SyscallFilter(seccomp.ALLOW)
        for name in _NETWORK_SYSCALLS:
            try:
                flt.add_rule(seccomp.ERRNO(errno.EPERM), name)
            except (ValueError, OSError):  # a syscall this architecture does not have (socketcall on x86-64)
                continue
        flt.load()
    except OSError as exc:
        return f"the seccomp filter could not be loaded ({exc})"
    return None


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> str | None:
    """Drop every capability, the bounding set included, and lock root out of regaining them on exec."""
    caps = _capabilities()
    if not caps and os.geteuid() != 0:
        return None
    libc = _lib()
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    libc.prctl(PR_SET_SECUREBITS, 0x2F, 0, 0, 0)  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, each locked
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    if _lib().capset(ctypes.byref(header), data) != 0:
        return f"could not drop capabilities ({os.strerror(ctypes.get_errno())})"
    left = _capabilities()
    return "all capabilities dropped" if not left else f"capabilities left: {left:#x}"


def _capabilities() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def pids_cgroup(limit: int) -> str | None:
    """A fresh cgroup-v1 ``pids`` group allowing ``limit`` tasks, where this process may make one (root).

    Else None.

    The kernel does not apply RLIMIT_NPROC to root, so as root the child joins this group instead; it also
    names every process of the run for the kill at the end.
    """
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return None
    try:
        mount = next(
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[2] == "cgroup" and "pids" in line.split()[3].split(",")
        )
        rel = next(
            line.split(":", 2)[2]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if "pids" in line.split(":", 2)[1].split(",")
        )
        group = Path(mount, rel.lstrip("/"), f"ddpm-verify-{os.getpid()}-{os.urandom(4).hex()}")
        group.mkdir()
        (group / "pids.max").write_text(str(limit))
        return str(group)
    except (StopIteration, OSError, IndexError):
        return None


def kill_cgroup(group: str | None) -> int:
    """Kill every task left in ``group`` and remove it; how many were killed."""
    if not group:
        return 0
    killed, deadline = 0, time.monotonic() + 10.0  # a loaded machine may take a while to let them go
    while time.monotonic() < deadline:
        try:
            pids = [int(p) for p in Path(group, "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            break
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
    try:
        os.rmdir(group)
    except OSError:
        pass
    return killed


def _tasks_of(uid: int) -> int:
    """How many tasks (threads included) the user ``uid`` runs now."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{d}/task"))
            except OSError:
                continue
    return n


def _address_space() -> int:
    """The bytes of address space this process maps now (VmSize), or 0 where /proc cannot tell."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def confine(private_dir: str, limits: dict, cgroup: str | None = None, file: str | None = None) -> Confinement:
    """Confine this process before the student's code loads [the child's sandbox].

    Returns what is in force and what is missing. ``file`` is the file under test, the one file outside
    the private directory and the readable roots (:func:`readable_roots`) that the child may read.
    """
    import resource

    done = []
    in_group = False
    if cgroup:  # first: after Landlock the cgroup files cannot be written
        try:
            Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
            in_group = True
        except OSError:
            pass
    # RLIMIT_NPROC counts every task of the real uid: allow this many beyond those the uid already runs.
    processes = _tasks_of(os.getuid()) + limits["processes"]
    mapped = _address_space()
    for name, value in [
        ("RLIMIT_AS", mapped + limits["memory"]),
        ("RLIMIT_CPU", limits["cpu_seconds"]),
        ("RLIMIT_FSIZE", limits["file_size"]),
        ("RLIMIT_NOFILE", limits["open_files"]),
        ("RLIMIT_NPROC", processes),
        ("RLIMIT_CORE", 0),
    ]:
        which = getattr(resource, name)
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    if in_group:
        tasks = f"{limits['processes']} tasks (a pids cgroup, as root)"
    else:
        tasks = f"{limits['processes']} more processes" + (" (not enforced for root)" if os.getuid() == 0 else "")
    done.append(
        f"limits: address space {limits['memory'] / 2**30:g} GiB beyond the {mapped / 2**30:.1f} GiB Python and "
        f"torch map, CPU {limits['cpu_seconds']} s, "
        f"files {limits['file_size'] / 2**20:g} MiB, {limits['open_files']} open files, {tasks}"
    )
    missing: dict[str, str] = {}
    if sys.platform.startswith("linux"):
        reads = readable_roots(file)
        network = _no_network()  # before Landlock: libseccomp is found and loaded from the library path
        try:
            notes, lacking = _landlock(private_dir, reads)
        except OSError as exc:
            notes, lacking = [], {p: f"Landlock could not be set up ({exc})" for p in (READS, WRITES, SIGNALS)}
        done += notes
        missing.update(lacking)
        if network is None:
            done.append("no network: a seccomp filter refuses every new socket (UDP, TCP, unix, raw) and io_uring")
        else:
            missing[NETWORK] = network
        caps = _drop_capabilities()
        if caps:
            done.append(caps)
    else:  # pragma: no cover - the sandbox is Linux's; elsewhere only the limits hold
        missing = {p: f"the sandbox is Linux's; this is {sys.platform}" for p in PROTECTIONS}
    return Confinement(done, missing)


@dataclass(frozen=True)
class Confinement:
    """What the child has in force (notes for the report) and the protections missing, each with why."""

    in_force: list[str]
    missing: dict[str, str]

    def notes(self) -> list[str]:
        """The sandbox note's items: what is in force, then each missing protection, in words."""
        return self.in_force + [f"MISSING: {', '.join(p)}: {why}" for why, p in _by_reason(self.missing).items()]


def missing_here() -> dict[str, str]:
    """The protections this machine cannot give the child, each with why, found without running one.

    Used by ``--strict`` to refuse before any file runs; the child checks again what it actually got.
    """
    if not sys.platform.startswith("linux"):
        return {p: f"the sandbox is Linux's; this is {sys.platform}" for p in PROTECTIONS}
    missing = {}
    abi = landlock_abi()
    if abi < 1:
        why = NO_LANDLOCK
        missing.update({READS: why, WRITES: why, SIGNALS: why})
    elif abi < 6:
        missing[SIGNALS] = f"this kernel's Landlock is ABI {abi}; scoping signals needs ABI 6 (Linux 6.12)"
    network = seccomp_available()
    if network:
        missing[NETWORK] = network
    return missing


def refusal(missing: dict[str, str]) -> str:
    """One line for ``--strict``: what is missing, and why (each reason once, after what it takes away)."""
    return "--strict: the sandbox lacks " + "; ".join(
        f"{', '.join(p)} ({why})" for why, p in _by_reason(missing).items()
    )


def _by_reason(missing: dict[str, str]) -> dict[str, list[str]]:
    """The missing protections, in words, grouped by why they are missing."""
    by_reason: dict[str, list[str]] = {}
    for protection, why in missing.items():
        by_reason.setdefault(why, []).append(PROTECTIONS[protection])
    return by_reason


STRICT_ENV = "DDPM_VERIFY_STRICT"


def strict_from_env() -> bool:
    """Whether ``DDPM_VERIFY_STRICT=1`` makes ``--strict`` the default; ValueError on another value."""
    value = os.environ.get(STRICT_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{STRICT_ENV}={os.environ[STRICT_ENV]!r}: expected 1 (strict) or 0 (not strict)")


# ---------------------------------------------------------------------------------------------------------
# The reaper: a child subreaper in its own session that runs the child and kills whatever it leaves, when
# the child ends, when the parent sends SIGTERM (time is up) or when the parent dies (PR_SET_PDEATHSIG).

REAPER = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if hasattr(libc, "prctl"):  # Linux: a child subreaper, and told by SIGTERM when the parent dies
    libc.prctl(36, 1, 0, 0, 0)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)
me = os.getpid()
def tree():
    kids = {}
    for d in (os.listdir("/proc") if os.path.isdir("/proc") else []):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], list(kids.get(me, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out
def kill_all():
    for _ in range(1000):
        pids = tree()
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(0.005)
def stop(signum, frame):
    kill_all()
    os._exit(128 + signal.SIGTERM)
signal.signal(signal.SIGTERM, stop)
if os.getppid() != int(sys.argv[2]):
    os._exit(128 + signal.SIGTERM)
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(sys.executable, [sys.executable, "-m", "ddpm.verify.child"])
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2, int(sys.argv[1])):
    os.dup2(null, fd) if fd < 3 else os.close(fd)
status = 255
while True:
    try:
        p, st = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if p == pid:
        status = os.waitstatus_to_exitcode(st)
        status = status if status >= 0 else 128 - status
        break
kill_all()
os._exit(status)
"""


@dataclass
class _Output:
    """A stream of the child's output: the first ``cap`` bytes kept, the rest counted."""

    cap: int
    kept: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def feed(self, data: bytes) -> None:
        room = self.cap - len(self.kept)
        self.kept += data[: max(room, 0)]
        self.dropped += max(len(data) - max(room, 0), 0)

    def text(self) -> str:
        return self.kept.decode("utf-8", "replace")


def _drain(fd: int, sink) -> None:
    try:
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                return
            sink(data)
    except OSError:
        return
    finally:
        os.close(fd)


@dataclass
class ChildRun:
    """What the parent saw of one child.

    The record stream, the output, how it ended, the sandbox in force.
    """

    stream: channel.Stream
    stdout: _Output
    stderr: _Output
    exit_code: int | None
    timed_out: bool
    seconds: float
    isolation: list[str]
    leftovers: int = 0  # processes of the run found alive after the reaper had finished (killed then)
    missing: dict[str, str] = field(default_factory=dict)  # the protections the child lacked, each with why

    def output_notes(self) -> list[str]:
        notes = []
        for name, out in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = out.text().strip()
            if not text and not out.dropped:
                continue
            lines = text.splitlines()
            first = lines[0][:200] if lines else ""
            kept = len(out.kept)
            dropped = f"; {out.dropped} more bytes were read and dropped" if out.dropped else ""
            notes.append(
                f"the file wrote {kept + out.dropped} bytes to {name} (the verifier ignores it; kept the "
                f"first {kept}{dropped}): {first!r}"
            )
        return notes


def _env(private: str) -> dict[str, str]:
    """The child's whole environment: what Python and torch need, nothing of the caller's."""
    import ddpm

    root = str(Path(ddpm.__file__).resolve().parent.parent)
    path = os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]))
    return {
        "PATH": path,
        "HOME": private,
        "TMPDIR": private,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": root,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": private,
        "TQDM_DISABLE": "1",
    }


_started = threading.Lock()
_PARENT_READY = False


def _prepare_parent() -> None:
    """Once per process.

    This process not dumpable, so that the child cannot read its environment or memory
    through /proc even under the same uid."""
    global _PARENT_READY
    with _started:
        if not _PARENT_READY and sys.platform.startswith("linux"):
            _lib().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        _PARENT_READY = True


def run_child(job: dict, timeout: float, limits: Limits | None = None, strict: bool = False) -> ChildRun:
    """Run ``python -m ddpm.verify.child`` on ``job`` in the sandbox; return what it streamed and printed.

    ``timeout`` counts from the moment the child has confined itself and is about to load the file, so that
    a slow start of Python and torch on a busy machine does not eat the file's time. ``strict``: the child
    loads nothing of the file when a protection is missing.
    """
    _prepare_parent()
    limits = limits or Limits()
    key = channel.new_key()
    cgroup = pids_cgroup(limits.processes)
    private = tempfile.mkdtemp(prefix="ddpm-verify-")
    os.chmod(private, 0o700)
    rfd, wfd = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    reader = channel.Reader(key)
    stdout, stderr = _Output(OUTPUT_CAP), _Output(OUTPUT_CAP)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", REAPER, str(wfd), str(os.getpid())],
            cwd=private,
            env=_env(private),
            stdin=subprocess.PIPE,
            stdout=out_w,
            stderr=err_w,
            pass_fds=(wfd,),
            close_fds=True,
            start_new_session=True,
        )
    except BaseException:
        for fd in (rfd, out_r, err_r):
            os.close(fd)
        kill_cgroup(cgroup)
        shutil.rmtree(private, ignore_errors=True)
        raise
    finally:
        for fd in (wfd, out_w, err_w):
            os.close(fd)
    threads = [
        threading.Thread(target=_drain, args=(fd, sink), daemon=True)
        for fd, sink in ((rfd, reader.feed), (out_r, stdout.feed), (err_r, stderr.feed))
    ]
    for t in threads:
        t.start()
    message = json.dumps(
        {
            "key": key.hex(),
            "fd": wfd,
            "private": private,
            "limits": limits.to_dict(),
            "job": job,
            "cgroup": cgroup,
            "strict": strict,
        }
    )
    del key
    assert proc.stdin is not None  # Popen(stdin=PIPE)
    try:
        proc.stdin.write(message.encode())
        proc.stdin.close()
    except OSError:
        pass
    timed_out, began = False, None
    while not _exited(proc.pid):  # the reaper is left a zombie, so that its pid cannot be reused before the kill
        if began is None and "__sandbox__" in reader.stream.system:
            began = time.monotonic()  # the file's time starts once the child is confined, about to load it
        deadline = began + timeout if began is not None else start + STARTUP_SECONDS
        if time.monotonic() >= deadline:
            timed_out = True
            _stop(proc)
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    leftovers = _kill_session(proc.pid) + kill_cgroup(cgroup)
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = None
    for t in threads:
        t.join(timeout=10)
    stream = reader.close()
    system = stream.system
    frame = system.get("__sandbox__", {}) if system else {}
    isolation = [str(n) for n in frame.get("confined", [])]
    missing = frame.get("missing", {})
    missing = {str(k): str(v) for k, v in missing.items()} if isinstance(missing, dict) else {}
    shutil.rmtree(private, ignore_errors=True)
    return ChildRun(stream, stdout, stderr, code, timed_out, seconds, isolation, leftovers, missing)


def _exited(pid: int) -> bool:
    """Whether the child ``pid`` has ended, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _stop(proc: subprocess.Popen) -> None:
    """Time is up: the reaper kills the child's tree; if it does not end, its process group is killed."""
    for sig, group in ((signal.SIGTERM, False), (signal.SIGKILL, True)):
        try:
            os.killpg(proc.pid, sig) if group else os.kill(proc.pid, sig)
        except OSError:
            pass
        for _ in range(500):
            if _exited(proc.pid):
                return
            time.sleep(0.02)


def adopt_orphans() -> bool:
    """Make this process a child subreaper, so that a process the reaper could not kill (a kernel without
    Landlock's signal scoping lets the file kill the reaper) is reparented here rather than to init."""
    return sys.platform.startswith("linux") and _lib().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def kill_adopted() -> int:
    """Kill and reap every child of this process.

    For the ``ddpm verify`` command once no run is in flight.
    """
    me, killed = os.getpid(), 0
    for _ in range(100):
        kids = []
        for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat", "rb") as f:
                        if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                            kids.append(int(d))
                except (OSError, ValueError, IndexError):
                    continue
        if not kids:
            break
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                killed += 1
            except OSError:  # ChildProcessError included: reaped elsewhere
                pass
    return killed


def _kill_session(sid: int) -> int:
    """Kill any process still in the run's session or process group (the reaper's pid is both); how many."""
    killed = 0
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                parts = f.read().rsplit(b")", 1)[1].split()
            pgid, session = int(parts[2]), int(parts[3])
        except (OSError, ValueError, IndexError):
            continue
        if sid in (pgid, session) and int(d) != sid:  # the reaper itself, a zombie by now, is not a leftover
            try:
                os.kill(int(d), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed
