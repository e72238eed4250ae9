"""A bounded, seeded mutation fuzzer of the parsers a client reaches, through
the real curvd: safetensors checkpoints (header and offsets), TorchScript
archives (a run's model), shard URIs and resource names. Each input is the
regression cases of corpus/<parser>/ (every input that ever broke something,
kept) followed by mutations of a valid seed. Every call must end in a clear
status (OK or a client's error; never UNKNOWN, INTERNAL or UNAVAILABLE), every
measurement in a terminal state saying why, and the server must stay up.
  CURVD_FUZZ_CASES  mutations per parser (default 40; longer by hand: 2000)
  CURVD_FUZZ_SEED   the seed of the mutations"""

import os
import random
import unittest

import grpc

import curvd
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import resources_pb2

from curvd.model_source import export_module

from curvd_server import CurvdServer, mlp
from reliability_clients import checkpoint_bytes, create_run

CASES = int(os.environ.get("CURVD_FUZZ_CASES", "40"))
SEED = int(os.environ.get("CURVD_FUZZ_SEED", "15"))
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
CLEAR = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
         grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ALREADY_EXISTS,
         grpc.StatusCode.PERMISSION_DENIED}
CLEAR_CODES = {code.value[0] for code in CLEAR}


def mutate(rng, data):
    """`data` (bytes) with one to four random edits: a flipped byte, a cut, an
    inserted run, an overwritten little-endian 64-bit length, a duplicated span."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        edit = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if edit == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif edit == 1:
            del data[at:at + rng.randint(1, max(1, len(data) // 4))]
        elif edit == 2:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif edit == 3:
            value = rng.choice([0, 1, 7, 2**31 - 1, 2**32, 2**63 - 1, 2**64 - 1,
                                rng.getrandbits(64)])
            data[at:at + 8] = value.to_bytes(8, "little")
        elif data:
            span = data[at:at + rng.randint(1, 64)]
            data[rng.randrange(len(data) + 1):0] = span
    return bytes(data)


def corpus(parser):
    """The kept regression inputs of `parser`, sorted by file name."""
    folder = os.path.join(CORPUS, parser)
    inputs = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            inputs.append(f.read())
    return inputs


class ParserFuzzTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CurvdServer()
        cls.server.start()
        cls.client = curvd.Client(cls.server.target, rpc_timeout=30, upload_attempts=1)
        cls.run_name, cls.specs = create_run(cls.client, "fuzz")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.close()

    def inputs(self, parser, seed_input):
        """The corpus of `parser`, then CASES mutations of `seed_input`."""
        rng = random.Random(f"{SEED}-{parser}")
        yield from corpus(parser)
        for _ in range(CASES):
            yield mutate(rng, seed_input)

    def call(self, method, request, what):
        """`method`'s answer, or None after a clear refusal; fails on any other status."""
        try:
            return getattr(self.client.stub, method)(request, timeout=60)
        except grpc.RpcError as error:
            self.assertIn(error.code(), CLEAR, f"{what}: {error.code()} {error.details()}")
            return None

    def measure(self, checkpoint_name, spec, what):
        """Creates a measurement of `spec` and checks it ends saying why it failed."""
        m = self.call("CreateMeasurement", service_pb2.CreateMeasurementRequest(
            parent=checkpoint_name, spec=spec), what)
        if m is None:
            return
        for m in self.client.stub.WatchMeasurement(
                service_pb2.WatchMeasurementRequest(name=m.name), timeout=120):
            pass
        self.assertIn(m.state, (resources_pb2.Measurement.SUCCEEDED,
                                resources_pb2.Measurement.FAILED), what)
        if m.state == resources_pb2.Measurement.FAILED:
            self.assertIn(m.error_code, CLEAR_CODES, f"{what}: {m.error_message}")
            self.assertTrue(m.error_message, what)

    def test_safetensors_checkpoints(self):
        for step, data in enumerate(self.inputs("checkpoint", checkpoint_bytes(0)), start=1):
            what = f"checkpoint case {step}"
            checkpoint = self.call("CreateCheckpoint", service_pb2.CreateCheckpointRequest(
                parent=self.run_name, checkpoint=resources_pb2.Checkpoint(
                    step=step, format=resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS,
                    digest=self.client.upload(data, run_id="fuzz"))), what)
            if checkpoint is not None:
                self.measure(checkpoint.name, self.specs[0], what)

    def test_torchscript_archives(self):
        archive, _ = export_module(mlp())
        for case, data in enumerate(self.inputs("archive", archive)):
            what = f"archive case {case}"
            run_id = f"fuzz-archive-{case}"
            run = self.call("CreateRun", service_pb2.CreateRunRequest(
                run_id=run_id, run=resources_pb2.Run(model=resources_pb2.ModelSpec(
                    archive_digest=self.client.upload(data, run_id=run_id)))), what)
            if run is None:
                continue
            checkpoint = self.call("CreateCheckpoint", service_pb2.CreateCheckpointRequest(
                parent=run.name, checkpoint=resources_pb2.Checkpoint(
                    step=0, format=resources_pb2.CHECKPOINT_FORMAT_TORCHSCRIPT,
                    digest=self.client.upload(data, run_id=run_id))), what)
            if checkpoint is not None:
                self.measure(checkpoint.name, self.specs[0], what)

    def test_shard_uris(self):
        checkpoint = self.call("CreateCheckpoint", service_pb2.CreateCheckpointRequest(
            parent=self.run_name, checkpoint=resources_pb2.Checkpoint(
                step=0, format=resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS,
                digest=self.client.upload(checkpoint_bytes(0), run_id="fuzz"))), "seed")
        seed = b"builtin://gaussian_regression?n=64&d=8&outputs=2&seed=0"
        for case, data in enumerate(self.inputs("shard_uri", seed)):
            spec = resources_pb2.MeasurementSpec()
            spec.CopyFrom(self.specs[0])
            spec.shard_uri = data.decode("utf-8", "replace")
            self.measure(checkpoint.name, spec, f"shard URI case {case}: {spec.shard_uri!r}")

    def test_resource_names(self):
        seed = f"{self.run_name}/checkpoints/0/measurements/x".encode()
        for case, data in enumerate(self.inputs("name", seed)):
            name = data.decode("utf-8", "replace")
            what = f"name case {case}: {name!r}"
            self.call("GetMeasurement", service_pb2.GetMeasurementRequest(name=name), what)
            self.call("GetCheckpoint", service_pb2.GetCheckpointRequest(name=name), what)
            self.call("GetRun", service_pb2.GetRunRequest(name=name), what)
            self.call("ListMeasurements", service_pb2.ListMeasurementsRequest(parent=name), what)

    def tearDown(self):
        self.assertIsNone(self.server.process.poll(), "curvd is still running")


if __name__ == "__main__":
    unittest.main()
