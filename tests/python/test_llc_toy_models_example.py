"""examples/llc_toy_models.py: Aoyagi's learning coefficient against the worked
values of ../shared/VALIDATION.md, the constructed teachers, and the example
end to end at a tiny size (a minimally singular model of rank 4 in 20
parameters, a deep linear network 3-2-3 at ranks 0 and 1) against a real
server."""

import math
import os
import sys
import tempfile
import unittest
from fractions import Fraction

import torch

from curvd_server import CurvdServerTest
from example_run import EXAMPLES, read_csv, run_example

sys.path.insert(0, EXAMPLES)
import llc_toy_models  # noqa: E402


class TheoryTest(unittest.TestCase):
    def test_aoyagi_gives_the_worked_values(self):
        for widths, rank, expected in (((5, 3, 5), 0, Fraction(13, 2)), ((5, 4, 5), 0, 8),
                                       ((4, 3, 8), 0, 6), ((10, 20, 20, 10), 0, 50),
                                       ((4, 3, 8), 1, Fraction(17, 2))):
            self.assertEqual(llc_toy_models.aoyagi_lambda(widths, rank), expected, widths)
        # A full-rank product is regular: half the dimension of the rank-3
        # 8 x 4 matrices, 3 (8 + 4 - 3) / 2.
        self.assertEqual(llc_toy_models.aoyagi_lambda((4, 3, 8), 3), Fraction(27, 2))
        with self.assertRaises(ValueError):
            llc_toy_models.aoyagi_lambda((4, 3, 8), 4)

    def test_teachers_have_the_rank_they_claim(self):
        x = llc_toy_models.whitened_inputs(64, 5, seed=1)
        self.assertTrue(torch.allclose(x.T @ x / 64, torch.eye(5, dtype=torch.float64)))
        network = llc_toy_models.DeepLinear((4, 3, 3, 8), 2, seed=0)
        product = torch.eye(4, dtype=torch.float64)
        for layer in network.layers:
            product = layer.weight @ product
        self.assertEqual(int(torch.linalg.matrix_rank(product)), 2)
        model = llc_toy_models.MinimallySingular(20, 4, seed=0)
        self.assertEqual(model(x[:, :4]).shape, (64, 1))


class LlcToyModelsExampleTest(CurvdServerTest):
    def test_tiny_run_writes_the_table_and_the_figure(self):
        with tempfile.TemporaryDirectory() as out:
            run_example(
                "llc_toy_models.py", f"--server={self.server.target}", f"--out={out}",
                "--run=llc-smoke", "--seed=3", "--parameters=20", "--ranks=4",
                "--ms_chains=4", "--ms_burn_in=200", "--ms_draws=1000", "--dln_widths=3,2,3",
                "--dln_ranks=0,1", "--dln_samples=32", "--dln_chains=2", "--dln_burn_in=200",
                "--dln_draws=300")
            header, rows = read_csv(os.path.join(out, "llc_toy_models.csv"))
            for column in ("run", "step", "kind", "state", "value", "standard_error",
                           "model", "widths", "true_rank", "theory", "hessian_rank",
                           "llc.llc_mean", "llc.r_hat", "exact_hessian.rank"):
                self.assertIn(column, header)
            self.assertEqual(sorted((r["run"], r["kind"]) for r in rows),
                             [(f"llc-smoke-{name}", kind)
                              for name in ("dln-r0", "dln-r1", "ms-r4")
                              for kind in ("exact_hessian", "llc")])
            for row in rows:
                self.assertEqual(row["state"], "SUCCEEDED", row["error_message"])
                self.assertEqual(row["step"], "0")
            llc = {r["run"].removeprefix("llc-smoke-"): r for r in rows if r["kind"] == "llc"}
            for name, row in llc.items():
                value, error = float(row["value"]), float(row["standard_error"])
                self.assertTrue(math.isfinite(value) and math.isfinite(error), name)
                self.assertGreater(value, 0, name)
                self.assertGreater(error, 0, name)
            self.assertEqual(float(llc["dln-r0"]["theory"]), 2.5)
            self.assertEqual(float(llc["dln-r1"]["theory"]), 3.5)
            # Short chains, so a loose check: within 4 standard errors of
            # Aoyagi's lambda (measured 1.26 +- 0.47 and 3.01 +- 0.34 at these
            # settings: 2.6 and 1.4 of them); a wrong teacher or shard is far off.
            for name in ("dln-r0", "dln-r1"):
                row = llc[name]
                self.assertLess(abs(float(row["value"]) - float(row["theory"])),
                                4 * float(row["standard_error"]), name)
            # H = 2 I_4 on 4 of the 20 directions: rank 4, lambda = 2. At
            # these settings (seed 3) lambda_hat is within 4 standard errors
            # (measured 1.76 +- 0.15, R-hat 1.04; seeds 4 and 5 gave +0.7 and +0.8 of them).
            ms = llc["ms-r4"]
            self.assertEqual(ms["hessian_rank"], "4")
            self.assertEqual(float(ms["theory"]), 2.0)
            self.assertLess(abs(float(ms["value"]) - 2.0), 4 * float(ms["standard_error"]))
            self.assertGreater(os.path.getsize(os.path.join(out, "llc_toy_models.png")), 10000)


if __name__ == "__main__":
    unittest.main()
