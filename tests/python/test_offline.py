"""Tests of the curvd package that need no server: the safetensors writer, the
backpressure policies, measurement specs, model export."""

import hashlib
import json
import struct
import threading
import unittest
import warnings
from unittest import mock

import torch

import curvd
from curvd import blob_upload, model_source, results_table, safetensors_format
from curvd.measurement_specs import build_specs, request_id
from curvd.submit_queue import SubmitQueue
from curvd.upload_process import UploadProcess
from curvd.v1 import curvd_service_pb2 as service_pb2
from curvd.v1 import resources_pb2
from curvd.weights_snapshot import (PinnedBufferPool, WeightsSnapshot, byte_layout,
                                    copy_packed, unpack)


class Unscriptable(torch.nn.Module):
    """forward takes *args, which TorchScript cannot compile; tracing works."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, *args):
        return self.fc(args[0])


class SafetensorsTest(unittest.TestCase):
    def test_layout_is_header_length_json_then_bytes_in_order(self):
        a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
        b = torch.tensor([7, -1], dtype=torch.int64)
        data = safetensors_format.encode({"a": a, "b": b}, metadata={"step": 3})
        (length,) = struct.unpack("<Q", data[:8])
        self.assertEqual(length % 8, 0)
        header = json.loads(data[8:8 + length])
        self.assertEqual(header["a"], {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]})
        self.assertEqual(header["b"], {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]})
        self.assertEqual(header["__metadata__"], {"step": "3"})
        body = data[8 + length:]
        self.assertEqual(len(body), 40)
        self.assertEqual(body[:24], struct.pack("<6f", *range(6)))
        self.assertEqual(body[24:], struct.pack("<2q", 7, -1))

    def test_non_contiguous_bfloat16_bool_and_scalars(self):
        t = torch.arange(6, dtype=torch.float64).reshape(2, 3).t()
        data = safetensors_format.encode({"t": t, "h": torch.ones(2, dtype=torch.bfloat16),
                                          "m": torch.tensor([True, False]),
                                          "s": torch.tensor(2.5)})
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + length])
        body = data[8 + length:]
        self.assertEqual(body[:48], struct.pack("<6d", 0, 3, 1, 4, 2, 5))
        self.assertEqual(header["h"]["dtype"], "BF16")
        self.assertEqual(header["m"]["data_offsets"][1] - header["m"]["data_offsets"][0], 2)
        self.assertEqual(header["s"]["shape"], [])
        self.assertTrue(safetensors_format.looks_like_safetensors(data))

    def test_parts_are_views_of_the_tensors(self):
        a = torch.arange(4, dtype=torch.float32)
        parts = safetensors_format.encode_parts({"a": a})
        self.assertEqual(b"".join(parts), safetensors_format.encode({"a": a}))
        a[0] = 9.0
        self.assertEqual(bytes(parts[1][:4]), struct.pack("<f", 9.0), "no copy of a's bytes")

    def test_refuses_complex(self):
        with self.assertRaisesRegex(TypeError, "cannot hold"):
            safetensors_format.encode({"z": torch.zeros(2, dtype=torch.complex64)})


class BlobChunksTest(unittest.TestCase):
    def test_request_is_the_message_protobuf_builds(self):
        encoded = blob_upload.encode_request([b"ab", memoryview(b"cde")], digest="sha256:x",
                                             size_bytes=5, write_offset=0, finish_write=True)
        self.assertEqual(service_pb2.WriteBlobRequest.FromString(encoded),
                         service_pb2.WriteBlobRequest(digest="sha256:x", size_bytes=5,
                                                      data=b"abcde", finish_write=True))

    def test_chunks_of_pieces_resume_at_an_offset(self):
        pieces = [b"0123", b"", torch.arange(5, dtype=torch.int32).numpy(), b"xyz"]
        whole = b"".join(bytes(memoryview(p)) for p in pieces)
        self.assertEqual(blob_upload.sha256_digest(pieces),
                         "sha256:" + hashlib.sha256(whole).hexdigest())
        views = blob_upload._pieces(pieces)
        with mock.patch.object(blob_upload, "CHUNK_BYTES", 6):
            for offset in (0, 3, 4, 11, len(whole)):
                requests = [service_pb2.WriteBlobRequest.FromString(r) for r in
                            blob_upload._chunks(views, len(whole), "sha256:d", offset)]
                self.assertEqual(b"".join(r.data for r in requests), whole[offset:])
                self.assertEqual([r.write_offset for r in requests],
                                 list(range(offset, len(whole), 6)) or [offset])
                self.assertEqual([r.finish_write for r in requests],
                                 [False] * (len(requests) - 1) + [True])
                self.assertEqual((requests[0].digest, requests[0].size_bytes),
                                 ("sha256:d", len(whole)))
                self.assertEqual([r.digest for r in requests[1:]], [""] * (len(requests) - 1))


class _Event:
    """A CUDA event's query() for the pool, completed or not."""

    def __init__(self, done):
        self.done = done

    def query(self):
        return self.done


class PinnedBufferPoolTest(unittest.TestCase):
    def test_a_set_is_lent_again_only_after_its_copies(self):
        pool = PinnedBufferPool()
        buffers = [torch.empty(12, dtype=torch.uint8)]
        event = _Event(False)
        pool.release(buffers, [event])
        with mock.patch.object(torch, "empty", return_value="new") as allocate:
            self.assertEqual(pool.take([12]), ["new"],
                             "buffers still being copied into are not lent")
            allocate.assert_called_once()
            event.done = True
            self.assertIs(pool.take([12]), buffers)
            self.assertEqual(pool.take([8]), ["new"], "another size")


class SubmitQueueTest(unittest.TestCase):
    def test_coalesce_keeps_the_newest(self):
        q = SubmitQueue("coalesce")
        self.assertEqual(q.put(1), [])
        self.assertEqual(q.put(2), [1])
        self.assertEqual(q.put(3), [2])
        self.assertEqual(q.put_back(0), [0], "a newer pending item wins over a retried one")
        q.close()
        self.assertEqual(q.get(), 3)
        self.assertIsNone(q.get())

    def test_queue_drops_the_oldest(self):
        q = SubmitQueue("queue", capacity=2)
        self.assertEqual([q.put(i) for i in range(4)], [[], [], [0], [1]])
        self.assertEqual(q.put_back(9), [9], "a full queue drops the oldest, the retried one")
        self.assertEqual([q.get(), q.get()], [2, 3])

    def test_block_waits_for_room(self):
        q = SubmitQueue("block", capacity=1)
        q.put(1)
        done = threading.Event()
        threading.Thread(target=lambda: (q.put(2), done.set()), daemon=True).start()
        self.assertFalse(done.wait(0.2), "put must wait while the queue is full")
        self.assertEqual(q.get(), 1)
        self.assertTrue(done.wait(2))
        self.assertEqual(q.get(), 2)

    def test_closed_queue_returns_the_item_as_dropped(self):
        q = SubmitQueue("block", capacity=1)
        q.close()
        self.assertEqual(q.put(5), [5])

    def test_unknown_policy(self):
        with self.assertRaisesRegex(ValueError, "coalesce, queue, block"):
            SubmitQueue("newest")


class SnapshotTest(unittest.TestCase):
    def test_copies_are_independent_of_training(self):
        model = torch.nn.Linear(3, 2)
        snapshot = WeightsSnapshot(model.state_dict(), PinnedBufferPool(),
                                   {"train_loss": torch.tensor(0.5)})
        before = model.weight.detach().clone()
        with torch.no_grad():
            model.weight.add_(1.0)
        state, extra, data = snapshot.ready()
        self.assertTrue(torch.equal(state["weight"], before))
        self.assertEqual(float(extra["train_loss"]), 0.5)
        self.assertEqual(list(state), ["weight", "bias"])
        self.assertIsNone(data, "CPU tensors are cloned one by one, into no common buffer")

    @staticmethod
    def mixed_state(device):
        """Every element size, odd lengths, non-contiguous tensors (a
        transpose, a strided slice, an expanded one) and a scalar."""
        return {"half": torch.arange(3, dtype=torch.float16, device=device),
                "weight": torch.arange(6.0, device=device).reshape(2, 3).t(),
                "every_other": torch.arange(10.0, device=device)[::2],
                "expanded": torch.tensor([3.0], device=device).expand(4),
                "flag": torch.tensor([True, False, True], device=device),
                "count": torch.tensor(7, device=device),
                "double": torch.tensor([1.5, -2.0], dtype=torch.float64, device=device),
                "bytes": torch.arange(5, dtype=torch.uint8, device=device),
                "empty": torch.zeros(0, 4, device=device)}

    def test_packed_bytes_unpack_to_every_tensor_at_an_aligned_offset(self):
        state = self.mixed_state("cpu")
        tensors = list(state.values())
        order, offsets, total = byte_layout(tensors)
        self.assertEqual(sorted(order), list(range(len(tensors))))
        self.assertEqual(total, sum(t.numel() * t.element_size() for t in tensors))
        for tensor, offset in zip(tensors, offsets):
            self.assertEqual(offset % tensor.element_size(), 0)
        sizes = [tensors[i].element_size() for i in order]
        self.assertEqual(sizes, sorted(sizes, reverse=True), "larger elements first")
        buffer = torch.empty(total, dtype=torch.uint8)
        copy_packed(tensors, order, offsets, buffer, chunk_bytes=16)  # several chunks
        for tensor, view in zip(tensors, unpack(buffer, tensors, offsets)):
            self.assertEqual((view.dtype, view.shape), (tensor.dtype, tensor.shape))
            self.assertTrue(torch.equal(view, tensor))
            if view.numel():
                self.assertTrue(buffer.data_ptr() <= view.data_ptr() < buffer.data_ptr() + total,
                                "a view of the buffer, not a copy")


class HandOverTest(unittest.TestCase):
    def test_one_copy_of_the_packed_bytes_writes_what_the_tensors_write(self):
        named = SnapshotTest.mixed_state("cpu")
        tensors = list(named.values())
        order, offsets, total = byte_layout(tensors)
        buffer = torch.empty(total, dtype=torch.uint8)
        copy_packed(tensors, order, offsets, buffer)
        views = unpack(buffer, tensors, offsets)
        state = {list(named)[i]: views[i] for i in order}
        process = UploadProcess("localhost:1", {}, "runs/r", "r", [], 1.0)
        try:
            files = []
            for data in (None, buffer):
                entries = process._hand_over(state, data)  # noqa: SLF001
                mapped = process._buffer[1]  # noqa: SLF001 - the shared file
                files.append((entries, bytes(mapped[:total])))
                mapped[:total] = bytes(total)  # what the second hand-over must overwrite
            self.assertEqual(files[1], files[0])
            self.assertEqual(files[0][1], bytes(buffer.numpy()))
            self.assertEqual([e[0] for e in files[0][0]], list(state))
        finally:
            process.close()


@unittest.skipUnless(torch.cuda.is_available(), "needs CUDA")
class SnapshotOnCudaTest(unittest.TestCase):
    def test_one_buffer_holds_the_state_in_order_after_the_loss(self):
        state = SnapshotTest.mixed_state("cuda")
        loss = torch.tensor(0.25, device="cuda")
        snapshot = WeightsSnapshot(state, PinnedBufferPool(), {"train_loss": loss})
        for tensor in state.values():
            tensor.zero_()  # training goes on while the copy runs
        copied, extra, data = snapshot.ready()
        expected = SnapshotTest.mixed_state("cpu")
        self.assertEqual(set(copied), set(expected))
        for name, tensor in copied.items():
            self.assertTrue(torch.equal(tensor, expected[name]), name)
            self.assertTrue(tensor.is_pinned(), name)
        self.assertEqual(float(extra["train_loss"]), 0.25)
        self.assertEqual(bytes(data.numpy()),
                         b"".join(bytes(safetensors_format.tensor_bytes(t))
                                  for t in copied.values()),
                         "data is the state's bytes back to back in the state's order")
        snapshot.release()
        self.assertIsNone(snapshot.ready()[2])

    def test_an_element_wider_than_the_loss_leaves_no_common_buffer(self):
        state = {"z": torch.ones(2, dtype=torch.complex128, device="cuda"),
                 "w": torch.ones(3, device="cuda")}
        loss = torch.tensor(0.5, device="cuda")
        copied, extra, data = WeightsSnapshot(state, PinnedBufferPool(),
                                              {"train_loss": loss}).ready()
        self.assertIsNone(data, "the loss lies between the state's tensors")
        self.assertEqual(float(extra["train_loss"]), 0.5)
        self.assertTrue(torch.equal(copied["z"], state["z"].cpu()))

    def test_a_cpu_tensor_beside_cuda_ones_leaves_no_common_buffer(self):
        state = {"a": torch.ones(3, device="cuda"), "b": torch.ones(2)}
        copied, _, data = WeightsSnapshot(state, PinnedBufferPool()).ready()
        self.assertIsNone(data)
        self.assertEqual({k: v.tolist() for k, v in copied.items()},
                         {"a": [1.0] * 3, "b": [1.0] * 2})


class SpecsTest(unittest.TestCase):
    def test_kinds_options_and_plans(self):
        specs = build_specs(["sharpness", {"hessian_trace": {"max_probes": 50}},
                             curvd.plan("trace_h3", sharpness={"top_k": 2})],
                            "builtin://x", "mse", {"precision": "PRECISION_FLOAT64"})
        self.assertEqual([s.WhichOneof("kind") for s in specs],
                         ["sharpness", "hessian_trace", "plan"])
        self.assertEqual(specs[1].hessian_trace.max_probes, 50)
        self.assertEqual(specs[2].plan.sharpness.top_k, 2)
        self.assertTrue(specs[2].plan.HasField("trace_h3"))
        for spec in specs:
            self.assertEqual(spec.shard_uri, "builtin://x")
            self.assertEqual(spec.loss, 2)
            self.assertEqual(spec.precision, 2)
        self.assertNotEqual(request_id("r", 1, specs[0]), request_id("r", 1, specs[1]))
        self.assertEqual(request_id("r", 1, specs[0]), request_id("r", 1, build_specs(
            "sharpness", "builtin://x", "mse", {"precision": "PRECISION_FLOAT64"})[0]))

    def test_unknown_kind_option_and_loss(self):
        with self.assertRaisesRegex(ValueError, "unknown kind 'sharpnes'.*sharpness, hessian_trace"):
            build_specs(["sharpnes"], "builtin://x", "mse")
        with self.assertRaisesRegex(ValueError, "measure sharpness.*top_kk.*its options: top_k"):
            build_specs([{"sharpness": {"top_kk": 2}}], "builtin://x", "mse")
        with self.assertRaisesRegex(ValueError, "loss 'l1'"):
            build_specs(["sharpness"], "builtin://x", "l1")
        with self.assertRaisesRegex(ValueError, "plan cannot hold kind 'plan'"):
            curvd.plan("plan")


class ResultsTableTest(unittest.TestCase):
    def test_every_kind_has_a_headline(self):
        kinds = [f.name for f in
                 resources_pb2.Measurement.DESCRIPTOR.oneofs_by_name["result"].fields]
        self.assertIn("adaptive_trace", kinds)
        self.assertEqual(sorted(set(kinds) - {"plan"}), sorted(results_table.HEADLINES))

    def test_adaptive_trace_row_gives_the_trace_and_its_standard_error(self):
        m = resources_pb2.Measurement(
            name="runs/r/checkpoints/7/measurements/a",
            state=resources_pb2.Measurement.SUCCEEDED)
        m.spec.adaptive_trace.target_standard_error = 0.5
        m.adaptive_trace.trace = 12.5
        m.adaptive_trace.standard_error = 0.25
        m.adaptive_trace.method = "hutchinson"
        m.adaptive_trace.hvps = 108
        [row] = results_table.measurement_rows(m, "r", {7: 1.5})
        self.assertEqual((row["kind"], row["step"], row["train_loss"]),
                         ("adaptive_trace", 7, 1.5))
        self.assertEqual((row["value"], row["standard_error"]), (12.5, 0.25))
        self.assertEqual(row["adaptive_trace.method"], "hutchinson")
        self.assertEqual(row["adaptive_trace.hvps"], 108)
        # Not yet succeeded: no value.
        m.state = resources_pb2.Measurement.RUNNING
        [row] = results_table.measurement_rows(m, "r", {})
        self.assertIsNone(row["value"])


class ExportTest(unittest.TestCase):
    def test_script_then_trace_then_a_clear_error(self):
        _, how = model_source.export_module(torch.nn.Linear(4, 2))
        self.assertEqual(how, "scripted")
        with self.assertRaisesRegex(curvd.ModelExportError,
                                    "cannot compile Unscriptable.*example_input=.*torch.jit.save"):
            model_source.export_module(Unscriptable())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            archive, how = model_source.export_module(Unscriptable(), torch.randn(1, 4))
        self.assertEqual(how, "traced")
        self.assertTrue(archive.startswith(model_source.ZIP_MAGIC))
        self.assertTrue(any("traced, not scripted" in str(w.message) for w in caught))
        with self.assertRaisesRegex(curvd.ModelExportError, "neither scripted .* nor traced"):
            model_source.export_module(Unscriptable(), torch.randn(1, 5))

    def test_zoo_spec_and_bad_inputs(self):
        spec, how = model_source.model_spec("mlp:8,16,2:relu", upload=None)
        self.assertEqual((how, list(spec.zoo.layer_widths), spec.zoo.activation),
                         ("zoo", [8, 16, 2], "relu"))
        with self.assertRaisesRegex(ValueError, "not ARCH:WIDTHS"):
            model_source.model_spec("mlp:8,x", upload=None)
        with self.assertRaisesRegex(TypeError, "not an nn.Module"):
            model_source.model_spec(42, upload=None)


if __name__ == "__main__":
    unittest.main()
