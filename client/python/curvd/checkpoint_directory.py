"""The checkpoint files of a directory, as backfill measures them: the rules of
the C++ client's client/checkpoint_directory.h, which `curvctl backfill` uses,
so that both take the same files at the same steps.

A checkpoint file is a TorchScript archive (.pt or .zip, what torch.jit.save
writes) or a safetensors state dict (.safetensors). Its step: by default the
last run of decimal digits in the file name without its extension
("ckpt_000150.pt" is step 150, "run3-step20.safetensors" step 20); a pattern, a
regular expression with exactly one capture group, overrides it: the group's
text in the first match anywhere in the whole file name (re.search), which must
be decimal digits ("step=(\\d+)" takes 20 from "run3_step=20_loss=0.5.pt").
"""

import os
import re

from curvd.v1 import resources_pb2

_INT64_MAX = (1 << 63) - 1
_FORMATS = ((".pt", resources_pb2.CHECKPOINT_FORMAT_TORCHSCRIPT),
            (".zip", resources_pb2.CHECKPOINT_FORMAT_TORCHSCRIPT),
            (".safetensors", resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS))
_TRAILING_DIGITS = re.compile(r"([0-9]+)[^0-9]*$")


class StepRule:
    """How a file name gives its step (see the module); immutable."""

    def __init__(self, pattern=None):
        """The default rule when `pattern` is None or empty; else ValueError
        naming the pattern when it is not a regular expression or has other
        than one capture group."""
        self.pattern = pattern or ""
        self._regex = None
        if not self.pattern:
            return
        try:
            self._regex = re.compile(self.pattern)
        except re.error as error:
            raise ValueError(f"step pattern '{pattern}' is not a regular expression: "
                             f"{error}") from None
        if self._regex.groups != 1:
            raise ValueError(f"step pattern '{pattern}' has {self._regex.groups} capture "
                             f"groups; it needs exactly one, around the step's digits")

    def describe(self):
        """"the step rule (...)" or "step pattern 'P'", for messages."""
        if self._regex is not None:
            return f"step pattern '{self.pattern}'"
        return ("the step rule (the last run of digits in the file name without its "
                "extension)")

    def step_of(self, file_name):
        """The step of `file_name` (no directory part). Raises ValueError saying
        why when the name has no step by this rule, or the captured text is not
        decimal digits or does not fit in int64."""
        if self._regex is not None:
            match = self._regex.search(file_name)
            if match is None or match.group(1) is None:
                raise ValueError(f"{file_name} does not match {self.describe()}")
            digits = match.group(1)
        else:
            dot = file_name.rfind(".")
            stem = file_name if dot <= 0 else file_name[:dot]
            match = _TRAILING_DIGITS.search(stem)
            if match is None:
                raise ValueError(f"{file_name} has no digits for {self.describe()}")
            digits = match.group(1)
        if not (digits.isascii() and digits.isdigit()) or int(digits) > _INT64_MAX:
            raise ValueError(f"the step of {file_name}, '{digits}', is not a decimal number "
                             f"within int64")
        return int(digits)


def checkpoint_format(file_name):
    """The CheckpointFormat of `file_name` by its extension; None for a file that
    is not a checkpoint."""
    for extension, value in _FORMATS:
        if file_name.endswith(extension):
            return value
    return None


class CheckpointFile:
    """One checkpoint file: its path, file name, step and CheckpointFormat."""

    def __init__(self, path, file_name, step, checkpoint_format):
        self.path = path
        self.file_name = file_name
        self.step = step
        self.format = checkpoint_format


class CheckpointDirectory:
    """What scan() found. checkpoints: CheckpointFiles with a step, by step;
    no_step: {file name: why it has no step}; duplicate_steps: {step: file
    names} of steps several files give (none of them is measured: which one is
    meant is the user's call); other_files: regular files that are not
    checkpoints by their extension."""

    def __init__(self):
        self.checkpoints = []
        self.no_step = {}
        self.duplicate_steps = {}
        self.other_files = 0


def scan(directory, rule):
    """The checkpoint files of `directory` (not its subdirectories) by StepRule
    `rule`. Raises NotADirectoryError or FileNotFoundError (OSError) when it
    cannot be listed."""
    found = CheckpointDirectory()
    by_step = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.is_file():
                continue
            kind = checkpoint_format(entry.name)
            if kind is None:
                found.other_files += 1
                continue
            try:
                step = rule.step_of(entry.name)
            except ValueError as error:
                found.no_step[entry.name] = str(error)
                continue
            by_step.setdefault(step, []).append(CheckpointFile(entry.path, entry.name, step, kind))
    for step in sorted(by_step):
        files = sorted(by_step[step], key=lambda f: f.file_name)
        if len(files) == 1:
            found.checkpoints.append(files[0])
        else:
            found.duplicate_steps[step] = [f.file_name for f in files]
    found.no_step = dict(sorted(found.no_step.items()))
    return found
