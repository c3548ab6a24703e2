"""Every port offset, interval and limit Titan uses, in one place.

Command-line flags and tests override these through the same settings a user would use.
"""

DEFAULT_HOST = "localhost"
DEFAULT_BIND_HOST = "127.0.0.1"
DEFAULT_PORT = 9090

# The master's four sockets sit at fixed offsets from its base port.
CLIENT_PORT_OFFSET = 0
WORKER_PORT_OFFSET = 1
EVENTS_PORT_OFFSET = 2
STORE_PORT_OFFSET = 3

HEARTBEAT_INTERVAL_S = 1.0
# A job dispatched this many heartbeat intervals ago that its worker's heartbeat does not list was lost.
LOST_DISPATCH_HEARTBEATS = 3
WORKER_DEAD_AFTER_S = 5.0
WORKER_RECONNECT_MAX_S = 2.0
# A worker re-sends a job's result every this many heartbeat intervals until the master acknowledges it.
RESULT_RESEND_HEARTBEATS = 3
# What a worker has to send leaves in frames of about this size; ZeroMQ may hold this many of them for
# the master before the worker's own queue holds the rest (so its memory stays bounded).
WORKER_FRAME_BYTES = 1024 * 1024
WORKER_SEND_HWM_FRAMES = 8
# ... and the master's ZeroMQ takes at most this many frames from one worker ahead of its loop (ZeroMQ's
# default, 1,000, let one flooding worker park a gigabyte in a busy master).
MASTER_RECEIVE_HWM_FRAMES = 64
# A job's output waiting to be sent past this: the worker stops reading the job's pipes (the job blocks
# on its writes) until half of it has gone; while the master is unreachable, newer output is dropped
# instead and a marker line in the log says how much.
WORKER_OUTPUT_BACKLOG_BYTES = 1024 * 1024
# Workspaces a worker keeps for its next jobs (worker/workspaces.py): making and removing one costs more
# than running a job in the pool.
WORKSPACE_SPARES = 32
# A job's first output is held this long (unless its result or anything else is ready to go first), so a
# short job's output and result reach the master as one frame: one master turn and journal commit, not two.
WORKER_OUTPUT_HOLD_S = 0.005
# A result is held at most this long while another fork or pool job on the worker is younger than
# WORKER_OUTPUT_HOLD_S (likely to end within moments), so the results of a burst reach the master
# several to a frame: one master turn and journal commit for them all. Never held while no other young
# job runs (a chain, a single job).
WORKER_RESULT_HOLD_S = 0.002
# A job whose end comes as a message (fork server, pool) has its pipes polled only from this age on: what
# a shorter job writes is read once, with its result, instead of each write waking the worker (up to
# three more loop turns per job). Also how late a longer job's first output may start streaming.
WORKER_PIPES_WATCHED_AFTER_S = 0.05

# A job is over when its process has ended; its output is read until its pipes close (what it left
# running is killed at once), but no longer than this if something outside its tree still holds them.
JOB_OUTPUT_GRACE_S = 2.0

# A job whose attempts cost this many workers (each lost while running it) is FAILED (Dask: allowed-failures).
MAX_WORKER_LOSSES = 3

# A failed attempt with retries left is queued again after BACKOFF * 2**(failures - 1), at most MAX.
RETRY_BACKOFF_S = 1.0
RETRY_BACKOFF_MAX_S = 60.0
# A service up this long before it exits starts its restart count (and backoff) over.
SERVICE_STEADY_S = 60.0

CLIENT_TIMEOUT_S = 30.0
# A request unanswered this long is sent again; the `titan` command then says the master is not answering.
CLIENT_RETRY_INTERVAL_S = 2.0
# ... and says it again this often while it keeps trying, until its --timeout.
CLI_NO_ANSWER_REPEAT_S = 10.0
# `titan submit/run --wait` asks this often why waiting jobs are not placed (no worker offers what they need).
CLI_PLACEMENT_CHECK_S = 1.0

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# An event subscription is a topic prefix; topics are short ("job.COMPLETED"): the SDK refuses a longer
# one and the master ignores it. A frame over EVENT_FRAME_BYTES on the event socket makes the master drop
# the connection unread (a 64 MiB prefix once took a master to 5.9 GB); it leaves room for the CURVE
# handshake, whose commands count against the same limit.
MAX_EVENT_PREFIX_BYTES = 256
EVENT_FRAME_BYTES = 4096
# Limits the master enforces (each has a master flag of the same name, e.g. --max-jobs-per-dag). The
# defaults are far above what ordinary use needs (the S7 benchmark submits 100,000 jobs in one DAG);
# they stop one runaway client from exhausting the master's memory.
MAX_JOBS_PER_DAG = 250_000
MAX_SCRIPT_BYTES = 16 * 1024 * 1024
MAX_STORE_VALUE_BYTES = 1024 * 1024
MAX_STORE_KEYS = 1_000_000
# Store keys are names, not data: a 60 MiB key was accepted, kept in memory and journaled on every write.
MAX_STORE_KEY_BYTES = 1024
MAX_LOG_BYTES_PER_JOB = 16 * 1024 * 1024
MAX_SUBMITS_PER_SECOND = 1_000
# How often the master re-reads its trusted key folders, so a deleted public key stops working.
KEY_REFRESH_INTERVAL_S = 1.0
# How many recent request ids the master remembers, so a retried request is answered, not re-run.
REPLY_CACHE_SIZE = 10_000

DEFAULT_REQUIREMENT = "GENERAL"
# How many of the newest DAG names stats() lists, for watchers (dashboard) that start after them.
STATS_RECENT_DAGS = 100
# What list_jobs and dag_runs return when not told how many (titan jobs --limit, titan dags --limit).
JOBS_LISTED = 100
DAG_RUNS_LISTED = 20
# How long the master keeps an ended job (--keep-completed, --keep-failed) and how many ended jobs at most
# (--keep-max-jobs); the README says why these. Then it forgets them a step at a time, one step in each
# loop turn and after each worker batch handled, so forgetting keeps up with a busy master without
# stalling it: a step forgets FORGET_BATCH runs at first, then as many as took about CLEANING_BUDGET_S
# of CPU in the steps before (memory and journal; between FORGET_BATCH_MIN and FORGET_BATCH_MAX), and
# stops choosing once CLEANING_BUDGET_S have passed; a loop turn's steps together stop at
# CLEANING_TURN_BUDGET_S of CPU (a step is cut to what is left), whatever else the turn did, and while
# forgetting is behind the next turn does not wait in poll. After a commit that forgot something, once 4 x
# VACUUM_PAGES pages are free in the journal, it returns VACUUM_PAGES of them to the file system.
KEEP_COMPLETED_S = 86_400
KEEP_FAILED_S = 7 * 86_400
KEEP_MAX_JOBS = 100_000
FORGET_BATCH = 100
FORGET_BATCH_MIN, FORGET_BATCH_MAX = 10, 2_000
CLEANING_BUDGET_S = 0.003
CLEANING_TURN_BUDGET_S = 0.006   # all the steps of one loop turn together, memory and journal
VACUUM_PAGES = 64
# After this many runs forgotten (or a fifth of it once forgetting has caught up), the master gives the
# memory they freed back to the system (glibc's malloc_trim, where glibc is the C library): without it
# RSS stays at the peak of jobs kept.
TRIM_AFTER_FORGOTTEN = 50_000
# The master collects garbage itself at the end of a turn (titan/master/collector.py says why): the
# objects allocated since the last collection once they are GC_YOUNG_OBJECTS more (about 10-20 ms of
# CPU), and all of them when it has nothing to do (at most every GC_IDLE_EVERY_S) or every
# GC_FULL_EVERY_S: a full collection is 90-210 ms of CPU with S8's 30,000-100,000 jobs kept, a pause a
# request arriving then waits out, so rare; the master makes almost no cyclic garbage for it to find.
GC_YOUNG_OBJECTS = 30_000
GC_IDLE_EVERY_S = 600.0
GC_FULL_EVERY_S = 3600.0
# An artifact blob no name points at and no job kept runs from is removed once it has been so for
# --artifact-grace (the README says why 1h). Every ARTIFACT_SWEEP_EVERY_S the master looks at the next
# ARTIFACT_SWEEP_LOOK blobs (set lookups, microseconds each) and removes at most ARTIFACT_SWEEP_REMOVE of
# them (an unlink or one DELETE each), so a sweep never pauses the loop more than a few milliseconds.
ARTIFACT_GRACE_S = 3600
ARTIFACT_SWEEP_EVERY_S = 1.0
ARTIFACT_SWEEP_LOOK = 500
ARTIFACT_SWEEP_REMOVE = 10
DEFAULT_PRIORITY = 1
DEFAULT_MAX_WAIT_SECONDS = 172_800

# A worker checks whether a starting service's port accepts connections this often, each check a
# connect to 127.0.0.1 that gives up after PROBE_TIMEOUT (on loopback an answer is immediate).
SERVICE_PROBE_INTERVAL_S = 0.1
SERVICE_PROBE_TIMEOUT_S = 0.05

# How long the master lets one poll wait when nothing is due; bounds how late a delayed job starts.
POLL_INTERVAL_S = 0.1
# How long one loop turn may handle the messages waiting on one socket (worker batches, each committed
# and answered; requests) before it moves on: the rest is handled in the next turn, so that cleaning and
# the other sockets get their share every few tens of milliseconds however busy the workers are. The
# message that passes it is handled whole (a null worker's batch of 256 results: 8-23 ms of CPU in S8).
DRAIN_SLICE_S = 0.005
# A submission of more than INTAKE_AT_ONCE_JOBS jobs is read, checked and validated in slices of at most
# INTAKE_SLICE_S, one per loop turn, the loop serving other messages between them; then admitted whole
# in one turn (titan/master/intake.py).
INTAKE_AT_ONCE_JOBS = 1_000
INTAKE_SLICE_S = 0.005
# Two looks at the clock by the master further apart than this mean the master itself stalled (paused,
# swapped, a huge submission): that time is not counted against its workers' heartbeats.
MASTER_STALL_S = 1.0
# While the journal cannot be written (disk full), the master tries a commit again this often.
JOURNAL_RETRY_S = 1.0
# Masters sharing a PostgreSQL journal (--journal postgresql://...): the leader renews its lease at least
# this often (every commit renews it too); a standby takes it over once it has not been renewed for
# LEASE_TIMEOUT_S (--lease-timeout), looking every STANDBY_POLL_S.
LEASE_RENEW_S = 1.0
LEASE_TIMEOUT_S = 3.0
STANDBY_POLL_S = 0.2
POSTGRES_CONNECT_TIMEOUT_S = 2
# stats() reports a PostgreSQL journal's size (a query summing its tables) as measured at most this long ago.
POSTGRES_SIZE_REFRESH_S = 5.0
# A worker or client given several master addresses reconnects this often at most to one that went away
# (the next leader binds when it takes over), so it finds the new leader soon after.
MULTI_MASTER_RECONNECT_MAX_S = 0.5
# Lines of one kind the master writes to its log per minute at most (the rest are counted): 0, no limit.
MAX_LOG_REPEATS = 20
# Job output held in memory for the journal during such an outage, at most (then kept in memory only).
JOURNAL_HELD_LOG_CHARS = 64 * 1024 * 1024


def port_for(base_port: int, offset: int) -> int:
    return base_port + offset

# The web dashboard (titan/web): its own process, following the master's event stream.
DASHBOARD_PORT = 8080
DASHBOARD_CLIENT_TIMEOUT_S = 5.0        # a page request must not hang for the SDK's 30 s when the master is gone
DASHBOARD_STATS_REFRESH_S = 2.0         # workers' load and heartbeats change without events
DASHBOARD_STATS_AFTER_EVENTS_S = 0.25   # during a burst of events, fresh stats at most this often
DASHBOARD_BURST_END_S = 0.02            # no event for this long ends a burst: fresh stats then
DASHBOARD_MASTER_RETRY_S = 1.0
DASHBOARD_KEPT_DAGS = 100               # the page shows the newest DAGs; older finished ones are dropped
DASHBOARD_KEPT_SINGLE_JOBS = 200
DASHBOARD_BROWSER_BACKLOG = 5000        # events queued for one slow browser before it must resnapshot
DASHBOARD_KEEPALIVE_S = 15.0
DASHBOARD_LOG_CHUNK_CHARS = 1_000_000   # the most log text one poll returns
DASHBOARD_JOBS_PAGE = 50                # rows of the job table per page (the API allows up to 500)
MASTER_METRICS_REFRESH_S = 1.0          # --metrics-port: how often the master's loop renews the figures

# Files (artifacts, project archives) move in chunks of this size, so no message is huge and the master's
# loop is never held long by one transfer.
TRANSFER_CHUNK_BYTES = 1024 * 1024
# A project archive that would extract to more than this is refused (a zip bomb, or not a project).
MAX_ARCHIVE_EXTRACTED_BYTES = 4 * 1024 ** 3
# A worker asks the master for an archive chunk again if none came for this long (a lost message).
ARCHIVE_FETCH_RETRY_S = 5.0
# ... and gives up (failing the jobs that wait for it) when none came for this long.
ARCHIVE_FETCH_GIVE_UP_S = 120.0
# Artifact names (and archive names) are at most this long.
MAX_ARTIFACT_NAME_CHARS = 200
# Job ids and DAG names are at most this long: they are shown in tables and logs, and name folders.
MAX_ID_CHARS = 200
# YAML aliases in a pipeline file may stand for at most this many nodes in all: a "billion laughs" file of
# a few lines expands to 10^9 and takes the client's memory. Real pipelines reuse a few small blocks.
MAX_YAML_ALIAS_NODES = 10_000

# The MCP server (titan/mcp): a tool call must fail within seconds when the master is gone, not 30 s.
MCP_CLIENT_TIMEOUT_S = 5.0
MCP_DEFAULT_WAIT_S = 60.0               # wait_for_jobs' timeout_s when the agent gives none
MCP_MAX_WAIT_S = 600.0                  # longer and MCP clients give up on the call themselves
MCP_DEFAULT_LISTED_JOBS = 100
# The worker's pool (isolation="pool"): a member retires after this many jobs (0: never), or once its
# memory passes this many MB (0: no limit). Flags --pool-max-jobs and --pool-max-rss.
POOL_MAX_JOBS = 1_000
POOL_MAX_RSS_MB = 1_024
# How long a worker waits for its fork server to import what --preload names.
PRELOAD_TIMEOUT_S = 300.0
