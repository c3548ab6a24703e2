"""Who wants which events on the event socket and, with keys, under whose key: no sockets here.

Without keys the XPUB filters by itself and reports the first subscription to a prefix and the last one
to leave; the master keeps those prefixes only so it builds no event that nobody wants.

With keys a plain XPUB could never stop one subscriber: ZAP checks a key when it connects, and libzmq
has no call that drops one peer of an XPUB. So the master's event socket is in XPUB_MANUAL mode: a
subscription takes effect only when the master applies it to the connection it came on (it carries its
sender's ZAP User-Id), and the master applies only those under the sender's own key scope
(messages.SCOPE_MARK). Each event goes out once per scope that wants it, under that scope's prefix. When
a key is revoked its scope gets nothing more but a notice; every other subscriber is untouched and
nothing is rebound.

Counting: in manual mode the XPUB reports every subscription and unsubscription sent, and, when a
connection closes, an unsubscription without User-Id for each prefix that connection had subscribed.
So the counts are of subscriptions sent (applied or not), which those closing messages undo exactly; an
explicit unsubscription counts only from the scope's owner, so nobody can unsubscribe someone else's
scope. Any error is on the side of publishing to a scope nobody listens to (the XPUB drops it), never
of missing one.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Dict, List, Optional, Tuple

from titan import defaults
from titan.net import protocol

SUBSCRIBE, UNSUBSCRIBE = "subscribe", "unsubscribe"
# public key (z85) -> the user the master honours it as now ("client:NAME", "job:KEY"), None if revoked
KeyOwner = Callable[[bytes], Optional[str]]


class _Scope:
    __slots__ = ("prefixes", "owner", "live")

    def __init__(self, owner: Optional[str]):
        self.prefixes: Counter = Counter()   # topic prefix (bytes) -> subscriptions sent for it
        self.owner = owner                   # the user whose key it is (None: not yet seen, or no keys)
        self.live = True                     # False once its key is revoked: it gets nothing more


class EventSubscriptions:
    def __init__(self, scoped: bool, prefix_limit: int = defaults.MAX_EVENT_PREFIX_BYTES):
        self.scoped = scoped
        self._limit = 1 + prefix_limit + (protocol.SCOPE_BYTES if scoped else 0)
        self._scopes: Dict[bytes, _Scope] = {}   # scope prefix (b"" without keys) -> its subscriptions
        self._targets: Dict[str, Tuple[bytes, ...]] = {}   # topic -> the live scopes that want it

    def received(self, message: bytes, user: Optional[str], owner: KeyOwner) -> Tuple[Optional[str], Optional[str]]:
        """Count one message of the event socket. Returns (what to apply to its connection: SUBSCRIBE,
        UNSUBSCRIBE or None; why it was not applied, for the log, or None)."""
        if len(message) > self._limit or message[:1] not in (b"\x00", b"\x01"):
            return None, None   # over-long prefixes match no topic and are not kept
        subscribe, subscription = message[:1] == b"\x01", message[1:]
        scope = protocol.scope_of(subscription) if self.scoped else b""
        if scope is None:
            wanted_unscoped = subscribe and subscription != protocol.EVENTS_WELCOME
            return None, f"{user} subscribed to {subscription[:60]!r} without its key's scope" \
                if wanted_unscoped else None
        prefix = subscription[len(scope):]
        if not self.scoped:
            self._count(scope, prefix, 1 if subscribe else -1)
            return None, None
        honoured_as = owner(protocol.scope_key(scope))
        state = self._scopes.get(scope)
        if subscribe:
            self._count(scope, prefix, 1)
            if user is None or honoured_as != user:
                whose = "revoked" if honoured_as is None else "not its own"
                return None, f"{user} subscribed under the scope of a key {whose}"
            state = self._scopes[scope]
            state.owner, state.live = user, True
            return SUBSCRIBE, None
        if user is None:   # its connection closed
            self._count(scope, prefix, -1)
        elif state is not None and state.owner == user:
            self._count(scope, prefix, -1)
            return UNSUBSCRIBE, None
        return None, None

    def _count(self, scope: bytes, prefix: bytes, change: int) -> None:
        state = self._scopes.get(scope)
        if state is None:
            if change < 0:
                return
            state = self._scopes[scope] = _Scope(None)
        state.prefixes[prefix] += change
        if state.prefixes[prefix] <= 0:
            del state.prefixes[prefix]
            if not state.prefixes:
                del self._scopes[scope]
        self._targets.clear()

    def targets(self, topic: str) -> Tuple[bytes, ...]:
        """The scope prefixes to publish an event of `topic` under (b"" without keys); () if none wants it."""
        found = self._targets.get(topic)
        if found is None:
            encoded = topic.encode()
            found = self._targets[topic] = tuple(
                scope for scope, state in self._scopes.items()
                if state.live and any(encoded.startswith(prefix) for prefix in state.prefixes))
        return found

    def wants(self, topic: str) -> bool:
        """Asked for every state change of every job: the cached answer without a further call."""
        found = self._targets.get(topic)
        return bool(found if found is not None else self.targets(topic))

    def revoke(self, keys) -> List[Tuple[bytes, Optional[str]]]:
        """These public keys are no longer honoured: their scopes get nothing more. Returns the scopes
        with subscribers that were live, and whose they were, to be told so."""
        ended = []
        for key in keys:
            scope = protocol.subscription_scope(key)
            state = self._scopes.get(scope)
            if state is not None and state.live:
                state.live = False
                ended.append((scope, state.owner))
        if ended:
            self._targets.clear()
        return ended

    def recheck(self, owner: KeyOwner) -> List[Tuple[bytes, Optional[str]]]:
        """After the key folders changed: a scope whose key is no longer honoured as its owner ends (it is
        returned, to be told so); one honoured again (its file put back) receives again."""
        ended = []
        for scope, state in self._scopes.items():
            honoured = state.owner is not None and owner(protocol.scope_key(scope)) == state.owner
            if state.live and not honoured and state.owner is not None:
                ended.append((scope, state.owner))
            state.live = honoured or (state.live and state.owner is None)
        self._targets.clear()
        return ended

    def revoked(self) -> List[Tuple[bytes, Optional[str]]]:
        """Ended scopes that still have subscribers (their notice may have been lost to a full queue)."""
        return [(scope, state.owner) for scope, state in self._scopes.items() if not state.live]
