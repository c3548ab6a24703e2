"""Running one `.py` job inside an interpreter that is already up (a forked child or a pool process), so
that what the job sees and how it ends match `python -u script.py`: run as `__main__`, non-daemon threads
waited for, atexit handlers run, `sys.exit` codes and tracebacks as the interpreter gives them.

Also the small message helpers the fork server and the pool share (msgpack over a SEQPACKET socket pair,
with file descriptors attached).
"""

from __future__ import annotations

import array
import atexit
import builtins
import importlib.machinery
import io
import socket
import sys
import threading
import traceback
import types

import msgpack

MAX_MESSAGE = 1 << 20
FD_BYTES = array.array("i").itemsize


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
        payload, ancillary, _flags, _addr = channel.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(max_fds * FD_BYTES), flags)
    except ConnectionError:
        return None, []
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % FD_BYTES])
    if not payload:
        return None, list(fds)
    return msgpack.unpackb(payload, raw=False), list(fds)


def job_stdio() -> None:
    """Like `python -u`: every write reaches the pipe (fds 1 and 2) at once, so output streams live."""
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True,
                                  errors="backslashreplace")


def run_script(argv) -> int:
    """Run argv[0] as __main__ and finish as an interpreter would at exit; the exit code."""
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=argv[0], __builtins__=builtins, __cached__=None,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", argv[0]))
    interpreters_main, sys.modules["__main__"] = sys.modules.get("__main__"), main
    try:
        with io.FileIO(argv[0], "r") as source:   # unbuffered: no BufferedReader for a single read
            exec(compile(source.readall(), argv[0], "exec"), main.__dict__)
        code = 0
    except SystemExit as exit_request:
        code = exit_code(exit_request.code)
    except BaseException as error:
        print_traceback(error, argv[0])
        code = 1
    wait_for_threads()        # an interpreter joins non-daemon threads before it exits,
    atexit._run_exitfuncs()   # then runs the atexit handlers,
    atexit._clear()
    if threading.active_count() == 1:
        main.__dict__.clear()   # then clears __main__, so its objects' __del__ run (and print) now
    sys.modules["__main__"] = interpreters_main
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def wait_for_threads() -> None:
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()


def print_traceback(error: BaseException, script: str) -> None:
    """The traceback a fresh interpreter would print: starting at the script, not in runpy."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)


def exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
