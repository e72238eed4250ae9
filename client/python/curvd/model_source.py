"""A run's model as the server takes it (a ModelSpec), from what a trainer has:
an nn.Module, a TorchScript archive, a zoo spec."""

import io
import os
import warnings

import torch

from curvd.errors import CurvdWarning, ModelExportError
from curvd.v1 import resources_pb2

ZIP_MAGIC = b"PK\x03\x04"


def parse_zoo_spec(text):
    """A ZooModel from "ARCH:W0,W1,...,WN[:ACTIVATION]" (curvctl's --zoo form, e.g.
    "mlp:784,128,10:tanh"). Raises ValueError when `text` is not of that form;
    the server checks the architecture, widths and activation at CreateRun."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        widths = [int(w) for w in parts[1].split(",")]
    except ValueError:
        raise ValueError(f"zoo spec '{text}' is not ARCH:WIDTHS[:ACTIVATION], "
                         f"e.g. mlp:784,128,10:tanh") from None
    return resources_pb2.ZooModel(architecture=parts[0], layer_widths=widths,
                                  activation=parts[2] if len(parts) == 3 else "")


def _save(script_module):
    buffer = io.BytesIO()
    torch.jit.save(script_module, buffer)
    return buffer.getvalue()


def export_module(module, example_input=None):
    """TorchScript archive bytes of nn.Module `module` and how they were made.

    Tries torch.jit.script; when that fails and `example_input` (a tensor or a
    tuple of them) is given, torch.jit.trace on it, with a CurvdWarning that
    tracing records one path through data-dependent control flow. Returns
    (archive bytes, "scripted" | "traced" | "archive" for a ScriptModule).
    Raises ModelExportError naming both failures and the remedies.
    """
    if isinstance(module, torch.jit.ScriptModule):
        return _save(module), "archive"
    try:
        return _save(torch.jit.script(module)), "scripted"
    except Exception as error:  # TorchScript raises many types, all meaning "cannot script"
        script_error = error
    name = type(module).__name__
    first_line = str(script_error).strip().splitlines()[0] if str(script_error).strip() else \
        type(script_error).__name__
    if example_input is None:
        raise ModelExportError(
            f"torch.jit.script cannot compile {name}: {first_line}. Pass "
            f"example_input=<a batch of inputs> to client.run() so that curvd traces it "
            f"instead, make {name} scriptable, or pass the path of an archive written "
            f"with torch.jit.save.") from script_error
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        with torch.no_grad():
            traced = torch.jit.trace(module, inputs, check_trace=False)
        archive = _save(traced)
    except Exception as error:
        raise ModelExportError(
            f"{name} can be neither scripted ({first_line}) nor traced on the example "
            f"input ({error}). Make it scriptable, check that example_input is what "
            f"forward() takes, or pass the path of an archive written with "
            f"torch.jit.save.") from error
    warnings.warn(f"curvd: {name} was traced, not scripted (torch.jit.script: {first_line}); "
                  f"a trace follows one path through data-dependent control flow",
                  CurvdWarning, stacklevel=3)
    return archive, "traced"


def model_spec(model, upload, example_input=None):
    """The ModelSpec of `model` and how it was made.

    `model` is an nn.Module (exported by export_module, the archive uploaded),
    the path of a TorchScript archive (uploaded), a file:// URI of one under the
    server's data roots, a zoo spec string ("mlp:8,16,2:tanh"), a ZooModel or a
    ModelSpec. `upload(bytes) -> digest` uploads a blob. Returns (ModelSpec,
    "scripted" | "traced" | "archive" | "zoo"). Raises ModelExportError for a
    module that cannot be exported, ValueError for a file that is not a
    TorchScript archive, TypeError for anything else.
    """
    if isinstance(model, resources_pb2.ModelSpec):
        return model, "zoo" if model.HasField("zoo") else "archive"
    if isinstance(model, resources_pb2.ZooModel):
        return resources_pb2.ModelSpec(zoo=model), "zoo"
    if isinstance(model, torch.nn.Module):
        archive, how = export_module(model, example_input)
        return resources_pb2.ModelSpec(archive_digest=upload(archive)), how
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if text.startswith("file://"):
            return resources_pb2.ModelSpec(archive_uri=text), "archive"
        if not os.path.exists(text) and ":" in text:
            return resources_pb2.ModelSpec(zoo=parse_zoo_spec(text)), "zoo"
        with open(text, "rb") as file:
            archive = file.read()
        if not archive.startswith(ZIP_MAGIC):
            raise ValueError(f"{text} is not a TorchScript archive (torch.jit.save writes a "
                             f"zip file, starting 'PK\\x03\\x04')")
        return resources_pb2.ModelSpec(archive_digest=upload(archive)), "archive"
    raise TypeError(f"model: {type(model).__name__} is not an nn.Module, an archive path, "
                    f"a file:// URI, a zoo spec, a ZooModel or a ModelSpec")
