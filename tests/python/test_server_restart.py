"""A curvd server killed and restarted under a training loop: submit keeps
returning at once, the outage is one warning, and checkpoints submitted after
the restart are measured."""

import time
import unittest
import warnings

import torch

import curvd
from curvd_server import CurvdServer, mlp, regression_data


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class RestartTest(unittest.TestCase):
    def setUp(self):
        self.server = CurvdServer()
        self.server.start()
        self.client = curvd.Client(self.server.target, rpc_timeout=5, max_reconnect_backoff=1)

    def tearDown(self):
        self.client.close()
        self.server.close()

    def test_server_killed_and_restarted_mid_run(self):
        x, y = regression_data()
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        run = self.client.run("restart", model, shard=(x, y), loss="mse",
                              measure=["sharpness"])
        submit_seconds = []

        def step(i):
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            start = time.perf_counter()
            self.assertTrue(run.submit(i, model, train_loss=loss.detach()))
            submit_seconds.append(time.perf_counter() - start)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step(0)
            self.assertTrue(wait_for(lambda: run.stats["processed"] == 1, 60))
            self.server.kill()
            for i in range(1, 11):
                step(i)
                time.sleep(0.05)
            self.assertTrue(wait_for(lambda: any("unreachable" in str(w.message)
                                                 for w in caught), 30),
                            "the outage is reported")
            self.server.start()
            for i in range(11, 16):
                step(i)
                time.sleep(0.05)
            self.assertTrue(run.close(timeout=90))
        outages = [w for w in caught if "unreachable" in str(w.message)]
        self.assertEqual(len(outages), 1, [str(w.message) for w in caught])
        self.assertTrue(issubclass(outages[0].category, curvd.CurvdWarning))
        self.assertLess(max(submit_seconds), 0.5, "submit never waits for the server (rpc_timeout 5 s)")
        rows = {r["step"]: r for r in run.results(frame=False)}
        self.assertEqual(rows[0]["state"], "SUCCEEDED")
        self.assertEqual(rows[15]["state"], "SUCCEEDED", rows[15]["error_message"])
        stats = run.stats
        self.assertEqual(stats["processed"] + stats["coalesced"], 16, stats)

    def test_close_gives_up_after_its_timeout_while_the_server_is_away(self):
        run = self.client.run("away", mlp(), shard=regression_data(), loss="mse",
                              measure=["sharpness"], policy="queue", capacity=4)
        self.server.kill()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(3):
                self.assertTrue(run.submit(i, mlp()))
            start = time.monotonic()
            self.assertFalse(run.close(timeout=1.0))
            self.assertLess(time.monotonic() - start, 10)
        self.assertTrue(any("closed after 1 s" in str(w.message) for w in caught),
                        [str(w.message) for w in caught])
        self.assertFalse(run.submit(3, mlp()), "a closed run takes nothing")
        self.assertEqual(run.stats["processed"], 0)


if __name__ == "__main__":
    unittest.main()
