"""A connection to one curvd server, or to a replica set through any of its
replicas, and the runs a trainer opens on it."""

import functools
import logging

import grpc

from curvd import (blob_upload, credentials, measurement_specs, model_source, replica_routing,
                   shard_source)
from curvd.errors import CurvdError, from_rpc_error
from curvd.run import DEFAULT_UPLOADER, UPLOADERS, Run
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import curvd_service_pb2_grpc as service_pb2_grpc
from curvd.v1 import resources_pb2

log = logging.getLogger("curvd")


class Client:
    """A connection to the curvd server at `target`. Thread-safe.

    The channel connects lazily: an unreachable server shows up at the first
    call. Keepalive and message limits match the C++ client's
    ConnectionOptions (a server accepts pings no more often than every 5
    minutes by default, and answers more frequent ones with GOAWAY).

    With several replicas (docs/adr/0019) every call about a run, through
    this class or `stub`, goes to the replica that holds it: a replica's
    refusal naming the owner is followed once and remembered for the run
    (curvd.replica_routing), so one address of the set is enough.
    """

    def __init__(self, target="localhost:50051", *, rpc_timeout=30.0, upload_timeout=600.0,
                 upload_attempts=3, keepalive_time=300.0, keepalive_timeout=20.0,
                 max_receive_message_bytes=16 << 20, load_balancing_policy="round_robin",
                 max_reconnect_backoff=10.0, token=None, root_certificates=None,
                 private_key=None, certificate_chain=None, tls=None, tls_server_name=None):
        """`target` is host:port or any gRPC target. `rpc_timeout` bounds each
        unary call and `upload_timeout` one blob upload attempt, in seconds;
        `upload_attempts` counts the attempts after transport failures, each
        resuming where the server committed. `max_reconnect_backoff` caps the
        seconds between reconnection attempts to a server that went away (gRPC's
        own default, 120 s, would leave a restarted server unused for minutes).

        Credentials, each taken from the environment when None
        (curvd.credentials lists the variables): `token`, the bearer token
        sent with every call (it implies TLS); `root_certificates`, PEM of the
        CAs that sign the server's certificate (else the system's roots);
        `private_key` and `certificate_chain`, PEM for mutual TLS; `tls`, TLS
        even without those; `tls_server_name`, the name to check the server's
        certificate against. Raises CurvdError for an unreadable credential file."""
        self.target = target
        resolved = credentials.resolve(token, root_certificates, private_key,
                                       certificate_chain, tls, tls_server_name)
        # The keyword arguments, for a copy of this client in another process.
        self.options = dict(rpc_timeout=rpc_timeout, upload_timeout=upload_timeout,
                            upload_attempts=upload_attempts, keepalive_time=keepalive_time,
                            keepalive_timeout=keepalive_timeout,
                            max_receive_message_bytes=max_receive_message_bytes,
                            load_balancing_policy=load_balancing_policy,
                            max_reconnect_backoff=max_reconnect_backoff, **resolved)
        self.rpc_timeout = rpc_timeout
        self.upload_timeout = upload_timeout
        self.upload_attempts = upload_attempts
        channel_options = [
            ("grpc.keepalive_time_ms", int(keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(keepalive_timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.max_receive_message_length", max_receive_message_bytes),
            ("grpc.lb_policy_name", load_balancing_policy),
            ("grpc.max_reconnect_backoff_ms", int(max_reconnect_backoff * 1000)),
        ]
        # Every replica's channel is made alike, with the same credentials.
        self._channel = replica_routing.RoutedChannel(
            target, lambda address: credentials.channel(address, channel_options, **resolved))
        # The generated stub of curvd.v1.Curvd, for calls this class does not wrap.
        self.stub = service_pb2_grpc.CurvdStub(self._channel)
        self._write_blob = blob_upload.write_blob_method(self._channel)
        # "blobs_uploaded" and "bytes_uploaded": what upload() actually sent.
        self.upload_stats = {"blobs_uploaded": 0, "bytes_uploaded": 0}

    def upload(self, data, run_id=""):
        """Uploads bytes-like `data` (or a list of bytes-like pieces, concatenated)
        as a content-addressed blob and returns its digest, "sha256:<hex>"; a
        blob the server already holds costs no transfer (blob_upload.upload_blob).
        `run_id`, when given, is the run the blob is for (a checkpoint, the
        run's archive or shard): it is stored on that run's replica."""
        return blob_upload.upload_blob(self.stub, self._write_blob, data, run_id=run_id,
                                       rpc_timeout=self.rpc_timeout,
                                       upload_timeout=self.upload_timeout,
                                       attempts=self.upload_attempts, stats=self.upload_stats)

    def list_all(self, method, field, **request_fields):
        """Every item of List method `method` ("ListMeasurements", ...), following
        next_page_token; `field` names the response's repeated field. Raises
        CurvdError when the server answers an error."""
        request_type = getattr(service_pb2, method + "Request")
        items, token = [], ""
        while True:
            try:
                response = getattr(self.stub, method)(
                    request_type(page_size=1000, page_token=token, **request_fields),
                    timeout=self.rpc_timeout)
            except grpc.RpcError as error:
                raise from_rpc_error(error, f"{method} {request_fields}") from error
            items.extend(getattr(response, field))
            token = response.next_page_token
            if not token:
                return items

    def run(self, run_id, model=None, *, shard=None, loss="cross_entropy",
            measure=None, every=1, policy="coalesce", capacity=8,
            example_input=None, settings=None, display_name="", measurement_timeout=1800.0,
            uploader=DEFAULT_UPLOADER):
        """Creates run `run_id` with `model`, or opens it when it exists with the
        same model (or `model` is None), and returns its curvd.Run.

        model: an nn.Module (torch.jit.script, else torch.jit.trace on
          `example_input` with a warning; run.model_export says which), the path
          of a TorchScript archive, a file:// URI of one under the server's data
          roots, a zoo spec ("mlp:784,128,10:tanh"), a ZooModel or a ModelSpec.
        shard: the data every measurement uses: a file://, builtin:// or blob://
          URI passed to the server, a safetensors file, or tensors (a dict with
          "inputs" and "targets", or a tuple); files and tensors are uploaded
          once, content-addressed. Required when `measure` is not empty.
        loss: "cross_entropy" or "mse". measure: kinds measured at every
          checkpoint (curvd.measurement_specs.build_specs: names, {kind:
          options}, curvd.plan(...), MeasurementSpecs); None: "sharpness" when
          a shard is given, else nothing (checkpoints are stored only).
          settings: the specs' other fields (precision, micro_batch_size,
          device, ...).
        every: submit() takes steps that are multiples of it. policy and
          capacity: the backpressure of pending checkpoints ("coalesce", "queue"
          or "block"; curvd.submit_queue). measurement_timeout: seconds a
          checkpoint's measurements may take before the uploader moves on.
        uploader: where the uploads, the measurements' creation and the waits
          for them run: "process" (default), a child process of the run's, so
          that none of that work holds the trainer's interpreter (the GIL) while
          it trains; "thread", the run's background thread in this process
          (no child; its Python work competes with the training loop's; the
          default on Windows).

        Raises ModelExportError for a module that cannot be exported, ValueError
        or TypeError for arguments curvd cannot use (an unknown kind or option),
        CurvdError when the server refuses (ALREADY_EXISTS: the run exists with
        another model; INVALID_ARGUMENT: a bad zoo spec) or cannot be reached.
        """
        if uploader not in UPLOADERS:  # before the run is created
            raise ValueError(f"uploader '{uploader}' is not one of {', '.join(UPLOADERS)}")
        run, specs, how = self.run_resource(run_id, model, shard=shard, loss=loss,
                                            measure=measure, example_input=example_input,
                                            settings=settings, display_name=display_name)
        return Run(self, run, specs, every, policy, capacity, measurement_timeout, how,
                   uploader)

    def run_resource(self, run_id, model=None, *, shard=None, loss="cross_entropy",
                     measure=None, example_input=None, settings=None, display_name=""):
        """What run() does before it starts a curvd.Run (backfill shares it):
        creates run `run_id` with `model`, or opens it; uploads the model and
        the shard where they need it; builds the MeasurementSpecs of `measure`.
        The arguments and errors as run() has them. Returns (the server's Run
        message, the list of MeasurementSpecs, how the model was exported:
        "scripted", "traced", "archive", "zoo", or None without a model).
        """
        if measure is None:
            measure = ["sharpness"] if shard is not None else []
        if measure and shard is None:
            raise ValueError("shard= is required to measure: the data every measurement uses")
        # The run's blobs go to its replica.
        upload = functools.partial(self.upload, run_id=run_id)
        uri = shard_source.shard_uri(shard, upload) if shard is not None else ""
        specs = measurement_specs.build_specs(measure, uri, loss, settings)
        name = f"runs/{run_id}"
        if model is None:
            try:
                run = self.stub.GetRun(service_pb2.GetRunRequest(name=name),
                                       timeout=self.rpc_timeout)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    raise CurvdError(f"run {run_id} does not exist; give model= to create it",
                                     error.code()) from error
                raise from_rpc_error(error, f"GetRun {name}") from error
            how = None
        else:
            spec, how = model_source.model_spec(model, upload, example_input)
            try:
                run = self.stub.CreateRun(service_pb2.CreateRunRequest(
                    run_id=run_id, run=resources_pb2.Run(model=spec, display_name=display_name)),
                    timeout=self.rpc_timeout)
            except grpc.RpcError as error:
                hint = ""
                if error.code() == grpc.StatusCode.ALREADY_EXISTS:
                    hint = ("; an nn.Module's archive holds its initial weights, so a "
                            "re-initialised model is another model: choose a new run_id, "
                            "or open the run with model=None")
                raise from_rpc_error(error, f"CreateRun {run_id}", hint) from error
        if how is not None:
            log.info("curvd: run %s, model %s", run_id, how)
        return run, specs, how

    def close(self):
        """Closes the channel; runs of this client stop reaching the server."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
