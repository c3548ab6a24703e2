"""Running one `.py` job inside an interpreter that is already up (a forked child or a pool process), so
that what the job sees and how it ends match `python -u script.py`: run as `__main__`, non-daemon threads
waited for, atexit handlers run, `sys.exit` codes and tracebacks as the interpreter gives them.

Also the message helpers the fork server and the pool share (wire.py), under their old names here.
"""

from __future__ import annotations

import atexit
import builtins
import importlib.machinery
import io
import sys
import threading
import traceback
import types

from titan.worker.wire import receive, send  # noqa: F401 -- the pool's and the fork server's


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
