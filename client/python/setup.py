"""Builds the curvd package; `pip install ./client/python` runs it offline.

Before anything else it generates the gRPC stubs (curvd/v1) from the
repository's proto/ with generate_protos.py, so that an installed package
never lacks them and never carries stale ones (when proto/ is not there, as in
an unpacked source distribution, the stubs it holds are used as they are).
"""

import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate_protos  # noqa: E402

PROTO_DIR = os.path.join(HERE, "..", "..", "proto")
if os.path.isdir(PROTO_DIR):
    generate_protos.generate(os.path.abspath(PROTO_DIR), HERE)

setup(
    name="curvd",
    version="0.1.0",
    description="Stream PyTorch checkpoints to a curvd server and read loss-landscape "
                "measurements back as tables",
    packages=["curvd", "curvd.v1"],
    python_requires=">=3.9",
    # Debian's python3-torch, python3-grpcio and python3-protobuf provide these;
    # pandas (results as a DataFrame) and matplotlib are optional.
    install_requires=["torch", "grpcio", "protobuf"],
    extras_require={"tables": ["pandas"], "plots": ["matplotlib"]},
)
