"""A small bounded mapping that forgets its least recently used entry first (an LRU cache).

The caches of the project (the SAM scorer's image embeddings, the images a SAM client has delivered,
decoded ground truths, parquet row groups) all keep the last ``max_size`` entries by use. Reads and
writes take one lock, so one cache may be shared by threads; a pickled cache travels without its lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``max_size`` entries; :meth:`get` and :meth:`put` mark an entry as the most recently used,
    and :meth:`put` evicts from the least recently used end."""

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"an LRU cache holds at least 1 entry, got max_size={max_size}")
        self.max_size = int(max_size)
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> int:
        """Store ``value`` as the most recently used entry; returns how many entries were evicted."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            evicted = 0
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
                evicted += 1
            return evicted

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is cached (without marking it used)."""
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[K]:
        """Keys from the least to the most recently used."""
        with self._lock:
            return list(self._items)

    def values(self) -> list[V]:
        """Values from the least to the most recently used."""
        with self._lock:
            return list(self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"max_size": self.max_size, "items": list(self._items.items())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_size = state["max_size"]
        self._items = OrderedDict(state["items"])
        self._lock = threading.Lock()
