"""Many concurrent streaming clients against one real curvd: each of N threads,
with a channel of its own, streams M checkpoints of its own run and watches
their measurements; every measurement reaches SUCCEEDED, no call fails, and the
store holds exactly N x M measurements.
  CURVD_LOAD_CLIENTS      N (default 16; by hand 32)
  CURVD_LOAD_CHECKPOINTS  M (default 8; by hand 15)"""

import os
import threading
import unittest

import curvd
from curvd.v1 import resources_pb2

from curvd_server import CurvdServer
from reliability_clients import create_run, measure_step

CLIENTS = int(os.environ.get("CURVD_LOAD_CLIENTS", "16"))
CHECKPOINTS = int(os.environ.get("CURVD_LOAD_CHECKPOINTS", "8"))


class LoadTest(unittest.TestCase):
    def setUp(self):
        self.server = CurvdServer()
        self.server.start()

    def tearDown(self):
        self.server.close()

    def test_concurrent_streaming_clients_lose_nothing(self):
        measurements, errors, lock = [], [], threading.Lock()

        # The runs first, in turn: creating one scripts the model with
        # torch.jit.script, which is not safe on many threads at once ("Can't
        # redefine method" at 32 clients); the checkpoints stream concurrently.
        with curvd.Client(self.server.target, rpc_timeout=60) as client:
            runs = [create_run(client, f"load-{index}") for index in range(CLIENTS)]

        def stream(index):
            with curvd.Client(self.server.target, rpc_timeout=60) as client:
                try:
                    run_name, specs = runs[index]
                    for step in range(CHECKPOINTS):
                        ended = measure_step(client, run_name, specs, step, timeout=600)
                        with lock:
                            measurements.extend(ended)
                except Exception as error:  # every failure is the test's finding
                    with lock:
                        errors.append(f"client {index}: {error!r}")

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        self.assertEqual(errors, [])
        not_succeeded = [(m.name, m.state, m.error_message) for m in measurements
                         if m.state != resources_pb2.Measurement.SUCCEEDED]
        self.assertEqual(not_succeeded, [])
        self.assertEqual(len({m.name for m in measurements}), CLIENTS * CHECKPOINTS)
        with curvd.Client(self.server.target) as client:
            listed = [m for i in range(CLIENTS) for m in client.list_all(
                "ListMeasurements", "measurements", parent=f"runs/load-{i}/checkpoints/-")]
        self.assertEqual(len(listed), CLIENTS * CHECKPOINTS)
        self.assertEqual({m.name for m in listed}, {m.name for m in measurements})


if __name__ == "__main__":
    unittest.main()
