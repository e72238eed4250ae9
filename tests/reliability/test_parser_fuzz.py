"""A bounded, seeded mutation fuzzer of the parsers a client reaches, through
the real curvd: safetensors checkpoints (header and offsets), TorchScript
archives (a run's model), shard URIs, resource names, and the data shard files
read from the data root (idx images and labels, CIFAR-10 batch files, raw or
gzipped); and the ways out of the data root a file:// URI can try. Each input
is the regression cases of corpus/<parser>/ (every input that ever broke
something, kept; a folder for a shard of several files) followed by mutations
of a valid seed. Every call must end in a clear status (OK or a client's
error; never UNKNOWN, INTERNAL or UNAVAILABLE), every measurement in a
terminal state saying why, the server must stay up, and a measurement that
succeeded before the fuzzing keeps its result.
  CURVD_FUZZ_CASES  mutations per parser (default 40; longer by hand: 2000)
  CURVD_FUZZ_SEED   the seed of the mutations"""

import collections
import gzip
import itertools
import os
import random
import re
import shutil
import unittest

import grpc
import torch

import curvd
from curvd import measurement_specs, safetensors_format
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import resources_pb2

from curvd.model_source import export_module

from curvd_server import CurvdServer, mlp, regression_data
from data_root_escapes import ESCAPES, SHARD_ESCAPES, make_escape_tree
from mutations import (CIFAR_BATCHES, CIFAR_RECORD_BYTES, IDX_IMAGES, IDX_LABELS, idx_file,
                       mutate, mutate_cifar, mutate_idx_pair)
from reliability_clients import checkpoint_bytes, create_run, measure_step, result_bytes

CASES = int(os.environ.get("CURVD_FUZZ_CASES", "40"))
SEED = int(os.environ.get("CURVD_FUZZ_SEED", "15"))
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
CLEAR = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
         grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ALREADY_EXISTS,
         grpc.StatusCode.PERMISSION_DENIED}
CODES = {code.value[0]: code for code in grpc.StatusCode}

# How a call or a measurement ended: OK and "" when it succeeded.
Status = collections.namedtuple("Status", ["code", "message"])
SUCCEEDED = Status(grpc.StatusCode.OK, "")


def corpus(parser):
    """The kept regression inputs of `parser`, sorted by name: a file's bytes,
    or a folder's files as {name: bytes}."""
    folder = os.path.join(CORPUS, parser)
    return [read_input(os.path.join(folder, name)) for name in sorted(os.listdir(folder))]


def read_input(path):
    """The bytes of file `path`, or the files of folder `path` as {name: bytes}."""
    if os.path.isdir(path):
        return {name: read_input(os.path.join(path, name)) for name in sorted(os.listdir(path))}
    with open(path, "rb") as f:
        return f.read()


def file_shard_uri(folder, files):
    """The file:// shard URI of `files` ({name: bytes}) written in `folder`: the
    idx images with ?labels=, a CIFAR-10 batch file, or the folder of them."""
    names = sorted(files)
    images = [name for name in names if "idx3" in name]
    if images:
        labels = next(name for name in names if "idx1" in name)
        return f"file://{folder}/{images[0]}?labels={labels}"
    return f"file://{folder}{'/' + names[0] if len(names) == 1 else ''}?format=cifar10"


def quoted_aside(message):
    """`message` with every quoted part (curvd quotes the paths it names) blanked."""
    return re.sub(r"'[^']*'", "''", message)


class ParserFuzzTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CurvdServer()
        cls.server.start()
        cls.client = curvd.Client(cls.server.target, rpc_timeout=30, upload_attempts=1)
        cls.run_name, cls.specs = create_run(cls.client, "fuzz")
        baseline, specs = create_run(cls.client, "fuzz-baseline")
        cls.baseline = measure_step(cls.client, baseline, specs, 0)
        cls.steps = itertools.count(1)
        cls.ended = collections.Counter()  # (test, status code name) -> cases

    @classmethod
    def tearDownClass(cls):
        for test in sorted({test for test, _ in cls.ended}):
            print(f"parser fuzz {test}: " + ", ".join(
                f"{code} {n}" for (t, code), n in sorted(cls.ended.items()) if t == test))
        cls.client.close()
        cls.server.close()

    def setUp(self):
        self.assertEqual([m.state for m in self.baseline],
                         [resources_pb2.Measurement.SUCCEEDED] * len(self.baseline))

    def tearDown(self):
        self.assertIsNone(self.server.process.poll(), "curvd is still running")
        for before in self.baseline:
            after = self.client.stub.GetMeasurement(
                service_pb2.GetMeasurementRequest(name=before.name), timeout=30)
            self.assertEqual((after.state, result_bytes(after)),
                             (before.state, result_bytes(before)), before.name)

    def inputs(self, parser, seed_input, mutation=mutate):
        """The corpus of `parser`, then CASES mutations of `seed_input` by `mutation`."""
        rng = random.Random(f"{SEED}-{parser}")
        yield from corpus(parser)
        for _ in range(CASES):
            yield mutation(rng, seed_input)

    def call(self, method, request, what):
        """`method`'s (answer, Status): (None, the refusal) after a clear
        refusal; fails on any other status."""
        try:
            return getattr(self.client.stub, method)(request, timeout=60), SUCCEEDED
        except grpc.RpcError as error:
            self.assertIn(error.code(), CLEAR, f"{what}: {error.code()} {error.details()}")
            return None, Status(error.code(), error.details())

    def measure(self, checkpoint_name, spec, what):
        """Creates a measurement of `spec`, checks it ends saying why if it
        failed; returns how it ended (the refusal of its creation, if so),
        counted by test and code."""
        ended = self.measure_once(checkpoint_name, spec, what)
        self.ended[self._testMethodName, ended.code.name] += 1
        return ended

    def measure_once(self, checkpoint_name, spec, what):
        m, refused = self.call("CreateMeasurement", service_pb2.CreateMeasurementRequest(
            parent=checkpoint_name, spec=spec), what)
        if m is None:
            return refused
        try:
            for m in self.client.stub.WatchMeasurement(
                    service_pb2.WatchMeasurementRequest(name=m.name), timeout=120):
                pass
        except grpc.RpcError as error:
            self.fail(f"{what}: watching {m.name}: {error.code()} {error.details()}\n"
                      f"{self.server.log()}")
        self.assertIn(m.state, (resources_pb2.Measurement.SUCCEEDED,
                                resources_pb2.Measurement.FAILED), what)
        if m.state == resources_pb2.Measurement.SUCCEEDED:
            return SUCCEEDED
        self.assertIn(CODES.get(m.error_code), CLEAR - {grpc.StatusCode.OK},
                      f"{what}: {m.error_message}")
        self.assertTrue(m.error_message, what)
        return Status(CODES[m.error_code], m.error_message)

    def measure_checkpoint(self, run_name, checkpoint, spec, what):
        """Creates `checkpoint` (a Checkpoint) of `run_name` and measures `spec` on it."""
        created, refused = self.call("CreateCheckpoint", service_pb2.CreateCheckpointRequest(
            parent=run_name, checkpoint=checkpoint), what)
        return refused if created is None else self.measure(created.name, spec, what)

    def measure_run(self, run_id, model, checkpoint, spec, what):
        """Creates run `run_id` of `model` (a ModelSpec), then measures as
        measure_checkpoint."""
        run, refused = self.call("CreateRun", service_pb2.CreateRunRequest(
            run_id=run_id, run=resources_pb2.Run(model=model)), what)
        return refused if run is None else self.measure_checkpoint(run.name, checkpoint, spec, what)

    def archive_checkpoint(self, run_id, archive, step=0):
        """The checkpoint `step` of a run of TorchScript `archive`: the archive itself."""
        return resources_pb2.Checkpoint(step=step, format=resources_pb2.CHECKPOINT_FORMAT_TORCHSCRIPT,
                                        digest=self.client.upload(archive, run_id=run_id))

    def test_safetensors_checkpoints(self):
        for data in self.inputs("checkpoint", checkpoint_bytes(0)):
            step = next(self.steps)
            self.measure_checkpoint(self.run_name, resources_pb2.Checkpoint(
                step=step, format=resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS,
                digest=self.client.upload(data, run_id="fuzz")), self.specs[0],
                f"checkpoint case {step}")

    def test_torchscript_archives(self):
        archive, _ = export_module(mlp())
        for case, data in enumerate(self.inputs("archive", archive)):
            run_id = f"fuzz-archive-{case}"
            self.measure_run(run_id, resources_pb2.ModelSpec(
                archive_digest=self.client.upload(data, run_id=run_id)),
                self.archive_checkpoint(run_id, data), self.specs[0], f"archive case {case}")

    def test_shard_uris(self):
        checkpoint, _ = self.call("CreateCheckpoint", service_pb2.CreateCheckpointRequest(
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
            _, ended = self.call("GetRun", service_pb2.GetRunRequest(name=name), what)
            self.ended[self._testMethodName, ended.code.name] += 1
            self.call("ListMeasurements", service_pb2.ListMeasurementsRequest(parent=name), what)

    def fuzz_shard_files(self, parser, model, seeds, mutation):
        """Measures sharpness (cross-entropy) of `model` on each of `seeds` (shards
        as {file name: bytes}), which must succeed, then on the corpus of
        `parser` and CASES mutations of seeds[0] by `mutation`, each written
        in a folder of its own under the data root."""
        run_id = f"fuzz-{parser}"
        archive, _ = export_module(model)
        run, created = self.call("CreateRun", service_pb2.CreateRunRequest(
            run_id=run_id, run=resources_pb2.Run(model=resources_pb2.ModelSpec(
                archive_digest=self.client.upload(archive, run_id=run_id)))), parser)
        self.assertEqual(created, SUCCEEDED, parser)
        checkpoint, created = self.call("CreateCheckpoint", service_pb2.CreateCheckpointRequest(
            parent=run.name, checkpoint=self.archive_checkpoint(run_id, archive)), parser)
        self.assertEqual(created, SUCCEEDED, parser)
        cases = itertools.chain(seeds, self.inputs(parser, seeds[0], mutation))
        for case, files in enumerate(cases):
            if not isinstance(files, dict):
                files = {CIFAR_BATCHES[0]: files}
            folder = os.path.join(self.server.data_root, parser, str(case))
            os.makedirs(folder)
            for name, data in files.items():
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(data)
            uri = file_shard_uri(folder, files)
            spec = measurement_specs.build_specs("sharpness", uri, "cross_entropy")[0]
            ended = self.measure(checkpoint.name, spec, f"{parser} case {case}: {uri}")
            if case < len(seeds):
                self.assertEqual(ended, SUCCEEDED, f"{parser} seed {case}")
            shutil.rmtree(folder)

    def test_idx_shards(self):
        rng = random.Random(SEED)
        images = idx_file(0x803, [5, 2, 4], rng.randbytes(40))
        labels = idx_file(0x801, [5], bytes([0, 1, 2, 3, 9]))
        raw = {IDX_IMAGES: images, IDX_LABELS: labels}
        gzipped = {IDX_IMAGES + ".gz": gzip.compress(images), IDX_LABELS + ".gz": gzip.compress(labels)}
        self.fuzz_shard_files("idx", mlp(outputs=10), [raw, gzipped], mutate_idx_pair)

    def test_cifar_shards(self):
        rng = random.Random(SEED)
        records = b"".join(bytes([label]) + rng.randbytes(CIFAR_RECORD_BYTES - 1)
                           for label in (0, 9, 4))
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(CIFAR_RECORD_BYTES - 1, 10))
        self.fuzz_shard_files("cifar", model, [{CIFAR_BATCHES[0]: records},
                                               {name: records for name in CIFAR_BATCHES}],
                              mutate_cifar)

    def test_data_root_escapes(self):
        x, y = regression_data()
        archive, _ = export_module(mlp())
        shard_checkpoint, created = self.call("CreateCheckpoint", service_pb2.CreateCheckpointRequest(
            parent=self.run_name, checkpoint=resources_pb2.Checkpoint(
                step=next(self.steps), format=resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS,
                digest=self.client.upload(checkpoint_bytes(0), run_id="fuzz"))), "escape")
        self.assertEqual(created, SUCCEEDED)
        weights = self.client.upload(checkpoint_bytes(0), run_id="fuzz")
        runs = itertools.count()

        def through_shard(uri, what):
            spec = resources_pb2.MeasurementSpec()
            spec.CopyFrom(self.specs[0])
            spec.shard_uri = uri
            return self.measure(shard_checkpoint.name, spec, what)

        def through_checkpoint(uri, what):
            return self.measure_checkpoint(self.run_name, resources_pb2.Checkpoint(
                step=next(self.steps), format=resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS,
                uri=uri), self.specs[0], what)

        def through_archive(uri, what):
            return self.measure_run(f"fuzz-escape-{next(runs)}", resources_pb2.ModelSpec(
                archive_uri=uri), resources_pb2.Checkpoint(
                    step=0, format=resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS, digest=weights),
                self.specs[0], what)

        images = idx_file(0x803, [64, 2, 4], bytes(64 * 8))
        channels = [("shard", through_shard, safetensors_format.encode({"inputs": x, "targets": y}),
                     ESCAPES + SHARD_ESCAPES),
                    ("checkpoint", through_checkpoint, checkpoint_bytes(0), ESCAPES),
                    ("archive", through_archive, archive, ESCAPES)]
        for channel, reach, content, escapes in channels:
            fields = make_escape_tree(self.server.data_root, channel, content, images)
            for expected, paths in escapes:
                seen = set()
                for path in paths:
                    path = path.format(**fields)
                    what = f"{channel} file://{path[:200]!r}"
                    ended = reach(f"file://{path}", what)
                    self.assertEqual(ended.code, expected, f"{what}: {ended.message[:300]}")
                    if "-outside" not in path:
                        self.assertNotIn("-outside", ended.message, f"{what} names the outside")
                    seen.add(quoted_aside(ended.message))
                self.assertEqual(len(seen), 1, f"{channel}: one message for {paths}: {seen}"[:2000])


if __name__ == "__main__":
    unittest.main()
