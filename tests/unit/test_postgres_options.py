"""The master's PostgreSQL flags, checked before anything connects."""

import subprocess
import sys

BLOCK_PSYCOPG = "import sys; sys.modules['psycopg'] = None; "


def master(*args, code: str = ""):
    return subprocess.run([sys.executable, "-c", code + "from titan.master.command import main; "
                           f"sys.exit(main({list(args)!r}))"], capture_output=True, text=True, timeout=30)


def test_without_psycopg_the_master_names_the_extra_to_install():
    done = master("--journal", "postgresql://titan@127.0.0.1:1/titan", code=BLOCK_PSYCOPG)
    assert done.returncode == 1
    assert "pip install 'titan-scheduler[postgres]'" in done.stderr


def test_a_journal_that_is_not_a_postgresql_url_is_refused_naming_it():
    done = master("--journal", "mysql://x/y", code="import sys; ")
    assert done.returncode == 2 and "expected a postgresql:// URL, got 'mysql://x/y'" in done.stderr


def test_a_journal_and_a_data_dir_together_are_refused():
    done = master("--journal", "postgresql://x/y", "--data-dir", "/tmp/nowhere", code="import sys; ")
    assert done.returncode != 0 and "not both" in done.stderr
