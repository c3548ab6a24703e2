"""One thread follows the master's events and fans them out to every browser connected by SSE.

Subscribe first, then snapshot, then apply only newer events (as TitanClient.wait does). A gap in
sequence numbers or a new run id (the master restarted) means a fresh snapshot, sent to every browser.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Callable, List, Optional, Set

from titan import defaults
from titan.core.errors import MasterUnreachable, UnknownDag
from titan.web.metrics import JobTimings
from titan.web.view import NEXT, RESYNC, ClusterView, dag_message


class Hub:
    """The view and the browsers' queues, under one lock: a browser gets a snapshot and then exactly the
    messages that follow it."""

    def __init__(self, view: ClusterView, backlog: int = defaults.DASHBOARD_BROWSER_BACKLOG):
        self.view, self.backlog = view, backlog
        self.lock = threading.Lock()
        self._browsers: Set[queue.Queue] = set()

    def attach(self) -> queue.Queue:
        browser: queue.Queue = queue.Queue(maxsize=self.backlog)
        with self.lock:
            browser.put_nowait(self.view.snapshot())
            self._browsers.add(browser)
        return browser

    def detach(self, browser: queue.Queue) -> None:
        with self.lock:
            self._browsers.discard(browser)

    def change(self, update: Callable[[ClusterView], Optional[dict]]) -> None:
        """Run update(view) under the lock and send the message it returns (if any) to every browser."""
        with self.lock:
            message = update(self.view)
            if message is not None:
                self._broadcast(message)

    def _broadcast(self, message: dict) -> None:
        for browser in list(self._browsers):
            try:
                browser.put_nowait(message)
            except queue.Full:
                # Too slow to keep up: end its stream; EventSource reconnects and gets a fresh snapshot.
                self._browsers.discard(browser)
                _replace_with_goodbye(browser)

    def read(self, read: Callable[[ClusterView], object]):
        with self.lock:
            return read(self.view)


def _replace_with_goodbye(browser: queue.Queue) -> None:
    while True:
        try:
            browser.get_nowait()
        except queue.Empty:
            break
    browser.put_nowait(None)


class EventFeed(threading.Thread):
    def __init__(self, client, hub: Hub, timings: JobTimings):
        super().__init__(name="titan-dashboard-feed", daemon=True)
        self.client, self.hub, self.timings = client, hub, timings
        self.stopping = threading.Event()
        self.following = threading.Event()     # set once subscribed and snapshotted
        self._stats_due = self._last_stats = 0.0
        self._events_since_stats = False

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._follow()
            except MasterUnreachable as exc:
                self._wait_and_retry(str(exc))
            except Exception as exc:  # keep following: a page that silently freezes is worse
                print(f"titan dashboard: following the master failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
                self._wait_and_retry(f"{type(exc).__name__}: {exc}")

    def _wait_and_retry(self, error: str) -> None:
        self.hub.change(lambda view: _master_down(view, error))
        self.stopping.wait(defaults.DASHBOARD_MASTER_RETRY_S)

    def _follow(self) -> None:
        with self.client.events() as events:
            self._resync()
            while not self.stopping.is_set():
                event = events.get(self._idle_wait())
                if event is not None:
                    self._handle(event)
                if self._restarted_unseen(idle=event is None):
                    return   # subscribe anew (run() follows again), then snapshot: nothing is missed

    def _handle(self, event: dict) -> None:
        placement = self.hub.read(lambda view: view.place(event))
        if placement == RESYNC:
            self._resync()       # the snapshot it takes already holds this event
            return
        if placement != NEXT:
            return
        self.timings.observe(event)
        dag_name = self.hub.read(lambda view: view.needs_dag(event))
        if dag_name:
            self._describe_dag(dag_name)
        self.hub.change(lambda view: _apply_event(view, event))
        self._events_since_stats = True

    def _describe_dag(self, name: str) -> None:
        try:
            description = self.client.dag_status(name)
        except UnknownDag:
            return
        self.hub.change(lambda view: dag_message(view.set_dag(description)))

    def _resync(self) -> None:
        stats = self.client.stats()
        descriptions: List[dict] = []
        known = self.hub.read(lambda view: view.dag_names())
        # oldest first, as the page lists them; DAGs from before the dashboard started included
        names = dict.fromkeys([*known, *reversed(stats.get("recent_dags", [])[:defaults.DASHBOARD_KEPT_DAGS])])
        for name in names:
            try:
                descriptions.append(self.client.dag_status(name))
            except UnknownDag:
                pass             # a restarted master without a journal forgot it
        self.timings.forget_pending()
        self.hub.change(lambda view: _reset(view, stats, descriptions))
        self._schedule_stats()
        self.following.set()

    def _idle_wait(self) -> float:
        if self._events_since_stats:
            return defaults.DASHBOARD_BURST_END_S
        return min(0.5, max(0.0, self._next_stats_at() - time.monotonic()))

    def _restarted_unseen(self, idle: bool) -> bool:
        """Fresh stats when a burst of events ends (so counts settle at once), at most every
        DASHBOARD_STATS_AFTER_EVENTS_S during one, and every DASHBOARD_STATS_REFRESH_S anyway. True when
        they show the master restarted without an event reaching us yet: the old subscription may not be
        live at the new master, so a snapshot now could miss what follows it."""
        burst_ended = idle and self._events_since_stats
        if not burst_ended and time.monotonic() < self._next_stats_at():
            return False
        stats = self.client.stats()
        if stats["run_id"] != self.hub.read(lambda view: view.run_id):
            return True
        self.hub.change(lambda view: _new_stats(view, stats))
        self._schedule_stats()
        return False

    def _next_stats_at(self) -> float:
        if self._events_since_stats:
            return min(self._stats_due, self._last_stats + defaults.DASHBOARD_STATS_AFTER_EVENTS_S)
        return self._stats_due

    def _schedule_stats(self) -> None:
        self._last_stats = time.monotonic()
        self._stats_due = self._last_stats + defaults.DASHBOARD_STATS_REFRESH_S
        self._events_since_stats = False


# Changes to the view, each returning the message browsers get about it.

def _master_down(view: ClusterView, error: str) -> dict:
    view.set_master_down(error)
    return view.master_message()


def _apply_event(view: ClusterView, event: dict) -> dict:
    view.apply(event)
    return {"type": "event", "event": event}


def _reset(view: ClusterView, stats: dict, descriptions: List[dict]) -> dict:
    view.reset(stats, descriptions)
    return view.snapshot()


def _new_stats(view: ClusterView, stats: dict) -> dict:
    view.set_stats(stats)
    return {"type": "stats", "stats": view.stats, "master": view.master_message()}
