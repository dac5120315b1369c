"""Enter a private network namespace that holds only `lo`.

Tests and benchmarks run WebRTC (aiortc, Chromium, coturn); ICE would otherwise offer and may
settle on this machine's other interface addresses. Inside a fresh namespace the only interface
is loopback, so no packet can leave the machine whatever the stacks decide. Must be called before
any socket or thread exists: the namespace is per thread and is inherited by what starts later.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_MARK = "HUIZHEN_PRIVATE_NETNS"


class NetnsUnavailable(RuntimeError):
    pass


def _unshare(flags: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return 0 if libc.unshare(flags) == 0 else ctypes.get_errno()


def _bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"\0" * 14)
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b"\0" * 14))


def enter_private_netns() -> str:
    """Move this process into a new network namespace (as root, or via a user namespace)."""
    if os.environ.get(_MARK) == str(os.getpid()):
        return "already"
    uid, gid = os.getuid(), os.getgid()
    err = _unshare(CLONE_NEWNET)
    how = "netns"
    if err == errno.EPERM:
        err = _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        how = "userns+netns"
        if err == 0:
            with open("/proc/self/setgroups", "w") as fh:
                fh.write("deny")
            with open("/proc/self/uid_map", "w") as fh:
                fh.write(f"0 {uid} 1")
            with open("/proc/self/gid_map", "w") as fh:
                fh.write(f"0 {gid} 1")
    if err:
        raise NetnsUnavailable(f"cannot create a private network namespace: {os.strerror(err)}")
    _bring_up_loopback()
    os.environ[_MARK] = str(os.getpid())
    return how


def interfaces() -> list[str]:
    return [name for _, name in socket.if_nameindex()]
