"""The seeded mutations of the parser fuzzer (test_parser_fuzz.py): generic
edits of any bytes, and edits that aim at the data shard formats curvd reads
(idx images and labels, CIFAR-10 batch files, either gzipped). Every function
takes a random.Random, so a seed gives the same inputs on every machine."""

import gzip

IDX_IMAGES = "images-idx3-ubyte"
IDX_LABELS = "labels-idx1-ubyte"
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32  # a label byte, then the pixels
CIFAR_BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)]


def mutate(rng, data):
    """`data` (bytes) with one to four random edits: a flipped byte, a cut, an
    inserted run, an overwritten little-endian 64-bit length, a duplicated span."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        edit = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if edit == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif edit == 1:
            del data[at:at + rng.randint(1, max(1, len(data) // 4))]
        elif edit == 2:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif edit == 3:
            value = rng.choice([0, 1, 7, 2**31 - 1, 2**32, 2**63 - 1, 2**64 - 1,
                                rng.getrandbits(64)])
            data[at:at + 8] = value.to_bytes(8, "little")
        elif data:
            span = data[at:at + rng.randint(1, 64)]
            data[rng.randrange(len(data) + 1):0] = span
    return bytes(data)


def resize(rng, data):
    """`data` cut at a random length, or followed by zeros: up to 16 MiB, which
    gzip packs into a small bomb."""
    if data and rng.randrange(2):
        return data[:rng.randrange(len(data))]
    return data + bytes(rng.choice([1, CIFAR_RECORD_BYTES, 1 << 20, 1 << 24]))


def maybe_gzip(rng, data):
    """`data` as it is, gzipped, or gzipped and then corrupted: a flipped bit
    in the header or the deflate stream, a cut, a wrong CRC or length in the
    trailer, trailing garbage, or a second member."""
    choice = rng.randrange(4)
    if choice == 0:
        return data
    packed = bytearray(gzip.compress(data, compresslevel=1, mtime=0))
    if choice == 1:
        return bytes(packed)
    edit = rng.randrange(6)
    if edit == 0:
        packed[rng.randrange(len(packed) - 8)] ^= 1 << rng.randrange(8)
    elif edit == 1:
        del packed[rng.randrange(2, len(packed)):]
    elif edit == 2:
        packed[-8] ^= 0xff
    elif edit == 3:
        packed[-4:] = rng.getrandbits(32).to_bytes(4, "little")
    elif edit == 4:
        packed += rng.randbytes(rng.randint(1, 16))
    else:
        packed += gzip.compress(rng.randbytes(rng.randint(1, 64)), mtime=0)
    return bytes(packed)


def idx_file(magic, dims, data):
    """An idx file: the big-endian magic, the dimensions, then `data`."""
    return b"".join(value.to_bytes(4, "big") for value in [magic, *dims]) + data


def mutate_idx_header(rng, data):
    """Idx file `data` with one header field broken: the dtype or rank byte of
    its magic, one dimension (zero, off by one, past 31 or 32 bits), or every
    dimension large enough that their product overflows 64 bits."""
    if len(data) < 4:
        return mutate(rng, data)
    rank = min(data[3], (len(data) - 4) // 4)
    edit = rng.randrange(4 if rank else 2)
    data = bytearray(data)
    if edit == 0:
        data[2] = rng.choice([0x00, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0xff])
    elif edit == 1:
        data[3] = rng.choice([0, 1, 2, 3, 4, 0xff])
    elif edit == 2:
        at = 4 + 4 * rng.randrange(rank)
        old = int.from_bytes(data[at:at + 4], "big")
        value = rng.choice([0, 1, old - 1, old + 1, 1 << 16, 2**31 - 1, 2**31, 2**32 - 1,
                            rng.getrandbits(32)])
        data[at:at + 4] = (value % 2**32).to_bytes(4, "big")
    else:
        for at in range(4, 4 + 4 * rank, 4):
            data[at:at + 4] = rng.choice([1 << 21, 1 << 22, 2**32 - 1]).to_bytes(4, "big")
    return bytes(data)


def mutate_idx_pair(rng, files):
    """An idx shard `files` ({IDX_IMAGES: bytes, IDX_LABELS: bytes}) with the
    images, the labels or both edited (a header field, a resize, generic
    edits), then each file maybe gzipped (maybe corrupted)."""
    which = rng.randrange(3)
    out = {}
    for index, (name, data) in enumerate(sorted(files.items())):
        if which in (index, 2):
            data = rng.choice([mutate_idx_header, resize, mutate])(rng, data)
        out[name] = maybe_gzip(rng, data)
    return out


def relabel(rng, data):
    """CIFAR-10 batch `data` with one record's label byte past the 10 classes."""
    data = bytearray(data)
    if data:
        records = max(1, len(data) // CIFAR_RECORD_BYTES)
        data[CIFAR_RECORD_BYTES * rng.randrange(records) % len(data)] = rng.choice([10, 99, 255])
    return bytes(data)


def mutate_cifar(rng, files):
    """A CIFAR-10 shard `files` ({name: bytes}, one batch file) with one batch
    file edited (a label byte, a resize, generic edits) and maybe gzipped
    (maybe corrupted); a quarter of the time first laid out as the data set's
    directory of five batch files."""
    files = dict(files)
    if rng.randrange(4) == 0:
        files = {name: next(iter(files.values())) for name in CIFAR_BATCHES}
    name = rng.choice(sorted(files))
    files[name] = maybe_gzip(rng, rng.choice([relabel, resize, mutate])(rng, files[name]))
    return files
