"""The curvd package against a real curvd server: checkpoints submitted from a
short training loop under every backpressure policy, results as a table, shards
uploaded once, failures surfaced as warnings and rows."""

import os
import tempfile
import threading
import time
import unittest
import warnings

import torch

import curvd
from curvd import safetensors_format
from curvd.upload_process import UploadProcess
from curvd.upload_worker import UPLOAD_NICE
from curvd_server import CurvdServerTest, mlp, regression_data, train

try:
    import pandas
except ImportError:
    pandas = None

KINDS = ["sharpness", "hessian_trace"]


class PolicyTest(CurvdServerTest):
    def test_coalesce_measures_the_newest_and_returns_fast(self):
        run = self.client.run("coalesce", mlp(), shard=regression_data(), loss="mse",
                              measure=KINDS)
        self.assertEqual((run.policy, run.model_export), ("coalesce", "scripted"))
        times, losses = train(run, mlp(), regression_data(), steps=30)
        self.assertTrue(run.close(timeout=60))
        stats = run.stats
        self.assertEqual(stats["submitted"], 30)
        self.assertEqual(stats["processed"] + stats["coalesced"], 30, stats)
        self.assertGreater(stats["coalesced"], 0, "30 submits in a loop outpace measuring")
        self.assertEqual(stats["failed"], 0)
        rows = self.rows(run)
        steps = sorted({r["step"] for r in rows})
        self.assertEqual(len(steps), stats["processed"])
        self.assertIn(29, steps, "the newest checkpoint is always measured")
        for r in rows:
            self.assertEqual(r["state"], "SUCCEEDED", r["error_message"])
            self.assertAlmostEqual(r["train_loss"], losses[r["step"]], places=5)
        self.assertLess(sorted(times)[len(times) // 2], 0.01, "submit must return at once")

    def test_queue_drops_the_oldest_with_a_warning(self):
        run = self.client.run("queue", mlp(), shard=regression_data(), loss="mse",
                              measure=["sharpness"], policy="queue", capacity=2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(run, mlp(), regression_data(), steps=12)
            self.assertTrue(run.close(timeout=60))
        stats = run.stats
        self.assertGreater(stats["dropped"], 0, stats)
        self.assertEqual(stats["processed"] + stats["dropped"], 12, stats)
        drops = [w for w in caught if "dropped the checkpoint" in str(w.message)]
        self.assertEqual(len(drops), stats["dropped"])
        self.assertTrue(all(issubclass(w.category, curvd.CurvdWarning) for w in drops))
        self.assertIn(11, {r["step"] for r in self.rows(run)})

    def test_block_measures_every_checkpoint(self):
        run = self.client.run("block", mlp(), shard=regression_data(), loss="mse",
                              measure=["sharpness"], policy="block", capacity=1, every=2)
        train(run, mlp(), regression_data(), steps=10)
        self.assertTrue(run.close(timeout=60))
        self.assertEqual(run.stats["skipped"], 5)
        self.assertEqual(sorted(r["step"] for r in self.rows(run)), [0, 2, 4, 6, 8])


class UploaderTest(CurvdServerTest):
    def test_process_and_thread_uploaders_store_the_same_results(self):
        values = {}
        for uploader in ("process", "thread"):
            run = self.client.run(f"uploader-{uploader}", mlp(), shard=regression_data(),
                                  loss="mse", measure=KINDS, policy="block", every=3,
                                  uploader=uploader)
            self.assertEqual(run.uploader, uploader)
            train(run, mlp(), regression_data(), steps=9)
            if uploader == "process":
                deadline = time.monotonic() + 60
                while run.stats["processed"] < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                child = run._upload_process._process  # noqa: SLF001 - the child itself
                self.assertIsNotNone(child, "the process uploader started no child")
                self.assertNotEqual(child.pid, os.getpid())
                self.assertEqual(os.getpriority(os.PRIO_PROCESS, child.pid),
                                 min(19, os.getpriority(os.PRIO_PROCESS, 0) + UPLOAD_NICE),
                                 "the uploads yield the trainer's cores")
            self.assertTrue(run.close(timeout=60))
            self.assertEqual(run.stats["processed"], 3, run.stats)
            values[uploader] = {(r["step"], r["kind"]): r["value"] for r in self.rows(run)}
        self.assertEqual(values["process"], values["thread"])
        with self.assertRaisesRegex(ValueError, "uploader 'fork' is not one of process, thread"):
            self.client.run("uploader-bad", mlp(), uploader="fork")

    def test_a_killed_upload_process_is_restarted(self):
        run = self.client.run("uploader-killed", mlp(), shard=regression_data(), loss="mse",
                              measure=["sharpness"], policy="block", capacity=1)
        model = mlp()
        run.submit(0, model)
        deadline = time.monotonic() + 60
        while run.stats["processed"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        child = run._upload_process._process  # noqa: SLF001 - a crash of the child
        child.kill()
        child.wait()
        run.submit(1, model)
        self.assertTrue(run.close(timeout=60))
        self.assertEqual(run.stats["processed"], 2, run.stats)
        self.assertEqual(sorted(r["step"] for r in self.rows(run)), [0, 1])


    def test_an_abandoned_checkpoint_leaves_the_next_one_in_step(self):
        run = self.client.run("uploader-abandoned", mlp(), shard=regression_data(),
                              loss="mse", measure=KINDS, policy="block")
        process = UploadProcess(self.client.target, self.client.options, run.name,
                                run.run_id, run._specs, 60)  # noqa: SLF001 - the run's specs
        state = {k: v.detach().clone() for k, v in mlp().state_dict().items()}
        stop = threading.Event()
        try:
            first = process.checkpoint(1, state, None, stop)
            self.assertIn("/checkpoints/1/", next(first).name)
            first.close()  # abandoned after one of its two measurements
            second = list(process.checkpoint(2, state, None, stop))
            self.assertEqual(len(second), 2)
            self.assertTrue(all("/checkpoints/2/" in m.name for m in second),
                            [m.name for m in second])
        finally:
            process.close()
            run.close(timeout=60)

    def test_the_shared_file_has_no_name_to_leave_behind(self):
        def named():
            return [name for directory in ("/dev/shm", tempfile.gettempdir())
                    if os.path.isdir(directory) for name in os.listdir(directory)
                    if name.startswith("curvd-checkpoint-")]
        before = named()
        run = self.client.run("uploader-unnamed", mlp(), policy="block")
        run.submit(0, mlp())
        deadline = time.monotonic() + 60
        while run.stats["processed"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(run.stats["processed"], 1, run.stats)
        self.assertEqual(named(), before, "a crash now would leave these behind")
        self.assertTrue(run.close(timeout=60))


class ResultsTest(CurvdServerTest):
    def test_dataframe_columns_and_watch(self):
        if pandas is None:
            self.skipTest("pandas is not installed (apt-get install python3-pandas): "
                          "results() returns a list of dicts instead")
        run = self.client.run("frame", mlp(), shard=regression_data(), loss="mse",
                              measure=["sharpness", {"hessian_trace": {"max_probes": 20}},
                                       curvd.plan("sharpness", "trace_h3")],
                              policy="block", every=3)
        train(run, mlp(), regression_data(), steps=7)
        watched = []
        for row in run.watch(timeout=60):
            watched.append(row)
            if len(watched) == 12:
                break
        run.close(timeout=60)
        self.assertEqual(len(watched), 12, "3 checkpoints x (2 kinds + a plan of 2)")
        frame = run.results()
        self.assertIsInstance(frame, pandas.DataFrame)
        self.assertEqual(len(frame), 12)
        for column in ("run", "step", "kind", "state", "value", "standard_error", "train_loss",
                       "loss", "error_message", "measurement", "diagnostics.hvps",
                       "sharpness.iterations", "hessian_trace.probes", "trace_h3.trace",
                       "result"):
            self.assertIn(column, frame.columns)
        self.assertEqual(sorted(frame["step"].unique()), [0, 3, 6])
        sharp = frame[frame["kind"] == "sharpness"]
        self.assertEqual(len(sharp), 6, "a plan's sharpness is a row of its own")
        self.assertTrue((sharp["value"] == sharp["sharpness.sharpness"]).all())
        self.assertTrue((sharp["value"] > 0).all())
        trace = frame[frame["kind"] == "hessian_trace"]
        self.assertTrue((trace["standard_error"] > 0).all())
        self.assertTrue((trace["hessian_trace.probes"] <= 20).all())
        self.assertTrue((frame["diagnostics.num_parameters"] == 8 * 16 + 16 + 16 * 2 + 2).all())
        self.assertEqual(sorted({(r["step"], r["kind"]) for r in watched}),
                         sorted(set(zip(frame["step"], frame["kind"]))))

    def test_shard_uploaded_once_and_shard_sources(self):
        data = regression_data(seed=7)
        curvd_a = self.client.run("shard-a", mlp(), shard=data, loss="mse")
        sent = dict(self.client.upload_stats)
        curvd_b = self.client.run("shard-b", "mlp:8,16,2:tanh", shard=data, loss="mse")
        self.assertEqual(self.client.upload_stats, sent, "the same shard uploads nothing")
        self.assertEqual(curvd_b.model_export, "zoo")
        for run in (curvd_a, curvd_b):
            run.close()
        # A safetensors file under the data root, by file:// URI and by path.
        path = os.path.join(self.server.data_root, "shard.safetensors")
        with open(path, "wb") as f:
            f.write(safetensors_format.encode({"inputs": data[0], "targets": data[1]}))
        for name, shard in (("by-uri", "file://" + path), ("by-path", path)):
            run = self.client.run(name, mlp(), shard=shard, loss="mse", policy="block")
            run.submit(0, mlp())
            run.close(timeout=60)
            [row] = self.rows(run)
            self.assertEqual(row["state"], "SUCCEEDED", row["error_message"])
        self.assertTrue(self.rows(run)[0]["shard"].startswith("blob://sha256:"))

    def test_zoo_run_with_a_matching_module(self):
        class Mlp(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc0, self.fc1 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 2)

            def forward(self, x):
                return self.fc1(torch.tanh(self.fc0(x)))

        run = self.client.run("zoo", "mlp:8,16,2:tanh",
                              shard="builtin://gaussian_regression?n=32&d=8&outputs=2&seed=1",
                              loss="mse", policy="block")
        run.submit(0, Mlp(), train_loss=1.5)
        run.close(timeout=60)
        [row] = self.rows(run)
        self.assertEqual((row["state"], row["train_loss"]), ("SUCCEEDED", 1.5))


class FailureTest(CurvdServerTest):
    def test_failed_measurement_is_a_warning_and_a_row(self):
        # Inputs of width 5 for a model that takes 8: the measurement FAILS.
        run = self.client.run("fails", mlp(), shard=regression_data(d=5), loss="mse",
                              policy="block")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertTrue(run.submit(0, mlp()))
            run.close(timeout=60)
        [row] = self.rows(run)
        self.assertEqual(row["state"], "FAILED")
        self.assertTrue(row["error_message"])
        self.assertIsNone(row["value"])
        self.assertTrue(any("FAILED" in str(w.message) and row["error_message"] in str(w.message)
                            for w in caught), [str(w.message) for w in caught])

    def test_bad_model_and_kind_raise_clear_errors(self):
        with self.assertRaisesRegex(ValueError, "unknown kind 'curvature'"):
            self.client.run("bad-kind", mlp(), shard=regression_data(), measure=["curvature"])
        with self.assertRaises(curvd.CurvdError) as raised:
            self.client.run("bad-zoo", "mlp:8", shard=regression_data())
        self.assertEqual(raised.exception.code.name, "INVALID_ARGUMENT")
        path = os.path.join(self.server.root, "not-an-archive.pt")
        with open(path, "wb") as f:
            f.write(b"not a zip")
        with self.assertRaisesRegex(ValueError, "not a TorchScript archive"):
            self.client.run("bad-archive", path, shard=regression_data())
        with self.assertRaisesRegex(curvd.CurvdError, "does not exist; give model="):
            self.client.run("never-created")
        run = self.client.run("reinit", mlp(), shard=regression_data())
        run.close()
        other = torch.nn.Linear(8, 2)
        with self.assertRaisesRegex(curvd.CurvdError, "ALREADY_EXISTS.*choose a new run_id"):
            self.client.run("reinit", other, shard=regression_data())


if __name__ == "__main__":
    unittest.main()
