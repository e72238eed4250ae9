"""Calls about a run sent to the replica that holds it (docs/adr/0019), as the
C++ client's Client does.

Each replica of a set keeps its own store, and one holds each run; another
refuses a call about it with FAILED_PRECONDITION and the owner's address in
the "curvd-owner" trailing metadata. RoutedChannel stands where a grpc.Channel
does (the generated stub takes it): it sends each call to the replica a
refusal named for the call's run, and follows a refusal once, remembering the
owner. So one address of the set is all a client needs.
"""

import threading

import grpc
from google.protobuf import message as protobuf_message

from curvd.v1 import curvd_service_pb2 as service_pb2

OWNER_METADATA_KEY = "curvd-owner"
REPLICAS_METADATA_KEY = "curvd-replicas"

_SERVICE = service_pb2.DESCRIPTOR.services_by_name["Curvd"]
_RUN_NAME_FIELDS = ("name", "parent", "run")


def run_id_of(request):
    """The run id `request` (a curvd.v1 request message) is about, or "": the
    string field run_id, else the run segment of "runs/{run}/..." in the field
    name, parent or run, as common/replica_routing.h reads it."""
    fields = request.DESCRIPTOR.fields_by_name
    run_id = request.run_id if "run_id" in fields and isinstance(request.run_id, str) else ""
    for field in _RUN_NAME_FIELDS:
        if run_id:
            break
        value = getattr(request, field) if field in fields else ""
        if isinstance(value, str) and value.startswith("runs/"):
            run_id = value[len("runs/"):].split("/", 1)[0]
    return run_id


def owner_named(error):
    """The owning replica's address in grpc.RpcError `error`, a replica's
    refusal of a call about a run it does not hold, or None."""
    if not isinstance(error, grpc.RpcError) or error.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return None
    for key, value in error.trailing_metadata() or ():
        if key == OWNER_METADATA_KEY and value:
            return value
    return None


def _request_message(method, request):
    """`request` of `method` ("/curvd.v1.Curvd/WriteBlob") as its message, also
    when the caller serialised it itself (blob_upload does)."""
    if isinstance(request, protobuf_message.Message):
        return request
    input_type = _SERVICE.methods_by_name[method.rsplit("/", 1)[-1]].input_type
    return getattr(service_pb2, input_type.name).FromString(bytes(request))


class RoutedChannel:
    """The channels to a replica set, through `target` and each replica a
    refusal named, made with `make_channel(address)` (so with the same
    options and credentials). Its multi-callables take a call's arguments
    (timeout, metadata, ...) but offer no with_call or future. Thread-safe."""

    def __init__(self, target, make_channel):
        self._make_channel = make_channel
        self._target = make_channel(target)
        self._lock = threading.Lock()
        self._replicas = {}  # address -> channel
        self._owners = {}  # run id -> address, where not the target

    def channel_for(self, run_id):
        """The channel for calls about `run_id` ("" for a call about no run)."""
        with self._lock:
            address = self._owners.get(run_id)
            return self._replicas[address] if address else self._target

    def remember(self, run_id, address):
        """Notes that the replica at `address` holds `run_id`; its channel."""
        with self._lock:
            if address not in self._replicas:
                self._replicas[address] = self._make_channel(address)
            self._owners[run_id] = address
            return self._replicas[address]

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, **_):
        def call(request, **kwargs):
            run_id = run_id_of(request)
            open_call = lambda channel: channel.unary_unary(  # noqa: E731
                method, request_serializer, response_deserializer)(request, **kwargs)
            try:
                return open_call(self.channel_for(run_id))
            except grpc.RpcError as error:
                owner = owner_named(error) if run_id else None
                if owner is None:
                    raise
                return open_call(self.remember(run_id, owner))
        return call

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, **_):
        def call(request, **kwargs):
            return _RoutedStream(self, run_id_of(request), lambda channel: channel.unary_stream(
                method, request_serializer, response_deserializer)(request, **kwargs))
        return call

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, **_):
        """Routed by the run of the first request, to the replica remembered for
        it: the requests already sent cannot be sent again, so a refusal is not
        followed (blob_upload asks GetBlobStatus about the run first)."""
        def call(request_iterator, **kwargs):
            requests = iter(request_iterator)
            first = next(requests, None)
            run_id = run_id_of(_request_message(method, first)) if first is not None else ""

            def replay():
                if first is not None:
                    yield first
                yield from requests
            return self.channel_for(run_id).stream_unary(
                method, request_serializer, response_deserializer)(replay(), **kwargs)
        return call

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, **_):
        return self._target.stream_stream(method, request_serializer, response_deserializer)

    def subscribe(self, callback, try_to_connect=False):
        self._target.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback):
        self._target.unsubscribe(callback)

    def close(self):
        with self._lock:
            channels = [self._target, *self._replicas.values()]
        for channel in channels:
            channel.close()


class _RoutedStream:
    """A response stream that, when its first read is a replica's refusal
    naming the owner, opens the same call there once; otherwise the gRPC call
    it wraps (cancel(), code(), ...)."""

    def __init__(self, routes, run_id, open_call):
        self._routes = routes
        self._run_id = run_id
        self._open_call = open_call
        self._call = open_call(routes.channel_for(run_id))
        self._may_follow = bool(run_id)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            item = next(self._call)
        except grpc.RpcError as error:
            owner = owner_named(error) if self._may_follow else None
            if owner is None:
                raise
            self._may_follow = False
            self._call = self._open_call(self._routes.remember(self._run_id, owner))
            item = next(self._call)
        self._may_follow = False
        return item

    def __getattr__(self, name):
        return getattr(self._call, name)
