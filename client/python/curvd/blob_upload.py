"""Content-addressed, chunked, resumable blob uploads (WriteBlob / GetBlobStatus),
with the same semantics as the C++ client's Client::UploadBlob."""

import hashlib
import time

import grpc

from curvd.errors import CurvdError, from_rpc_error, is_transient
from curvd.v1 import curvd_service_pb2 as service_pb2

# Bytes per WriteBlob message: well under the server's 4 MiB default receive limit.
CHUNK_BYTES = 1 << 20


def sha256_digest(data):
    """"sha256:<64 lowercase hex>" of `data`, the identity the server checks."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _chunks(data, digest, offset):
    view = memoryview(data)
    size = len(view)
    first = True
    # An empty remainder still needs one message to carry finish_write.
    while True:
        end = min(offset + CHUNK_BYTES, size)
        request = service_pb2.WriteBlobRequest(write_offset=offset, data=bytes(view[offset:end]),
                                               finish_write=end == size)
        if first:
            request.digest = digest
            request.size_bytes = size
            first = False
        yield request
        offset = end
        if offset >= size:
            return


def upload_blob(stub, data, *, rpc_timeout, upload_timeout, attempts, stats=None):
    """Uploads `data` (bytes-like) as a blob and returns its digest.

    Asks GetBlobStatus first, so a blob the server holds costs no transfer and an
    interrupted upload resumes at the committed offset; transport failures
    (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED) are retried up to `attempts` times
    and then re-raised as the grpc.RpcError; any other answer raises CurvdError
    (RESOURCE_EXHAUSTED for a blob over the server's limit). `stats`, a dict,
    gets "blobs_uploaded" and "bytes_uploaded" incremented by what was sent.
    """
    digest = sha256_digest(data)
    last_error = None
    for attempt in range(max(1, attempts)):
        if attempt > 0:
            time.sleep(0.2 * (1 << attempt))
        try:
            status = stub.GetBlobStatus(service_pb2.GetBlobStatusRequest(digest=digest),
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
        if not 0 <= offset <= len(data):
            offset = 0
        try:
            written = stub.WriteBlob(_chunks(data, digest, offset), timeout=upload_timeout)
        except grpc.RpcError as error:
            if is_transient(error):
                last_error = error
                continue
            raise from_rpc_error(error, f"WriteBlob {digest}") from error
        if stats is not None:
            stats["blobs_uploaded"] = stats.get("blobs_uploaded", 0) + 1
            stats["bytes_uploaded"] = stats.get("bytes_uploaded", 0) + len(data) - offset
        if written.complete:
            return digest
        last_error = CurvdError(f"server did not commit blob {digest}: "
                                f"{written.committed_size_bytes} of {len(data)} bytes")
    raise last_error
