"""TitanJob as the original's users wrote it: .id, delays in milliseconds, args with apostrophes."""

from __future__ import annotations

import os

import pytest
import re

from tests.integration.test_pipelines import run_titan
from titan_sdk import TitanJob


def test_job_basics_of_the_original(run_original):
    code, output = run_original("job_basics.py")
    assert code == 0, output
    assert "BASICS OK" in output
    assert re.search(r"while delayed: delayed: starts in [01]\.\d+s \(delay 1\.5s\)", output), output


def test_titan_status_shows_a_delay_with_the_time_left(cluster, client, originals):
    client.submit_job(TitanJob("compat_much_later", os.path.join(originals, "steps", "step.py"), delay=60_000))
    result = run_titan(cluster, "status", "DAG-compat_much_later")
    assert result.returncode == 0, result.stderr
    assert re.search(r"reason: delayed: starts in 5\d\.\ds \(delay 60s\)", result.stdout), result.stdout
    assert client.cancel("compat_much_later") == "CANCELLED"


def test_dag_prefixed_ids_and_null_for_an_unknown_job(run_original):
    code, output = run_original("dag_prefixes.py")
    assert code == 0, output
    assert "unknown: NULL" in output and "PREFIXES OK" in output


def test_a_status_poll_against_no_master_still_raises(tmp_path):
    from titan.cluster import free_port_block
    from titan_sdk import MasterUnreachable, TitanClient

    with TitanClient("127.0.0.1", free_port_block("127.0.0.1", 4), timeout=0.5) as nobody:
        with pytest.raises(MasterUnreachable):
            nobody.get_job_status("anything")
