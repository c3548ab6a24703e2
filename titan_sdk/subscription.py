"""An event subscription: a SUB socket on the master's event socket, live once the master welcomes it,
and the iterator TitanClient.events returns.

With keys every topic is subscribed under this key's scope (titan.net.messages.SCOPE_MARK): the master
applies only those and publishes under that scope alone, so it can end this subscription when the key
is revoked (a job's at the end of its attempt), and says so: get() then raises AccessDenied.
"""

from __future__ import annotations

import time
from typing import Callable, List, Optional

import zmq

from titan import defaults
from titan.core.errors import AccessDenied, MasterUnreachable
from titan.net import addresses, protocol, security
from titan_sdk.event_order import EventGap, EventOrder


class Subscription:
    """A SUB socket that returns only once the master confirms the subscription is live."""

    def __init__(self, ctx: zmq.Context, address: str, topics: List[str], timeout: float,
                 identity: Optional[security.Identity] = None,
                 on_no_answer: Optional[Callable[[float], None]] = None):
        self.socket = ctx.socket(zmq.SUB)
        self.socket.linger = 0
        self.scope = b"" if identity is None else protocol.subscription_scope(identity.public)
        self.revoked: Optional[str] = None   # the master's reason, once it has ended this subscription
        if identity is not None:
            identity.apply(self.socket)
        for topic in dict.fromkeys(topics):
            self.socket.setsockopt(zmq.SUBSCRIBE, self.scope + topic.encode())
        if self.scope:
            self.socket.setsockopt(zmq.SUBSCRIBE, self.scope + protocol.EVENTS_REVOKED)
        self.socket.setsockopt(zmq.SUBSCRIBE, protocol.EVENTS_WELCOME)
        addresses.connect_all(self.socket, address)
        if not self._welcomed(timeout, on_no_answer):
            self.close()
            raise MasterUnreachable(f"Titan master event stream at {address} did not answer within "
                                    f"{timeout:g}s (is the master running?)", address=address)
        self.socket.recv_multipart()
        self.order = EventOrder()
        self.gap: Optional[EventGap] = None

    def _welcomed(self, timeout: float, on_no_answer) -> bool:
        """The master's welcome came within `timeout`; each retry interval without it, on_no_answer."""
        started = time.monotonic()
        while True:
            remaining = max(0.0, timeout - (time.monotonic() - started))
            if self.socket.poll(int(min(defaults.CLIENT_RETRY_INTERVAL_S, remaining) * 1000)):
                return True
            waited = time.monotonic() - started
            if waited >= timeout:
                return False
            if on_no_answer is not None:
                on_no_answer(waited)

    def drain(self) -> None:
        """Drop whatever is queued (its numbers still count, and a snapshot must follow)."""
        while self.socket.poll(0):
            event = self._event(self.socket.recv_multipart())
            if event is not None:
                self.order.check(event)
        self.gap = None

    def _event(self, frames: list) -> Optional[dict]:
        """The event these frames carry; None for the welcome; AccessDenied once the key was revoked."""
        if frames[0] == protocol.EVENTS_WELCOME:
            return None
        if self.scope and frames[0] == self.scope + protocol.EVENTS_REVOKED:
            self.revoked = str(protocol.decode_event(frames).get("reason"))
            self._raise_revoked()
        return protocol.decode_event(frames)

    def _raise_revoked(self) -> None:
        raise AccessDenied(f"this event subscription has ended, no more events will come: {self.revoked}")

    def get(self, timeout: Optional[float]) -> Optional[dict]:
        """The next event, or None if none comes within `timeout` seconds (None: wait for ever). Skips the
        welcome a reconnect to a restarted master brings. A gap before it is kept for take_gap()."""
        if self.revoked is not None:
            self._raise_revoked()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.socket.closed:
            try:   # events usually come in bursts: take a queued one without a poll's system call
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if remaining is not None and not self.socket.poll(int(remaining * 1000)):
                    return None
                frames = self.socket.recv_multipart()
            event = self._event(frames)
            if event is not None:
                self.gap = self.order.check(event) or self.gap
                return event
        return None

    def take_gap(self) -> Optional[EventGap]:
        """The events lost (by their numbers) before the last one returned, if any; asked once."""
        gap, self.gap = self.gap, None
        return gap

    def close(self) -> None:
        self.socket.close(linger=0)


class EventStream:
    """An iterator over events; see TitanClient.events."""

    def __init__(self, subscription: Subscription, timeout: Optional[float]):
        self._subscription, self.timeout = subscription, timeout

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> dict:
        event = self.get(self.timeout)
        if event is None:
            raise StopIteration
        return event

    def get(self, timeout: Optional[float] = None) -> Optional[dict]:
        """The next event, or None if none comes within `timeout` seconds (None: wait for ever). With
        keys, AccessDenied once the master has revoked the key (a job's: its attempt ended)."""
        return self._subscription.get(timeout)

    def take_gap(self) -> Optional[EventGap]:
        """Events lost (their numbers jumped) just before the last one returned, if any: a slow reader's
        loss, as an EventGap naming the topic and how many; None if nothing was lost. Asked once."""
        return self._subscription.take_gap()

    def close(self) -> None:
        self._subscription.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
