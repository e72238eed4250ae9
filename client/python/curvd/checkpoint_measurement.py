"""One checkpoint's way through the server, shared by Run's background thread and
backfill: upload its bytes, record it as the checkpoint of its step, create its
measurements, wait for each.

Transport failures (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED) come out as the
grpc.RpcError, so that a caller can wait for the server and retry the same
call; every other refusal as CurvdError.
"""

import grpc

from curvd.errors import from_rpc_error, is_transient
from curvd.measurement_specs import kind_name
from curvd.measurement_wait import wait_measurement
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import resources_pb2


def call(client, method, request, what):
    """`client`'s unary `method` with `request`; `what` names it in a CurvdError."""
    try:
        return getattr(client.stub, method)(request, timeout=client.rpc_timeout)
    except grpc.RpcError as error:
        if is_transient(error):
            raise
        raise from_rpc_error(error, what) from error


def record_checkpoint(client, run_name, step, data, checkpoint_format, train_loss=None):
    """Uploads `data` (a safetensors state dict or TorchScript archive, as
    `checkpoint_format`, a CheckpointFormat, says) and records it as the
    Checkpoint of `step` of run `run_name` ("runs/R"), which it returns. The
    same content at the same step is the checkpoint recorded before;
    FAILED_PRECONDITION (a CurvdError) when the step holds other content."""
    digest = client.upload(data, run_id=run_name[len("runs/"):])
    return call(client, "CreateCheckpoint", service_pb2.CreateCheckpointRequest(
        parent=run_name, checkpoint=resources_pb2.Checkpoint(
            step=step, format=checkpoint_format, digest=digest, train_loss=train_loss or 0.0)),
        f"CreateCheckpoint {run_name} step {step}")


def measure(client, checkpoint_name, specs, request_ids, timeout, stop=None):
    """Creates a measurement of `checkpoint_name` for each of `specs` (with the
    request ids `request_ids`, one per spec), then yields each Measurement as
    it ends (FAILED ones too), waiting at most `timeout` seconds for each.
    `stop`, a threading.Event, ends the wait with CurvdError CANCELLED.

    Every measurement is created before any is waited for, so the server can
    run them back to back on the model it has loaded.
    """
    names = [call(client, "CreateMeasurement", service_pb2.CreateMeasurementRequest(
        parent=checkpoint_name, spec=spec, request_id=rid),
        f"CreateMeasurement {kind_name(spec)} of {checkpoint_name}").name
        for spec, rid in zip(specs, request_ids)]
    for name in names:
        yield wait_measurement(client.stub, name, timeout, stop)
