"""Measuring the saved checkpoints of a directory after training, as `curvctl
backfill` does: the same files and steps (curvd.checkpoint_directory), the same
skipping of what already SUCCEEDED with the same spec, each bad file reported
and the rest measured."""

import logging
import uuid
import warnings

import grpc

from curvd import checkpoint_directory, checkpoint_measurement
from curvd.client import Client
from curvd.errors import CurvdError, CurvdWarning
from curvd.measurement_specs import kind_name, request_id
from curvd.v1 import resources_pb2

log = logging.getLogger("curvd")

_SUCCEEDED = resources_pb2.Measurement.SUCCEEDED

class BackfillFile:
    """What backfill did with one checkpoint file.

    file_name, path; step (None for "no_step"); outcome, one of
    "measured" (its measurements were made; some may have FAILED, see
    measurements), "skipped" (every kind already SUCCEEDED there), "failed"
    (the file could not be read, uploaded or recorded, its measurements not
    created or not waited for, or its step is given by several files; `error`
    says why) or "no_step" (its name has no step; `error` says why); kinds,
    the kinds measured; measurements, the Measurements made (terminal).
    """

    def __init__(self, file_name, path, step, outcome, error="", kinds=(), measurements=()):
        self.file_name = file_name
        self.path = path
        self.step = step
        self.outcome = outcome
        self.error = error
        self.kinds = list(kinds)
        self.measurements = list(measurements)

    def __repr__(self):
        return f"BackfillFile({self.file_name!r}, step={self.step}, outcome={self.outcome!r})"


class BackfillSummary:
    """What one backfill did: `files`, a BackfillFile per checkpoint file (by
    step, then the files without a step), `other_files` (files that are not
    checkpoints, ignored), and per outcome the lists of file names."""

    def __init__(self, run_id, files, other_files):
        self.run_id = run_id
        self.files = files
        self.other_files = other_files

    def _named(self, outcome):
        return [f.file_name for f in self.files if f.outcome == outcome]

    @property
    def measured(self):
        return self._named("measured")

    @property
    def skipped(self):
        return self._named("skipped")

    @property
    def failed(self):
        return self._named("failed")

    @property
    def no_step(self):
        return self._named("no_step")

    @property
    def measurements(self):
        """Every Measurement made, in file order."""
        return [m for f in self.files for m in f.measurements]

    @property
    def ok(self):
        """True when no file failed and every measurement made SUCCEEDED."""
        return not self.failed and all(m.state == _SUCCEEDED for m in self.measurements)

    def __repr__(self):
        return (f"BackfillSummary(run {self.run_id}: {len(self.measured)} measured, "
                f"{len(self.skipped)} skipped, {len(self.failed)} failed, "
                f"{len(self.no_step)} without a step, {self.other_files} other files)")


def _unmeasured(specs, stored):
    """The specs no SUCCEEDED measurement of `stored` was asked for exactly."""
    return [spec for spec in specs
            if not any(m.state == _SUCCEEDED and m.spec == spec for m in stored)]


def _measure_file(client, run, specs, file, invocation, timeout):
    with open(file.path, "rb") as handle:
        data = handle.read()
    checkpoint = checkpoint_measurement.record_checkpoint(client, run.name, file.step, data,
                                                          file.format)
    run_id = run.name.split("/", 1)[1]
    ids = [request_id(run_id, file.step, spec, invocation) for spec in specs]
    return list(checkpoint_measurement.measure(client, checkpoint.name, specs, ids, timeout))


def backfill(client_or_target, run_id, directory, *, shard=None, measure=None,
             loss="cross_entropy", step_pattern=None, model=None, settings=None,
             example_input=None, timeout=1800.0):
    """Measures every checkpoint file of `directory` (not its subdirectories) for
    run `run_id` and returns a BackfillSummary; `curvctl backfill` in Python.

    Files: TorchScript archives (.pt, .zip) and safetensors state dicts
    (.safetensors) of the run's model, the step of each from its name by
    `step_pattern` (curvd.checkpoint_directory: None, the last run of digits in
    the name without its extension; else a regular expression with one capture
    group). Taken in step order; a checkpoint is skipped when each kind asked
    for already has a SUCCEEDED measurement there with the same spec (kind,
    shard and settings), and only the missing kinds are measured otherwise, so
    a second backfill measures nothing new. A file without a step is skipped
    with a CurvdWarning; several files of one step all fail; a file that cannot
    be read or that the server refuses (not the format its extension says, a
    step recorded with other content) fails alone, with a CurvdWarning, and
    the rest are measured. A FAILED measurement is a warning and stays in the
    summary.

    client_or_target: a curvd.Client, or a target for one made (and closed)
    here. shard, measure, loss, settings, model, example_input: as
    Client.run() takes them (measure None: "sharpness"); model None: the run
    must exist. timeout: seconds each measurement may take.

    Raises ValueError for a bad step pattern or measure, OSError when the
    directory cannot be listed, CurvdError when the run cannot be created or
    opened or the server cannot list its measurements.
    """
    rule = checkpoint_directory.StepRule(step_pattern)
    found = checkpoint_directory.scan(directory, rule)
    owned = not isinstance(client_or_target, Client)
    client = Client(client_or_target) if owned else client_or_target
    try:
        run, specs, _ = client.run_resource(run_id, model, shard=shard, loss=loss,
                                            measure=measure, settings=settings,
                                            example_input=example_input)
        if not specs:
            raise ValueError("backfill: measure= names no kind to measure")
        stored = {}
        for m in client.list_all("ListMeasurements", "measurements",
                                 parent=f"{run.name}/checkpoints/-"):
            stored.setdefault(int(m.name.split("/")[3]), []).append(m)
        files = _backfill_files(client, run, specs, found, stored, timeout)
    finally:
        if owned:
            client.close()
    summary = BackfillSummary(run_id, files, found.other_files)
    log.info("curvd: backfill of %s: %s", directory, summary)
    return summary


def _backfill_files(client, run, specs, found, stored, timeout):
    invocation = uuid.uuid4().hex
    files = []
    for name, why in found.no_step.items():
        warnings.warn(f"curvd backfill: {why}; skipped", CurvdWarning, stacklevel=3)
        files.append(BackfillFile(name, None, None, "no_step", why))
    for step, names in found.duplicate_steps.items():
        why = (f"step {step} is given by {len(names)} files ({', '.join(names)}): none of "
               f"them is measured")
        warnings.warn(f"curvd backfill: {why}", CurvdWarning, stacklevel=3)
        files.extend(BackfillFile(n, None, step, "failed", why) for n in names)
    total = len(found.checkpoints)
    for i, file in enumerate(found.checkpoints):
        prefix = f"[{i + 1}/{total}] {file.file_name} (step {file.step})"
        missing = _unmeasured(specs, stored.get(file.step, []))
        if not missing:
            log.info("curvd backfill: %s: skipped, already measured", prefix)
            files.append(BackfillFile(file.file_name, file.path, file.step, "skipped"))
            continue
        kinds = [kind_name(spec) for spec in missing]
        log.info("curvd backfill: %s: measuring %s", prefix, ", ".join(kinds))
        try:
            made = _measure_file(client, run, missing, file, invocation, timeout)
        except (OSError, grpc.RpcError, CurvdError) as error:
            why = error.details() if isinstance(error, grpc.RpcError) else str(error)
            warnings.warn(f"curvd backfill: {prefix}: {why}", CurvdWarning, stacklevel=3)
            files.append(BackfillFile(file.file_name, file.path, file.step, "failed", why, kinds))
            continue
        for m in made:
            if m.state != _SUCCEEDED:
                warnings.warn(f"curvd backfill: {prefix}: {kind_name(m.spec)} "
                              f"{resources_pb2.Measurement.State.Name(m.state)}: "
                              f"{m.error_message}", CurvdWarning, stacklevel=3)
        files.append(BackfillFile(file.file_name, file.path, file.step, "measured", "",
                                  kinds, made))
    # By step, those without one last.
    return sorted(files, key=lambda f: (f.step is None, f.step or 0, f.file_name))
