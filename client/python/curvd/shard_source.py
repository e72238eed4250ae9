"""A measurement's shard_uri from what a trainer has: a URI the server reads, a
safetensors file, or tensors (both uploaded once, content-addressed)."""

import os

import torch

from curvd import safetensors_format

_SERVER_SCHEMES = ("file://", "builtin://", "blob://")


def shard_uri(shard, upload):
    """The shard_uri for `shard`.

    A str starting file://, builtin:// or blob:// is passed through for the
    server to resolve. A path of a local safetensors file, a mapping with
    "inputs" and "targets" tensors, or an (inputs, targets) tuple is uploaded
    with `upload(bytes) -> digest` as blob://sha256:<hex>: the same data gives
    the same digest, so a second run uploads nothing. Raises ValueError for a
    file that is not safetensors or a mapping without inputs and targets,
    TypeError for anything else.
    """
    if isinstance(shard, str) and shard.startswith(_SERVER_SCHEMES):
        return shard
    if isinstance(shard, (str, os.PathLike)):
        with open(shard, "rb") as file:
            data = file.read()
        if not safetensors_format.looks_like_safetensors(data):
            raise ValueError(f"shard {os.fspath(shard)} is not a safetensors file "
                             f"(an 8-byte header length, then '{{')")
        return "blob://" + upload(data)
    if isinstance(shard, tuple) and len(shard) == 2:
        shard = {"inputs": shard[0], "targets": shard[1]}
    if isinstance(shard, dict):
        if set(shard) != {"inputs", "targets"}:
            raise ValueError(f"a shard of tensors has 'inputs' and 'targets', not {sorted(shard)}")
        tensors = {name: torch.as_tensor(shard[name]).detach().cpu() for name in ("inputs", "targets")}
        return "blob://" + upload(safetensors_format.encode(tensors))
    raise TypeError(f"shard: {type(shard).__name__} is not a file://, builtin:// or blob:// URI, "
                    f"a safetensors path, an (inputs, targets) tuple or a dict of them")
