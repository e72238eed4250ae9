"""Following a measurement to its end over WatchMeasurement, reattaching by name
when a stream ends early, as the C++ client's Client::WaitMeasurement does."""

import time

import grpc

from curvd.errors import CurvdError, from_rpc_error
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import resources_pb2

TERMINAL_STATES = frozenset({resources_pb2.Measurement.SUCCEEDED,
                             resources_pb2.Measurement.FAILED,
                             resources_pb2.Measurement.CANCELLED})

# One watch stream lasts at most this long before it is reattached, so that a
# waiter notices `stop` and its overall deadline promptly.
_STREAM_SLICE_SECONDS = 2.0


def wait_measurement(stub, name, timeout, stop=None):
    """The Measurement `name` once terminal (a FAILED one is returned: the failure
    is data).

    Raises the grpc.RpcError when the server is unreachable (UNAVAILABLE), so
    that the caller can wait for it; CurvdError with code DEADLINE_EXCEEDED once
    `timeout` seconds pass, or CANCELLED when `stop` (a threading.Event) is set;
    CurvdError for any other answer (NOT_FOUND for an unknown name).
    """
    deadline = time.monotonic() + timeout
    request = service_pb2.WatchMeasurementRequest(name=name)
    last = None
    while True:
        if stop is not None and stop.is_set():
            raise CurvdError(f"stopped waiting for {name}", grpc.StatusCode.CANCELLED)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            state = resources_pb2.Measurement.State.Name(last.state) if last else "unknown"
            raise CurvdError(f"measurement {name} did not finish within {timeout:g} s "
                             f"(last state {state})", grpc.StatusCode.DEADLINE_EXCEEDED)
        stream = stub.WatchMeasurement(request, timeout=min(remaining, _STREAM_SLICE_SECONDS))
        try:
            for measurement in stream:
                last = measurement
                if measurement.state in TERMINAL_STATES:
                    stream.cancel()
                    return measurement
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                raise
            if error.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                    grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED):
                raise from_rpc_error(error, f"WatchMeasurement {name}") from error
        # A stream that ended without a terminal state is reattached.
        time.sleep(0.05)
