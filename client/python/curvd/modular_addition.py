"""The server's builtin://modular_addition shard, computed in Python: the same
(a, b) pairs in the same order as the server holds for the same p,
train_fraction, seed and split, so a trainer trains on exactly the data the
server measures. The rule is core/api/modular_addition.h's: the p^2 pairs
i = a p + b are shuffled by Fisher-Yates driven by splitmix64 of `seed`, the
train split is the first floor(train_fraction p^2) of the shuffled order, the
test split the rest.
"""

import math

import torch

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


def _mix(z):
    """splitmix64's output function on a 64-bit word."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def split_size(p, train_fraction=0.3, split="train"):
    """Samples in `split` ("train" or "test"): floor(train_fraction p^2) for
    train, the rest for test."""
    pairs = p * p
    train = min(pairs, math.floor(train_fraction * pairs))
    return train if split == "train" else pairs - train


def pairs(p, train_fraction=0.3, seed=0, split="train"):
    """The pair numbers a p + b of `split`, in the server's order (a list of ints).
    Raises ValueError for a split that is not "train" or "test"."""
    if split not in ("train", "test"):
        raise ValueError(f"split '{split}' must be train or test")
    order = list(range(p * p))
    for k, i in enumerate(range(p * p - 1, 0, -1), start=1):
        j = _mix((seed + k * _GAMMA) & _MASK) % (i + 1)
        order[i], order[j] = order[j], order[i]
    train = split_size(p, train_fraction, "train")
    return order[:train] if split == "train" else order[train:]


def shard(p, train_fraction=0.3, seed=0, split="train"):
    """(inputs, targets) of `split` as the server's shard has them: float32
    [N, 3] rows (a, b, p) (token p is '=') and int64 targets (a + b) mod p."""
    numbers = torch.tensor(pairs(p, train_fraction, seed, split), dtype=torch.int64)
    a, b = numbers // p, numbers % p
    inputs = torch.stack([a, b, torch.full_like(a, p)], dim=1).to(torch.float32)
    return inputs, (a + b) % p


def uri(p, train_fraction=0.3, seed=0, split="train"):
    """The builtin:// URI of the same split, for shard= and measurement specs."""
    return (f"builtin://modular_addition?p={p}&train_fraction={train_fraction!r}"
            f"&seed={seed}&split={split}")
