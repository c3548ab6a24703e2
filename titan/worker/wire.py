"""The messages between the worker and the processes that start its jobs (the fork server, its pool
members, the launcher): msgpack over a SEQPACKET socket pair, one message per packet, with file
descriptors attached. Small on purpose: the launcher (launcher.py) imports it, and nothing heavy."""

from __future__ import annotations

import array
import socket

import msgpack

MAX_MESSAGE = 1 << 20
FD_BYTES = array.array("i").itemsize
# One receive buffer per process, reused: recvmsg() would allocate (and the kernel map) a fresh megabyte
# for every message, then shrink it, which cost a pool job three system calls on each side. Each process
# receives from one thread only.
_buffer = bytearray(MAX_MESSAGE)


def send(channel: socket.socket, message: dict, fds=()) -> None:
    payload = msgpack.packb(message, use_bin_type=True)
    if fds:
        socket.send_fds(channel, [payload], list(fds))
    else:
        channel.send(payload)


def receive(channel: socket.socket, max_fds: int = 0, flags: int = 0):
    """(message, fds), or (None, []) when the other end has gone. (Not socket.recv_fds: before Python
    3.12 it ignores `flags`, so MSG_DONTWAIT would block.)"""
    try:
        size, ancillary, _flags, _addr = channel.recvmsg_into([_buffer], socket.CMSG_LEN(max_fds * FD_BYTES), flags)
    except ConnectionError:
        return None, []
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % FD_BYTES])
    if not size:
        return None, list(fds)
    with memoryview(_buffer) as view:
        return msgpack.unpackb(view[:size], raw=False), list(fds)
