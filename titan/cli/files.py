"""`titan artifact put|get`, `titan scripts` and `titan agent-run`: files on the master, deployed scripts and
agent runs from a shell."""

from __future__ import annotations

import os
import time

from titan.cli.common import Section, add_master_options, connect, show
from titan.cli.jobs import show_dag


def add_commands(commands) -> None:
    artifact = commands.add_parser("artifact", help="store a file on the master, or fetch one back",
                                   description="Files stored on the master by content hash (artifacts): "
                                               "put uploads one, get downloads it byte-identical.")
    verbs = artifact.add_subparsers(dest="verb", metavar="VERB", required=True)
    put = verbs.add_parser("put", help="upload a file; prints the name it is stored under")
    put.add_argument("path", help="the file to upload")
    put.add_argument("--name", default=None, help="store it under this name (default: its file name)")
    get = verbs.add_parser("get", help="download an artifact (what a job published, or an upload)")
    get.add_argument("name", help="the artifact's name or key")
    get.add_argument("path", help="where to save it (a folder: saved in it under the artifact's name)")
    for verb in (put, get):
        add_master_options(verb)
        verb.set_defaults(run=run_artifact)

    scripts = commands.add_parser("scripts", help="list the scripts deployed on the master (deploy one with --deploy)",
                                  description="Scripts kept on the master under their file name "
                                              "(client.deploy_script): a job whose script is not found where "
                                              "it is built runs the one deployed under that name.")
    scripts.add_argument("--deploy", action="append", default=[], metavar="FILE",
                         help="deploy this script first (repeat for more); a name deployed again is replaced")
    add_master_options(scripts)
    scripts.set_defaults(run=run_scripts)

    agent_run = commands.add_parser("agent-run", help="the DAGs submitted under one agent run",
                                    description="Each DAG submitted with this agent_run_id, oldest first, "
                                                "with its jobs' states. Exit 0 when all have finished.")
    agent_run.add_argument("run_id", help="the agent run id")
    add_master_options(agent_run)
    agent_run.set_defaults(run=run_agent_run)


def run_artifact(args) -> int:
    with connect(args) as client:
        if args.verb == "put":
            print(client.upload_file(args.path, args.name))
        else:
            print(client.fetch_artifact(args.name, args.path))
    return 0


def run_scripts(args) -> int:
    with connect(args) as client:
        for path in args.deploy:
            client.deploy_script(path)
            print(f"deployed {os.path.basename(path)}")
        deployed = client.deployed_scripts()
    rows = [(entry["name"], entry["size"], entry["sha256"][:12],
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["deployed_at"]))) for entry in deployed]
    show([Section("deployed scripts", ("name", "bytes", "sha256", "deployed"), rows)])
    return 0


def run_agent_run(args) -> int:
    with connect(args) as client:
        run = client.agent_run(args.run_id)
    print(f"agent run {run['run_id']}: {len(run['dags'])} DAG(s), {'finished' if run['finished'] else 'running'}")
    for dag in run["dags"]:
        show_dag(dag)
    return 0 if run["finished"] else 1
