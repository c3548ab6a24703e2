"""The original's file and pipeline calls: its argument names, order and defaults."""

from __future__ import annotations


def test_original_argument_names_and_defaults(run_original):
    code, output = run_original("files_and_yaml.py", timeout=55)
    assert code == 0, output
    assert "uploaded: compat_proj.zip" in output and "get_artifact saved to /tmp/report" in output
    assert "FILES OK" in output


def test_submit_yaml_gives_false_when_the_wait_times_out(client, originals):
    (originals / "slow.py").write_text("import time; time.sleep(20)\n")
    (originals / "slow.yaml").write_text("name: compat_slow\njobs:\n  - {id: compat_slow, file: slow.py}\n")
    assert client.submit_yaml(str(originals / "slow.yaml"), None, True, 2, 0.5) is False
    assert client.cancel("compat_slow") == "CANCELLED"
