"""A curvd server with TLS and bearer tokens, reached by the Python package
(arguments and environment) and by curvctl (flags and environment); a
plain-text client and a missing token are refused; the token's name is
recorded on the run; health answers on the plain-text health port; and curvd
refuses a non-loopback address without TLS and authentication."""

import os
import shutil
import subprocess
import tempfile
import unittest
from unittest import mock

import grpc

import curvd
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import resources_pb2

from curvd_server import _REPO, CurvdServer, _free_port, mlp, regression_data, train

TOKEN = "py-token-0123456789abcdef"
CREDENTIAL_VARIABLES = ("CURVD_TOKEN", "CURVD_TOKEN_FILE", "CURVD_TLS_CA", "CURVD_TLS_CERT",
                        "CURVD_TLS_KEY", "CURVD_TLS", "CURVD_TLS_SERVER_NAME")


def _clean_environment(**variables):
    """os.environ without the credential variables, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env.update(variables)
    return env


class AuthTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="curvd-py-pki.")
        subprocess.run([os.path.join(_REPO, "tests", "make_test_certificates.sh"), cls.pki],
                       check=True)
        cls.ca_path = os.path.join(cls.pki, "ca.pem")
        with open(cls.ca_path, "rb") as f:
            cls.ca = f.read()
        cls.token_file = os.path.join(cls.pki, "token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")
        tokens = os.path.join(cls.pki, "tokens")
        with open(tokens, "w") as f:
            f.write(f"# the tests' tokens\npy-trainer {TOKEN}\n")
        cls.health_port = _free_port()
        cls.server = CurvdServer(
            flags=[f"--tls_cert_file={cls.pki}/server.pem", f"--tls_key_file={cls.pki}/server.key",
                   f"--auth_token_file={tokens}", f"--health_listen=127.0.0.1:{cls.health_port}"],
            credentials=grpc.composite_channel_credentials(
                grpc.ssl_channel_credentials(cls.ca), grpc.access_token_call_credentials(TOKEN)))
        cls.server.start()
        cls.curvctl = os.path.join(os.path.dirname(cls.server.binary), "curvctl")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        shutil.rmtree(cls.pki, ignore_errors=True)

    def create_run(self, client, run_id):
        model = resources_pb2.ModelSpec(zoo=resources_pb2.ZooModel(
            architecture="mlp", layer_widths=[3, 4, 1]))
        return client.stub.CreateRun(service_pb2.CreateRunRequest(
            run_id=run_id, run=resources_pb2.Run(model=model)), timeout=10)

    def test_token_and_roots_as_arguments(self):
        with mock.patch.dict(os.environ, _clean_environment(), clear=True):
            client = curvd.Client(self.server.target, token=TOKEN, root_certificates=self.ca)
        try:
            run = self.create_run(client, "py-args")
            self.assertEqual(run.creator, "py-trainer")
            digest = client.upload(b"bytes over TLS")
            self.assertTrue(digest.startswith("sha256:"))
            runs = {r.name: r.creator for r in client.list_all("ListRuns", "runs")}
            self.assertEqual(runs["runs/py-args"], "py-trainer")
        finally:
            client.close()

    def test_a_run_uploads_from_its_child_process_with_the_credentials(self):
        with mock.patch.dict(os.environ, _clean_environment(), clear=True):
            client = curvd.Client(self.server.target, token=TOKEN, root_certificates=self.ca)
        try:
            run = client.run("py-process", mlp(), shard=regression_data(), loss="mse",
                             measure=["sharpness"], policy="block", every=2)
            train(run, mlp(), regression_data(), steps=4)
            self.assertTrue(run.close(timeout=120))
            self.assertEqual(run.stats["failed"], 0)
            table = run.results()
            self.assertEqual(sorted(set(table["step"])), [0, 2])
        finally:
            client.close()

    def test_credentials_from_the_environment(self):
        with mock.patch.dict(os.environ, _clean_environment(
                CURVD_TOKEN_FILE=self.token_file, CURVD_TLS_CA=self.ca_path), clear=True):
            client = curvd.Client(self.server.target)
        try:
            self.assertEqual(self.create_run(client, "py-env").creator, "py-trainer")
            # The options a child uploader process rebuilds its client from
            # carry the credentials themselves.
            self.assertEqual(client.options["token"], TOKEN)
            self.assertEqual(client.options["root_certificates"], self.ca)
        finally:
            client.close()

    def _assert_listing_fails(self, client, code):
        """Listing runs through `client` fails with `code`; closes `client`."""
        try:
            with self.assertRaises(curvd.CurvdError) as raised:
                client.list_all("ListRuns", "runs")
            self.assertEqual(raised.exception.code, code)
        finally:
            client.close()

    def test_missing_and_wrong_tokens_are_unauthenticated(self):
        for token in ("", "not-the-token-0123456789"):
            with mock.patch.dict(os.environ, _clean_environment(), clear=True):
                client = curvd.Client(self.server.target, token=token,
                                      root_certificates=self.ca)
            self._assert_listing_fails(client, grpc.StatusCode.UNAUTHENTICATED)

    def test_plain_text_is_refused(self):
        with mock.patch.dict(os.environ, _clean_environment(), clear=True):
            client = curvd.Client(self.server.target, rpc_timeout=5)
        self._assert_listing_fails(client, grpc.StatusCode.UNAVAILABLE)

    def test_health_port_answers_plain_text(self):
        with grpc.insecure_channel(f"127.0.0.1:{self.health_port}") as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            # HealthCheckRequest{service: "curvd.v1.Curvd"} -> {status: SERVING}
            self.assertEqual(check(b"\x0a\x0ecurvd.v1.Curvd", timeout=10), b"\x08\x01")

    def test_curvctl_with_flags_and_environment(self):
        env = _clean_environment()
        created = subprocess.run(
            [self.curvctl, "create-run", f"--server={self.server.target}", "--run=by-curvctl",
             "--zoo=mlp:3,4,1", f"--tls_ca={self.ca_path}", f"--token_file={self.token_file}"],
            env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(created.returncode, 0, created.stderr)
        listed = subprocess.run(
            [self.curvctl, "runs", f"--server={self.server.target}"],
            env=_clean_environment(CURVD_TOKEN=TOKEN, CURVD_TLS_CA=self.ca_path),
            capture_output=True, text=True, timeout=60)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("CREATOR", listed.stdout)
        row = next(line for line in listed.stdout.splitlines() if "runs/by-curvctl" in line)
        self.assertIn("py-trainer", row)
        refused = subprocess.run(
            [self.curvctl, "runs", f"--server={self.server.target}", f"--tls_ca={self.ca_path}"],
            env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("UNAUTHENTICATED", refused.stderr)


class StartupTest(unittest.TestCase):
    """What curvd does with a non-loopback --listen."""

    def run_curvd(self, *flags, timeout=10):
        binary = os.environ.get("CURVD_BIN", os.path.join(_REPO, "build", "bin", "curvd"))
        state = tempfile.mkdtemp(prefix="curvd-py-startup.")
        try:
            return subprocess.run([binary, f"--listen=0.0.0.0:{_free_port()}", "--metrics_listen=",
                                   f"--state_dir={state}", "--devices=cpu", *flags],
                                  capture_output=True, text=True, timeout=timeout)
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_refuses_an_open_address_without_tls_and_authentication(self):
        refused = self.run_curvd()
        self.assertEqual(refused.returncode, 2)
        self.assertIn("is not a loopback address", refused.stderr)
        self.assertIn("--insecure", refused.stderr)

    def test_insecure_serves_it_with_a_loud_warning(self):
        with self.assertRaises(subprocess.TimeoutExpired) as served:
            self.run_curvd("--insecure", timeout=3)
        stderr = served.exception.stderr or b""
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        self.assertIn("INSECURE", stderr)


if __name__ == "__main__":
    unittest.main()
