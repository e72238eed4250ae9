"""Three curvd processes on loopback ports configured as one three-replica set
(--replica_index, --replica_addresses), each with its own state: runs spread
over them by the hash of their ids; the Python package and curvctl, entering
through any replica, create, checkpoint, measure, watch and list results with
nothing NOT_FOUND; a plain gRPC stub at the wrong replica gets
FAILED_PRECONDITION with the owner in the curvd-owner trailer; a restarted
replica still owns its runs (docs/adr/0019)."""

import hashlib
import json
import os
import subprocess
import unittest

import grpc

import curvd
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import curvd_service_pb2_grpc as service_pb2_grpc
from curvd.v1 import resources_pb2
from curvd_server import CurvdServer, _REPO, mlp, regression_data, train

REPLICAS = 3
SHARD = "builtin://gaussian_regression?n=32&d=8&outputs=2&seed=1"


def jump_hash(key, buckets):
    """Lamping and Veach's jump consistent hash, written apart from the server's."""
    bucket, next_bucket = -1, 0
    while next_bucket < buckets:
        bucket = next_bucket
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        next_bucket = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def owner_of(run_id):
    """The replica that holds `run_id`: the jump hash of the first 8 bytes of
    its SHA-256, big-endian."""
    key = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")
    return jump_hash(key, REPLICAS)


def run_ids(prefix, per_replica=2):
    """Ids starting with `prefix` that put `per_replica` runs on each replica."""
    ids, counts, i = [], [0] * REPLICAS, 0
    while min(counts) < per_replica:
        run_id = f"{prefix}-{i}"
        i += 1
        if counts[owner_of(run_id)] < per_replica:
            counts[owner_of(run_id)] += 1
            ids.append(run_id)
    return ids


def curvctl(*args, timeout=300):
    """curvctl's stdout; fails the test with its stderr when it exits non-zero."""
    binary = os.path.join(os.path.dirname(os.environ.get(
        "CURVD_BIN", os.path.join(_REPO, "build", "bin", "curvd"))), "curvctl")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"curvctl {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


class ReplicaSetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = [CurvdServer() for _ in range(REPLICAS)]
        addresses = ",".join(server.target for server in cls.servers)
        for index, server in enumerate(cls.servers):
            server.flags += [f"--replica_index={index}", f"--replica_addresses={addresses}"]
        try:
            for server in cls.servers:
                server.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for server in cls.servers:
            server.close()

    def stub(self, index):
        channel = grpc.insecure_channel(self.servers[index].target)
        self.addCleanup(channel.close)
        return service_pb2_grpc.CurvdStub(channel)

    def local_runs(self, index):
        """The run ids replica `index` lists, a plain ListRuns there."""
        response = self.stub(index).ListRuns(service_pb2.ListRunsRequest(page_size=1000),
                                             timeout=10)
        return {run.name[len("runs/"):] for run in response.runs}

    def test_python_runs_through_every_entry_replica_land_on_their_owner(self):
        ids = run_ids("py")
        data = regression_data()
        for i, run_id in enumerate(ids):
            entry = self.servers[i % REPLICAS]
            with curvd.Client(entry.target) as client:
                run = client.run(run_id, mlp(), shard=data, loss="mse", measure=["sharpness"],
                                 policy="queue",
                                 uploader="thread" if i % 2 else "process")
                train(run, mlp(), data, steps=1)
                self.assertTrue(run.close(timeout=120), run_id)
                self.assertEqual(run.stats["failed"], 0, run.stats)
                rows = run.results(frame=False)
                self.assertEqual([r["step"] for r in rows], [0], rows)
                self.assertTrue(all(r["state"] == "SUCCEEDED" for r in rows), rows)
        for index in range(REPLICAS):
            mine = {run_id for run_id in ids if owner_of(run_id) == index}
            self.assertEqual(len(mine), 2)
            self.assertEqual(self.local_runs(index) & set(ids), mine)

    def test_curvctl_measures_watches_and_lists_through_any_replica(self):
        ids = run_ids("ctl", per_replica=1)
        for i, run_id in enumerate(ids):
            entry, other = self.servers[i].target, self.servers[(i + 1) % REPLICAS].target
            measured = json.loads(curvctl(
                "measure", f"--server={entry}", f"--run={run_id}", "--step=0",
                "--zoo=mlp:8,16,2:tanh", f"--shard={SHARD}", "--loss=mse",
                "--measure=sharpness", "--timeout=240", "--json"))
            (measurement,) = measured["measurements"]
            self.assertEqual(measurement["state"], "SUCCEEDED", measurement)
            watched = json.loads(curvctl("watch", measurement["name"], f"--server={other}",
                                         "--timeout=60", "--json"))
            self.assertEqual(watched["name"], measurement["name"])
            csv = curvctl("results", f"--server={other}", f"--run={run_id}", "--csv")
            self.assertEqual(csv.count(",SUCCEEDED,"), 1, csv)
            self.assertIn(run_id, self.local_runs(owner_of(run_id)))
        everywhere = json.loads(curvctl("runs", f"--server={self.servers[0].target}",
                                        "--all_replicas", "--json"))
        listed = {run["name"][len("runs/"):] for run in everywhere.get("runs", [])}
        self.assertLessEqual(set(ids), listed)
        one = json.loads(curvctl("runs", f"--server={self.servers[0].target}", "--json"))
        self.assertEqual({run["name"][len("runs/"):] for run in one.get("runs", [])} & set(ids),
                         {run_id for run_id in ids if owner_of(run_id) == 0})

    def test_a_plain_stub_at_the_wrong_replica_is_told_the_owner(self):
        run_id = run_ids("plain", per_replica=1)[0]
        owner = owner_of(run_id)
        wrong = (owner + 1) % REPLICAS
        request = service_pb2.CreateRunRequest(run_id=run_id, run=resources_pb2.Run(
            model=resources_pb2.ModelSpec(zoo=resources_pb2.ZooModel(architecture="mlp", layer_widths=[8, 2]))))
        for method, message in [("CreateRun", request),
                                ("GetRun", service_pb2.GetRunRequest(name=f"runs/{run_id}")),
                                ("GetBlobStatus", service_pb2.GetBlobStatusRequest(
                                    digest="sha256:" + "0" * 64, run=f"runs/{run_id}"))]:
            with self.assertRaises(grpc.RpcError) as refused:
                getattr(self.stub(wrong), method)(message, timeout=10)
            error = refused.exception
            self.assertEqual(error.code(), grpc.StatusCode.FAILED_PRECONDITION, method)
            self.assertIn(self.servers[owner].target, error.details())
            self.assertIn(("curvd-owner", self.servers[owner].target),
                          tuple(error.trailing_metadata()), method)
        with self.assertRaises(grpc.RpcError) as refused:
            for _ in self.stub(wrong).WatchMeasurement(service_pb2.WatchMeasurementRequest(
                    name=f"runs/{run_id}/checkpoints/0/measurements/x"), timeout=10):
                pass
        self.assertEqual(refused.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        created = self.stub(owner).CreateRun(request, timeout=10)
        self.assertEqual(created.name, f"runs/{run_id}")
        # A call about no run is answered where it arrives; a server-chosen id
        # is one the receiving replica holds.
        for index in range(REPLICAS):
            generated = self.stub(index).CreateRun(service_pb2.CreateRunRequest(
                run=request.run), timeout=10)
            self.assertEqual(owner_of(generated.name[len("runs/"):]), index, generated.name)

    def test_a_restarted_replica_still_owns_its_runs(self):
        ids = run_ids("restart", per_replica=1)
        with curvd.Client(self.servers[0].target) as client:
            for run_id in ids:
                client.run(run_id, "mlp:8,2")
        restarted = owner_of(ids[-1])
        self.servers[restarted].kill()
        self.servers[restarted].start()
        entry = (restarted + 1) % REPLICAS
        with curvd.Client(self.servers[entry].target) as client:
            for run_id in ids:
                run = client.stub.GetRun(service_pb2.GetRunRequest(name=f"runs/{run_id}"),
                                         timeout=10)
                self.assertEqual(run.name, f"runs/{run_id}")
        self.assertIn(ids[-1], self.local_runs(restarted))


if __name__ == "__main__":
    unittest.main()
