"""The LRU cache: bounded, evicts the least recently used entry, use = get or put, travels by pickle."""

from __future__ import annotations

import pickle
import threading

import pytest

from segzero_plus.lru import LruCache


def test_the_least_recently_used_entry_goes_first():
    cache: LruCache[str, int] = LruCache(2)
    assert cache.put("a", 1) == 0 and cache.put("b", 2) == 0
    assert cache.get("a") == 1  # "b" is now the least recently used
    assert cache.put("c", 3) == 1
    assert "b" not in cache and cache.keys() == ["a", "c"] and cache.values() == [1, 3]
    assert cache.get("b") is None and cache.get("b", -1) == -1
    assert cache.put("a", 10) == 0 and cache.keys() == ["c", "a"] and cache.get("a") == 10
    assert "c" in cache and cache.keys() == ["c", "a"]  # a membership test is not a use
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.keys() == []


def test_a_falsy_value_is_a_hit():
    cache: LruCache[str, None | int] = LruCache(1)
    cache.put("none", None)
    assert "none" in cache and cache.get("none", -1) is None
    cache.put("zero", 0)
    assert cache.get("zero", -1) == 0 and "none" not in cache


def test_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        LruCache(0)


def test_pickled_cache_keeps_entries_and_order_and_works_after():
    cache: LruCache[str, int] = LruCache(3)
    for k, v in (("a", 1), ("b", 2), ("c", 3)):
        cache.put(k, v)
    cache.get("a")
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.keys() == ["b", "c", "a"] and copy.max_size == 3
    assert copy.put("d", 4) == 1 and copy.keys() == ["c", "a", "d"]
    assert cache.keys() == ["b", "c", "a"]  # the original is untouched


def test_threads_sharing_one_cache_never_exceed_its_size():
    cache: LruCache[int, int] = LruCache(8)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(2000):
                cache.put(offset + i % 50, i)
                cache.get(offset + (i * 7) % 50)
                assert len(cache) <= 8
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) == 8
