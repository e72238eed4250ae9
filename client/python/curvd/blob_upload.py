"""Content-addressed, chunked, resumable blob uploads (WriteBlob / GetBlobStatus),
with the same semantics as the C++ client's Client::UploadBlob.

A blob is given as one bytes-like object or as a list of them (pieces, such as
safetensors_format.encode_parts returns), so a checkpoint is hashed and sent
straight from its tensors' memory. Each WriteBlob message is serialised here:
the small fields by protobuf, then the `data` field appended as its tag, length
and bytes, in one copy. Building a WriteBlobRequest with the data instead costs
three copies (the bytes, the message, its serialisation) and took half of a
100 MB upload's time; both are the same message on the wire.
"""

import hashlib
import time

import grpc

from curvd.errors import CurvdError, from_rpc_error, is_transient
from curvd.v1 import curvd_service_pb2 as service_pb2

# Bytes per WriteBlob message: well under the server's 16 MiB receive limit
# (and gRPC's default 4 MiB). Larger messages were no faster over loopback.
CHUNK_BYTES = 1 << 20

_DATA_FIELD = service_pb2.WriteBlobRequest.DESCRIPTOR.fields_by_name["data"].number
_WRITE_BLOB = "/{}/WriteBlob".format(service_pb2.DESCRIPTOR.services_by_name["Curvd"].full_name)


def write_blob_method(channel):
    """The WriteBlob call of `channel` taking requests serialised by this module
    (bytes) and returning the BlobStatus."""
    return channel.stream_unary(_WRITE_BLOB, request_serializer=None,
                                response_deserializer=service_pb2.BlobStatus.FromString)


def _pieces(data):
    """`data` (bytes-like, or a list or tuple of bytes-like) as flat byte memoryviews."""
    views = []
    for piece in data if isinstance(data, (list, tuple)) else [data]:
        view = memoryview(piece)
        views.append(view if view.format == "B" and view.ndim == 1 else view.cast("B"))
    return views


def sha256_digest(data):
    """"sha256:<64 lowercase hex>" of `data` (bytes-like, or a list of bytes-like
    pieces, concatenated), the identity the server checks."""
    digest = hashlib.sha256()
    for view in _pieces(data):
        digest.update(view)  # hashlib releases the GIL on large buffers
    return "sha256:" + digest.hexdigest()


def _varint(value):
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_request(data_views, **fields):
    """A serialised WriteBlobRequest with `fields` (digest, size_bytes,
    write_offset, finish_write) and as its data the concatenation of
    `data_views` (bytes-like)."""
    length = sum(len(v) for v in data_views)
    head = service_pb2.WriteBlobRequest(**fields).SerializeToString()
    return b"".join([head, _varint(_DATA_FIELD << 3 | 2), _varint(length), *data_views])


def _chunks(views, size, digest, offset, run=""):
    """The serialised requests sending bytes [offset, size) of `views`, the
    first naming the blob and its run `run` ("runs/R" or "")."""
    # Skip the pieces before offset.
    index, start = 0, offset
    while index < len(views) and start >= len(views[index]):
        start -= len(views[index])
        index += 1
    first = True
    # An empty remainder still needs one message to carry finish_write.
    while True:
        end = min(offset + CHUNK_BYTES, size)
        parts, needed = [], end - offset
        while needed > 0:
            piece = views[index][start:start + needed]
            parts.append(piece)
            needed -= len(piece)
            start += len(piece)
            if start == len(views[index]):
                index, start = index + 1, 0
        fields = dict(write_offset=offset, finish_write=end == size)
        if first:
            fields.update(digest=digest, size_bytes=size, run=run)
            first = False
        yield encode_request(parts, **fields)
        offset = end
        if offset >= size:
            return


def upload_blob(stub, write_blob, data, *, rpc_timeout, upload_timeout, attempts, stats=None,
                run_id=""):
    """Uploads `data` (bytes-like, or a list or tuple of bytes-like pieces,
    concatenated) as a blob and returns its digest. `stub` is the CurvdStub,
    `write_blob` what write_blob_method returns for the same channel.

    Asks GetBlobStatus first, so a blob the server holds costs no transfer and an
    interrupted upload resumes at the committed offset; transport failures
    (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED) are retried up to `attempts` times
    and then re-raised as the grpc.RpcError; any other answer raises CurvdError
    (RESOURCE_EXHAUSTED for a blob over the server's limit). `stats`, a dict,
    gets "blobs_uploaded" and "bytes_uploaded" incremented by what was sent.
    `run_id`, when given, names the run the blob is for, so that it is stored
    on that run's replica (docs/adr/0019).
    """
    run = f"runs/{run_id}" if run_id else ""
    views = _pieces(data)
    size = sum(len(v) for v in views)
    digest = sha256_digest(views)
    last_error = None
    for attempt in range(max(1, attempts)):
        if attempt > 0:
            time.sleep(0.2 * (1 << attempt))
        try:
            status = stub.GetBlobStatus(service_pb2.GetBlobStatusRequest(digest=digest, run=run),
                                        timeout=rpc_timeout)
            if status.complete:
                return digest
            offset = status.committed_size_bytes
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                offset = 0
            elif is_transient(error):
                last_error = error
                continue
            else:
                raise from_rpc_error(error, f"GetBlobStatus {digest}") from error
        if not 0 <= offset <= size:
            offset = 0
        try:
            written = write_blob(_chunks(views, size, digest, offset, run),
                                 timeout=upload_timeout)
        except grpc.RpcError as error:
            if is_transient(error):
                last_error = error
                continue
            raise from_rpc_error(error, f"WriteBlob {digest}") from error
        if stats is not None:
            stats["blobs_uploaded"] = stats.get("blobs_uploaded", 0) + 1
            stats["bytes_uploaded"] = stats.get("bytes_uploaded", 0) + size - offset
        if written.complete:
            return digest
        last_error = CurvdError(f"server did not commit blob {digest}: "
                                f"{written.committed_size_bytes} of {size} bytes")
    raise last_error
