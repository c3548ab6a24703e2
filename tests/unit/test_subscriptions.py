"""EventSubscriptions (titan/master/subscriptions.py): what the master applies, counts and publishes to,
with and without keys, driven with the messages an XPUB reports; and the scope helpers of the protocol."""

from __future__ import annotations

import pytest
import zmq

from titan import defaults
from titan.master.subscriptions import SUBSCRIBE, UNSUBSCRIBE, EventSubscriptions
from titan.net import protocol

ALICE_KEY, BOB_KEY, JOB_KEY = (zmq.curve_keypair()[0] for _ in range(3))
ALICE, BOB, JOB = "client:alice", "client:bob", f"job:{JOB_KEY.decode()}"


class Keys:
    """Who each key is honoured as, as the gatekeeper would say; deleting one revokes it."""

    def __init__(self):
        self.owners = {ALICE_KEY: ALICE, BOB_KEY: BOB, JOB_KEY: JOB}

    def __call__(self, key: bytes):
        return self.owners.get(key)


def sub(key: bytes, topic: str) -> bytes:
    return b"\x01" + protocol.subscription_scope(key) + topic.encode()


def unsub(key: bytes, topic: str) -> bytes:
    return b"\x00" + protocol.subscription_scope(key) + topic.encode()


def scope(key: bytes) -> bytes:
    return protocol.subscription_scope(key)


def test_without_keys_the_xpub_reports_first_and_last_and_nothing_is_applied():
    subs, keys = EventSubscriptions(scoped=False), Keys()
    assert subs.received(b"\x01job.", None, keys) == (None, None)
    assert subs.targets("job.COMPLETED") == (b"",) and not subs.wants("worker.joined")
    subs.received(b"\x00job.", None, keys)
    assert subs.targets("job.COMPLETED") == ()


def test_an_over_long_prefix_is_ignored_and_costs_nothing():
    subs = EventSubscriptions(scoped=False)
    subs.received(b"\x01" + b"j" * (defaults.MAX_EVENT_PREFIX_BYTES + 1), None, Keys())
    assert subs.targets("j" * (defaults.MAX_EVENT_PREFIX_BYTES + 2)) == ()


def test_with_keys_a_subscription_under_the_senders_own_key_is_applied_and_published_under_its_scope():
    subs, keys = EventSubscriptions(scoped=True), Keys()
    assert subs.received(sub(ALICE_KEY, "job."), ALICE, keys) == (SUBSCRIBE, None)
    assert subs.received(sub(JOB_KEY, ""), JOB, keys) == (SUBSCRIBE, None)
    assert set(subs.targets("job.QUEUED")) == {scope(ALICE_KEY), scope(JOB_KEY)}
    assert subs.targets("worker.joined") == (scope(JOB_KEY),)


def test_with_keys_unscoped_and_foreign_subscriptions_are_not_applied():
    subs, keys = EventSubscriptions(scoped=True), Keys()
    apply, why = subs.received(b"\x01job.", ALICE, keys)
    assert apply is None and "without its key's scope" in why
    assert subs.received(b"\x01" + protocol.EVENTS_WELCOME, ALICE, keys) == (None, None)   # the SDK's, harmless
    apply, why = subs.received(sub(BOB_KEY, "job."), ALICE, keys)
    assert apply is None and "not its own" in why
    keys.owners.pop(JOB_KEY)
    apply, why = subs.received(sub(JOB_KEY, "job."), JOB, keys)
    assert apply is None and "revoked" in why


def test_a_closed_connection_undoes_its_subscriptions_and_only_the_owner_unsubscribes_explicitly():
    subs, keys = EventSubscriptions(scoped=True), Keys()
    subs.received(sub(BOB_KEY, "job."), BOB, keys)
    subs.received(sub(BOB_KEY, "job."), ALICE, keys)     # alice's try: not applied, but counted ...
    subs.received(unsub(BOB_KEY, "job."), None, keys)    # ... as her closing connection undoes it
    assert subs.targets("job.QUEUED") == (scope(BOB_KEY),)
    assert subs.received(unsub(BOB_KEY, "job."), ALICE, keys) == (None, None)   # not hers to unsubscribe
    assert subs.targets("job.QUEUED") == (scope(BOB_KEY),)
    assert subs.received(unsub(BOB_KEY, "job."), BOB, keys) == (UNSUBSCRIBE, None)
    assert subs.targets("job.QUEUED") == ()


def test_a_revoked_job_key_ends_its_scope_alone_and_says_so_once_until_asked_again():
    subs, keys = EventSubscriptions(scoped=True), Keys()
    subs.received(sub(JOB_KEY, "job."), JOB, keys)
    subs.received(sub(ALICE_KEY, "job."), ALICE, keys)
    keys.owners.pop(JOB_KEY)
    assert subs.revoke([JOB_KEY, BOB_KEY]) == [(scope(JOB_KEY), JOB)]   # bob subscribed nothing
    assert subs.targets("job.COMPLETED") == (scope(ALICE_KEY),)
    assert subs.revoke([JOB_KEY]) == []
    assert subs.revoked() == [(scope(JOB_KEY), JOB)]   # still subscribed: told again each check
    subs.received(unsub(JOB_KEY, "job."), None, keys)   # its connection closed
    assert subs.revoked() == []


def test_a_deleted_client_key_ends_its_scope_at_the_recheck_and_a_restored_one_receives_again():
    subs, keys = EventSubscriptions(scoped=True), Keys()
    subs.received(sub(ALICE_KEY, "job."), ALICE, keys)
    subs.received(sub(BOB_KEY, "job."), BOB, keys)
    assert subs.recheck(keys) == []
    keys.owners.pop(ALICE_KEY)
    assert subs.recheck(keys) == [(scope(ALICE_KEY), ALICE)]
    assert subs.recheck(keys) == []
    assert subs.targets("job.QUEUED") == (scope(BOB_KEY),)
    keys.owners[ALICE_KEY] = ALICE
    subs.recheck(keys)
    assert set(subs.targets("job.QUEUED")) == {scope(ALICE_KEY), scope(BOB_KEY)}


def test_a_key_reissued_to_someone_else_does_not_inherit_the_scope():
    subs, keys = EventSubscriptions(scoped=True), Keys()
    subs.received(sub(ALICE_KEY, "job."), ALICE, keys)
    keys.owners[ALICE_KEY] = "client:mallory"
    assert subs.recheck(keys) == [(scope(ALICE_KEY), ALICE)]


def test_scope_helpers_round_trip_and_refuse_what_is_not_a_key():
    prefix = protocol.subscription_scope(ALICE_KEY)
    assert len(prefix) == protocol.SCOPE_BYTES and protocol.scope_key(prefix) == ALICE_KEY
    assert protocol.scope_of(prefix + b"job.") == prefix
    assert protocol.scope_of(b"job.") is None and protocol.scope_of(b"~short~job.") is None
    with pytest.raises(ValueError, match="40 characters"):
        protocol.subscription_scope(b"abc")
    frames = protocol.revocation_notice(prefix, "its attempt ended")
    assert frames[0] == prefix + protocol.EVENTS_REVOKED
    assert protocol.decode_event(frames) == {"topic": "titan.revoked", "reason": "its attempt ended"}
