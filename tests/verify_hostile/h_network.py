"""Hostile: tries every way out to the network and returns what worked, so it reaches the report.

UDP to the loopback, TCP to the loopback, a unix socket by path, an abstract unix socket, raw sockets (IP
and packet), netlink, a DNS lookup, io_uring (whose socket operations would bypass a filter on socket(2)) and
socket(2) through the x32 ABI. tests/test_verify_sandbox.py listens on the four addresses below and fills
them in; left as they are (the 02460 course's run over every hostile file), those targets are skipped.
"""
import ctypes
import os
import socket
import sys

import torch
import torch.nn as nn

UDP_PORT = "__UDP_PORT__"
TCP_PORT = "__TCP_PORT__"
UNIX_PATH = "__UNIX_PATH__"
ABSTRACT = "__ABSTRACT__"
SECRET = b"exfiltrated-by-the-file"


def _udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(SECRET, ("127.0.0.1", int(UDP_PORT)))
    return "sent"


def _stream(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        s.sendall(SECRET)
    return "connected"


def _open(family, kind, proto=0):
    socket.socket(family, kind, proto).close()
    return "opened"


def _dns():
    return str(socket.getaddrinfo("example.com", 80)[0][4])


def _syscall(nr, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(nr), *map(ctypes.c_long, args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    os.close(result)
    return f"fd {result}"


def _x32_socket():
    """socket(2) through the x32 ABI, in a child process: libseccomp's filter kills a process that tries."""
    pid = os.fork()
    if pid == 0:
        try:
            _syscall(0x40000000 | 41, socket.AF_INET, socket.SOCK_DGRAM, 0)
            os._exit(0)
        except OSError as exc:
            os._exit(min(exc.errno, 100))
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status == 0:
        return "opened"
    raise OSError(status, f"killed by signal {-status}" if status < 0 else os.strerror(status))


def _attempts():
    if not UDP_PORT.startswith("__"):
        yield "udp", _udp
        yield "tcp", lambda: _stream(socket.AF_INET, ("127.0.0.1", int(TCP_PORT)))
        yield "unix", lambda: _stream(socket.AF_UNIX, UNIX_PATH)
        yield "abstract", lambda: _stream(socket.AF_UNIX, "\0" + ABSTRACT)
    yield "raw-ip", lambda: _open(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    yield "raw-packet", lambda: _open(socket.AF_PACKET, socket.SOCK_RAW)
    yield "netlink", lambda: _open(socket.AF_NETLINK, socket.SOCK_RAW)
    yield "dns", _dns
    yield "io_uring", lambda: _syscall(425, 8, ctypes.addressof(ctypes.create_string_buffer(120)))
    if sys.platform == "linux" and os.uname().machine == "x86_64":
        yield "x32-socket", _x32_socket


RESULTS = []
for _name, _attempt in _attempts():
    try:
        RESULTS.append(f"{_name}:OUT:{_attempt()}")
    except OSError as exc:
        RESULTS.append(f"{_name}:BLOCKED:{exc.strerror or exc}")
print("NETWORK " + " | ".join(RESULTS))


class DDPM(nn.Module):
    """A wrong DDPM: its sample returns zeros. Only the attack above could make it pass."""

    def __init__(self, network, beta_1=1e-4, beta_T=2e-2, T=100):
        super().__init__()
        self.network, self.T = network, T
        self.beta = nn.Parameter(torch.linspace(beta_1, beta_T, T), requires_grad=False)
        self.alpha = nn.Parameter(1 - self.beta, requires_grad=False)
        self.alpha_cumprod = nn.Parameter(self.alpha.cumprod(dim=0), requires_grad=False)

    def negative_elbo(self, x):
        t = torch.randint(0, self.T, (x.shape[0],))
        eps = torch.randn_like(x)
        a = self.alpha_cumprod[t].view(-1, *([1] * (x.dim() - 1)))
        x_t = a.sqrt() * x + (1 - a).sqrt() * eps
        return ((eps - self.network(x_t, (t.float() / self.T).view(-1, 1))) ** 2).flatten(1).sum(1)

    def sample(self, shape):
        return torch.zeros(shape)

    def loss(self, x):
        return self.negative_elbo(x).mean()


def answer():
    """For the sandbox's probe course: 42 is right; this answers what it tried, which lands in the report."""
    return " | ".join(RESULTS)
