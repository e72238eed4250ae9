"""A run as a trainer sees it: submit checkpoints from the training loop, read
results. The mechanism: submit() snapshots the weights and queues them
(submit_queue's policy); one background thread per run takes each checkpoint
and, in the run's child process (curvd.upload_process; or on the thread itself
with uploader="thread"), serialises it to a safetensors state dict, uploads it
(content-addressed, so unchanged weights cost no transfer), records the
checkpoint, creates the run's measurements (request ids derived from run, step
and spec, so retries are idempotent), and waits for them before taking the
next checkpoint. So the queue
drains at the pace the server measures, and the policy decides what is kept
meanwhile. Every checkpoint is weights only: the run's model (its TorchScript
archive or zoo architecture) was registered once, at creation.
"""

import logging
import os
import threading
import warnings

import torch

from curvd import results_table, safetensors_format
from curvd.checkpoint_measurement import measure, record_checkpoint
from curvd.errors import CurvdWarning, is_transient
from curvd.measurement_specs import kind_name, request_id
from curvd.submit_queue import SubmitQueue
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.upload_process import UploadProcess
from curvd.v1 import resources_pb2
from curvd.weights_snapshot import PinnedBufferPool, WeightsSnapshot

log = logging.getLogger("curvd")

_MAX_BACKOFF_SECONDS = 2.0

# Where a run's uploads run (Client.run's `uploader`), and the default: a
# child process where it can be started with inherited descriptors (not on
# Windows).
UPLOADERS = ("process", "thread")
DEFAULT_UPLOADER = "thread" if os.name == "nt" else "process"


class _Pending:
    """One submitted checkpoint: its step, train loss and weights snapshot."""

    def __init__(self, step, train_loss, snapshot):
        self.step = step
        self.train_loss = train_loss
        self.snapshot = snapshot


class Run:
    """A run of a curvd server, made by Client.run(). submit() may be called from
    one training thread; results(), watch() and stats from any thread."""

    def __init__(self, client, run, specs, every, policy, capacity, measurement_timeout,
                 model_export, uploader=DEFAULT_UPLOADER):
        """Client.run() makes runs: `run` is the server's Run, `specs` the
        MeasurementSpecs of every checkpoint; the rest as Client.run() has them
        (ValueError for an unknown `uploader`). Starts the run's background
        thread."""
        if uploader not in UPLOADERS:
            raise ValueError(f"uploader '{uploader}' is not one of {', '.join(UPLOADERS)}")
        self._client = client
        self.name = run.name
        self.run_id = run.name.split("/", 1)[1]
        # How the model became the run's: "scripted", "traced", "archive" or
        # "zoo" (None for a run opened without a model).
        self.model_export = model_export
        self._specs = specs
        self._every = max(1, int(every))
        self._measurement_timeout = measurement_timeout
        self.uploader = uploader
        self._upload_process = None
        if uploader == "process":
            self._upload_process = UploadProcess(client.target, client.options, self.name,
                                                 self.run_id, specs, measurement_timeout)
        self._queue = SubmitQueue(policy, capacity)
        self._pool = PinnedBufferPool()
        self._stop = threading.Event()
        self._closed = False
        self._away = False
        self._arrived = []
        self._arrived_names = set()  # a retried checkpoint's measurements arrive once
        self._finished = False
        self._cond = threading.Condition()
        self._stats = dict.fromkeys(("submitted", "skipped", "coalesced", "dropped",
                                     "processed", "failed"), 0)
        self._thread = threading.Thread(target=self._loop, name=f"curvd-{self.run_id}",
                                        daemon=True)
        self._thread.start()

    @property
    def policy(self):
        """The backpressure policy: "coalesce", "queue" or "block"."""
        return self._queue.policy

    @property
    def stats(self):
        """Counts so far: submitted (taken by submit), skipped (not a multiple of
        `every`), coalesced (replaced by a newer checkpoint), dropped (evicted
        from a full queue, or submitted after close), processed, failed."""
        with self._cond:
            return dict(self._stats)

    def submit(self, step, model, train_loss=None):
        """Hands the weights of `model` at `step` to the background uploader and
        returns at once; True when taken, False when `step` is not a multiple of
        the run's `every` or the run is closed.

        `model` is an nn.Module or a state dict (a mapping of name to tensor) for
        the run's model. The weights are copied before submit returns (CUDA
        tensors with non-blocking copies into pinned buffers, CPU tensors
        cloned), so training may go on changing them. `train_loss`, a float or a
        0-dim tensor (read without synchronising the GPU), is stored beside the
        measurements. Under policy "block", waits while the queue is full.
        Never raises for the server's sake: problems are CurvdWarnings.
        """
        if step % self._every != 0:
            with self._cond:
                self._stats["skipped"] += 1
            return False
        if self._closed:
            warnings.warn(f"curvd: run {self.run_id} is closed; step {step} is not submitted",
                          CurvdWarning, stacklevel=2)
            with self._cond:
                self._stats["dropped"] += 1
            return False
        state = model.state_dict() if isinstance(model, torch.nn.Module) else dict(model)
        extra = {}
        if isinstance(train_loss, torch.Tensor):
            extra["train_loss"] = train_loss
            train_loss = None
        elif train_loss is not None:
            train_loss = float(train_loss)
        item = _Pending(int(step), train_loss, WeightsSnapshot(state, self._pool, extra))
        with self._cond:
            self._stats["submitted"] += 1
        for dropped in self._queue.put(item):
            self._drop(dropped, refused=dropped is item)
        return True

    def results(self, frame=None):
        """The run's stored results, one row per checkpoint and kind (the columns
        of curvd.results_table), ordered by step and kind: every measurement of
        the run on the server, FAILED ones with their error_message, including
        those of other sessions. A pandas DataFrame when `frame` is True, or None
        and pandas imports; else a list of dicts. Listed in VIEW_BASIC: the
        `result` messages lack the fields marked full_view_only (an exact
        Hessian's matrix, LLC traces; get those with GetMeasurement). Raises
        CurvdError when the server cannot answer."""
        measurements = self._client.list_all(
            "ListMeasurements", "measurements", parent=f"{self.name}/checkpoints/-",
            view=service_pb2.VIEW_BASIC)
        checkpoints = self._client.list_all("ListCheckpoints", "checkpoints", parent=self.name)
        train_losses = {c.step: c.train_loss for c in checkpoints}
        rows = [row for m in measurements
                for row in results_table.measurement_rows(m, self.run_id, train_losses)]
        return results_table.as_table(results_table.sort_rows(rows), frame)

    def watch(self, timeout=None):
        """Yields the rows (as results() has them, as dicts) of this session's
        measurements as each finishes, from the first submitted on; ends once the
        run is closed and everything in flight has finished, or when `timeout`
        seconds pass without a new row."""
        index = 0
        while True:
            with self._cond:
                if not self._cond.wait_for(
                        lambda: len(self._arrived) > index or self._finished, timeout):
                    return
                new = self._arrived[index:]
                index = len(self._arrived)
            if not new:
                return
            yield from new

    def close(self, timeout=60.0):
        """Stops taking checkpoints and waits up to `timeout` seconds for those
        pending and in flight to be uploaded and measured. Returns True when all
        were; False (with a CurvdWarning saying how many were abandoned) when the
        time ran out. Idempotent."""
        self._closed = True
        self._queue.close()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        self._stop.set()
        abandoned = self._queue.drain()
        for item in abandoned:
            item.snapshot.release()
        warnings.warn(f"curvd: run {self.run_id} closed after {timeout:g} s with "
                      f"{len(abandoned)} pending checkpoint(s) and the one in flight "
                      f"not measured", CurvdWarning, stacklevel=2)
        self._thread.join(_MAX_BACKOFF_SECONDS + 3)
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # The background thread.

    def _drop(self, item, refused=False):
        """Counts and releases `item`, dropped by the queue: coalesced when a
        newer checkpoint replaced it (policy "coalesce"), else dropped with a
        warning (evicted from a full queue, or `refused` by a closed one)."""
        item.snapshot.release()
        coalesced = self._queue.policy == "coalesce" and not refused
        with self._cond:
            self._stats["coalesced" if coalesced else "dropped"] += 1
        if not coalesced:
            why = ("the run was closed" if refused else f"queue of {self._queue.capacity} "
                   f"full: measurements are slower than checkpoints")
            warnings.warn(f"curvd: dropped the checkpoint of step {item.step} of run "
                          f"{self.run_id} ({why})", CurvdWarning)

    def _loop(self):
        backoff = 0.1
        try:
            while (item := self._queue.get()) is not None:
                if self._stop.is_set():
                    item.snapshot.release()
                    continue
                try:
                    self._process(item)
                except Exception as error:  # noqa: BLE001 - nothing may kill the trainer
                    if is_transient(error) and not self._stop.is_set():
                        self._server_away(error)
                        for dropped in self._queue.put_back(item):
                            self._drop(dropped)
                        self._stop.wait(backoff)
                        backoff = min(2 * backoff, _MAX_BACKOFF_SECONDS)
                        continue
                    item.snapshot.release()
                    self._count("failed")
                    self._server_back()  # it answered, if only to refuse
                    if not self._stop.is_set():
                        warnings.warn(f"curvd: the checkpoint of step {item.step} of run "
                                      f"{self.run_id} was not measured: {error}", CurvdWarning)
                    continue
                item.snapshot.release()
                self._count("processed")
                self._server_back()
                backoff = 0.1
        finally:
            try:
                if self._upload_process is not None:
                    self._upload_process.close(kill=self._stop.is_set())
            finally:
                with self._cond:
                    self._finished = True
                    self._cond.notify_all()

    def _count(self, key):
        with self._cond:
            self._stats[key] += 1

    def _server_away(self, error):
        if not self._away:
            self._away = True
            warnings.warn(f"curvd: the server at {self._client.target} is unreachable "
                          f"({error.code().name}: {error.details()}); training goes on, and "
                          f"checkpoints are sent once it is back (policy {self.policy})",
                          CurvdWarning)

    def _server_back(self):
        if self._away:
            self._away = False
            log.info("curvd: the server at %s is back", self._client.target)

    def _process(self, item):
        state, extra, data = item.snapshot.ready()
        train_loss = item.train_loss
        if "train_loss" in extra:
            train_loss = float(extra["train_loss"])
        if self._upload_process is not None:
            measurements = self._upload_process.checkpoint(item.step, state, train_loss,
                                                           self._stop, data)
        else:
            measurements = self._measure_here(item.step, state, train_loss)
        for measurement in measurements:
            self._arrive(measurement, {item.step: train_loss})

    def _measure_here(self, step, state, train_loss):
        """The checkpoint's way through the server on this thread: yields each
        finished Measurement."""
        checkpoint = record_checkpoint(
            self._client, self.name, step, safetensors_format.encode_parts(state),
            resources_pb2.CHECKPOINT_FORMAT_SAFETENSORS, train_loss)
        ids = [request_id(self.run_id, step, spec) for spec in self._specs]
        yield from measure(self._client, checkpoint.name, self._specs, ids,
                           self._measurement_timeout, self._stop)

    def _arrive(self, measurement, train_losses):
        rows = results_table.measurement_rows(measurement, self.run_id, train_losses)
        with self._cond:
            if measurement.name in self._arrived_names:
                return
            self._arrived_names.add(measurement.name)
            self._arrived.extend(rows)
            self._cond.notify_all()
        if measurement.state != resources_pb2.Measurement.SUCCEEDED:
            state = resources_pb2.Measurement.State.Name(measurement.state)
            warnings.warn(f"curvd: {kind_name(measurement.spec)} of {measurement.name} "
                          f"{state}: {measurement.error_message}", CurvdWarning)
