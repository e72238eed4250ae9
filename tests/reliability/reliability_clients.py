"""What the reliability tests share: a run of the tests' tiny model measured by
the fast CPU kind "sharpness", and one checkpoint's way through the server
(upload, CreateCheckpoint, CreateMeasurement, WatchMeasurement until it ends)
as curvd.Run's background thread takes it; a measurement's result as bytes, to
check that it is still what it was."""

from curvd import checkpoint_measurement, safetensors_format
from curvd.v1 import resources_pb2

from curvd_server import mlp, regression_data


def create_run(client, run_id):
    """Creates run `run_id` of the tiny MLP measured by "sharpness" on the
    regression shard; returns (its name "runs/ID", its MeasurementSpecs)."""
    run, specs, _ = client.run_resource(run_id, mlp(), shard=regression_data(), loss="mse",
                                        measure=["sharpness"])
    return run.name, specs


def checkpoint_bytes(step):
    """The safetensors weights of the tiny MLP moved by `step`: another
    content, so another blob, at every step."""
    state = {name: tensor.detach() + 0.01 * step for name, tensor in mlp().state_dict().items()}
    return safetensors_format.encode(state)


def measure_step(client, run_name, specs, step, timeout=120):
    """Uploads and records checkpoint `step` of `run_name`, creates its
    measurements (request ids by run and step, so a retry is idempotent) and
    returns them as they ended. Raises what the calls raise."""
    checkpoint = checkpoint_measurement.record_checkpoint(
        client, run_name, step, checkpoint_bytes(step),
        resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS, train_loss=float(step))
    ids = [f"{run_name.replace('/', '-')}-{step}-{i}" for i in range(len(specs))]
    return list(checkpoint_measurement.measure(client, checkpoint.name, specs, ids, timeout))


def result_bytes(measurement):
    """The serialised result of `measurement` (its oneof `result`)."""
    field = measurement.WhichOneof("result")
    return getattr(measurement, field).SerializeToString(deterministic=True) if field else b""
