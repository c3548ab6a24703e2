"""`titan keys init DIR`, `titan keys add-client NAME`, `titan keys add-worker NAME`: CURVE keys for a cluster.

Wired into the `titan` command by titan.cli.parser (add_commands).
"""

from __future__ import annotations

import argparse
import os

from titan.cli.common import note
from titan.net import security


def add_commands(commands) -> None:
    """Add the `keys` command (with its init / add-client / add-worker verbs) to argparse subparsers."""
    keys = commands.add_parser("keys", help="make CURVE keys so a cluster can run safely across machines",
                               description="Make and issue the keys with which the master, its workers and "
                                           "its clients authenticate each other and encrypt all traffic.")
    verbs = keys.add_subparsers(dest="keys_command", metavar="VERB")
    init = verbs.add_parser("init", help="make a key directory: a master key, one client and one worker key")
    init.add_argument("dir", help="the key directory to create (keep it on the master's machine)")
    init.set_defaults(run=run_init)
    for role in (security.CLIENT, security.WORKER):
        add = verbs.add_parser(f"add-{role}", help=f"issue a key for one more {role}")
        add.add_argument("name", help=f"the {role}'s name (letters, digits, '-', '_', '.')")
        add.add_argument("--keys", default=os.environ.get(security.KEYS_ENV),
                         help=f"the key directory (default: ${security.KEYS_ENV})")
        add.set_defaults(run=run_add, role=role)
    keys.set_defaults(run=lambda args: _usage(keys))


def run_init(args) -> int:
    security.init_key_dir(args.dir)
    root = os.path.abspath(args.dir)
    client, worker = (security.bundle_path(root, role, role) for role in (security.CLIENT, security.WORKER))
    clients, workers = (os.path.join(root, security.ROLE_FOLDERS[role]) for role in (security.CLIENT, security.WORKER))
    print(f"made keys in {root}:\n"
          f"  master   {os.path.join(root, security.MASTER_FOLDER)}/            (stays on the master's machine; "
          f"start it with --keys {root})\n"
          f"  client   {client}/  (copy to a client machine; TitanClient(keys=...) or {security.KEYS_ENV}=...)\n"
          f"  worker   {worker}/  (copy to a worker machine; python -m titan.worker --keys ...)\n"
          f"On this machine --keys {root} works for the master, a worker and a client alike.\n"
          f"Revoke a key by deleting its public key file from {clients}/ or {workers}/.")
    return 0


def run_add(args) -> int:
    if not args.keys:
        note(f"keys add-{args.role}", f"say which key directory with --keys DIR or {security.KEYS_ENV}")
        return 2
    bundle = security.issue(args.keys, args.role, args.name)
    trusted = security.trusted_key_path(args.keys, args.role, args.name)
    print(f"issued {args.role} key {args.name!r}: copy {os.path.abspath(bundle)} to the {args.role}'s machine "
          f"and point --keys (or {security.KEYS_ENV}) at it. Revoke it by deleting {os.path.abspath(trusted)}.")
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
