"""A run's uploads in a child process of their own, so that the trainer's
interpreter never runs them.

Why: a torch op releases the GIL while it runs, so every other thread of the
trainer's process that wants the interpreter takes it at the next op and the
training loop waits until it is given back. A CUDA training step is mostly
launches of short ops, so an uploader thread's Python (gRPC calls, protobuf,
the watch stream's messages) slows it in proportion. In a child process that
work has an interpreter of its own; the trainer's process keeps only the
weights' hand-over: a copy into a shared-memory file and a small message on a
pipe.

The parent's side, UploadProcess, is used by one thread at a time (the run's
background thread). The child (`python -m curvd.upload_worker`, not
multiprocessing's spawn, which would import the trainer's __main__ again)
reads one command at a time from its pipe and answers on the other:
  ("checkpoint", step, train_loss, entries) -> ("measurement", bytes)...,
      then ("done",), ("transient", code name, details) or ("error", message,
      code name or None)
  ("exit",), the pipe closing or the parent exiting -> it exits.
The weights lie in an unlinked file (in /dev/shm where there is room, else the
temporary directory) whose descriptor the child inherits, so no exit of either
process, however abrupt, leaves the file behind; a larger state dict makes a
new file and a new child.
"""

import mmap
import os
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection

import grpc

from curvd.errors import CurvdError
from curvd.v1 import resources_pb2

# Seconds the child gets to start and answer an exit before it is killed.
_EXIT_SECONDS = 5.0


class RemoteRpcError(grpc.RpcError):
    """A transport failure the child met, as the grpc.RpcError it was (code()
    and details()), so that the run treats it as it would its own."""

    def __init__(self, code, details):
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self):
        return self._code

    def details(self):
        return self._details


class UploadProcess:
    """The child process of one run, started at the first checkpoint."""

    def __init__(self, target, client_options, run_name, run_id, specs, measurement_timeout):
        """`target` and `client_options` make the child's Client (as
        Client(target, **client_options)); `specs` are the run's
        MeasurementSpecs; the rest as the Run has them."""
        self._arguments = (target, client_options, run_name, run_id,
                           [spec.SerializeToString() for spec in specs], measurement_timeout)
        self._process = None
        self._commands = None
        self._replies = None
        self._buffer = None  # (descriptor, mmap, size) of the shared file

    def checkpoint(self, step, state, train_loss, stop, data=None):
        """Hands `state` (a mapping of name to contiguous CPU tensor, in file
        order; `data`, when given, a uint8 CPU tensor of their bytes back to
        back, copied at once) of `step` to the child, which uploads it, records the
        checkpoint and measures it; yields each finished Measurement. Raises
        RemoteRpcError for a transport failure (the same call may succeed
        later), CurvdError for a refusal, for a child that died (restarted at
        the next checkpoint) and, with code CANCELLED, once `stop` (a
        threading.Event) is set: the child is then stopped."""
        entries = self._hand_over(state, data)
        self._start()
        self._send(("checkpoint", step, train_loss, entries))
        answered = False
        try:
            while True:
                reply = self._next_reply(stop)
                if reply[0] == "measurement":
                    yield resources_pb2.Measurement.FromString(reply[1])
                    continue
                answered = True
                if reply[0] == "done":
                    return
                if reply[0] == "transient":
                    raise RemoteRpcError(grpc.StatusCode[reply[1]], reply[2])
                raise CurvdError(reply[1], grpc.StatusCode[reply[2]] if reply[2] else None)
        finally:
            # Left before the child's last answer (the caller stopped reading,
            # or raised): its later replies would answer the next checkpoint,
            # and it may still read the file the next one overwrites.
            if not answered:
                self._stop_child(kill=True)

    def _next_reply(self, stop):
        """The child's next reply; CurvdError CANCELLED once `stop` is set, or
        when the child exited without one (the child is stopped either way)."""
        while not self._replies.poll(0.2):
            if stop.is_set():
                self._stop_child(kill=True)
                raise CurvdError("stopped waiting for the upload process",
                                 grpc.StatusCode.CANCELLED)
            if self._process.poll() is not None and not self._replies.poll(0):
                # EOF may never come: a process forked meanwhile (a DataLoader
                # worker) can hold the pipe's write end.
                code = self._process.returncode
                self._stop_child(kill=True)
                raise CurvdError(f"the upload process exited (status {code}); it "
                                 f"restarts at the next checkpoint")
        return self._receive()

    def _hand_over(self, state, data):
        """Copies `state` (or `data`, its bytes, in one copy) into the
        shared-memory file, back to back in order; returns its entries (name,
        dtype string, shape, byte count). No view of the file outlives the call,
        so the file can be closed at any time."""
        import numpy  # the parent's torch has it; the child never needs this path

        from curvd import safetensors_format

        entries = [(name, safetensors_format.dtype_name(name, tensor), list(tensor.shape),
                    tensor.numel() * tensor.element_size()) for name, tensor in state.items()]
        buffer = self._shared(sum(entry[3] for entry in entries))
        # numpy's copy: one thread, the GIL released while it copies. torch's
        # copy_ would wake its intra-op threads, which spin on the cores the
        # training loop needs.
        if data is not None:
            if data.numel() != buffer.size:
                raise ValueError(f"{data.numel()} bytes of data for {buffer.size} of tensors")
            numpy.copyto(buffer, data.numpy())
            return entries
        offset = 0
        for tensor, (_, _, _, nbytes) in zip(state.values(), entries):
            if nbytes:
                numpy.copyto(buffer[offset:offset + nbytes], numpy.frombuffer(
                    safetensors_format.tensor_bytes(tensor), dtype=numpy.uint8))
            offset += nbytes
        return entries

    def close(self, kill=False):
        """Stops the child (asked to exit, killed if it does not within a few
        seconds, or at once with `kill`) and removes the shared-memory file.
        Idempotent."""
        self._stop_child(kill)
        self._drop_buffer()

    def _stop_child(self, kill):
        if self._process is None:
            return
        if not kill:
            try:
                self._commands.send(("exit",))
                self._process.wait(_EXIT_SECONDS)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._commands.close()
        self._replies.close()
        self._process = None

    def _drop_buffer(self):
        if self._buffer is not None:
            fd, mapped, _ = self._buffer
            self._buffer = None
            try:
                mapped.close()
            except BufferError:
                pass  # a view still alive: the map goes with it
            os.close(fd)

    def _shared(self, size):
        """A writable uint8 numpy array over the shared file, of at least
        `size` bytes, kept from one checkpoint to the next while it is large
        enough; a new file stops the child (the next one inherits the file).
        CurvdError when no directory has room for it."""
        import numpy

        if self._buffer is None or self._buffer[2] < size:
            self._stop_child(kill=False)
            self._drop_buffer()
            self._buffer = _unlinked_file(max(size, 1))
        return numpy.frombuffer(self._buffer[1], dtype=numpy.uint8, count=size)

    def _start(self):
        if self._process is not None and self._process.poll() is None:
            return
        self._stop_child(kill=True)  # a child that died
        command_read, command_write = os.pipe()
        reply_read, reply_write = os.pipe()
        buffer_fd = self._buffer[0]
        flags = ["-P"] if sys.version_info >= (3, 11) else []  # not the cwd first
        try:
            # A session of its own: a Ctrl-C for the trainer does not reach it
            # (it exits when the parent does, by the pipe or its parent id).
            self._process = subprocess.Popen(
                [sys.executable, *flags, "-m", "curvd.upload_worker", str(command_read),
                 str(reply_write), str(buffer_fd)],
                pass_fds=(command_read, reply_write, buffer_fd), env=_child_environment(),
                stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(command_read)
            os.close(reply_write)
        self._commands = Connection(command_write, readable=False)
        self._replies = Connection(reply_read, writable=False)
        self._send(("start", *self._arguments))

    def _send(self, message):
        try:
            self._commands.send(message)
        except OSError as error:
            self._stop_child(kill=True)
            raise CurvdError(f"the upload process is gone ({error}); it restarts at the "
                             f"next checkpoint") from error

    def _receive(self):
        try:
            return self._replies.recv()
        except (EOFError, OSError) as error:
            code = self._process.poll() if self._process is not None else None
            self._stop_child(kill=True)
            raise CurvdError(f"the upload process exited (status {code}); it restarts at "
                             f"the next checkpoint") from error


def _unlinked_file(size):
    """(descriptor, writable mmap, size) of a new file of `size` bytes whose
    name is already removed, its blocks allocated (a full tmpfs would otherwise
    kill the process with SIGBUS at the first write): in /dev/shm, else in the
    temporary directory. CurvdError when neither has room."""
    errors = []
    for directory in ("/dev/shm", tempfile.gettempdir()):
        if not os.path.isdir(directory):
            continue
        fd, path = tempfile.mkstemp(prefix="curvd-checkpoint-", dir=directory)
        os.unlink(path)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
            else:
                os.ftruncate(fd, size)
            return fd, mmap.mmap(fd, size), size
        except OSError as error:
            os.close(fd)
            errors.append(f"{directory}: {error}")
    raise CurvdError(f"no room for a {size}-byte checkpoint file ({'; '.join(errors)})")


def _child_environment():
    """The child's environment: this one, with the directory holding this
    package first on PYTHONPATH unless it is a site directory already on the
    path (putting site-packages before the standard library could shadow it)."""
    import site

    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sites = set(site.getsitepackages() + [site.getusersitepackages()])
    if package_parent not in sites:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env
