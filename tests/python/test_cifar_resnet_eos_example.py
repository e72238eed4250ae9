"""examples/cifar_binary.py's reader and writer of the CIFAR-10 binary layout,
and examples/cifar_resnet_eos.py end to end at a tiny size (a ResNet-8 of
width 4 on 32 generated images, 6 full-batch steps) against a real server
that reads the same generated batch files itself."""

import math
import os
import sys
import tempfile
import unittest

import torch

from curvd_server import CurvdServerTest
from example_run import EXAMPLES, read_csv, run_example

sys.path.insert(0, EXAMPLES)
import cifar_binary  # noqa: E402


class CifarBinaryTest(unittest.TestCase):
    def test_generated_files_have_the_layout_and_read_back(self):
        with tempfile.TemporaryDirectory() as directory:
            cifar_binary.write_generated(directory, 7, seed=3)
            names = sorted(os.listdir(directory))
            self.assertEqual(names, sorted(cifar_binary.TRAIN_FILES + (cifar_binary.TEST_FILE,)))
            for name in names:
                self.assertEqual(os.path.getsize(os.path.join(directory, name)), 7 * 3073)
            first = os.path.join(directory, "data_batch_1.bin")
            with open(first, "rb") as file:
                record = file.read(3073)
            inputs, targets = cifar_binary.read_records(directory, 10)
            self.assertEqual(inputs.shape, (10, 3, 32, 32))
            self.assertEqual(inputs.dtype, torch.float32)
            self.assertEqual(int(targets[0]), record[0])
            # Channel-major planes of row-major 32 x 32 pixels, / 255.
            self.assertAlmostEqual(float(inputs[0, 1, 2, 5]), record[1 + 1024 + 2 * 32 + 5] / 255,
                                   places=6)
            # The directory's split reads data_batch_2.bin after data_batch_1.bin.
            second, _ = cifar_binary.read_records(os.path.join(directory, "data_batch_2.bin"), 3)
            self.assertTrue(torch.equal(inputs[7:10], second))
            self.assertEqual(len(cifar_binary.read_records(first, 100)[1]), 7)
            # normalize=mean_std is (x / 255 - mean) / std per channel.
            normalized, _ = cifar_binary.read_records(directory, 10, "mean_std")
            self.assertAlmostEqual(float(normalized[0, 2, 0, 0]),
                                   (float(inputs[0, 2, 0, 0]) - 0.4465) / 0.2616, places=5)
            self.assertGreater(len(set(cifar_binary.read_records(directory, 35)[1].tolist())), 3)

    def test_bad_files_are_refused(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "data_batch_1.bin")
            with open(path, "wb") as file:
                file.write(bytes(3073 + 5))
            with self.assertRaisesRegex(ValueError, "not whole CIFAR-10 records"):
                cifar_binary.read_records(path, 1)
            with open(path, "wb") as file:
                file.write(bytes([10]) + bytes(3072))
            with self.assertRaisesRegex(ValueError, "label byte 10"):
                cifar_binary.read_records(path, 1)

    def test_uris_name_the_split_and_the_options(self):
        with tempfile.TemporaryDirectory() as directory:
            self.assertEqual(cifar_binary.shard_uri(directory, 50),
                             f"file://{directory}?format=cifar10&split=train&limit=50")
            self.assertEqual(cifar_binary.shard_uri(f"{directory}/x.bin", 5, "mean_std"),
                             f"file://{directory}/x.bin?format=cifar10&normalize=mean_std&limit=5")


class CifarResnetEosExampleTest(CurvdServerTest):
    def test_tiny_run_writes_the_series_and_the_figure(self):
        data = os.path.join(self.server.data_root, "cifar-10-generated")
        with tempfile.TemporaryDirectory() as out:
            output = run_example(
                "cifar_resnet_eos.py", f"--server={self.server.target}", f"--out={out}",
                f"--generate={data}", "--generate_records=40", "--run=eos-smoke",
                "--samples=32", "--depth=8", "--width=4", "--lr=0.5", "--steps=6",
                "--every=3", "--lanczos_iterations=5", "--device=cpu")
            self.assertIn("scripted", output)
            header, rows = read_csv(os.path.join(out, "cifar_resnet_eos.csv"))
            for column in ("run", "step", "kind", "state", "value", "train_loss", "loss",
                           "train_accuracy", "two_over_lr", "sharpness.residual_norm",
                           "sharpness.iterations", "diagnostics.num_samples"):
                self.assertIn(column, header)
            self.assertEqual([(int(r["step"]), r["kind"]) for r in rows],
                             [(s, "sharpness") for s in (0, 3, 6)])
            for row in rows:
                self.assertEqual(row["state"], "SUCCEEDED", row["error_message"])
                self.assertEqual(row["diagnostics.num_samples"], "32")
                for column in ("value", "train_loss", "loss", "sharpness.residual_norm"):
                    self.assertTrue(math.isfinite(float(row[column])), column)
                self.assertGreater(float(row["value"]), 0)
                self.assertEqual(float(row["two_over_lr"]), 4.0)
                self.assertTrue(0 <= float(row["train_accuracy"]) <= 1)
                # Submitted before the step: the server's loss on the batch
                # files it read is the trainer's on its own reading of them.
                self.assertAlmostEqual(float(row["loss"]), float(row["train_loss"]),
                                       delta=1e-4 * float(row["train_loss"]))
            self.assertGreater(os.path.getsize(os.path.join(out, "cifar_resnet_eos.png")),
                               10000)


if __name__ == "__main__":
    unittest.main()
