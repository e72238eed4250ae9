"""curvd.backfill over a directory of saved checkpoints against a real curvd
server, and the step rule it shares with `curvctl backfill`."""

import os
import shutil
import tempfile
import unittest
import warnings

import torch

import curvd
from curvd import safetensors_format
from curvd.checkpoint_directory import StepRule, scan
from curvd_server import CurvdServerTest, mlp, regression_data

KINDS = ["sharpness", "hessian_trace"]


class StepRuleTest(unittest.TestCase):
    def test_default_rule_and_pattern_as_curvctl_documents_them(self):
        rule = StepRule()
        self.assertEqual(rule.step_of("ckpt_000150.pt"), 150)
        self.assertEqual(rule.step_of("run3-step20.safetensors"), 20)
        self.assertEqual(rule.step_of("7"), 7)
        with self.assertRaisesRegex(ValueError, "final.pt has no digits"):
            rule.step_of("final.pt")
        pattern = StepRule(r"step=(\d+)")
        self.assertEqual(pattern.step_of("run3_step=20_loss=0.5.pt"), 20)
        with self.assertRaisesRegex(ValueError, "does not match step pattern"):
            pattern.step_of("ckpt_10.pt")
        with self.assertRaisesRegex(ValueError, "not a decimal number within int64"):
            StepRule(r"s(\w+)").step_of("sab.pt")
        with self.assertRaisesRegex(ValueError, "has 2 capture groups"):
            StepRule(r"(\d+)_(\d+)")
        with self.assertRaisesRegex(ValueError, "not a regular expression"):
            StepRule("(")

    def test_scan_orders_by_step_and_leaves_duplicates_out(self):
        directory = tempfile.mkdtemp(prefix="curvd-scan.")
        self.addCleanup(shutil.rmtree, directory)
        for name in ("b_20.pt", "a_3.safetensors", "x_10.pt", "y_10.zip", "final.pt",
                     "notes.txt"):
            open(os.path.join(directory, name), "wb").close()
        os.mkdir(os.path.join(directory, "sub_5.pt"))
        found = scan(directory, StepRule())
        self.assertEqual([(f.file_name, f.step) for f in found.checkpoints],
                         [("a_3.safetensors", 3), ("b_20.pt", 20)])
        self.assertEqual(found.duplicate_steps, {10: ["x_10.pt", "y_10.zip"]})
        self.assertEqual(list(found.no_step), ["final.pt"])
        self.assertEqual(found.other_files, 1)
        with self.assertRaises(OSError):
            scan(os.path.join(directory, "missing"), StepRule())


class BackfillTest(CurvdServerTest):
    def setUp(self):
        """A directory of mlp() checkpoints: safetensors state dicts at steps 10
        and 20, a TorchScript archive at step 30, an archive without a step, a
        malformed file at step 40, and a file that is no checkpoint."""
        self.directory = tempfile.mkdtemp(prefix="curvd-backfill.")
        self.addCleanup(shutil.rmtree, self.directory)
        model = mlp()
        x, y = regression_data()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for step in range(31):
            if step in (10, 20):
                with open(os.path.join(self.directory, f"ckpt_{step:06d}.safetensors"), "wb") as f:
                    f.write(safetensors_format.encode(
                        {k: v.clone() for k, v in model.state_dict().items()}))
            if step == 30:
                torch.jit.save(torch.jit.script(model), os.path.join(self.directory, "ckpt_30.pt"))
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.jit.save(torch.jit.script(model), os.path.join(self.directory, "final.pt"))
        with open(os.path.join(self.directory, "broken_40.safetensors"), "wb") as f:
            f.write(b"this is not a safetensors file")
        with open(os.path.join(self.directory, "notes.txt"), "w") as f:
            f.write("not a checkpoint")

    def backfill(self, run_id, client=None, **kwargs):
        """curvd.backfill of the directory through `client` (else the class's)
        and the CurvdWarnings it gave."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = curvd.backfill(client or self.client, run_id, self.directory,
                                     shard=regression_data(), loss="mse", **kwargs)
        return summary, [str(w.message) for w in caught if w.category is curvd.CurvdWarning]

    def test_measures_each_file_once_and_reports_the_bad_ones(self):
        summary, warned = self.backfill("backfill", model=mlp(), measure=KINDS)
        self.assertEqual(summary.measured, ["ckpt_000010.safetensors",
                                            "ckpt_000020.safetensors", "ckpt_30.pt"])
        self.assertEqual(summary.failed, ["broken_40.safetensors"])
        self.assertEqual(summary.no_step, ["final.pt"])
        self.assertEqual(summary.other_files, 1)
        self.assertFalse(summary.ok)
        self.assertEqual(len(summary.measurements), 6)
        self.assertTrue(any("final.pt has no digits" in w and "skipped" in w for w in warned),
                        warned)
        self.assertTrue(any("broken_40.safetensors (step 40)" in w for w in warned), warned)
        broken = next(f for f in summary.files if f.file_name == "broken_40.safetensors")
        self.assertTrue(broken.error)

        rows = self.client.run("backfill").results(frame=False)
        self.assertEqual(sorted((r["step"], r["kind"], r["state"]) for r in rows),
                         sorted((s, k, "SUCCEEDED") for s in (10, 20, 30) for k in KINDS))
        by_step = {r["step"]: r["value"] for r in rows if r["kind"] == "sharpness"}
        self.assertNotEqual(by_step[10], by_step[30], "each file's own weights were measured")

        # Again, opening the run: nothing new is measured.
        again, _ = self.backfill("backfill", measure=KINDS)
        self.assertEqual(again.measured, [])
        self.assertEqual(again.skipped, summary.measured)
        self.assertEqual(again.failed, ["broken_40.safetensors"])
        self.assertEqual(len(self.client.run("backfill").results(frame=False)), len(rows))

        # An extra kind: only it is measured, at every step.
        more, _ = self.backfill("backfill", measure=KINDS + ["loss_slice"])
        self.assertEqual(more.measured, summary.measured)
        self.assertEqual({tuple(f.kinds) for f in more.files if f.outcome == "measured"},
                         {("loss_slice",)})

    def test_step_pattern_and_a_target_string(self):
        summary, warned = self.backfill("pattern", self.server.target, model=mlp(),
                                        measure="sharpness",
                                        step_pattern=r"ckpt_0*(\d+)\.safetensors")
        self.assertEqual([(f.file_name, f.step) for f in summary.files
                          if f.outcome == "measured"],
                         [("ckpt_000010.safetensors", 10), ("ckpt_000020.safetensors", 20)])
        self.assertEqual(sorted(summary.no_step), ["broken_40.safetensors", "ckpt_30.pt",
                                                   "final.pt"])
        self.assertEqual(len(warned), 3)
        self.assertTrue(summary.ok)


if __name__ == "__main__":
    unittest.main()
