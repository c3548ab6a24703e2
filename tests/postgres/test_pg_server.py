"""The PostgreSQL test server itself: it starts, answers, and comes back after a stop."""

import psycopg


def test_server_answers_and_comes_back_after_a_stop(postgres, pg_url):
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 150000
    postgres.stop("immediate")
    try:
        psycopg.connect(pg_url, connect_timeout=1).close()
        raise AssertionError("the server answered while stopped")
    except psycopg.OperationalError:
        pass
    postgres.start()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
