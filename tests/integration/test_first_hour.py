"""A new user's first hour, as the README leads them through it: the `titan` command run as a subprocess
against a real cluster, each test for one thing that went wrong or was missing (issue 16)."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.integration.test_cli import titan


# ----------------------------------------------------------------- submit names the job after the script

def test_submit_names_the_job_after_the_script_as_the_readme_uses_it(cluster, client, tmp_path):
    release = tmp_path / "release"
    train = tmp_path / "train.py"
    train.write_text(f"import os, time\nprint('training')\nwhile not os.path.exists({str(release)!r}): "
                     "time.sleep(0.05)\n")
    first = titan(cluster, "submit", str(train))
    assert first.returncode == 0 and first.stdout == "submitted train\n", first.stdout + first.stderr
    wait_until(lambda: client.get_job_status("train") == "RUNNING", what="train to run")
    status = titan(cluster, "status", "train")
    assert status.returncode == 0 and "state: RUNNING" in status.stdout, status.stdout + status.stderr

    second, third = titan(cluster, "submit", str(train)), titan(cluster, "submit", str(train))
    assert (second.stdout, third.stdout) == ("submitted train-2\n", "submitted train-3\n")

    cancelled = titan(cluster, "cancel", "train")
    assert cancelled.returncode == 0 and cancelled.stdout == "train: CANCELLED\n", cancelled.stderr
    assert "training" in titan(cluster, "logs", "train").stdout
    again = titan(cluster, "submit", str(train))   # `train` has ended: the name is free again
    assert again.stdout == "submitted train\n", again.stdout + again.stderr
    release.write_text("go")
    assert client.wait(["train", "train-2", "train-3"], timeout=30) == {
        "train": "COMPLETED", "train-2": "COMPLETED", "train-3": "COMPLETED"}
