"""The pending checkpoints between a trainer and its background uploader, with the
backpressure policy chosen at run creation:

- "coalesce" (default): one pending checkpoint; a newer one replaces it, since
  the freshest checkpoint says most about where training is now.
- "queue": up to `capacity` pending; when full, the oldest is dropped (the
  caller warns).
- "block": up to `capacity` pending; put() waits for room, so every checkpoint
  is measured at the price of stalling the trainer when the server is slower
  (or away: the queue drains again once it is back).
"""

import collections
import threading

POLICIES = ("coalesce", "queue", "block")


class SubmitQueue:
    """A bounded FIFO of items under one policy. Thread-safe."""

    def __init__(self, policy="coalesce", capacity=8):
        """`capacity` (>= 1) bounds "queue" and "block"; "coalesce" holds one.
        Raises ValueError for an unknown policy or a capacity below 1."""
        if policy not in POLICIES:
            raise ValueError(f"policy '{policy}' is not one of {', '.join(POLICIES)}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.policy = policy
        self.capacity = 1 if policy == "coalesce" else capacity
        self._items = collections.deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item):
        """Adds `item`; returns the items dropped to make room (the oldest first).

        Under "block" it waits while the queue is full. After close() the item
        itself is returned as dropped.
        """
        with self._cond:
            if self.policy == "block":
                self._cond.wait_for(lambda: self._closed or len(self._items) < self.capacity)
            if self._closed:
                return [item]
            dropped = []
            while len(self._items) >= self.capacity:
                dropped.append(self._items.popleft())
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def put_back(self, item):
        """Returns `item`, taken by get() but not done (the server went away), to
        the front; returns what is dropped. Under "coalesce" a newer pending item
        wins and `item` is dropped; under "queue" the oldest beyond capacity goes;
        "block" keeps everything (its producers wait)."""
        with self._cond:
            if self.policy == "coalesce" and self._items:
                return [item]
            self._items.appendleft(item)
            dropped = []
            while self.policy == "queue" and len(self._items) > self.capacity:
                dropped.append(self._items.popleft())
            self._cond.notify_all()
            return dropped

    def get(self):
        """The oldest item, waiting for one; None once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._items)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self):
        """Refuses new items; get() drains what is pending, then returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self):
        """Removes and returns every pending item (for a close that gave up)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return items

    def __len__(self):
        with self._cond:
            return len(self._items)
