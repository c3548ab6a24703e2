"""The journal on disk keeps what the master keeps in memory, no more: a chatty job's output is capped
by --max-log-bytes in the journal too, so it cannot fill the disk."""

from __future__ import annotations

import os
import sqlite3

from titan.cluster import WorkerSpec
from titan_sdk import TitanJob

CAP = 20_000
PRINTED = 4_000_000


def test_a_chatty_jobs_output_in_the_journal_stays_bounded(make_cluster, script, tmp_path):
    data_dir = tmp_path / "data"
    cluster = make_cluster(WorkerSpec("w1", slots=1), data_dir=str(data_dir),
                           master_args=["--max-log-bytes", str(CAP)])
    chatty = script("chatty.py", f"""
        import sys
        line = "y" * 99 + "\\n"
        for _ in range({PRINTED} // 100):
            sys.stdout.write(line)
        print("the end")
        """)
    with cluster.client(timeout=15) as client:
        client.submit_job(TitanJob("chatty", chatty))
        assert client.wait("chatty", timeout=120) == "COMPLETED"
        assert client.fetch_logs("chatty").endswith("the end\n")
    cluster.stop()   # the journal is the master's alone while it runs
    db = sqlite3.connect(str(data_dir / "titan.db"))
    try:
        (journaled,) = db.execute("SELECT SUM(length(CAST(text AS BLOB))) FROM logs WHERE job_id = 'chatty'").fetchone()
        (biggest,) = db.execute("SELECT MAX(length(CAST(text AS BLOB))) FROM logs").fetchone()
        (last,) = db.execute("SELECT text FROM logs ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    assert CAP <= journaled <= CAP + biggest, f"{journaled:,} bytes of output journaled; the cap is {CAP:,}"
    assert last.endswith("the end\n")
    assert os.path.getsize(data_dir / "titan.db") < PRINTED / 2
