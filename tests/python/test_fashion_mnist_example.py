"""examples/fashion_mnist_mlp.py end to end at a tiny size (a 784-16-10 MLP,
256 images, 30 steps) on Debian's Fashion-MNIST, which the test copies under
the server's data root; skipped when the data set is absent."""

import os
import shutil
import tempfile
import unittest

from curvd_server import CurvdServerTest
from example_run import read_csv, run_example

DATA = os.environ.get("CURVD_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
KINDS = ("hessian_trace", "sharpness", "spectral_density")


@unittest.skipUnless(all(os.path.exists(os.path.join(DATA, f)) for f in FILES),
                     f"Fashion-MNIST is not in {DATA} (apt-get install dataset-fashion-mnist, or "
                     f"set CURVD_FASHION_MNIST_DIR)")
class FashionMnistExampleTest(CurvdServerTest):
    def test_tiny_run_writes_the_series_and_the_figures(self):
        data = os.path.join(self.server.data_root, "fashion-mnist")
        os.makedirs(data)
        for name in FILES:
            shutil.copy(os.path.join(DATA, name), data)
        with tempfile.TemporaryDirectory() as out:
            run_example("fashion_mnist_mlp.py", f"--server={self.server.target}",
                        f"--out={out}", f"--data_dir={data}", "--run=fmnist-smoke",
                        "--widths=784,16,10", "--train_samples=256", "--measure_samples=256",
                        "--test_samples=512", "--steps=30", "--every=10", "--batch_size=64",
                        "--probes=4", "--lanczos_iterations=10", "--slq_runs=2",
                        "--slq_steps=10", "--device=cpu")
            header, rows = read_csv(os.path.join(out, "fashion_mnist.csv"))
            for column in ("run", "step", "kind", "state", "value", "standard_error",
                           "train_loss", "loss", "train_accuracy", "test_accuracy",
                           "spectral_density.sigma", "diagnostics.num_samples"):
                self.assertIn(column, header)
            self.assertEqual(sorted((int(r["step"]), r["kind"]) for r in rows),
                             [(s, k) for s in (0, 10, 20, 30) for k in KINDS])
            for row in rows:
                self.assertEqual(row["state"], "SUCCEEDED", row["error_message"])
                self.assertEqual(row["diagnostics.num_samples"], "256")
            for name in ("fashion_mnist_scalars.png", "fashion_mnist_density.png"):
                self.assertGreater(os.path.getsize(os.path.join(out, name)), 10000, name)


if __name__ == "__main__":
    unittest.main()
