"""`titan master` and `titan worker`: the same processes, flags and help as `python -m titan.master` and
`python -m titan.worker` (the flags come from the very same functions)."""

from __future__ import annotations

from titan.master import config as master_config
from titan.worker import config as worker_config


def add_commands(commands) -> None:
    master = commands.add_parser("master", help="run a Titan master (the same as python -m titan.master)",
                                 description=f"{master_config.DESCRIPTION} The same as python -m titan.master.")
    master_config.add_options(master)
    master.set_defaults(run=run_master)
    worker = commands.add_parser("worker", help="run a Titan worker (the same as python -m titan.worker)",
                                 description=f"{worker_config.DESCRIPTION} The same as python -m titan.worker.")
    worker_config.add_options(worker)
    worker.set_defaults(run=run_worker)


def run_master(args) -> int:
    from titan.master.command import serve

    return serve(master_config.config_from(args))


def run_worker(args) -> int:
    from titan.worker.command import serve

    return serve(worker_config.config_from(args))
