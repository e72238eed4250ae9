"""curvd.modular_addition against the server's builtin://modular_addition shard,
and examples/grokking.py end to end at a tiny size (p = 7, 40 steps)."""

import os
import tempfile
import unittest

import torch

from curvd import modular_addition
from curvd_server import CurvdServerTest
from example_run import read_csv, run_example

P, FRACTION, SEED = 11, 0.4, 5
KINDS = ("hessian_trace", "llc", "loss_expansion", "sharpness")


class SplitRuleTest(unittest.TestCase):
    def test_splits_partition_the_pairs(self):
        train = modular_addition.pairs(P, FRACTION, SEED, "train")
        test = modular_addition.pairs(P, FRACTION, SEED, "test")
        self.assertEqual(len(train), modular_addition.split_size(P, FRACTION, "train"))
        self.assertEqual(len(train), int(FRACTION * P * P))
        self.assertEqual(sorted(train + test), list(range(P * P)))
        self.assertNotEqual(train, sorted(train), "the split is shuffled")
        self.assertNotEqual(train, modular_addition.pairs(P, FRACTION, SEED + 1, "train"))
        inputs, targets = modular_addition.shard(P, FRACTION, SEED, "test")
        self.assertEqual(inputs.dtype, torch.float32)
        self.assertEqual(inputs[0].tolist(), [test[0] // P, test[0] % P, P])
        self.assertEqual(int(targets[0]), (test[0] // P + test[0] % P) % P)


class TokenLinear(torch.nn.Module):
    """Logits linear in the token ids, so that every pair has its own loss."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(3, P)

    def forward(self, x):
        return self.linear(x)


class ServerTest(CurvdServerTest):
    def server_loss(self, run_id, uri):
        model = TokenLinear()
        run = self.client.run(run_id, model, shard=uri, loss="cross_entropy",
                              measure=[{"hessian_trace": {"min_probes": 2, "max_probes": 2}}],
                              policy="block")
        run.submit(0, model)
        self.assertTrue(run.close(timeout=60))
        (row,) = self.rows(run)
        self.assertEqual(row["state"], "SUCCEEDED", row["error_message"])
        return row["loss"], row["diagnostics.num_samples"]

    def test_the_server_holds_the_same_pairs_in_the_same_order(self):
        model = TokenLinear()
        served = {}
        for split, limit in (("train", None), ("test", None), ("train", 5), ("test", 5)):
            inputs, targets = modular_addition.shard(P, FRACTION, SEED, split)
            uri = modular_addition.uri(P, FRACTION, SEED, split)
            if limit is not None:  # a slice: the order matters too
                inputs, targets, uri = inputs[:limit], targets[:limit], f"{uri}&limit={limit}"
            with torch.no_grad():
                expected = float(torch.nn.functional.cross_entropy(model(inputs), targets))
            loss, samples = self.server_loss(f"split-{split}-{limit or 'all'}", uri)
            self.assertEqual(samples, len(targets), uri)
            self.assertAlmostEqual(loss, expected, delta=1e-5 * expected, msg=uri)
            served[(split, limit)] = loss
        # The check is sensitive: another seed's first pairs have another loss.
        inputs, targets = modular_addition.shard(P, FRACTION, SEED + 1, "train")
        with torch.no_grad():
            other = float(torch.nn.functional.cross_entropy(model(inputs[:5]), targets[:5]))
        self.assertGreater(abs(other - served[("train", 5)]), 1e-3)

    def test_tiny_run_writes_the_series_and_the_figure(self):
        with tempfile.TemporaryDirectory() as out:
            output = run_example(
                "grokking.py", f"--server={self.server.target}", f"--out={out}",
                "--run=grok-smoke", "--p=7", "--steps=40", "--every=10", "--d_model=16",
                "--heads=4", "--d_mlp=32", "--probes=4", "--lanczos_iterations=10",
                "--llc_chains=2", "--llc_draws=10", "--llc_burn_in=0", "--device=cpu")
            header, rows = read_csv(os.path.join(out, "grokking.csv"))
            for column in ("run", "step", "kind", "state", "value", "standard_error",
                           "train_loss", "loss", "train_accuracy", "test_accuracy",
                           "test_loss", "loss_expansion.first_order_term",
                           "loss_expansion.second_order_term", "loss_expansion.noise_term",
                           "llc.llc_mean"):
                self.assertIn(column, header)
            self.assertNotIn("result", header)
            self.assertEqual(sorted((int(r["step"]), r["kind"]) for r in rows),
                             [(s, k) for s in (0, 10, 20, 30, 40) for k in KINDS])
            for row in rows:
                self.assertEqual(row["state"], "SUCCEEDED", row["error_message"])
                self.assertTrue(0 <= float(row["test_accuracy"]) <= 1)
                # Submitted before the optimizer step: the server's loss on its
                # shard is the trainer's on its copy of the split.
                self.assertAlmostEqual(float(row["loss"]), float(row["train_loss"]),
                                       delta=1e-5)
            self.assertGreater(os.path.getsize(os.path.join(out, "grokking.png")), 10000)
            self.assertIn("largest relative difference", output)


if __name__ == "__main__":
    unittest.main()
