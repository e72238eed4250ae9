"""curvd: stream checkpoints from a PyTorch training loop to a curvd server, and
read the loss-landscape measurements back as a table.

    client = curvd.Client("localhost:50051")
    run = client.run("mlp-1", model, shard=(inputs, targets), loss="cross_entropy",
                     measure=["sharpness", "hessian_trace"], every=10)
    for step in range(steps):
        ...train...
        run.submit(step, model, train_loss=loss)
    run.close()
    table = run.results()   # curvd.results_table documents the columns
    curvd.plot.scalar(table, kinds="sharpness").savefig("sharpness.png")

    # After training: measure every checkpoint file of a directory.
    summary = curvd.backfill(client, "mlp-1", "checkpoints/", shard=..., measure=["llc"])

The gRPC stubs (curvd.v1) are generated from proto/ by
client/python/generate_protos.py (pip install and the CMake build run it).
"""

try:
    from curvd.v1 import curvd_service_pb2_grpc as _stubs  # noqa: F401
except ImportError as _error:
    raise ImportError(
        "curvd's gRPC stubs are missing: run /usr/bin/python3 client/python/generate_protos.py "
        "(or pip install ./client/python)") from _error

from curvd import plot
from curvd.client import Client
from curvd.directory_backfill import BackfillFile, BackfillSummary, backfill
from curvd.errors import CurvdError, CurvdWarning, ModelExportError
from curvd.measurement_specs import KIND_NAMES, plan
from curvd.results_table import HEADLINES
from curvd.run import Run
from curvd.submit_queue import POLICIES

__all__ = ["Client", "Run", "CurvdError", "CurvdWarning", "ModelExportError", "plan",
           "KIND_NAMES", "HEADLINES", "POLICIES", "backfill", "BackfillFile", "BackfillSummary",
           "plot"]
