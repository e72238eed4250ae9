"""curvd SIGKILLed at random (seeded) moments while clients upload blobs and
stream checkpoints, then restarted on the same state, many times. After every
kill: the SQLite store passes PRAGMA integrity_check and every committed blob
file re-hashes to its name; after every restart: every measurement a client saw
SUCCEEDED is still there with the same result, every upload the server
acknowledged is complete, and every upload the kill cut off is absent or
partial and resumes from where it stopped. At the end no measurement is left
RUNNING: each the crashes interrupted is FAILED with UNAVAILABLE.
  CURVD_CRASH_ROUNDS  kills (default 10; by hand 50)
  CURVD_CRASH_SEED    the seed of the kill moments and blob contents"""

import hashlib
import os
import random
import subprocess
import threading
import time
import unittest

import grpc

import curvd
from curvd.blob_upload import sha256_digest
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import resources_pb2

from curvd_server import CurvdServer
from reliability_clients import create_run, measure_step, result_bytes

ROUNDS = int(os.environ.get("CURVD_CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("CURVD_CRASH_SEED", "20261202"))
RUN_ID = "crash"
TERMINAL = (resources_pb2.Measurement.SUCCEEDED, resources_pb2.Measurement.FAILED,
            resources_pb2.Measurement.CANCELLED)


class CrashLoopTest(unittest.TestCase):
    def setUp(self):
        self.server = CurvdServer()
        self.server.start()
        self.state_dir = os.path.join(self.server.root, "state")
        with self._client() as client:
            self.run_name, self.specs = create_run(client, RUN_ID)
        self.rng = random.Random(SEED)
        self.next_item = 0
        self.attempted = {}        # digest -> bytes of every upload begun
        self.acknowledged = set()  # digests an upload returned
        self.succeeded = {}        # measurement name -> its result, serialised
        self.rehashed = 0          # blob files re-hashed after the kills

    def tearDown(self):
        self.server.close()

    def _client(self):
        return curvd.Client(self.server.target, rpc_timeout=5, upload_attempts=1,
                            max_reconnect_backoff=1)

    def _drive(self, client, blob_seeds):
        """Uploads blobs and measures checkpoints, alternately, until a call fails
        (the kill); records what was acknowledged."""
        try:
            for seed in blob_seeds:
                item = self.next_item
                self.next_item += 1
                if item % 2 == 0:
                    blob_rng = random.Random(seed)
                    data = blob_rng.randbytes(blob_rng.randint(4 << 20, 24 << 20))
                    self.attempted[sha256_digest([data])] = data
                    self.acknowledged.add(client.upload(data, run_id=RUN_ID))
                else:
                    for m in measure_step(client, self.run_name, self.specs, item, timeout=30):
                        if m.state == resources_pb2.Measurement.SUCCEEDED:
                            self.succeeded[m.name] = result_bytes(m)
        except (grpc.RpcError, curvd.CurvdError):
            pass  # the server went away mid-call

    def _check_after_kill(self):
        integrity = subprocess.run(
            ["sqlite3", os.path.join(self.state_dir, "curvd.db"), "PRAGMA integrity_check;"],
            capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(integrity, "ok")
        blob_dir = os.path.join(self.state_dir, "blobs", "sha256")
        for name in os.listdir(blob_dir) if os.path.isdir(blob_dir) else []:
            with open(os.path.join(blob_dir, name), "rb") as f:
                self.assertEqual(hashlib.file_digest(f, "sha256").hexdigest(), name,
                                 "a committed blob's bytes hash to its name")
            self.rehashed += 1

    def _check_after_restart(self, client):
        for name, result in self.succeeded.items():
            m = client.stub.GetMeasurement(service_pb2.GetMeasurementRequest(name=name), timeout=5)
            self.assertEqual(m.state, resources_pb2.Measurement.SUCCEEDED, name)
            self.assertEqual(result_bytes(m), result, name)
        resumed = 0
        for digest, data in self.attempted.items():
            status = blob_status(client, digest)
            if digest in self.acknowledged:
                self.assertTrue(status.complete, digest)
                continue
            self.assertLessEqual(status.committed_size_bytes, len(data), digest)
            before = client.upload_stats["bytes_uploaded"]
            self.assertEqual(client.upload(data, run_id=RUN_ID), digest)
            sent = client.upload_stats["bytes_uploaded"] - before
            expected = 0 if status.complete else len(data) - status.committed_size_bytes
            self.assertEqual(sent, expected, "an interrupted upload resumes where it stopped")
            self.assertTrue(blob_status(client, digest).complete, digest)
            self.acknowledged.add(digest)
            resumed += status.committed_size_bytes > 0 and not status.complete
        return resumed

    def test_sigkill_during_writes_and_uploads_loses_nothing_acknowledged(self):
        resumed = 0
        for round_ in range(ROUNDS):
            blob_seeds = [self.rng.getrandbits(32) for _ in range(1000)]
            kill_after = self.rng.uniform(0.2, 2.0)
            with self._client() as client:
                driver = threading.Thread(target=self._drive, args=(client, blob_seeds))
                driver.start()
                time.sleep(kill_after)
                self.server.kill()
                driver.join(60)
                self.assertFalse(driver.is_alive(), "the client gives up on a dead server")
            self._check_after_kill()
            self.server.start()
            with self._client() as client:
                resumed += self._check_after_restart(client)
        print(f"crash loop: {ROUNDS} kills (and store integrity checks), "
              f"{len(self.succeeded)} measurements kept, {len(self.acknowledged)} blobs kept, "
              f"{self.rehashed} blob files re-hashed, {resumed} cut uploads resumed mid-way")
        self.assertGreater(len(self.succeeded), 0, "the kills left time to measure")
        with self._client() as client:
            self._check_no_measurement_left_running(client)

    def _check_no_measurement_left_running(self, client):
        deadline = time.monotonic() + 120
        while True:
            stored = client.list_all("ListMeasurements", "measurements",
                                     parent=f"{self.run_name}/checkpoints/-")
            if all(m.state in TERMINAL for m in stored) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for m in stored:
            self.assertIn(m.state, TERMINAL, m.name)
            if m.state == resources_pb2.Measurement.FAILED:
                self.assertEqual(m.error_code, grpc.StatusCode.UNAVAILABLE.value[0],
                                 f"{m.name}: {m.error_message}")


def blob_status(client, digest):
    """GetBlobStatus of `digest`; a blob the server never saw is empty and incomplete."""
    try:
        return client.stub.GetBlobStatus(
            service_pb2.GetBlobStatusRequest(digest=digest, run=f"runs/{RUN_ID}"), timeout=5)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return service_pb2.BlobStatus(digest=digest)


if __name__ == "__main__":
    unittest.main()
