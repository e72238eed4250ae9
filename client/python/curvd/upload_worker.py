"""The child process of curvd.upload_process (its protocol is described there):
`python -m curvd.upload_worker COMMAND_FD REPLY_FD BUFFER_FD`, started by
UploadProcess.
"""

import mmap
import os
import sys
import threading
from multiprocessing.connection import Connection

import grpc

from curvd import safetensors_format
from curvd.checkpoint_measurement import measure, record_checkpoint
from curvd.client import Client
from curvd.errors import is_transient
from curvd.measurement_specs import request_id
from curvd.v1 import resources_pb2


# How much lower than the trainer's the child's CPU priority is: where the
# trainer's cores are busy (its loop, the autograd thread, the CUDA driver's
# threads) the uploads wait for them, as the server's workers do (its
# --worker_nice); an idle core runs them at full speed either way.
UPLOAD_NICE = 10


def serve(commands, replies, buffer_fd):
    """The child's loop over Connections `commands` and `replies` and the shared
    file `buffer_fd`: the "start" command, then checkpoints until "exit", the
    pipe closing or the parent exiting (which also ends a wait for a
    measurement). Runs at UPLOAD_NICE more than the parent, its threads too."""
    os.nice(UPLOAD_NICE)  # before any thread starts: Linux threads inherit it
    _, target, client_options, run_name, run_id, spec_bytes, timeout = commands.recv()
    client = Client(target, **client_options)
    specs = [resources_pb2.MeasurementSpec.FromString(b) for b in spec_bytes]
    data = memoryview(mmap.mmap(buffer_fd, 0, access=mmap.ACCESS_READ))
    orphaned = threading.Event()
    _watch_parent(os.getppid(), orphaned)
    try:
        while not orphaned.is_set():
            try:
                command = commands.recv()
            except EOFError:
                return
            if command[0] == "exit":
                return
            _, step, train_loss, entries = command
            pieces, offset = [safetensors_format.encode_header(entries)], 0
            for _, _, _, nbytes in entries:
                pieces.append(data[offset:offset + nbytes])
                offset += nbytes
            try:
                checkpoint = record_checkpoint(client, run_name, step, pieces,
                                               resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS,
                                               train_loss)
                ids = [request_id(run_id, step, spec) for spec in specs]
                for measurement in measure(client, checkpoint.name, specs, ids, timeout,
                                           orphaned):
                    replies.send(("measurement", measurement.SerializeToString()))
                replies.send(("done",))
            except Exception as error:  # noqa: BLE001 - every failure goes back to the run
                if is_transient(error):
                    replies.send(("transient", error.code().name, error.details()))
                else:
                    code = getattr(error, "code", None)
                    replies.send(("error", str(error),
                                  code.name if isinstance(code, grpc.StatusCode) else None))
    finally:
        # The map goes with the process (a view gRPC still holds would make
        # closing it raise).
        client.close()


def _watch_parent(parent, orphaned):
    """Sets `orphaned` once the process `parent` is no longer this one's parent
    (it exited), checking every second on a daemon thread."""
    def watch():
        while os.getppid() == parent:
            if orphaned.wait(1.0):
                return
        orphaned.set()
    threading.Thread(target=watch, name="curvd-parent-watch", daemon=True).start()


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False),
          Connection(int(sys.argv[2]), readable=False), int(sys.argv[3]))
