"""Listening TCP ports of a network namespace, asked of the kernel over sock_diag netlink.

Why not /proc/PID/net/tcp: the kernel builds that file by walking the whole established-
connection hash table, shared by every namespace (262144 buckets on a 24 GB machine), so one
read costs milliseconds however few sockets the namespace has; readiness looks at every pod
every pass. A sock_diag dump asking only for LISTEN sockets walks the listening hash alone.

Rules:
- A netlink socket belongs to the network namespace it was created in, so the socket is made
  by a short-lived thread that has entered the namespace (setns changes only the calling
  thread's namespace; the thread ends right after, so no thread of the process is left in a
  pod's namespace). The socket is closed after one dump: holding it would keep a deleted
  namespace, and its veth, alive.
- Any failure (no CAP_SYS_ADMIN, an old kernel, the process gone) raises OSError; callers
  fall back to /proc.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCP_LISTEN = 10
_CLONE_NEWNET = 0x40000000
_NLMSG_HDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed inet_diag_sockid (48 bytes).
_REQ = struct.Struct("=BBBxI48x")

_libc = ctypes.CDLL(None, use_errno=True)


def _request(family: int, seq: int) -> bytes:
    body = _REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
    head = _NLMSG_HDR.pack(
        _NLMSG_HDR.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0
    )
    return head + body


def _dump(sock: socket.socket, family: int, seq: int) -> set[int]:
    sock.send(_request(family, seq))
    ports: set[int] = set()
    while True:
        data = sock.recv(65536)
        off = 0
        while off + _NLMSG_HDR.size <= len(data):
            length, mtype, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, off)
            if length < _NLMSG_HDR.size:
                raise OSError("sock_diag: malformed netlink message")
            if mtype == _NLMSG_DONE:
                return ports
            if mtype == _NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", data, off + _NLMSG_HDR.size)
                if err:
                    raise OSError(-err, os.strerror(-err))
                return ports
            # inet_diag_msg: family, state, timer, retrans, then the sockid whose first
            # field is the source port in network byte order.
            (sport,) = struct.unpack_from("!H", data, off + _NLMSG_HDR.size + 4)
            ports.add(sport)
            off += (length + 3) & ~3


def _socket_in(pid: int) -> socket.socket:
    """A sock_diag socket created inside the network namespace of `pid`."""
    box: list[socket.socket | BaseException] = []

    def enter_and_create() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns: {os.strerror(err)}")
            finally:
                os.close(fd)
            box.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG))
        except BaseException as e:  # handed to the caller's thread
            box.append(e)

    t = threading.Thread(target=enter_and_create, name="sockdiag-setns", daemon=True)
    t.start()
    t.join()
    got = box[0] if box else OSError("sock_diag: thread gave nothing")
    if isinstance(got, BaseException):
        raise got if isinstance(got, OSError) else OSError(str(got))
    return got


def listening_ports(pid: int) -> set[int]:
    """TCP ports with a listening socket (IPv4 or IPv6) in the namespace of `pid`."""
    sock = _socket_in(pid)
    try:
        sock.settimeout(2.0)
        return _dump(sock, socket.AF_INET, 1) | _dump(sock, socket.AF_INET6, 2)
    finally:
        sock.close()
