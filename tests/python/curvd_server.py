"""A real curvd server for the Python package's tests: build/bin/curvd (or
$CURVD_BIN) on free loopback ports, with a temporary state directory and data
root, that a test can kill and restart on the same port and state; a TestCase
base class holding one per test class; the small model and data the tests
measure."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import grpc
import torch

import curvd

from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import curvd_service_pb2_grpc as service_pb2_grpc

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CurvdServer:
    """One curvd process; start() waits until it answers, stop() kills it."""

    def __init__(self, binary=None, devices="cpu", env=None, flags=(), credentials=None):
        """`binary` defaults to $CURVD_BIN, else build/bin/curvd; `devices` is
        curvd's --devices; `env` (a dict) replaces the server's environment;
        `flags` are more of curvd's flags ("--worker_nice=0"); `credentials`
        (grpc.ChannelCredentials) reach a server that `flags` make speak TLS."""
        self.binary = binary or os.environ.get("CURVD_BIN",
                                               os.path.join(_REPO, "build", "bin", "curvd"))
        self.devices = devices
        self.env = env
        self.flags = list(flags)
        self.credentials = credentials
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"{self.binary} is missing: build it (ninja -C build curvd) "
                               f"or set CURVD_BIN")
        self.root = tempfile.mkdtemp(prefix="curvd-py-test.")
        self.data_root = os.path.join(self.root, "data")
        os.makedirs(self.data_root)
        self.port = _free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout=60.0):
        """Starts curvd (workers on the devices given) and waits until ListRuns answers."""
        log = open(os.path.join(self.root, "curvd.log"), "ab")
        self.process = subprocess.Popen(
            [self.binary, f"--listen={self.target}", "--metrics_listen=",
             f"--state_dir={os.path.join(self.root, 'state')}", f"--data_roots={self.data_root}",
             f"--devices={self.devices}", *self.flags], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        channel = (grpc.secure_channel(self.target, self.credentials) if self.credentials
                   else grpc.insecure_channel(self.target))
        stub = service_pb2_grpc.CurvdStub(channel)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"curvd exited with {self.process.returncode}:\n{self.log()}")
                try:
                    stub.ListRuns(service_pb2.ListRunsRequest(), timeout=2)
                    return
                except grpc.RpcError:
                    time.sleep(0.1)
        finally:
            channel.close()
        raise RuntimeError(f"curvd did not answer within {timeout} s:\n{self.log()}")

    def kill(self):
        """SIGKILLs curvd, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def log(self):
        """The tail of curvd's output."""
        with open(os.path.join(self.root, "curvd.log"), errors="replace") as f:
            return "".join(f.readlines()[-30:])

    def close(self):
        """Kills curvd and removes its directory."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def regression_data(n=64, d=8, outputs=2, seed=0):
    """(inputs, targets) of a fixed random regression problem."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, outputs, generator=g)


def mlp(d=8, hidden=16, outputs=2):
    """The same freshly initialised d-hidden-outputs tanh MLP at every call."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, outputs))


def train(run, model, data, steps, lr=0.05):
    """Full-batch gradient descent, submitting every step; returns the submit
    times (seconds) and the train losses by step."""
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    times, losses = [], {}
    for step in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        start = time.perf_counter()
        if run.submit(step, model, train_loss=loss.detach()):
            times.append(time.perf_counter() - start)
            losses[step] = float(loss)
    return times, losses


class CurvdServerTest(unittest.TestCase):
    """A curvd server and a Client to it, shared by the tests of a class."""

    @classmethod
    def setUpClass(cls):
        cls.server = CurvdServer()
        cls.server.start()
        cls.client = curvd.Client(cls.server.target)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.close()

    def rows(self, run):
        """`run`'s results as a list of dicts."""
        return run.results(frame=False)
