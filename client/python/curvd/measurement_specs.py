"""MeasurementSpecs from what a trainer writes: kind names, per-kind options, plans.

Kinds are the fields of MeasurementSpec's `kind` oneof ("sharpness",
"hessian_trace", ..., "plan"), read from the proto descriptor, so a kind added
to the proto is known here without code.
"""

import hashlib

from google.protobuf import json_format

from curvd.v1 import resources_pb2

_KIND_FIELDS = {f.name: f for f in
                resources_pb2.MeasurementSpec.DESCRIPTOR.oneofs_by_name["kind"].fields}
_PLAN_FIELDS = {f.name: f for f in resources_pb2.MeasurementPlanSpec.DESCRIPTOR.fields}

# Kind names a measurement spec can have, in the proto's order.
KIND_NAMES = tuple(_KIND_FIELDS)

_LOSSES = {"cross_entropy": resources_pb2.LOSS_FUNCTION_CROSS_ENTROPY,
           "mse": resources_pb2.LOSS_FUNCTION_MSE}


def _message_class(field):
    """The generated class of message field `field` (all live in resources_pb2)."""
    return getattr(resources_pb2, field.message_type.name)


def kind_name(spec):
    """The kind of MeasurementSpec `spec` ("sharpness", ..., "plan"), or "" when unset."""
    return spec.WhichOneof("kind") or ""


def _options_message(message_type, options, what):
    message = message_type()
    try:
        json_format.ParseDict(dict(options or {}), message)
    except json_format.ParseError as error:
        fields = ", ".join(f.name for f in message.DESCRIPTOR.fields)
        reason = str(error).splitlines()[0]  # protobuf's next line lists camelCase names
        raise ValueError(f"{what}: {reason} (its options: {fields})") from None
    return message


def plan(*kinds, **kind_options):
    """A MeasurementPlanSpec: the kinds one measurement runs together, sharing its
    forward passes (and Lanczos runs and probes where it can).

    `kinds` are kind names run with the server's defaults; `kind_options` maps a
    kind to a dict of its spec's fields (proto field names), e.g.
    plan("hessian_trace", sharpness={"top_k": 3}). Raises ValueError for an
    unknown kind or option.
    """
    result = resources_pb2.MeasurementPlanSpec()
    for name, options in [(k, None) for k in kinds] + list(kind_options.items()):
        field = _PLAN_FIELDS.get(name)
        if field is None:
            raise ValueError(f"a plan cannot hold kind '{name}'; its kinds: "
                             f"{', '.join(_PLAN_FIELDS)}")
        getattr(result, name).CopyFrom(
            _options_message(_message_class(field), options, f"plan {name}"))
    return result


def _one_spec(item):
    """A MeasurementSpec with only its kind set, from one element of `measure`."""
    if isinstance(item, resources_pb2.MeasurementSpec):
        return item
    if isinstance(item, resources_pb2.MeasurementPlanSpec):
        return resources_pb2.MeasurementSpec(plan=item)
    if isinstance(item, str):
        name, options = item, None
    elif isinstance(item, dict) and len(item) == 1:
        (name, options), = item.items()
    else:
        raise TypeError(f"measure: {item!r} is not a kind name, a {{kind: options}} dict, "
                        f"a curvd.plan(...) or a MeasurementSpec")
    field = _KIND_FIELDS.get(name)
    if field is None:
        raise ValueError(f"measure: unknown kind '{name}'; the kinds are {', '.join(KIND_NAMES)}")
    if name == "plan" and not isinstance(options, resources_pb2.MeasurementPlanSpec):
        options = plan(*options) if isinstance(options, (list, tuple)) else plan(**(options or {}))
    spec = resources_pb2.MeasurementSpec()
    if isinstance(options, resources_pb2.MeasurementPlanSpec):
        spec.plan.CopyFrom(options)
    else:
        getattr(spec, name).CopyFrom(
            _options_message(_message_class(field), options, f"measure {name}"))
    return spec


def build_specs(measure, shard_uri, loss, settings=None):
    """The MeasurementSpecs to create for every checkpoint.

    `measure` is one item or a list of items, each a kind name ("sharpness"), a
    dict {kind: {option: value}}, a curvd.plan(...) or a MeasurementSpec.
    `shard_uri` and `loss` ("cross_entropy", "mse", or a LossFunction value) go
    into every spec without a shard or loss of its own; `settings`, a dict of
    MeasurementSpec's other fields (precision, micro_batch_size, device,
    device_split, operator, train_mode, forward_seed, block) by proto field
    name, too.
    Raises ValueError for an unknown kind, option, loss or setting.
    """
    single = (str, dict, resources_pb2.MeasurementSpec, resources_pb2.MeasurementPlanSpec)
    items = [measure] if isinstance(measure, single) else list(measure)
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"loss '{loss}' is not one of {', '.join(_LOSSES)}")
        loss = _LOSSES[loss]
    common = _options_message(resources_pb2.MeasurementSpec, settings, "settings")
    if common.WhichOneof("kind"):
        raise ValueError("settings: give kinds in measure=, not in settings")
    specs = []
    for item in items:
        spec = resources_pb2.MeasurementSpec()
        spec.CopyFrom(common)
        spec.MergeFrom(_one_spec(item))
        if not spec.shard_uri:
            spec.shard_uri = shard_uri
        if not spec.loss:
            spec.loss = loss
        specs.append(spec)
    return specs


def request_id(run_id, step, spec, invocation=""):
    """The CreateMeasurement request id of `spec` at `step` of run `run_id`: the
    same checkpoint and spec give the same id, so a retry (after a server restart,
    or by a trainer run again) returns the measurement created first.
    `invocation`, when given, is part of the id: a backfill run again measures
    again what did not succeed the first time."""
    digest = hashlib.sha256(invocation.encode() +
                            spec.SerializeToString(deterministic=True)).hexdigest()[:16]
    return f"py-{run_id}-{step}-{kind_name(spec)}-{digest}"
