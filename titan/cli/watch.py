"""`titan events | workers | top`: watching the cluster from a terminal, all of it from the event stream
and the master's stats snapshot."""

from __future__ import annotations

import signal
import time
from collections import deque
from datetime import datetime
from typing import List, Optional

from rich.console import Group
from rich.live import Live
from rich.text import Text

from titan.argtypes import positive_float, positive_int
from titan.cli.common import (Section, add_json_option, add_master_options, connect, console, fields_line, note,
                               print_json, show, stop_on_ctrl_c)
from titan.core.jobs import JobState

EVENT_FIELDS = ("job_id", "dag", "state", "worker", "attempt", "exit_code", "reason", "jobs", "counts")
TOP_INTERVAL_S = 2.0          # a stats snapshot at least this often, events or not (heartbeat ages move)
TOP_EVENT_REFRESH_S = 0.25    # events refresh the view at most this often, so a burst costs a few requests
TOP_RECENT_EVENTS = 8
STATE_STYLES = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan",
                "WAITING_APPROVAL": "magenta"}


def add_commands(commands) -> None:
    events = commands.add_parser("events", help="print events as they happen, one line each",
                                 description="One line per event (time, sequence number, topic, facts) "
                                             "until Ctrl-C, --count or --timeout. Lost events (a reader too "
                                             "slow for the master's buffer) are reported on stderr.")
    events.add_argument("--topic", action="append", default=[], metavar="PREFIX",
                        help="only topics starting with PREFIX, e.g. job.FAILED or worker. (repeatable)")
    events.add_argument("--count", type=positive_int, default=None, help="stop after this many events")
    events.add_argument("--timeout", type=positive_float, default=None,
                        help="stop after this many seconds from the start, reaching the master included "
                             "(default: run until Ctrl-C or --count)")
    add_master_options(events, timeout=False)
    events.set_defaults(run=run_events)

    workers = commands.add_parser("workers", help="the connected workers as a table",
                                  description="Each worker's name, capabilities, slots, load, running jobs "
                                              "and how long ago it was last heard from.")
    add_json_option(workers)
    add_master_options(workers)
    workers.set_defaults(run=run_workers)

    top = commands.add_parser("top", help="a live view of workers, queues and recent events",
                              description="Workers, queues and job counts, refreshed as events arrive and "
                                          "at least every --interval seconds, with the latest events.")
    top.add_argument("--interval", type=positive_float, default=TOP_INTERVAL_S,
                     help="seconds between snapshots when nothing happens (default %(default)s)")
    top.add_argument("--once", action="store_const", const=1, dest="iterations",
                     help="show one snapshot and exit")
    top.add_argument("--iterations", type=positive_int, default=None, help="exit after this many refreshes")
    add_master_options(top)
    top.set_defaults(run=run_top)


# ----------------------------------------------------------------- events

def run_events(args) -> int:
    stop_on_ctrl_c()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    printed = 0
    with connect(args) as client, client.events(topics=args.topic or None) as events:
        try:
            while args.count is None or printed < args.count:
                remaining = None if deadline is None else deadline - time.monotonic()
                event = events.get(None if remaining is None else max(0.0, remaining))
                if event is None:
                    return 0
                gap = events.take_gap()
                if gap is not None:
                    note("events", f"{gap} (this reader was too slow)" if gap.missing else str(gap))
                print(event_line(event), flush=True)
                printed += 1
        except KeyboardInterrupt:   # the usual way to stop it, not an error
            return 0
    return 0


def event_line(event: dict) -> str:
    """time, #seq, topic, then key=value facts (shell-quoted): `split()` finds the topic in field 3."""
    stamp = datetime.fromtimestamp(event.get("ts", time.time())).strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} #{event.get('seq')} {event['topic']} {fields_line(event, EVENT_FIELDS)}".rstrip()


# ----------------------------------------------------------------- workers, and the cluster's sections

def run_workers(args) -> int:
    with connect(args) as client:
        stats = client.stats()
    if args.json:
        return print_json(sorted(stats["workers"], key=lambda w: w["name"]))
    if not stats["workers"]:
        note("workers", "no worker is connected")
    show([workers_section(stats)])
    return 0


def workers_section(stats: dict) -> Section:
    rows = [(w["name"], w["capabilities"], w["slots"], w["load"], w["running"], _services(w.get("services")),
             _age(w.get("last_heartbeat_s_ago")))
            for w in sorted(stats["workers"], key=lambda w: w["name"])]
    return Section("workers", ("name", "capabilities", "slots", "load", "running", "services", "heartbeat"), rows)


def _services(services: Optional[list]) -> list:
    """Each service as job:port, marked when it is not accepting connections yet."""
    return [f"{s['job_id']}:{s['port']}" + ("" if s["up"] else "(starting)") for s in services or []]


def _age(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s_ago"


def cluster_sections(stats: dict, with_workers: bool = True) -> List[Section]:
    """The cluster at a glance, jobs by state (and how many queued ones wait out a retry backoff), the
    jobs ready to run by requirement; and the workers, if asked."""
    busy = sum(len(w["running"]) for w in stats["workers"])
    slots = sum(w["slots"] for w in stats["workers"])
    overview = Section("cluster", ("run", "uptime", "workers", "busy_slots", "store_keys", "events"),
                       [(stats.get("run_id"), f"{stats.get('uptime_s', 0):.0f}s", len(stats["workers"]),
                         f"{busy}/{slots}", stats.get("store_keys"), stats.get("seq"))])
    states = [state.value for state in JobState]
    backing_off = stats.get("queue_depths", {}).get("backing_off", 0)
    jobs = Section("jobs by state", [*states, "backing_off"],
                   [[*(stats["jobs_by_state"].get(state, 0) for state in states), backing_off]])
    ready = sorted(stats["queued_by_requirement"].items()) or [("any", 0)]
    queues = Section("ready to run, by requirement", [name for name, _ in ready], [[n for _, n in ready]])
    return [overview, *leadership_sections(stats.get("leadership")),
            *([workers_section(stats)] if with_workers else []), jobs, queues]


def leadership_sections(leadership) -> List[Section]:
    """With masters sharing a PostgreSQL journal: who leads (since when, under which epoch), who waits."""
    if not leadership:
        return []
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(leadership["since"]))
    leader = Section("leader", ("master", "address", "since", "epoch", "renewed"),
                     [(leadership["leader"], leadership["address"], since, leadership["epoch"],
                       f"{leadership['renewed_seconds_ago']:.1f}s ago")])
    standbys = [(s["name"], s["address"], time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["waiting_since"])))
                for s in leadership["standbys"]] or [("none", "", "")]
    return [leader, Section("standbys", ("master", "address", "waiting since"), standbys)]


# ----------------------------------------------------------------- top

class TopView:
    """The latest stats snapshot and the last few events, as rich renderables or plain text."""

    def __init__(self, stats: dict):
        self.stats = stats
        self.recent: deque = deque(maxlen=TOP_RECENT_EVENTS)

    def add_event(self, event: dict) -> None:
        self.recent.append(event)

    def sections(self) -> List[Section]:
        return cluster_sections(self.stats)

    def rich(self, height: int) -> Group:
        """As many recent events as fit below the tables (a table takes its rows and three lines, a
        one-row section two at most)."""
        sections = self.sections()
        room = height - sum(2 if len(s.rows) == 1 else len(s.rows) + 3 for s in sections) - 2
        shown = list(self.recent)[-room:] if room > 0 else []
        lines = [Text(event_line(e), style=STATE_STYLES.get(e.get("state"), ""), no_wrap=True,
                      overflow="ellipsis")
                 for e in shown]
        return Group(*(s.rich() for s in sections), Text("recent events", style="italic"),
                     *(lines or [Text("(none yet)")]))

    def plain(self) -> str:
        recent = "\n".join(event_line(e) for e in self.recent) or "(none yet)"
        stamp = datetime.now().strftime("%H:%M:%S")
        return "\n\n".join([f"=== titan top {stamp}", *(s.plain() for s in self.sections()),
                            f"# recent events\n{recent}"])


def run_top(args) -> int:
    stop_on_ctrl_c()
    with connect(args) as client, client.events() as events:
        view = TopView(client.stats())
        out = console()
        if not out.is_terminal:
            return _top_loop(client, events, view, args, lambda: print(view.plain() + "\n", flush=True))
        # SIGTERM ends it as Ctrl-C does, through Live's exit, which shows the cursor again.
        signal.signal(signal.SIGTERM, _interrupt)
        with Live(view.rich(out.height), console=out, auto_refresh=False) as live:
            return _top_loop(client, events, view, args,
                             lambda: live.update(view.rich(out.height), refresh=True))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _top_loop(client, events, view: TopView, args, render) -> int:
    """Render, then re-snapshot when events came (at most every TOP_EVENT_REFRESH_S), when events were
    lost, or every interval; until Ctrl-C or --iterations renders."""
    frames = 0
    snapshot_due = time.monotonic() + args.interval
    try:
        while True:
            render()
            frames += 1
            if args.iterations is not None and frames >= args.iterations:
                return 0
            while time.monotonic() < snapshot_due:
                event = events.get(max(0.0, snapshot_due - time.monotonic()))
                if event is None:
                    break
                view.add_event(event)
                if events.take_gap() is not None:   # counts are off until a fresh snapshot
                    break
                snapshot_due = min(snapshot_due, time.monotonic() + TOP_EVENT_REFRESH_S)   # set by the first event
            view.stats = client.stats()
            snapshot_due = time.monotonic() + args.interval
    except KeyboardInterrupt:
        return 0
