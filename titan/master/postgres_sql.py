"""Every statement of the PostgreSQL journal, the lease and the artifact store, in one place.

Tables are prefixed `titan_` so a database shared with other programs stays readable. Text that comes
from users (job ids, store keys, names, log text) is kept as UTF-8 in bytea: PostgreSQL's text refuses
NUL characters, and a journal that cannot write one log line would refuse every commit after it.
"""

SCHEMA_VERSION = 1
# Taken (per transaction) by whoever creates or checks the schema, so masters starting together do not
# race on CREATE ... IF NOT EXISTS (which is not safe against itself).
SCHEMA_LOCK_KEY = 0x7469_7461_6E00   # "titan\0"
# The SQLSTATE titan_fence raises: this master's epoch is no longer the lease's.
DEPOSED_SQLSTATE = "TI001"

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS titan_meta (key text PRIMARY KEY, value text NOT NULL)",
    # One row: who leads and until when. `epoch` only grows; it is the fencing token.
    """CREATE TABLE IF NOT EXISTS titan_lease (id int PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL,
        holder text NOT NULL, address text NOT NULL, since timestamptz NOT NULL, renewed_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS titan_standbys (holder text PRIMARY KEY, address text NOT NULL,
        started_at timestamptz NOT NULL, seen_at timestamptz NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS titan_job_specs (seq bigint PRIMARY KEY, dag bytea, spec bytea NOT NULL)",
    # job_id -> its latest folded state, packed as the SQLite journal's row (see _fold)
    "CREATE TABLE IF NOT EXISTS titan_job_states (job_id bytea PRIMARY KEY, seq bigint NOT NULL, state bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS titan_job_transitions (id bigserial PRIMARY KEY, count int NOT NULL, states bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS titan_scripts (sha256 text PRIMARY KEY, script bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS titan_dags (name bytea PRIMARY KEY, job_ids bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS titan_agent_runs (position bigserial, dag bytea PRIMARY KEY, run_id bytea NOT NULL)",
    """CREATE TABLE IF NOT EXISTS titan_logs (id bigserial PRIMARY KEY, job_id bytea NOT NULL, seq bigint NOT NULL,
        attempt int NOT NULL, stream text NOT NULL, text bytea NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS titan_logs_by_job ON titan_logs (job_id, seq)",
    "CREATE TABLE IF NOT EXISTS titan_store (key bytea PRIMARY KEY, kind text NOT NULL, value bytea NOT NULL)",
    # a set's members one row each, so an sadd writes one row, not the whole set (as in SQLite)
    "CREATE TABLE IF NOT EXISTS titan_store_members (key bytea NOT NULL, member bytea NOT NULL, PRIMARY KEY (key, member))",
    """CREATE TABLE IF NOT EXISTS titan_replies (id bigint PRIMARY KEY, channel text NOT NULL, rid bytea NOT NULL,
        reply bytea NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS titan_deployed_scripts (name bytea PRIMARY KEY, script bytea NOT NULL,
        deployed_at double precision NOT NULL)""",
    # History (history_journal.py's tables): added to a journal of before them by IF NOT EXISTS, empty,
    # so its jobs have no times and its DAGs one run each, as in SQLite; nothing else changes shape.
    """CREATE TABLE IF NOT EXISTS titan_run_times (seq bigint PRIMARY KEY, queued_at double precision,
        started_at double precision, ended_at double precision, ended_attempts bytea)""",
    "CREATE TABLE IF NOT EXISTS titan_past_runs (seq bigint PRIMARY KEY, job_id bytea NOT NULL, record bytea NOT NULL)",
    """CREATE TABLE IF NOT EXISTS titan_dag_runs (run bytea PRIMARY KEY, dag bytea NOT NULL, number bigint NOT NULL,
        submitted_at double precision, ended_at double precision, outcome text, seqs bytea NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS titan_artifact_blobs (sha256 text PRIMARY KEY, data bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS titan_artifact_names (name bytea PRIMARY KEY, entry bytea NOT NULL)",
    # Called first in every transaction of the leader: it renews the lease and holds its row until the
    # commit, so a standby's takeover waits for the commit or makes it fail. Never both.
    f"""CREATE OR REPLACE FUNCTION titan_fence(leader_epoch bigint) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE titan_lease SET renewed_at = clock_timestamp() WHERE id = 1 AND epoch = leader_epoch;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'epoch % no longer holds the lease', leader_epoch USING ERRCODE = '{DEPOSED_SQLSTATE}';
        END IF;
    END $$""",
]

LOCK_SCHEMA = "SELECT pg_advisory_xact_lock(%s)"
READ_VERSION = "SELECT value FROM titan_meta WHERE key = 'schema_version'"
WRITE_VERSION = "INSERT INTO titan_meta VALUES ('schema_version', %s)"
FENCE = "SELECT titan_fence(%s)"
# A turn that only admitted jobs, changed job states and recorded replies (most turns of a busy master:
# results in, dispatches out, a submission), written in ONE statement: its own transaction, one round
# trip, no pipeline. The fence CTE runs because the outer SELECT reads it, the INSERT CTEs run always; if
# the fence raises, the statement, and so the whole transaction, fails. A pipelined transaction of the
# same rows costs the master about three times the CPU in psycopg (measured: 200 against 70 us per commit).
WRITE_TURN = """WITH fence AS (SELECT titan_fence(%(epoch)s)),
    scripts AS (INSERT INTO titan_scripts SELECT * FROM unnest(%(shas)b::text[], %(scripts)b::bytea[])
        ON CONFLICT (sha256) DO NOTHING),
    specs AS (INSERT INTO titan_job_specs SELECT * FROM unnest(%(seqs)b::bigint[], %(dags)b::bytea[], %(specs)b::bytea[])
        ON CONFLICT (seq) DO UPDATE SET dag = EXCLUDED.dag, spec = EXCLUDED.spec),
    transitions AS (INSERT INTO titan_job_transitions (count, states)
        SELECT %(count)s, %(states)s WHERE %(count)s > 0),
    replies AS (INSERT INTO titan_replies
        SELECT * FROM unnest(%(ids)b::bigint[], %(channels)b::text[], %(rids)b::bytea[], %(replies)b::bytea[])
        ON CONFLICT (id) DO NOTHING)
    SELECT 1 FROM fence"""

# ----------------------------------------------------------------------------- the lease (titan/master/lease.py)

# The first master ever takes epoch 1; later, one takes the lease only once it has not been renewed for
# the timeout, by the database's clock (masters' clocks need not agree).
TAKE_FIRST_LEASE = """INSERT INTO titan_lease VALUES (1, 1, %(holder)s, %(address)s, clock_timestamp(), clock_timestamp())
    ON CONFLICT (id) DO NOTHING RETURNING epoch"""
TAKE_EXPIRED_LEASE = """UPDATE titan_lease SET epoch = epoch + 1, holder = %(holder)s, address = %(address)s,
    since = clock_timestamp(), renewed_at = clock_timestamp()
    WHERE id = 1 AND renewed_at < clock_timestamp() - make_interval(secs => %(timeout)s) RETURNING epoch"""
READ_LEASE = """SELECT epoch, holder, address, extract(epoch FROM since),
    extract(epoch FROM clock_timestamp() - renewed_at) FROM titan_lease WHERE id = 1"""
SEEN_STANDBY = """INSERT INTO titan_standbys VALUES (%(holder)s, %(address)s, clock_timestamp(), clock_timestamp())
    ON CONFLICT (holder) DO UPDATE SET seen_at = clock_timestamp(), address = EXCLUDED.address"""
FORGET_STANDBY = "DELETE FROM titan_standbys WHERE holder = %s"
# Standbys not seen for this long are gone (killed without a goodbye).
READ_STANDBYS = """SELECT holder, address, extract(epoch FROM started_at) FROM titan_standbys
    WHERE seen_at > clock_timestamp() - make_interval(secs => %s) ORDER BY started_at"""

# ----------------------------------------------------------------------------- the journal (postgres_journal.py)

INSERT_SCRIPT = "INSERT INTO titan_scripts VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING"
UPSERT_SPEC = "INSERT INTO titan_job_specs VALUES (%s, %s, %s) ON CONFLICT (seq) DO UPDATE SET dag = EXCLUDED.dag, spec = EXCLUDED.spec"
APPEND_TRANSITIONS = "INSERT INTO titan_job_transitions (count, states) VALUES (%s, %s)"
UPSERT_DAG = "INSERT INTO titan_dags VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET job_ids = EXCLUDED.job_ids"
DELETE_AGENT_RUN = "DELETE FROM titan_agent_runs WHERE dag = %s"
INSERT_AGENT_RUN = "INSERT INTO titan_agent_runs (dag, run_id) VALUES (%s, %s)"
INSERT_LOG = "INSERT INTO titan_logs (id, job_id, seq, attempt, stream, text) VALUES (%s, %s, %s, %s, %s, %s)"
DELETE_LOG = "DELETE FROM titan_logs WHERE id = %s"
LOG_ROW_SIZES = "SELECT id, job_id, seq, length(text) FROM titan_logs ORDER BY id"
DELETE_SPEC = "DELETE FROM titan_job_specs WHERE seq = %s"
DELETE_OLD_LOGS = "DELETE FROM titan_logs WHERE job_id = %s AND seq < %s"
DELETE_STORE_KEY = "DELETE FROM titan_store WHERE key = %s"
DELETE_MEMBERS = "DELETE FROM titan_store_members WHERE key = %s"
INSERT_MEMBER = "INSERT INTO titan_store_members VALUES (%s, %s) ON CONFLICT DO NOTHING"
CREATE_EMPTY_SET = "INSERT INTO titan_store VALUES (%s, 'set', %s) ON CONFLICT (key) DO NOTHING"
UPSERT_STORE_KEY = """INSERT INTO titan_store VALUES (%s, %s, %s)
    ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, value = EXCLUDED.value"""
INSERT_REPLY = "INSERT INTO titan_replies VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
DELETE_REPLY = "DELETE FROM titan_replies WHERE id = %s"
UPSERT_DEPLOYED = """INSERT INTO titan_deployed_scripts VALUES (%s, %s, %s)
    ON CONFLICT (name) DO UPDATE SET script = EXCLUDED.script, deployed_at = EXCLUDED.deployed_at"""
COUNT_UNFOLDED = "SELECT COALESCE(SUM(count), 0) FROM titan_job_transitions"
OLDEST_TRANSITIONS = "SELECT id, count, states FROM titan_job_transitions ORDER BY id LIMIT %s"
UPSERT_JOB_STATE = """INSERT INTO titan_job_states VALUES (%s, %s, %s)
    ON CONFLICT (job_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state"""
DELETE_FOLDED = "DELETE FROM titan_job_transitions WHERE id <= %s"
REPLY_IDS = "SELECT id, channel, rid FROM titan_replies ORDER BY id"

# history (history_journal.py's rows, in the same shapes)
UPSERT_RUN_TIMES = """INSERT INTO titan_run_times VALUES (%s, %s, %s, %s, %s) ON CONFLICT (seq) DO UPDATE SET
    queued_at = EXCLUDED.queued_at, started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,
    ended_attempts = EXCLUDED.ended_attempts"""
DELETE_RUN_TIMES = "DELETE FROM titan_run_times WHERE seq = %s"
UPSERT_PAST_RUN = """INSERT INTO titan_past_runs VALUES (%s, %s, %s)
    ON CONFLICT (seq) DO UPDATE SET job_id = EXCLUDED.job_id, record = EXCLUDED.record"""
UPSERT_DAG_RUN = """INSERT INTO titan_dag_runs VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run) DO UPDATE SET
    dag = EXCLUDED.dag, number = EXCLUDED.number, submitted_at = EXCLUDED.submitted_at,
    ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome, seqs = EXCLUDED.seqs"""
NEWEST_TRANSITION = "SELECT MAX(id) FROM titan_job_transitions"
# What record_forgotten lets go of (history_journal.forget's deletes), one statement per table with the
# keys as arrays, sent in binary (%b): row by row (executemany) cost the master 4.5 ms of CPU per 100 runs
# forgotten, and arrays as text half of what remains (psycopg escapes each element).
FORGET_SPECS = "DELETE FROM titan_job_specs WHERE seq = ANY(%b::bigint[])"
FORGET_STATES = """DELETE FROM titan_job_states
    WHERE (job_id, seq) IN (SELECT * FROM unnest(%b::bytea[], %b::bigint[]))"""
FORGET_LOGS = "DELETE FROM titan_logs WHERE (job_id, seq) IN (SELECT * FROM unnest(%b::bytea[], %b::bigint[]))"
FORGET_RUN_TIMES = "DELETE FROM titan_run_times WHERE seq = ANY(%b::bigint[])"
FORGET_PAST_RUNS = "DELETE FROM titan_past_runs WHERE seq = ANY(%b::bigint[])"
FORGET_DAG_RUNS = "DELETE FROM titan_dag_runs WHERE run = ANY(%b::bytea[])"
FORGET_DAGS = "DELETE FROM titan_dags WHERE name = ANY(%b::bytea[])"
FORGET_AGENT_RUNS = "DELETE FROM titan_agent_runs WHERE dag = ANY(%b::bytea[])"
FORGET_SCRIPTS = "DELETE FROM titan_scripts WHERE sha256 = ANY(%b::text[])"
FORGET_REPLIES = "DELETE FROM titan_replies WHERE id = ANY(%b::bigint[])"
# At load, after folding: state and times rows of runs forgotten by a master killed before it folded
# their changes (history_journal.drop_orphans). NOT EXISTS: an anti-join, whatever the number of specs.
DROP_ORPHAN_STATES = """DELETE FROM titan_job_states j
    WHERE NOT EXISTS (SELECT 1 FROM titan_job_specs s WHERE s.seq = j.seq)"""
DROP_ORPHAN_RUN_TIMES = """DELETE FROM titan_run_times t
    WHERE NOT EXISTS (SELECT 1 FROM titan_job_specs s WHERE s.seq = t.seq)"""
# What the journal takes on disk: every titan_ table of the schema in use, with its indexes and TOAST.
# Forgotten rows' space is reclaimed by PostgreSQL's autovacuum (there is no auto_vacuum to set).
SIZE_BYTES = """SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
    WHERE c.relkind = 'r' AND left(c.relname, 6) = 'titan_' AND pg_table_is_visible(c.oid)"""

LOAD_RUNS = """SELECT s.seq, s.dag, s.spec, j.state, t.queued_at, t.started_at, t.ended_at, t.ended_attempts
    FROM titan_job_specs s LEFT JOIN titan_job_states j ON j.seq = s.seq LEFT JOIN titan_run_times t ON t.seq = s.seq
    ORDER BY s.seq"""
LOAD_PAST_RUNS = "SELECT seq, record FROM titan_past_runs ORDER BY seq"
LOAD_DAG_RUNS = "SELECT run, dag, number, submitted_at, ended_at, outcome, seqs FROM titan_dag_runs ORDER BY number"
LOAD_SCRIPTS = "SELECT sha256, script FROM titan_scripts"
LOAD_DAGS = "SELECT name, job_ids FROM titan_dags"
LOAD_LOGS = """SELECT l.job_id, l.attempt, l.stream, l.text FROM titan_logs l
    JOIN titan_job_specs s ON l.seq = s.seq ORDER BY l.id"""
LOAD_STORE = "SELECT key, kind, value FROM titan_store"
LOAD_MEMBERS = "SELECT key, member FROM titan_store_members"
LOAD_AGENT_RUNS = "SELECT dag, run_id FROM titan_agent_runs ORDER BY position"
LOAD_DEPLOYED = "SELECT name, script, deployed_at FROM titan_deployed_scripts"
LOAD_REPLIES = "SELECT channel, rid, reply FROM titan_replies ORDER BY id"

# ----------------------------------------------------------------------------- artifacts (postgres_artifacts.py)

HAS_BLOB = "SELECT length(data) FROM titan_artifact_blobs WHERE sha256 = %s"
INSERT_BLOB = "INSERT INTO titan_artifact_blobs VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING"
READ_BLOB = "SELECT substring(data FROM %s FOR %s), length(data) FROM titan_artifact_blobs WHERE sha256 = %s"
UPSERT_NAME = "INSERT INTO titan_artifact_names VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET entry = EXCLUDED.entry"
READ_NAME = "SELECT entry FROM titan_artifact_names WHERE name = %s"

# ----------------------------------------------------------------------------- artifact garbage collection
# (ArtifactStore.sweep): what the store holds as it starts, and blobs removed in one statement per sweep

ALL_BLOBS = "SELECT array_agg(sha256) FROM titan_artifact_blobs"
ALL_NAME_ENTRIES = "SELECT array_agg(entry) FROM titan_artifact_names"
DELETE_BLOBS = "DELETE FROM titan_artifact_blobs WHERE sha256 = ANY(%s)"
