"""Copies of a model's weights taken off its device without waiting for it.

A CUDA tensor is copied with non_blocking=True into a page-locked (pinned) CPU
buffer, and a CUDA event recorded after the copies marks when they are done, so
the trainer's thread returns while the GPU copies; a CPU tensor is cloned. The
pinned buffers come from a pool and go back to it once the snapshot is
serialised, since allocating page-locked memory costs far more than copying.
"""

import threading

import torch


class PinnedBufferPool:
    """Sets of pinned buffers, one set per snapshot in flight. Thread-safe.

    A set comes back with the CUDA events after its last copies, and is lent
    again only once they have completed, so giving one back never waits for
    the GPU (a snapshot dropped by submit() would otherwise wait on the
    trainer's thread)."""

    def __init__(self):
        self._free = []  # (list of pinned tensors, their pending events), one per snapshot
        self._lock = threading.Lock()

    def take(self, tensors):
        """Pinned CPU buffers shaped like `tensors` (a list of CUDA tensors), reused
        from a released set that matches them all and is no longer being copied
        into, else newly allocated."""
        key = [(t.shape, t.dtype) for t in tensors]
        with self._lock:
            for index, (buffers, events) in enumerate(self._free):
                if [(b.shape, b.dtype) for b in buffers] == key and \
                        all(e.query() for e in events):
                    return self._free.pop(index)[0]
        return [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]

    def release(self, buffers, events=()):
        """Returns `buffers` (from take) for reuse once `events` (CUDA events
        recorded after the copies into them) have completed; keeps a few sets
        only."""
        with self._lock:
            if len(self._free) < 4:
                self._free.append((buffers, list(events)))


class WeightsSnapshot:
    """The state dict of a model at one step, on the CPU once ready() returns."""

    def __init__(self, state, pool, extra=None):
        """Starts copying `state` (a mapping of name to tensor, e.g.
        module.state_dict()) and `extra` (a mapping of name to tensor kept apart,
        such as a train loss still on the GPU) off their devices; returns without
        waiting for CUDA copies. `pool` (a PinnedBufferPool) lends the buffers."""
        self._pool = pool
        self._events = []
        self._pinned = None
        names = list(state) + [f"\0{name}" for name in (extra or {})]
        values = [t.detach() for t in state.values()] + \
            [torch.as_tensor(t).detach().reshape(()) for t in (extra or {}).values()]
        cuda = [i for i, t in enumerate(values) if t.is_cuda]
        copies = list(values)
        if cuda:
            self._pinned = pool.take([values[i] for i in cuda])
            devices = set()
            for buffer, i in zip(self._pinned, cuda):
                buffer.copy_(values[i], non_blocking=True)
                copies[i] = buffer
                devices.add(values[i].device)
            for device in devices:
                event = torch.cuda.Event()
                event.record(torch.cuda.current_stream(device))
                self._events.append(event)
        for i, t in enumerate(values):
            if not t.is_cuda:
                copies[i] = t.clone(memory_format=torch.contiguous_format)
        self._tensors = dict(zip(names, copies))

    def ready(self):
        """Waits for the copies; returns (state dict of CPU tensors, extra dict)."""
        for event in self._events:
            event.synchronize()
        state = {k: v for k, v in self._tensors.items() if not k.startswith("\0")}
        extra = {k[1:]: v for k, v in self._tensors.items() if k.startswith("\0")}
        return state, extra

    def release(self):
        """Gives the pinned buffers back to the pool, without waiting for the
        copies; the tensors must not be read after this. Idempotent."""
        if self._pinned is not None:
            self._pool.release(self._pinned, self._events)
            self._pinned = None
