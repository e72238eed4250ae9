#!/usr/bin/env python3
"""Ways to compute one Hessian-vector product, timed side by side (issue 17).

For each workload: the FLOPs of one HVP (torch.utils.flop_counter, where this
PyTorch has it) and the time of one product of the whole shard's loss by

  double backward      grad(grad(L, create_graph), v) per micro-batch: the
                       bench's PyTorch row and curvd's first product
  retained graph       the second backward only, through graphs kept from an
                       earlier product: what curvd's later probes cost
  retained, CUDA graph the same backward recorded once in a CUDA graph and
                       replayed (torch.cuda.CUDAGraph): the launch cost removed
  retained, K abreast   K products at once in one CUDA graph, each through
                       graphs of its own built on a stream of its own (autograd
                       runs a backward node on its forward's stream), so that
                       small kernels of K probes overlap; ms per product
  forward-over-reverse torch.func.jvp of torch.func.grad per micro-batch

at several micro-batch sizes, in IEEE float32 and in TF32, each with its
relative error against a float64 double backward of the same v. Prints one
Markdown table; `--json` writes the rows. A study for ADRs, not a target.

  python3 bench/python/hvp_modes.py --workloads W2,W3 [--device cuda:0]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline as bl  # noqa: E402
import workloads as wl  # noqa: E402


def set_tf32(on: bool) -> None:
    if not on:
        bl.set_strict_fp32()
        return
    if hasattr(torch.backends, "fp32_precision"):
        torch.backends.fp32_precision = "tf32"
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def batches(n: int, size: int):
    size = n if size <= 0 else min(size, n)
    return [(s, min(size, n - s)) for s in range(0, n, size)]


class Problem:
    """The workload's model and shard on `device` in `dtype`."""

    def __init__(self, w: wl.Workload, device, dtype):
        self.model = w.model.to(device=device, dtype=dtype)
        self.x = w.inputs.to(device=device, dtype=dtype)
        self.y = w.targets.to(device)
        self.params = [p for p in self.model.parameters()]
        self.n = self.x.shape[0]

    def loss(self, s, c):
        return F.cross_entropy(self.model(self.x[s:s + c]), self.y[s:s + c]) * (c / self.n)

    def unflat(self, v):
        out, i = [], 0
        for p in self.params:
            out.append(v[i:i + p.numel()].view_as(p))
            i += p.numel()
        return out

    def double_backward(self, v, mb):
        vs = self.unflat(v)
        acc = [torch.zeros_like(p) for p in self.params]
        for s, c in batches(self.n, mb):
            g = torch.autograd.grad(self.loss(s, c), self.params, create_graph=True)
            hv = torch.autograd.grad(g, self.params, grad_outputs=vs)
            for a, h in zip(acc, hv):
                a.add_(h)
        return torch.cat([a.reshape(-1) for a in acc])

    def retained(self, mb):
        """Graphs of every micro-batch kept; returns product(v) = backward only."""
        graphs = [torch.autograd.grad(self.loss(s, c), self.params, create_graph=True)
                  for s, c in batches(self.n, mb)]

        def product(v):
            vs = self.unflat(v)
            acc = None
            for g in graphs:
                hv = torch.autograd.grad(g, self.params, grad_outputs=vs, retain_graph=True)
                flat = torch.cat([h.reshape(-1) for h in hv])
                acc = flat if acc is None else acc + flat
            return acc
        return product

    def forward_over_reverse(self, v, mb):
        from torch.func import functional_call, grad, jvp
        names = [n for n, _ in self.model.named_parameters()]
        primals = tuple(self.params)
        tangents = tuple(t.detach() for t in self.unflat(v))
        acc = None
        for s, c in batches(self.n, mb):
            def loss_of(*ps):
                out = functional_call(self.model, dict(zip(names, ps)), (self.x[s:s + c],))
                return F.cross_entropy(out, self.y[s:s + c]) * (c / self.n)
            _, hv = jvp(lambda *ps: grad(loss_of, argnums=tuple(range(len(ps))))(*ps),
                        primals, tangents)
            flat = torch.cat([h.reshape(-1) for h in hv])
            acc = flat if acc is None else acc + flat
        return acc


def time_it(fn, device, budget=2.0, warmup=3, max_repeats=50):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < max_repeats):
        torch.cuda.synchronize(device) if device.type == "cuda" else None
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize(device) if device.type == "cuda" else None
        times.append(time.perf_counter() - t)
    times.sort()
    return 1e3 * times[len(times) // 2]


def hvp_flops(prob, v, mb):
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    with FlopCounterMode(display=False) as counter:
        prob.double_backward(v, mb)
    return counter.get_total_flops()


def cuda_graph_product(product, v_static, device):
    """Records product(v_static) in a CUDA graph; returns replay() -> output."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            product(v_static)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = product(v_static)

    def replay():
        graph.replay()
        return out
    return replay


def abreast_product(prob, mb, k, device):
    """K retained products side by side in one CUDA graph; returns replay()."""
    current = torch.cuda.current_stream(device)
    streams = [torch.cuda.Stream(device) for _ in range(k)]
    n = sum(p.numel() for p in prob.params)
    inputs = [torch.randn(n, device=device) for _ in range(k)]
    products = []
    for stream in streams:
        stream.wait_stream(current)
        with torch.cuda.stream(stream):
            products.append(prob.retained(mb))
    for _ in range(2):
        for stream, product, v in zip(streams, products, inputs):
            with torch.cuda.stream(stream):
                product(v)
    for stream in streams:
        current.wait_stream(stream)
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        capture = torch.cuda.current_stream(device)
        outs = []
        for stream, product, v in zip(streams, products, inputs):
            stream.wait_stream(capture)
            with torch.cuda.stream(stream):
                outs.append(product(v))
        for stream in streams:
            capture.wait_stream(stream)

    def replay():
        graph.replay()
        return outs[0]
    return replay, inputs[0]


def study(w, device, micro_batches, rows):
    set_tf32(False)
    ref = Problem(w, device, torch.float64)
    g = torch.Generator().manual_seed(5)
    v64 = torch.randn(sum(p.numel() for p in ref.params), generator=g, dtype=torch.float64).to(device)
    h64 = ref.double_backward(v64, w.micro_batch_size)
    del ref
    prob = Problem(w, device, torch.float32)
    v = v64.to(torch.float32)
    flops = hvp_flops(prob, v, w.micro_batch_size)

    def err(h):
        return float((h.double() - h64).norm() / h64.norm())

    def add(mode, precision, mb, fn, note=""):
        try:
            h = fn()
            e = err(h)
            ms = time_it(fn, device)
        except Exception as ex:  # noqa: BLE001 (a study: report what failed)
            rows.append(dict(workload=w.name, mode=mode, precision=precision, micro_batch=mb,
                             ms=None, rel_err=None, note=f"failed: {type(ex).__name__}: {str(ex)[:80]}"))
            torch.cuda.empty_cache() if device.type == "cuda" else None
            return
        rows.append(dict(workload=w.name, mode=mode, precision=precision, micro_batch=mb,
                         ms=ms, rel_err=e, gflop=None if flops is None else flops / 1e9,
                         note=note))

    for tf32 in (False, True):
        set_tf32(tf32)
        precision = "tf32" if tf32 else "ieee"
        for mb in micro_batches:
            add("double backward", precision, mb, lambda: prob.double_backward(v, mb))
            product = prob.retained(mb)
            add("retained graph", precision, mb, lambda: product(v))
            if device.type == "cuda":
                try:
                    replay = cuda_graph_product(product, v, device)
                    add("retained, CUDA graph", precision, mb, replay)
                except Exception as ex:  # noqa: BLE001
                    rows.append(dict(workload=w.name, mode="retained, CUDA graph", precision=precision,
                                     micro_batch=mb, ms=None, rel_err=None,
                                     note=f"capture failed: {str(ex)[:80]}"))
            del product
            if device.type == "cuda":
                for k in (2, 4):
                    try:
                        replay, v_in = abreast_product(prob, mb, k, device)
                        v_in.copy_(v)
                        h = replay().clone()
                        ms = time_it(replay, device) / k
                        rows.append(dict(workload=w.name, mode=f"retained, {k} abreast",
                                         precision=precision, micro_batch=mb, ms=ms,
                                         rel_err=err(h), gflop=None if flops is None else flops / 1e9,
                                         note="ms per product"))
                        del replay, v_in
                    except Exception as ex:  # noqa: BLE001
                        rows.append(dict(workload=w.name, mode=f"retained, {k} abreast",
                                         precision=precision, micro_batch=mb, ms=None, rel_err=None,
                                         note=f"failed: {type(ex).__name__}: {str(ex)[:80]}"))
                    torch.cuda.empty_cache()
            add("forward-over-reverse", precision, mb, lambda: prob.forward_over_reverse(v, mb))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    set_tf32(False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default="W2,W3")
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--micro_batches", default="", help="comma list; default: the workload's and neighbours")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    device = torch.device(args.device)
    rows = []
    for w in wl.all_workloads(args.smoke):
        if w is None or w.name not in args.workloads.split(","):
            continue
        mbs = [int(m) for m in args.micro_batches.split(",") if m] or sorted(
            {w.micro_batch_size, 0} | ({256, 1024} if w.micro_batch_size else set()))
        study(w, device, mbs, rows)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n{name}, PyTorch {torch.__version__}\n")
    print("| workload | mode | precision | micro-batch | ms | rel. error vs float64 | GFLOP (double backward) | note |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        ms = "—" if r["ms"] is None else f"{r['ms']:.2f}"
        e = "—" if r["rel_err"] is None else f"{r['rel_err']:.1e}"
        gf = "n/a" if r.get("gflop") is None else f"{r['gflop']:.1f}"
        print(f"| {r['workload']} | {r['mode']} | {r['precision']} | {r['micro_batch'] or 'all'} | {ms} | {e} | {gf} | {r['note']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(device=name, torch=torch.__version__, rows=rows), indent=1))


if __name__ == "__main__":
    main()
