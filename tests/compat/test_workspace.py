"""Jobs of one DAG on one worker share their working folder, as in the original."""

from __future__ import annotations


def test_a_file_left_in_the_working_folder_is_read_by_a_later_job(run_original):
    code, output = run_original("shared_folder.py")
    assert code == 0, output
    assert "TITAN_DAG_DIR matches: True" in output
    assert "reader read: written by the writer" in output and "SHARED OK" in output


def test_two_jobs_of_a_dag_with_scripts_of_one_name_each_run_their_own(client, originals):
    from titan_sdk import TitanJob

    jobs = [TitanJob(f"compat_same_name_{side}", str(originals / side / "work.py")) for side in ("writer", "reader")]
    (originals / "report.txt").unlink(missing_ok=True)
    client.submit_dag("compat_same_names", jobs)
    final = client.wait([job.job_id for job in jobs], timeout=30)
    writer_logs = client.fetch_logs("compat_same_name_writer")
    assert final["compat_same_name_writer"] == "COMPLETED" and "writer wrote report.txt" in writer_logs
    reader_logs = client.fetch_logs("compat_same_name_reader")
    assert "reader read" in reader_logs or "FileNotFoundError" in reader_logs   # it ran its own script
    assert "writer wrote" not in reader_logs
