"""Measurements as table rows: one row per checkpoint and kind.

Every row is a dict with these columns (plotting relies on the names):

  run             the run id
  step            the checkpoint's training step (int)
  kind            "sharpness", "hessian_trace", ...; a plan gives one row per
                  kind it ran, all with the plan's measurement name
  state           "QUEUED", "RUNNING", "SUCCEEDED", "FAILED" or "CANCELLED"
  value           the kind's headline number (see HEADLINES), None unless SUCCEEDED
  standard_error  the headline's standard error, None where the kind has none
  train_loss      the trainer's train_loss at this step (None when unknown)
  loss            the model's loss on the shard at the checkpoint (diagnostics.loss)
  error_code      the google.rpc.Code of a FAILED measurement (0 otherwise)
  error_message   why it FAILED or was CANCELLED ("" otherwise)
  measurement     the measurement's name, runs/R/checkpoints/S/measurements/ID
  shard           the spec's shard_uri
  create_time, end_time   datetime (UTC), end_time None until terminal
  diagnostics.F   every scalar field F of Diagnostics (diagnostics.hvps,
                  diagnostics.device, diagnostics.compute_seconds, ...)
  KIND.F          every scalar field F of the kind's result message, nested
                  messages flattened with dots (sharpness.iterations,
                  hessian_trace.probes, loss_expansion.trace_h3.trace, ...);
                  proto3 `optional` fields that are unset are None
  result          the kind's result message itself (e.g. a SpectralDensityResult,
                  for its grid and density), None unless SUCCEEDED

Scalar columns are built by walking the proto descriptors, so a field added to
a result is a column without code here.
"""

from google.protobuf.descriptor import FieldDescriptor

from curvd.v1 import resources_pb2

_STATE_NAMES = resources_pb2.Measurement.State.Name


def _density_trace(r):
    x = [e for e in r.estimates if e.function == "x"]
    return (x[0].trace, x[0].standard_error) if x else (None, None)


def _calibration(r):
    if not 0 <= r.recommended < len(r.cells):
        return None, None
    best = r.cells[r.recommended].result
    return best.llc_mean, best.llc_standard_error


# kind -> function(result) -> (value, standard_error): the number a table or a
# plot shows first for the kind, as curvctl's `value` column.
HEADLINES = {
    "sharpness": lambda r: (r.sharpness, None),
    "hessian_trace": lambda r: (r.trace, r.standard_error),
    "trace_h3": lambda r: (r.trace, r.standard_error),
    "hutchpp": lambda r: (r.trace, r.standard_error),
    "adaptive_trace": lambda r: (r.trace, r.standard_error),
    "spectral_density": _density_trace,
    "loss_expansion": lambda r: (r.total, r.total_standard_error),
    "exact_hessian": lambda r: (r.eigenvalues[-1] if r.eigenvalues else None, None),
    "power_iteration": lambda r: (r.pairs[0].value if r.pairs else None, None),
    "loss_slice": lambda r: (r.direction_curvature, None),
    "llc": lambda r: (r.llc_mean, r.llc_standard_error),
    "llc_calibration": _calibration,
    "gop": lambda r: (r.metrics.trace, None),
}


def _scalar(message, field):
    value = getattr(message, field.name)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name \
            if value in field.enum_type.values_by_number else value
    return value


def _is_repeated(field):
    # protobuf 5 and later have is_repeated, and 7 has no label; Debian's 3.21
    # has only label.
    repeated = getattr(field, "is_repeated", None)
    return field.label == FieldDescriptor.LABEL_REPEATED if repeated is None else repeated


def scalar_columns(message, prefix):
    """{prefix + field: value} for every non-repeated scalar field of `message`,
    recursing into singular message fields ("prefix.field.subfield"); a Duration
    becomes seconds (a float) and `optional` fields left unset are None."""
    columns = {}
    for field in message.DESCRIPTOR.fields:
        if _is_repeated(field):
            continue
        name = prefix + field.name
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            child = getattr(message, field.name)
            if field.message_type.full_name == "google.protobuf.Duration":
                columns[name.removesuffix("_duration") + "_seconds"] = \
                    child.seconds + child.nanos * 1e-9
            elif field.message_type.full_name != "google.protobuf.Timestamp":
                columns.update(scalar_columns(child, name + "."))
        elif field.containing_oneof is not None and not message.HasField(field.name):
            columns[name] = None  # an unset proto3 `optional`
        else:
            columns[name] = _scalar(message, field)
    return columns


def _results_by_kind(measurement):
    """[(kind, result message or None)] of `measurement`; a plan's set results."""
    spec = measurement.effective_spec if measurement.effective_spec.WhichOneof("kind") \
        else measurement.spec
    kind = spec.WhichOneof("kind") or ""
    succeeded = measurement.state == resources_pb2.Measurement.SUCCEEDED
    if kind != "plan":
        return [(kind, getattr(measurement, kind) if succeeded and kind else None)]
    kinds = [f.name for f in resources_pb2.MeasurementPlanSpec.DESCRIPTOR.fields
             if spec.plan.HasField(f.name)]
    return [(k, getattr(measurement.plan, k) if succeeded else None) for k in kinds]


def _time(timestamp, present):
    return timestamp.ToDatetime() if present else None


def measurement_rows(measurement, run_id, train_losses):
    """The rows (dicts with the module's columns) of Measurement `measurement` of
    run `run_id`; `train_losses` maps step -> the checkpoint's train_loss."""
    step = int(measurement.name.split("/")[3])
    terminal = measurement.state in (resources_pb2.Measurement.SUCCEEDED,
                                     resources_pb2.Measurement.FAILED,
                                     resources_pb2.Measurement.CANCELLED)
    common = {
        "train_loss": train_losses.get(step), "loss": measurement.diagnostics.loss,
        "error_code": measurement.error_code, "error_message": measurement.error_message,
        "measurement": measurement.name, "shard": measurement.spec.shard_uri,
        "create_time": _time(measurement.create_time, True),
        "end_time": _time(measurement.end_time, terminal),
    }
    common.update(scalar_columns(measurement.diagnostics, "diagnostics."))
    rows = []
    for kind, result in _results_by_kind(measurement):
        row = {"run": run_id, "step": step, "kind": kind,
               "state": _STATE_NAMES(measurement.state), "value": None,
               "standard_error": None, **common}
        if result is not None:
            if kind in HEADLINES:
                row["value"], row["standard_error"] = HEADLINES[kind](result)
            row.update(scalar_columns(result, kind + "."))
        row["result"] = result
        rows.append(row)
    return rows


def sort_rows(rows):
    """`rows` ordered by step, kind, then creation time."""
    return sorted(rows, key=lambda r: (r["step"], r["kind"], r["create_time"]))


def as_table(rows, frame=None):
    """`rows` as a pandas DataFrame (columns in the module's order) when `frame`
    is True, or None and pandas imports; else the list of dicts itself. Raises
    ImportError when `frame` is True and pandas is missing."""
    if frame is False:
        return rows
    try:
        import pandas
    except ImportError:
        if frame:
            raise
        return rows
    return pandas.DataFrame(rows)
