"""The tests the healed stats.py must pass."""

import stats


def test_mean():
    assert stats.mean([1, 2, 3, 6]) == 3.0


def test_mean_of_nothing_is_zero():
    assert stats.mean([]) == 0.0


def test_total():
    assert stats.total([1, 2, 3]) == 6


def test_with_total():
    assert stats.with_total((1, 2)) == [1, 2, 3]
