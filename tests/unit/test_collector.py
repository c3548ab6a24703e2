"""The master's garbage collection policy (titan/master/collector.py): automatic collection off, full
collections between turns on growth or when idle, and cyclic garbage still collected (no leak)."""

import gc
import weakref

import pytest

from titan.master.collector import Collector, GcPauses

pytestmark = pytest.mark.timeout(60)


class Node:
    def __init__(self):
        self.other = None


def make_cycle() -> weakref.ref:
    """A pair of objects that refer to each other, dropped: only the collector can free them."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


@pytest.fixture
def collector():
    was_enabled = gc.isenabled()
    policy = Collector(young_objects=5_000, idle_every_s=10.0, full_every_s=100.0).start(now=0.0)
    try:
        yield policy
    finally:
        policy.stop()
        assert gc.isenabled() == was_enabled and gc.get_freeze_count() == 0


def allocate_young(collector: Collector) -> list:
    """More live objects than a young collection waits for."""
    return [Node() for _ in range(collector.young_objects + 100)]


def test_automatic_collection_is_off_until_stopped(collector):
    assert not gc.isenabled()
    assert collector.full_collections == 1   # start() collected once


def test_young_cyclic_garbage_is_collected_once_enough_was_allocated(collector):
    cycle = make_cycle()
    assert collector.after_turn(now=1.0) is None   # hardly anything allocated yet
    assert cycle() is not None   # nothing but the collector frees it
    live = allocate_young(collector)
    assert collector.after_turn(now=1.0) == "young"
    assert cycle() is None
    assert collector.after_turn(now=1.0) is None   # the survivors were frozen: the count starts again
    assert live


def test_garbage_that_outlived_its_turn_waits_for_the_full_collection(collector):
    first, second = Node(), Node()
    first.other, second.other = second, first
    cycle = weakref.ref(first)
    live = allocate_young(collector)
    assert collector.after_turn(now=1.0) == "young"   # still referenced: survives, frozen
    del first, second
    live += allocate_young(collector)
    assert collector.after_turn(now=2.0) == "young"
    assert cycle() is not None   # young collections do not scan the frozen
    assert collector.after_turn(now=5.0, idle=True) is None   # idle, but too soon after start()'s
    assert collector.after_turn(now=collector.idle_every_s + 1, idle=True) == "full"
    assert cycle() is None


def test_a_busy_master_still_collects_in_full_every_full_period(collector):
    cycle = make_cycle()
    gc.freeze()   # as if it had outlived a turn
    assert collector.after_turn(now=collector.full_every_s - 1) is None
    assert collector.after_turn(now=collector.full_every_s + 1) == "full"
    assert cycle() is None


def test_what_a_large_admission_allocated_is_frozen_unscanned(collector):
    cycle = make_cycle()
    live = allocate_young(collector)
    assert collector.after_turn(now=1.0, admitted=True) == "frozen"
    assert cycle() is not None and collector.young_collections == 0
    assert collector.after_turn(now=collector.idle_every_s + 1, idle=True) == "full"
    assert cycle() is None and live


def test_what_was_built_before_the_first_turn_is_kept_unscanned(collector):
    cycle = make_cycle()
    recovered = allocate_young(collector)
    collector.keep_all()
    assert collector.after_turn(now=1.0) is None and cycle() is not None
    assert collector.after_turn(now=collector.idle_every_s + 1, idle=True) == "full"
    assert cycle() is None and recovered


def test_cyclic_garbage_made_every_turn_stays_bounded(collector):
    """A loop that makes cyclic garbage every turn, some of it outliving its turn: the objects tracked
    stay bounded (young collections free what dies young, full ones the rest)."""
    baseline = len(gc.get_objects()) + gc.get_freeze_count()
    held = []
    for turn in range(300):
        for _ in range(1_000):
            make_cycle()
        held.append([make_cycle() and Node() for _ in range(10)])
        if len(held) > 5:
            held.pop(0)   # garbage only once a later turn drops it
        collector.after_turn(now=float(turn))   # a full collection at 100 and 200
        if turn % 10 == 0:
            assert len(gc.get_objects()) + gc.get_freeze_count() < baseline + 3 * collector.young_objects + 3_000, turn
    assert collector.young_collections >= 50 and collector.full_collections >= 3


def test_pauses_are_timed_per_generation():
    pauses = GcPauses()
    pauses.install()
    try:
        make_cycle()
        gc.collect(0)
        gc.collect()
    finally:
        pauses.remove()
    stats = pauses.stats(reset_peaks=True)
    assert stats["gen0"]["collections"] >= 1 and stats["gen2"]["collections"] >= 1
    assert stats["gen0"]["collected"] + stats["gen2"]["collected"] >= 2   # the cycle's two objects
    assert stats["gen2"]["longest_ms"] > 0 and stats["gen2"]["longest_cpu_ms"] >= 0
    again = pauses.stats(reset_peaks=False)
    assert again["gen2"]["longest_ms"] == 0 and again["gen2"]["collections"] == stats["gen2"]["collections"]
    gc.collect()
    assert pauses.stats(reset_peaks=False)["gen2"]["collections"] == stats["gen2"]["collections"]   # removed
