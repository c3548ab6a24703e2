"""Fixtures for scripts and pipelines written for the original Titan, run as its users ran them:
`python script.py` with TITAN_HOST/TITAN_PORT pointing at a real local cluster (tests/conftest.py's)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from tests.conftest import finish, start_process

ORIGINALS = os.path.join(os.path.dirname(__file__), "originals")


@pytest.fixture
def originals(tmp_path):
    """A copy of tests/compat/originals to run in (the scripts write files beside themselves)."""
    folder = tmp_path / "originals"
    shutil.copytree(ORIGINALS, folder)
    return folder


@pytest.fixture
def run_original(cluster, originals):
    """run_original("script.py", *args) runs a script of the original's kind against `cluster`, from the
    scripts' folder, as `python script.py`; returns (exit code, output). The scripts check what they
    observe themselves and exit 1 saying what was wrong, as the original's test scripts did."""

    def run(name: str, *args: str, timeout: float = 45) -> tuple:
        env = {**os.environ, "TITAN_HOST": cluster.host, "TITAN_PORT": str(cluster.port)}
        process = start_process([sys.executable, name, *args], cwd=str(originals), env=env)
        stdout, stderr = finish(process, timeout)
        return process.returncode, stdout + stderr

    return run
