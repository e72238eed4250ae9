"""Copies of a model's weights taken off its device without waiting for it.

The CUDA tensors of one device are packed into byte buffers there (a
torch.cat of their bytes per 64 MiB) and each is copied with non_blocking=True
into one page-locked (pinned) CPU buffer: a model of n tensors costs the
trainer's thread one copy launch instead of n, and the uploader one hand-over
copy instead of n (each of which takes the GIL back from the training loop). A
CUDA event recorded after the copy marks when it is done, so the trainer's
thread returns while the GPU copies; a CPU tensor is cloned. The pinned
buffers come from a pool and go back to it once the snapshot is serialised,
since allocating page-locked memory costs far more than copying.
"""

import threading

import torch


def byte_layout(tensors):
    """Where each of `tensors` goes in one byte buffer holding them all back to
    back: (order, offsets, total), `order` the indices of `tensors` in buffer
    order, `offsets[i]` the byte offset of tensors[i]. Larger elements come
    first (the given order kept among equal sizes), so every offset is a
    multiple of its tensor's element size and a view of the buffer as that
    dtype is allowed."""
    order = sorted(range(len(tensors)), key=lambda i: -tensors[i].element_size())
    offsets, total = [0] * len(tensors), 0
    for i in order:
        offsets[i] = total
        total += tensors[i].numel() * tensors[i].element_size()
    return order, offsets, total


# The most bytes packed on a device at once: copying a large state holds no
# more device memory than this beside it (one tensor larger than this is
# copied alone, unpacked).
PACK_CHUNK_BYTES = 64 << 20


def copy_packed(tensors, order, offsets, buffer, chunk_bytes=PACK_CHUNK_BYTES):
    """Copies the bytes of `tensors` (on one device) into uint8 `buffer` at
    `offsets`, in `order` (as byte_layout gives them), with non-blocking
    copies, each of up to `chunk_bytes` packed by one torch.cat."""
    chunk, start, size = [], 0, 0

    def flush():
        if chunk:
            packed = torch.cat(chunk) if len(chunk) > 1 else chunk[0]
            buffer[start:start + size].copy_(packed, non_blocking=True)

    for i in order:
        data = tensors[i].contiguous().view(-1).view(torch.uint8)
        if chunk and size + data.numel() > chunk_bytes:
            flush()
            chunk, start, size = [], offsets[i], 0
        chunk.append(data)
        size += data.numel()
    flush()


def unpack(buffer, tensors, offsets):
    """Views of uint8 `buffer` shaped and typed like each of `tensors` at its
    byte offset in `offsets`."""
    views = []
    for tensor, offset in zip(tensors, offsets):
        nbytes = tensor.numel() * tensor.element_size()
        views.append(buffer[offset:offset + nbytes].view(tensor.dtype).reshape(tensor.shape))
    return views


class PinnedBufferPool:
    """Sets of pinned buffers, one set per snapshot in flight. Thread-safe.

    A set comes back with the CUDA events after its last copies, and is lent
    again only once they have completed, so giving one back never waits for
    the GPU (a snapshot dropped by submit() would otherwise wait on the
    trainer's thread)."""

    def __init__(self):
        self._free = []  # (list of pinned tensors, their pending events), one per snapshot
        self._lock = threading.Lock()

    def take(self, sizes):
        """Pinned uint8 CPU buffers of `sizes` bytes (a list of ints), reused
        from a released set of the same sizes that is no longer being copied
        into, else newly allocated."""
        with self._lock:
            for index, (buffers, events) in enumerate(self._free):
                if [b.numel() for b in buffers] == sizes and all(e.query() for e in events):
                    return self._free.pop(index)[0]
        return [torch.empty(size, dtype=torch.uint8, pin_memory=True) for size in sizes]

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
        module.state_dict()) and `extra` (a mapping of name to scalar tensor
        kept apart, such as a train loss still on the GPU, read back as
        float64) off their devices; returns without waiting for CUDA copies.
        `pool` (a PinnedBufferPool) lends the buffers. The packing takes
        device buffers of up to PACK_CHUNK_BYTES each (or one tensor's size)
        for as long as their copies run."""
        self._pool = pool
        self._events = []
        self._pinned = None
        self._data = None
        extra = {f"\0{name}": torch.as_tensor(t).detach().reshape(()).double()
                 for name, t in (extra or {}).items()}
        # Extras first: their 8-byte elements lead the buffer, so that the
        # state's bytes follow them back to back.
        named = list(extra.items()) + [(name, t.detach()) for name, t in state.items()]
        groups = {}  # device -> indices into `named`, CUDA devices only
        for i, (_, t) in enumerate(named):
            if t.is_cuda:
                groups.setdefault(t.device, []).append(i)
        copies = {}
        if groups:
            layouts = {device: byte_layout([named[i][1] for i in indices])
                       for device, indices in groups.items()}
            self._pinned = pool.take([total for _, _, total in layouts.values()])
            for buffer, (device, indices) in zip(self._pinned, groups.items()):
                tensors = [named[i][1] for i in indices]
                order, offsets, _ = layouts[device]
                copy_packed(tensors, order, offsets, buffer)
                event = torch.cuda.Event()
                event.record(torch.cuda.current_stream(device))
                self._events.append(event)
                views = unpack(buffer, tensors, offsets)
                copies.update((indices[j], views[j]) for j in order)
            self._data = self._state_bytes(named, len(extra), groups, layouts)
        for i, (_, t) in enumerate(named):
            if not t.is_cuda:
                copies[i] = t.clone(memory_format=torch.contiguous_format)
        # Buffer order where there is one buffer, so that its bytes are the
        # state's in order.
        self._tensors = {named[i][0]: copy for i, copy in copies.items()}

    def _state_bytes(self, named, extras, groups, layouts):
        """The slice of the one pinned buffer that holds the state's tensors
        (those of `named` after the first `extras`) back to back, after every
        extra; None when the state is not all in one buffer or an extra lies
        among its tensors (an element wider than 8 bytes sorts ahead of the
        float64 extras)."""
        if len(groups) != 1 or not all(t.is_cuda for _, t in named[extras:]):
            return None
        (indices,) = groups.values()
        (_, offsets, total), = layouts.values()
        extra_ends = [offsets[j] + 8 for j, i in enumerate(indices) if i < extras]
        first = min((offsets[j] for j, i in enumerate(indices) if i >= extras), default=total)
        if any(end > first for end in extra_ends):
            return None
        return self._pinned[0][first:]

    def ready(self):
        """Waits for the copies; returns (state dict of CPU tensors, extra dict,
        data), `data` a uint8 CPU tensor of the returned state's tensors' bytes
        back to back in its order when one buffer holds them all, else None.
        The order is the buffer's (larger elements first), not the given
        state's."""
        for event in self._events:
            event.synchronize()
        state = {k: v for k, v in self._tensors.items() if not k.startswith("\0")}
        extra = {k[1:]: v for k, v in self._tensors.items() if k.startswith("\0")}
        return state, extra, self._data

    def release(self):
        """Gives the pinned buffers back to the pool, without waiting for the
        copies; the tensors must not be read after this. Idempotent."""
        if self._pinned is not None:
            self._pool.release(self._pinned, self._events)
            self._pinned = None
            self._data = None
