"""TitanStore data: strings, sets and counters with Redis-like semantics."""

from __future__ import annotations

import pytest

from titan.core.errors import StoreTypeError, TitanError
from titan.core.store import Store


@pytest.fixture
def store() -> Store:
    return Store()


# ----------------------------------------------------------------- strings


def test_put_then_get(store):
    assert store.put("k", "v") == "OK"
    assert store.get("k") == "v"


def test_get_of_a_missing_key_is_none(store):
    assert store.get("missing") is None


def test_put_overwrites(store):
    store.put("k", "one")
    store.put("k", "two")
    assert store.get("k") == "two"
    assert len(store) == 1


def test_empty_string_is_a_value_not_an_absence(store):
    store.put("k", "")
    assert store.get("k") == ""
    assert store.keys() == ["k"]
    assert store.delete("k") == 1
    assert store.get("k") is None


def test_delete_says_whether_it_removed_something(store):
    store.put("k", "v")
    assert store.delete("k") == 1
    assert store.get("k") is None
    assert store.delete("k") == 0
    assert len(store) == 0


def test_delete_removes_a_set_too(store):
    store.sadd("s", "m")
    assert store.delete("s") == 1
    assert store.smembers("s") == []
    assert store.keys() == []


def test_put_replaces_a_set_with_a_string(store):
    store.sadd("k", "m")
    store.put("k", "now a string")
    assert store.get("k") == "now a string"
    with pytest.raises(StoreTypeError):
        store.smembers("k")


# ----------------------------------------------------------------- counters


def test_incr_of_a_missing_key_starts_at_zero(store):
    assert store.incr("n") == 1
    assert store.incr("n") == 2
    assert store.get("n") == "2"


def test_incr_by_an_amount_including_negative(store):
    assert store.incr("n", 10) == 10
    assert store.incr("n", -15) == -5
    assert store.get("n") == "-5"
    assert store.incr("n", 0) == -5


def test_incr_continues_from_a_string_that_is_an_integer(store):
    store.put("n", "41")
    assert store.incr("n") == 42
    store.put("m", "-3")
    assert store.incr("m", 3) == 0


def test_incr_stays_in_the_signed_64_bit_range_as_the_wire_does(store):
    """A reply cannot carry a larger integer (msgpack), so, like Redis, incr refuses to leave the range."""
    store.put("n", str(2 ** 63 - 2))
    assert store.incr("n") == 2 ** 63 - 1
    with pytest.raises(StoreTypeError, match="64-bit"):
        store.incr("n")
    assert store.get("n") == str(2 ** 63 - 1)
    store.put("big", str(2 ** 70))
    with pytest.raises(StoreTypeError, match="64-bit"):
        store.incr("big")
    with pytest.raises(StoreTypeError, match="64-bit"):
        store.incr("low", -(2 ** 63) - 1)
    assert store.get("low") is None


@pytest.mark.parametrize("value", ["abc", "1.5", "1e3", "0x10", "one", "12abc"])
def test_incr_of_a_non_integer_is_a_type_error_and_changes_nothing(store, value):
    store.put("n", value)
    with pytest.raises(StoreTypeError) as info:
        store.incr("n")
    assert "'n'" in str(info.value) and "integer" in str(info.value)
    assert info.value.details["key"] == "n"
    assert store.get("n") == value


@pytest.mark.parametrize("value", ["", "1_000", " 7 ", "\u0663"])
def test_incr_rejects_strings_redis_would_not_call_integers(store, value):
    store.put("n", value)
    with pytest.raises(StoreTypeError):
        store.incr("n")
    assert store.get("n") == value


def test_incr_of_a_set_is_a_type_error(store):
    store.sadd("s", "m")
    with pytest.raises(StoreTypeError, match="'s'"):
        store.incr("s")
    assert store.smembers("s") == ["m"]


# ----------------------------------------------------------------- sets


def test_sadd_reports_whether_the_member_is_new(store):
    assert store.sadd("s", "b") == 1
    assert store.sadd("s", "a") == 1
    assert store.sadd("s", "b") == 0
    assert store.smembers("s") == ["a", "b"]


def test_smembers_of_a_missing_key_is_empty_and_creates_nothing(store):
    assert store.smembers("nope") == []
    assert store.keys() == []
    assert len(store) == 0


def test_smembers_returns_a_copy(store):
    store.sadd("s", "a")
    store.smembers("s").append("intruder")
    assert store.smembers("s") == ["a"]


def test_sadd_on_a_string_is_a_type_error_and_changes_nothing(store):
    store.put("k", "v")
    with pytest.raises(StoreTypeError) as info:
        store.sadd("k", "m")
    assert "'k'" in str(info.value) and "string" in str(info.value)
    assert store.get("k") == "v"


def test_smembers_on_a_string_is_a_type_error(store):
    store.put("k", "v")
    with pytest.raises(StoreTypeError, match="'k'"):
        store.smembers("k")


def test_get_on_a_set_is_a_type_error_that_says_what_to_use(store):
    store.sadd("s", "m")
    with pytest.raises(StoreTypeError) as info:
        store.get("s")
    assert "'s'" in str(info.value) and "smembers" in str(info.value)
    assert isinstance(info.value, TitanError) and info.value.kind == "StoreTypeError"


# ----------------------------------------------------------------- keys


def test_keys_lists_strings_and_sets_sorted(store):
    store.put("b", "1")
    store.sadd("a", "x")
    store.incr("c")
    assert store.keys() == ["a", "b", "c"]
    assert len(store) == 3


def test_keys_filters_by_prefix(store):
    for key in ["job:1", "job:2", "jobs", "dag:1", "j"]:
        store.put(key, "v")
    assert store.keys("job:") == ["job:1", "job:2"]
    assert store.keys("job") == ["job:1", "job:2", "jobs"]
    assert store.keys("zzz") == []
    assert store.keys("") == sorted(["job:1", "job:2", "jobs", "dag:1", "j"])


# ----------------------------------------------------------------- awkward text


AWKWARD = [
    "a|b", "|", "||", "|leading", "trailing|", "k|e|y|s",
    "ключ", "名前|値", "naïve café", "emoji 🚀|🛰", "tab\tand\nnewline", "nul\x00inside", "  spaced  ",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_keys_and_values_round_trip_exactly(store, text):
    store.put(text, text + "|value")
    assert store.get(text) == text + "|value"
    assert store.keys() == [text]
    assert store.keys(text) == [text]
    store.sadd(text + "#set", text)
    assert store.smembers(text + "#set") == [text]
    assert store.incr(text + "#n", 7) == 7
    assert store.get(text + "#n") == "7"


def test_keys_that_differ_only_around_the_pipe_stay_distinct(store):
    store.put("a|b", "1")
    store.put("a", "2")
    store.put("a|", "3")
    store.put("|b", "4")
    store.sadd("a|b|set", "x|y")
    store.sadd("a|b|set", "x")
    assert store.get("a|b") == "1" and store.get("a") == "2"
    assert store.get("a|") == "3" and store.get("|b") == "4"
    assert store.smembers("a|b|set") == ["x", "x|y"]
    assert store.keys("a|") == ["a|", "a|b", "a|b|set"]


def test_non_ascii_members_and_prefixes(store):
    for member in ["ä", "a", "😀", "z"]:
        store.sadd("méli|mélo", member)
    assert store.smembers("méli|mélo") == sorted(["ä", "a", "😀", "z"])
    assert store.keys("méli") == ["méli|mélo"]


# ----------------------------------------------------------------- key size

@pytest.mark.parametrize("write", [lambda s, k: s.put(k, "v"), lambda s, k: s.incr(k), lambda s, k: s.sadd(k, "m")],
                         ids=["put", "incr", "sadd"])
def test_a_key_over_the_size_limit_is_refused_naming_the_limit_not_echoing_the_key(store, write):
    from titan import defaults
    from titan.core.errors import LimitExceeded
    at_limit, over = "k" * defaults.MAX_STORE_KEY_BYTES, "é" * (defaults.MAX_STORE_KEY_BYTES // 2 + 1)
    write(store, at_limit)
    with pytest.raises(LimitExceeded, match=f"store key of {len(over.encode()):,} bytes is over the "
                                            f"{defaults.MAX_STORE_KEY_BYTES:,}-byte limit") as refused:
        write(store, over)
    assert len(str(refused.value)) < 300, "the message does not carry the whole key"
    assert store.keys() == [at_limit]
