"""The master's event socket (XPUB, port P+2): subscriptions in, events out, and, with keys, the end of a
revoked key's subscriptions (titan/master/subscriptions.py says how). Mixed into Master (loop.py)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import List, Optional, Tuple

import zmq

from titan import defaults
from titan.master.subscriptions import SUBSCRIBE, UNSUBSCRIBE, EventSubscriptions
from titan.net import protocol

log = logging.getLogger("titan.master")

_APPLIED = {SUBSCRIBE: zmq.SUBSCRIBE, UNSUBSCRIBE: zmq.UNSUBSCRIBE}


class Publishing:
    """Needs self.guard (None without keys), self.events (the XPUB), self._outbox, self.run_id and
    self.scheduler."""

    def _init_publishing(self) -> None:
        self.event_seq = 0
        self._topic_seq: Counter = Counter()   # per topic, so a subscriber to some topics can see a gap
        self.subscriptions = EventSubscriptions(scoped=self.guard is not None)
        self.scheduler.wants_event = self.subscriptions.wants   # the scheduler builds no event nobody wants
        self._next_scope_check = 0.0
        self._key_generation_seen = self.guard.ring.generation if self.guard is not None else 0

    def _event_socket_options(self) -> dict:
        options = {zmq.XPUB_WELCOME_MSG: protocol.EVENTS_WELCOME, zmq.MAXMSGSIZE: defaults.EVENT_FRAME_BYTES}
        if self.guard is not None:   # the master applies each subscription itself: only under its sender's key
            options[zmq.XPUB_MANUAL] = 1
        return options

    def _on_subscription(self, frames: list, user: Optional[str]) -> None:
        """The XPUB reports subscriptions (byte 1, then the prefix) and unsubscriptions (byte 0): without
        keys the first to a prefix and the last to leave; with keys every one, to be applied (or not) to
        the connection it came on, which is the last one read, so at once."""
        apply, refusal = self.subscriptions.received(frames[0], user, self._key_owner)
        if apply is not None:
            self.events.setsockopt(_APPLIED[apply], frames[0][1:])
        elif refusal is not None:
            log.warning("event subscription not applied: %s", refusal)

    def _key_owner(self, z85_key: bytes) -> Optional[str]:
        return self.guard.key_owner(z85_key) if self.guard is not None else None

    def _publish(self, topic: str, body: dict) -> None:
        self.event_seq += 1
        self._topic_seq[topic] += 1
        if protocol.STRICT:   # every event, also those nobody subscribes to
            protocol.check_event_body(topic, body)
        scopes = self.subscriptions.targets(topic)
        if not scopes:
            return
        event = {**body, "topic": topic, "seq": self.event_seq, "topic_seq": self._topic_seq[topic],
                 "run_id": self.run_id, "ts": time.time()}
        if protocol.STRICT:
            protocol.check_event(topic, event)
        frames = protocol.encode_event(topic, event)
        for scope in scopes:   # without keys, one: b""
            self._outbox.append((self.events, [scope + frames[0], frames[1]] if scope else frames))

    def _end_subscriptions(self, ended: List[Tuple[bytes, Optional[str]]]) -> None:
        """Tell each ended scope's subscribers why nothing more will come (the SDK raises AccessDenied)."""
        for scope, user in ended:
            self._outbox.append((self.events, protocol.revocation_notice(scope, self.guard.revocation_reason(user))))

    def _end_revoked_subscriptions(self, revoked_keys: list) -> None:
        """Job keys just revoked (their attempts ended): cheap, a dictionary look-up per key."""
        if revoked_keys:
            self._end_subscriptions(self.subscriptions.revoke(revoked_keys))

    def _check_subscribers_keys(self, now: float) -> None:
        """At most each KEY_REFRESH_INTERVAL_S: after the key folders changed (read by the gatekeeper),
        end the subscriptions of deleted keys; and tell revoked scopes still subscribed again, in case
        their notice was dropped by a full queue."""
        if now < self._next_scope_check:
            return
        self._next_scope_check = now + defaults.KEY_REFRESH_INTERVAL_S
        self._end_subscriptions(self.subscriptions.revoked())
        if self.guard.ring.generation != self._key_generation_seen:
            self._key_generation_seen = self.guard.ring.generation
            self._end_subscriptions(self.subscriptions.recheck(self._key_owner))
