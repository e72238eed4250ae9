"""The safetensors file format, written without the safetensors package.

A file is an 8-byte little-endian header length N, N bytes of JSON
({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...},
padded with spaces to a multiple of 8), then the tensors' raw little-endian
bytes, tiling the rest of the file in header order.
"""

import json
import struct

import torch

# torch dtype -> safetensors dtype string (the ones curvd's server reads).
DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(tensor):
    """The raw bytes of CPU tensor `tensor` in row-major order (a memoryview
    when no copy is needed)."""
    flat = tensor.detach().contiguous().reshape(-1)
    if flat.dtype in (torch.bfloat16, torch.bool):
        # numpy has no bfloat16; reinterpret both as bytes of the same size.
        flat = flat.view(torch.int16 if flat.dtype == torch.bfloat16 else torch.uint8)
    return memoryview(flat.numpy()).cast("B")


def encode_header(entries, metadata=None):
    """The header piece of a safetensors file (length prefix, JSON, padding)
    whose tensors are `entries`, (name, dtype string, shape, byte count) in file
    order, their bytes following it back to back."""
    header = {}
    offset = 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def dtype_name(name, tensor):
    """The safetensors dtype string of CPU tensor `tensor` (called `name` in
    errors); TypeError for a tensor elsewhere or of a dtype safetensors lacks."""
    if tensor.device.type != "cpu":
        raise TypeError(f"safetensors: tensor '{name}' is on {tensor.device}, not the CPU")
    dtype = DTYPE_NAMES.get(tensor.dtype)
    if dtype is None:
        raise TypeError(f"safetensors: tensor '{name}' has dtype {tensor.dtype}, "
                        f"which safetensors cannot hold")
    return dtype


def encode_parts(tensors, metadata=None):
    """The safetensors file of `tensors` (a mapping of name to CPU tensor) as a
    list of bytes-like pieces to concatenate: the header, then each tensor's
    bytes, which are views of the tensor's memory where no copy is needed (so
    the tensors must not change while the pieces are used).

    Names keep the mapping's order. `metadata`, a mapping of str to str, goes
    into "__metadata__". Raises TypeError for a tensor not on the CPU or of a
    dtype safetensors has no name for.
    """
    entries, chunks = [], []
    for name, tensor in tensors.items():
        dtype = dtype_name(name, tensor)
        data = tensor_bytes(tensor)
        entries.append((name, dtype, tensor.shape, data.nbytes))
        chunks.append(data)
    return [encode_header(entries, metadata), *chunks]


def encode(tensors, metadata=None):
    """encode_parts(tensors, metadata) joined into one bytes object (a copy)."""
    return b"".join(encode_parts(tensors, metadata))


def looks_like_safetensors(data):
    """True when `data` (the first bytes of a file suffice) starts as a safetensors
    file: an 8-byte header length, then '{'."""
    return len(data) >= 9 and data[8:9] == b"{"
