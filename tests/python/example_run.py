"""Runs an example trainer of client/python/examples/ as a user would, and reads
back the CSV it writes."""

import csv
import os
import subprocess
import sys

# client/python/examples, where the examples and their helper modules live.
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "client", "python", "examples")


def run_example(name, *flags, timeout=120):
    """Runs examples/`name` with `flags` under this Python (the environment's
    PYTHONPATH reaching curvd); returns its output. Raises AssertionError with
    the output when it exits non-zero."""
    process = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *flags],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout)
    if process.returncode != 0:
        raise AssertionError(f"{name} exited with {process.returncode}:\n{process.stdout}")
    return process.stdout


def read_csv(path):
    """(header, rows as dicts) of the CSV file at `path`."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, list(reader)
