"""The CIFAR-10 binary format as the curvd server reads it (core/api/cifar_format.h,
README "CIFAR shards"), for trainers that must hold the same images: a reader of
batch files and directories, the server's URI for the same records, and a
writer of generated batch files of the same layout for trying without the data
set.

A batch file is records and nothing else, gzipped or not: 1 label byte (0-9),
then 3072 pixel bytes, 1024 red, 1024 green, 1024 blue, each plane row-major
32x32. Inputs are float32 [N, 3, 32, 32], pixel / 255, then with
normalize="mean_std" (x - MEAN[c]) / STD[c]; targets int64 [N].
"""

import gzip
import os

import torch

RECORD_BYTES = 1 + 3 * 32 * 32
CLASSES = 10
# The server's normalize=mean_std statistics of CIFAR-10's training set
# (core/api/cifar_format.cc), per channel R, G, B.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"


def split_files(path):
    """The batch files the server reads for `path`, in its order: a directory's
    training split (data_batch_1.bin .. data_batch_5.bin), or the file `path`
    itself."""
    if os.path.isdir(path):
        return [os.path.join(path, name) for name in TRAIN_FILES]
    return [path]


def shard_uri(path, limit, normalize="none"):
    """The file:// URI under which the server reads the first `limit` records
    of `path` (a batch file, or a directory's training split) as read_records
    does. `path` must lie under the server's --data_roots."""
    query = ["format=cifar10"]
    if os.path.isdir(path):
        query.append("split=train")
    if normalize != "none":
        query.append(f"normalize={normalize}")
    query.append(f"limit={limit}")
    return f"file://{os.path.abspath(path)}?{'&'.join(query)}"


def _open(path):
    with open(path, "rb") as file:
        gzipped = file.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_records(path, limit, normalize="none"):
    """(inputs float32 [N, 3, 32, 32], targets int64 [N]) of the first `limit`
    records of `path` (a batch file, or a directory's training split, read in
    split_files order), N = min(limit, the records there), as the server's
    shard_uri(path, limit, normalize) holds them: like the server, reads every
    batch file whole and checks it, then converts the slice in the same float32
    operations (/ 255, - mean, / std). Raises ValueError for a file that is not
    whole records or has a label byte above 9, or an unknown `normalize`;
    FileNotFoundError for a missing batch file."""
    if normalize not in ("none", "mean_std"):
        raise ValueError(f"normalize '{normalize}' is not none or mean_std")
    chunks = []
    for name in split_files(path):
        with _open(name) as file:
            data = file.read()
        if len(data) % RECORD_BYTES:
            raise ValueError(f"{name}: {len(data)} bytes are not whole CIFAR-10 records "
                             f"of {RECORD_BYTES} bytes")
        labels = data[::RECORD_BYTES]
        if labels and max(labels) >= CLASSES:
            raise ValueError(f"{name}: label byte {max(labels)} is not a CIFAR-10 class (0-9)")
        chunks.append(data)
    records = torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8)
    records = records.view(-1, RECORD_BYTES)[:limit]
    mean, std = (MEAN, STD) if normalize == "mean_std" else ((0.0,) * 3, (1.0,) * 3)
    inputs = (records[:, 1:].reshape(-1, 3, 32, 32).to(torch.float32) / 255
              - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return inputs, records[:, 0].to(torch.int64)


def write_generated(directory, records_per_file, seed=0):
    """Writes data_batch_1.bin .. data_batch_5.bin and test_batch.bin into
    `directory` (made when missing), `records_per_file` records each, in the
    CIFAR-10 layout: noise images of a random colour each (per channel a level
    uniform in [0.15, 0.85] plus Gaussian noise of 0.15, clipped), labelled by
    the nearest of 10 fixed random colours to the image's mean colour, an
    argmax over classes of a function linear in the pixels (2 c.m - |c|^2), so
    that a network can learn the labels. Deterministic in `seed`.
    Returns the directory."""
    os.makedirs(directory, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    colours = 0.15 + 0.7 * torch.rand(CLASSES, 3, generator=generator)
    for name in TRAIN_FILES + (TEST_FILE,):
        level = 0.15 + 0.7 * torch.rand(records_per_file, 3, 1, generator=generator)
        noise = 0.15 * torch.randn(records_per_file, 3, 1024, generator=generator)
        pixels = ((level + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        means = pixels.to(torch.float32).mean(2) / 255
        scores = 2 * means @ colours.T - (colours ** 2).sum(1)
        labels = scores.argmax(1).to(torch.uint8)
        records = torch.cat([labels.view(-1, 1), pixels.view(records_per_file, -1)], 1)
        with open(os.path.join(directory, name), "wb") as file:
            file.write(records.numpy().tobytes())
    return directory
