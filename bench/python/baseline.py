#!/usr/bin/env python3
"""Plain-PyTorch baseline of curvd's benchmark (issue 4).

Exports W1, W1F, W2 and W3 (see workloads.py) for curvd_bench, then times on the same device
and data what a Python user would write by hand: the full-shard gradient, one
full-shard Hessian-vector product by double backward, 100 HVPs (the cost of 100
Hutchinson probes without graph reuse), and Lanczos for the top 5 eigenvalues to
relative residual 1e-4 with full reorthogonalisation (the same algorithm and
stopping rule as curvd's). Micro-batches are weighted by their size, so every
quantity is that of the whole shard. For the LLC (issue 12), on the workloads
with an LLC run in the manifest: one forward and backward of a sampler batch,
and one chain of SGLD as a Python loop (devinterp's update, per parameter
tensor, loss.item() every step) for as many steps as curvd's chains take.
For the GOP rows (issue 14), on the workloads with a GOP run in the
manifest and at each N of its ladder: the empirical Fisher of curvd's subset
of N samples as a careful researcher writes it (torch.func's vmap over grad
of a functional_call, chunked; functorch's on PyTorch 1.13), the Gram matrices
in float64, eigvalsh and every metric, per layer; and one plain full-shard
gradient over the same N samples; with the device's peak memory. The FLOPs of
one gradient and one HVP as torch.utils.flop_counter counts them (null on a
PyTorch without it), for report.py's roofline column.

Method: CUDA synchronisation around every timed region (perf_counter between
two torch.cuda.synchronize()), warm-up runs first, the median of repeats. TF32
is off, as in curvd's engine, so both compute in IEEE float32.

Usage: baseline.py --out DIR [--device cuda|cpu] [--smoke] [--workloads W1,W3]
                   [--gop on|off|only]
Writes DIR/manifest.json, DIR/W*.pt, DIR/W*.safetensors, DIR/W1.zoo.safetensors
(for curvd_bench),
DIR/W*.check.safetensors (a probe vector v, H v and the gradient, which
curvd_bench compares with its own) and DIR/baseline.json (the timings).
"""
import argparse
import contextlib
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workloads as wl  # noqa: E402


def set_strict_fp32() -> str:
    """Turns TF32 off for matmuls and convolutions; returns how."""
    if hasattr(torch.backends, "fp32_precision"):
        # PyTorch >= 2.9: the new API. Reading a legacy allow_tf32 flag after
        # setting these raises, so only the new ones are touched.
        torch.backends.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        return ("fp32_precision: matmul "
                f"{torch.backends.cuda.matmul.fp32_precision}, conv "
                f"{torch.backends.cudnn.conv.fp32_precision}")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return "allow_tf32=False (cuBLAS, cuDNN)"


@contextlib.contextmanager
def tf32_enabled():
    """TF32 for matmuls and convolutions inside, strict float32 again after."""
    if hasattr(torch.backends, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        set_strict_fp32()


class Timer:
    """Warm-up, then repeats until `max_repeats`, or `min_repeats` and
    `budget_s` seconds of repeats; each repeat between two device syncs."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object], warmup: int, min_repeats: int,
                 max_repeats: int, budget_s: float) -> Dict:
        for _ in range(warmup):
            fn()
        self.sync()
        times: List[float] = []
        start = time.perf_counter()
        result = None
        while len(times) < max_repeats and (
                len(times) < min_repeats or time.perf_counter() - start < budget_s):
            self.sync()
            t0 = time.perf_counter()
            result = fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return {"median_ms": 1e3 * statistics.median(times),
                "times_ms": [1e3 * t for t in times],
                "warmup": warmup, "repeats": len(times), "result": result}


class Problem:
    """The mean cross-entropy of a workload's shard on `device`, with its
    gradient and Hessian-vector products on flat parameter vectors."""

    def __init__(self, w: wl.Workload, device: torch.device):
        self.model = w.model.to(device).eval()
        self.params = [p for p in self.model.parameters()]
        for p in self.params:
            p.requires_grad_(True)
        self.numels = [p.numel() for p in self.params]
        self.n = sum(self.numels)
        self.device = device
        self.inputs = w.inputs.to(device)
        self.targets = w.targets.to(device)
        total = w.num_samples
        self.batches = [(self.inputs[s:s + c], self.targets[s:s + c], c / total)
                        for s, c in w.batches()]

    def _flat(self, parts) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in parts])

    def loss(self) -> float:
        with torch.no_grad():
            return sum(wt * F.cross_entropy(self.model(x), y).item()
                       for x, y, wt in self.batches)

    def gradient(self) -> torch.Tensor:
        total = torch.zeros(self.n, device=self.device)
        for x, y, wt in self.batches:
            grads = torch.autograd.grad(F.cross_entropy(self.model(x), y),
                                        self.params)
            total.add_(self._flat(grads), alpha=wt)
        return total

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        parts = [t.view_as(p) for t, p in zip(v.split(self.numels), self.params)]
        total = torch.zeros(self.n, device=self.device)
        for x, y, wt in self.batches:
            grads = torch.autograd.grad(F.cross_entropy(self.model(x), y),
                                        self.params, create_graph=True)
            hv = torch.autograd.grad(grads, self.params, grad_outputs=parts)
            total.add_(self._flat(hv), alpha=wt)
        return total


def hutchinson_hvps(problem: Problem, probes: int, seed: int) -> float:
    """`probes` Rademacher probes, each a full HVP: the baseline of Hutchinson."""
    g = torch.Generator(device=problem.device)
    g.manual_seed(seed)
    acc = torch.zeros((), device=problem.device)
    for _ in range(probes):
        v = torch.randint(0, 2, (problem.n,), generator=g,
                          device=problem.device).to(torch.float32) * 2 - 1
        acc += torch.dot(v, problem.hvp(v))
    return acc.item() / probes


def forward_backward(problem: Problem, inputs: torch.Tensor,
                     targets: torch.Tensor):
    """One plain forward and backward of a batch: the gradients of its mean
    loss by torch.autograd.grad (what one chain's sampler step computes)."""
    return torch.autograd.grad(
        F.cross_entropy(problem.model(inputs), targets), problem.params)


def sgld_chain(problem: Problem, run: Dict, step_size: float,
               localization: float, seed: int) -> List[float]:
    """One chain of SGLD from the model's parameters w*, as a Python loop the
    way researchers write it (devinterp's SGLD): per step the next batch of a
    shuffled epoch (drop_last, data already on the device), loss.backward(),
    then per parameter tensor w <- w - (eps/2)(n_beta g + gamma (w - w*))
    + N(0, eps I), and loss.item() recorded. burn_in + draws steps; the
    parameters are w* again on return. Returns the step losses."""
    device = problem.device
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    params = problem.params
    center = [p.detach().clone() for p in params]
    n, batch = problem.inputs.shape[0], run["batch_size"]
    n_beta, noise_scale = run["n_beta"], step_size ** 0.5
    order, position = torch.randperm(n, generator=g, device=device), 0
    losses: List[float] = []
    try:
        for _ in range(run["burn_in"] + run["draws"]):
            if position + batch > n:
                order, position = torch.randperm(n, generator=g, device=device), 0
            take = order[position:position + batch]
            position += batch
            for p in params:
                p.grad = None
            loss = F.cross_entropy(problem.model(problem.inputs[take]),
                                   problem.targets[take])
            loss.backward()
            with torch.no_grad():
                for p, c in zip(params, center):
                    dw = p.grad * n_beta
                    dw.add_(p - c, alpha=localization)
                    p.add_(dw, alpha=-0.5 * step_size)
                    p.add_(torch.randn(p.shape, generator=g, device=device),
                           alpha=noise_scale)
            losses.append(loss.item())
    finally:
        with torch.no_grad():
            for p, c in zip(params, center):
                p.copy_(c)
                p.grad = None
    return losses


def time_llc(problem: Problem, run: Dict, settings: Dict, timer: Timer,
             quick: Dict, slow: Dict) -> Dict:
    """The PyTorch side of the LLC rows: one forward and backward of a batch
    of run["batch_size"] samples, and one SGLD chain (sgld_chain) of curvd's
    steps, with its steps per second and its estimate n_beta (mean of the
    step losses - L(w*)); `run` (the manifest's) recorded beside them."""
    g = torch.Generator()
    g.manual_seed(settings["llc_seed"])
    take = torch.randperm(problem.inputs.shape[0], generator=g)[:run["batch_size"]]
    take = take.to(problem.device)
    x, y = problem.inputs[take], problem.targets[take]
    fwd_bwd = timer(lambda: forward_backward(problem, x, y), **quick)
    fwd_bwd.pop("result")
    chain = timer(lambda: sgld_chain(problem, run, settings["llc_step_size"],
                                     settings["llc_localization"],
                                     settings["llc_seed"]), **slow)
    losses = chain.pop("result")
    steps = run["burn_in"] + run["draws"]
    draws = losses[run["burn_in"]:]
    chain.update({
        "chains": 1, "steps": steps, "burn_in": run["burn_in"],
        "batch_size": run["batch_size"], "n_beta": run["n_beta"],
        "step_ms": chain["median_ms"] / steps,
        "steps_per_second": steps / (chain["median_ms"] / 1e3),
        "llc": run["n_beta"] * (sum(draws) / len(draws) - problem.loss()),
    })
    return {"run": run, "forward_backward": fwd_bwd, "sgld": chain}


def lanczos(hvp: Callable[[torch.Tensor], torch.Tensor], n: int,
            device: torch.device, top_k: int, tolerance: float,
            max_iterations: int, seed: int) -> Dict:
    """Lanczos with full reorthogonalisation (classical Gram-Schmidt twice) and
    curvd's stopping rule: Ritz pair i converged when |beta_m s_mi| <= tol *
    max(|theta_i|, eps^(2/3) ||T_m||)."""
    dtype = torch.float32
    eps = torch.finfo(dtype).eps
    steps = min(max_iterations, n)
    g = torch.Generator()
    g.manual_seed(seed)
    basis = torch.empty(steps + 1, n, device=device, dtype=dtype)
    start = torch.randn(n, generator=g, dtype=torch.float64).to(device, dtype)
    basis[0] = start / start.norm()
    alphas: List[float] = []
    betas: List[float] = []
    values: List[float] = []
    residuals: List[float] = []
    converged = False
    m = 0
    for step in range(steps):
        q = basis[step]
        w = hvp(q)
        alphas.append(torch.dot(q, w).item())
        done = basis[:step + 1]
        for _ in range(2):
            w = w - done.t().mv(done.mv(w))
        beta = w.norm().item()
        m = step + 1
        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            t += torch.diag(off, 1) + torch.diag(off, -1)
        evals, evecs = torch.linalg.eigh(t)
        t_norm = max(abs(evals[0].item()), abs(evals[-1].item()))
        breakdown = m == n or beta <= 100 * eps * t_norm
        residual_beta = 0.0 if breakdown else beta
        floor = eps ** (2.0 / 3.0) * t_norm
        k = min(top_k, m)
        values = [evals[m - 1 - i].item() for i in range(k)]
        residuals = [abs(residual_beta * evecs[m - 1, m - 1 - i].item())
                     for i in range(k)]
        converged = m >= top_k and all(
            r <= tolerance * max(abs(v), floor) for v, r in zip(values, residuals))
        if converged or breakdown:
            break
        betas.append(beta)
        basis[m] = w / beta
    return {"values": values, "residuals": residuals, "iterations": m,
            "hvps": m, "converged": converged}


def functional_transforms():
    """(vmap, grad, functional_call): torch.func's (PyTorch >= 2.0), else
    functorch's vmap and grad with torch.nn.utils.stateless.functional_call
    (PyTorch 1.13); None when neither exists."""
    try:
        from torch.func import functional_call, grad, vmap
        return vmap, grad, functional_call
    except ImportError:
        pass
    try:
        from functorch import grad, vmap
        from torch.nn.utils.stateless import functional_call
        return vmap, grad, functional_call
    except ImportError:
        return None


def gop_sample_indices(num_shard: int, num_samples: int, seed: int) -> torch.Tensor:
    """curvd's subset (core GopSampleIndices): the first num_samples of a
    randperm of the shard by a CPU generator seeded with `seed`, sorted."""
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randperm(num_shard, generator=g)[:num_samples].sort().values


def indices_checksum(indices: List[int]) -> List[int]:
    """[sum of the indices, sum of (position + 1) * index]: equal on both
    sides when they measured the same samples in the same order."""
    return [sum(indices), sum((k + 1) * i for k, i in enumerate(indices))]


def parameter_groups(model: torch.nn.Module) -> List[tuple]:
    """(name, offset, size) of each module's parameters in the flat vector:
    consecutive parameters whose names agree up to their last '.' (curvd's
    GopGroups, ADR 0013)."""
    groups: List[list] = []
    offset = 0
    for name, p in model.named_parameters():
        module = name.rsplit(".", 1)[0] if "." in name else name
        if groups and groups[-1][0] == module and "." in name:
            groups[-1][2] += p.numel()
        else:
            groups.append([module, offset, p.numel()])
        offset += p.numel()
    return [tuple(g) for g in groups]


def per_sample_gradients(problem: Problem, take: torch.Tensor, chunk: int,
                         transforms) -> torch.Tensor:
    """G [N, M] float32: row i the gradient of sample take[i]'s loss, by
    vmap over grad of a functional_call of the model on one sample, `chunk`
    samples per vmap call."""
    vmap, grad, functional_call = transforms
    model = problem.model
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def sample_loss(p, x, y):
        logits = functional_call(model, {**p, **buffers}, (x.unsqueeze(0),))
        return F.cross_entropy(logits, y.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    n = take.numel()
    out = torch.empty(n, problem.n, device=problem.device)
    for s in range(0, n, chunk):
        rows = take[s:s + chunk]
        grads = per_sample(params, problem.inputs[rows], problem.targets[rows])
        torch.cat([grads[k].reshape(rows.numel(), -1) for k in params], dim=1,
                  out=out[s:s + rows.numel()])
    return out


def spectrum_metrics(gram: torch.Tensor, size: int, top_k: int) -> Dict:
    """The GOP metrics of curvd's GopMetrics from the normalised Gram matrix
    `gram` (K / N, float64) of a matrix of `size` parameters: eigvalsh, the
    rank rule lambda > N eps_float64 lambda_max, and the arithmetic on the
    device, one transfer at the end."""
    lam = torch.linalg.eigvalsh(gram).flip(0)
    n = lam.numel()
    tol = n * torch.finfo(torch.float64).eps * lam[0].clamp(min=0)
    nz = lam[lam > tol]
    trace, fro = gram.trace(), gram.norm()
    p = nz / nz.sum()
    mean_all = trace / size
    top = lam[:top_k]
    scalars = torch.stack([
        trace, fro, lam[0], lam.abs().sum(), tol,
        torch.exp(-(p * p.log()).sum()), fro ** 2 / lam[0] ** 2,
        nz[0] / nz[-1], nz.log().sum(), nz.max(), nz.min(), nz.mean(),
        nz.std(unbiased=False), mean_all,
        (fro ** 2 / size - mean_all ** 2).clamp(min=0).sqrt()]).tolist()
    keys = ["trace", "frobenius_norm", "spectral_norm", "nuclear_norm",
            "rank_tolerance", "effective_rank", "stable_rank",
            "condition_number", "log_pseudo_determinant", "max_nonzero",
            "min_nonzero", "mean_nonzero", "std_nonzero", "mean_all",
            "std_all"]
    out = dict(zip(keys, scalars))
    out.update({"rank": int(nz.numel()), "top_eigenvalues": top.tolist(),
                "explained_variance": (top.cumsum(0) / trace).tolist()})
    return out


def gop_baseline(problem: Problem, take: torch.Tensor, groups: List[tuple],
                 chunk: int, top_k: int, transforms, phases: Dict) -> Dict:
    """The empirical Fisher's GOP of the samples `take` as a careful
    researcher writes it in plain PyTorch: per_sample_gradients (float32),
    then per parameter group its Gram matrix G_l G_l^T in float64 (columns in
    blocks of at most 2^27 float64 entries), the whole-model Gram their sum,
    and for each spectrum_metrics of K / N; the trace shares and the
    per-sample gradient norms' mean and quantiles. `phases` gets the ms of
    the per-sample gradients, the Gram matrices and the rest (eigvalsh and
    the metrics), a device synchronisation after each of the first two."""
    def lap(key: str, since: float) -> float:
        if problem.device.type == "cuda":
            torch.cuda.synchronize(problem.device)
        now = time.perf_counter()
        phases[key] = 1e3 * (now - since)
        return now

    start = time.perf_counter()
    g = per_sample_gradients(problem, take, chunk, transforms)
    start = lap("per_sample_gradients_ms", start)
    n = take.numel()
    block = max(1, (1 << 27) // n)
    grams = []
    for _, offset, size in groups:
        k = torch.zeros(n, n, dtype=torch.float64, device=problem.device)
        for s in range(offset, offset + size, block):
            part = g[:, s:min(offset + size, s + block)].double()
            k.addmm_(part, part.t())
        grams.append(k)
    del g
    whole = torch.stack(grams).sum(0)
    start = lap("gram_ms", start)
    result = spectrum_metrics(whole / n, problem.n, top_k)
    result["layers"] = []
    for (name, _, size), k in zip(groups, grams):
        layer = spectrum_metrics(k / n, size, top_k)
        layer.update({"name": name, "size": size,
                      "trace_share": layer["trace"] / result["trace"]})
        result["layers"].append(layer)
    norms = whole.diagonal().sqrt()
    levels = [0.0, 0.1, 0.5, 0.9, 1.0]
    result["gradient_norms"] = {
        "mean": norms.mean().item(), "quantile_levels": levels,
        "quantiles": torch.quantile(
            norms, torch.tensor(levels, dtype=norms.dtype,
                                device=norms.device)).tolist()}
    lap("eigvalsh_and_metrics_ms", start)
    return result


def time_gop(w: wl.Workload, problem: Problem, run: Dict, timer: Timer,
             plan: Dict, transforms) -> Dict:
    """The PyTorch side of the GOP rows, at every N of run["ladder"]: the
    gop_baseline of curvd's subset of N samples and one plain full-shard
    gradient over the same N samples (the workload's micro-batches), each
    with the device's peak memory during it (max_memory_allocated after a
    reset; null on the CPU) and what was allocated before it (model, shard).
    One untimed gop_baseline at the smallest N first; the phases of each N's
    last timed run (gop_baseline's) beside it."""
    chunk = max(1, min(run["num_samples"], (1 << 29) // problem.n))
    groups = parameter_groups(problem.model)
    cuda = problem.device.type == "cuda"
    out = {"run": run, "chunk": chunk, "num_groups": len(groups), "runs": {}}

    def measured(fn) -> Dict:
        if cuda:
            torch.cuda.synchronize(problem.device)
            before = torch.cuda.memory_allocated(problem.device)
            torch.cuda.reset_peak_memory_stats(problem.device)
        record = timer(fn, **plan)
        record["allocated_before_bytes"] = before if cuda else None
        record["peak_memory_bytes"] = (
            torch.cuda.max_memory_allocated(problem.device) if cuda else None)
        return record

    def take_of(n: int) -> torch.Tensor:
        return gop_sample_indices(w.num_samples, n, run["seed"])

    gop_baseline(problem, take_of(run["ladder"][-1]).to(problem.device), groups,
                 chunk, run["top_k"], transforms, {})
    for n in run["ladder"]:
        take = take_of(n)
        on_device = take.to(problem.device)
        phases: Dict = {}
        record = measured(lambda: gop_baseline(problem, on_device, groups, chunk,
                                               run["top_k"], transforms, phases))
        record.update(record.pop("result"))
        record["phases_of_last_run"] = phases
        record["num_samples"] = n
        record["indices_checksum"] = indices_checksum(take.tolist())
        subset = Problem(dataclasses.replace(w, inputs=w.inputs[take],
                                             targets=w.targets[take]),
                         problem.device)
        gradient = measured(subset.gradient)
        gradient.pop("result")
        record["gradient"] = gradient
        out["runs"][str(n)] = record
        del subset
    return out


def count_flops(fn: Callable[[], object]) -> Optional[int]:
    """The FLOPs of one call of `fn` as PyTorch counts them
    (torch.utils.flop_counter.FlopCounterMode: matmuls, convolutions and
    attention, not elementwise kernels), or None where it is missing (PyTorch
    < 2.1)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def print_gop(name: str, gop: Dict) -> None:
    if "error" in gop:
        print(f"[baseline] {name}: GOP failed: {gop['error']}", flush=True)
        return
    for n, row in gop["runs"].items():
        print(f"[baseline] {name}: GOP N={n}: {row['median_ms']:.1f} ms "
              f"(full-shard gradient over the N {row['gradient']['median_ms']:.2f} ms), "
              f"top {row['top_eigenvalues'][:1]}, trace {row['trace']:.6g}, "
              f"peak {row['peak_memory_bytes']} B", flush=True)


def time_hessian_and_llc(args, w: wl.Workload, problem: Problem, entry: Dict,
                         settings: Dict, timer: Timer, quick: Dict, slow: Dict,
                         r: Dict) -> None:
    """The rows of issues 4, 5 and 12 into `r`: gradient, HVP (and the check
    file), 100 HVPs, Lanczos and, with an LLC run, time_llc."""
    probes = settings["hutchinson_probes"]
    device = problem.device
    r["gradient"] = timer(problem.gradient, **quick)
    g = torch.Generator()
    g.manual_seed(7)
    v = torch.randn(problem.n, generator=g).to(device)
    r["hvp"] = timer(lambda: problem.hvp(v), **quick)
    if device.type == "cuda":
        # Issue 17's TF32 row: the same double backward with TF32 on.
        with tf32_enabled():
            r["hvp_tf32"] = timer(lambda: problem.hvp(v), **quick)
        hv_tf32 = r["hvp_tf32"].pop("result")
        r["hvp_tf32"]["rel_diff_vs_ieee"] = float(
            (hv_tf32 - r["hvp"]["result"]).norm() / r["hvp"]["result"].norm())
    # What curvd_bench compares its own gradient and H v with.
    wl.write_safetensors(args.out / f"{w.name}.check.safetensors", {
        "v": v, "hv": r["hvp"]["result"], "gradient": r["gradient"]["result"]})
    r["hutchinson_hvps"] = timer(
        lambda: hutchinson_hvps(problem, probes, seed=5), **slow)
    r["hutchinson_hvps"]["probes"] = probes
    r["hutchinson_hvps"]["trace"] = r["hutchinson_hvps"].pop("result")
    lz = timer(lambda: lanczos(problem.hvp, problem.n, device,
                               settings["lanczos_top_k"],
                               settings["lanczos_relative_tolerance"],
                               settings["lanczos_max_iterations"], seed=3),
               **slow)
    lz.update(lz.pop("result"))
    r["lanczos"] = lz
    for key in ("gradient", "hvp"):
        r[key].pop("result")
    # The roofline column (report.py): FLOPs of one gradient and one HVP.
    r["gradient"]["flops"] = count_flops(problem.gradient)
    r["hvp"]["flops"] = count_flops(lambda: problem.hvp(v))
    if entry["llc"]:
        r["llc"] = time_llc(problem, entry["llc"], settings, timer, quick, slow)
    print(f"[baseline] {w.name}: n={problem.n} grad {r['gradient']['median_ms']:.2f} ms, "
          f"HVP {r['hvp']['median_ms']:.2f} ms, {probes} HVPs "
          f"{r['hutchinson_hvps']['median_ms']:.1f} ms, Lanczos top-"
          f"{settings['lanczos_top_k']} {lz['median_ms']:.1f} ms in "
          f"{lz['hvps']} HVPs (converged={lz['converged']}), "
          f"top {lz['values'][:1]}", flush=True)
    if "llc" in r:
        fb, chain = r["llc"]["forward_backward"], r["llc"]["sgld"]
        print(f"[baseline] {w.name}: LLC batch {chain['batch_size']}: "
              f"forward+backward {fb['median_ms']:.2f} ms, SGLD chain "
              f"{chain['steps']} steps {chain['median_ms']:.1f} ms "
              f"({chain['steps_per_second']:.0f} steps/s), llc "
              f"{chain['llc']:.4g}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available()
                        else "cpu")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny workloads, few repeats (CPU CI)")
    parser.add_argument("--workloads", default="W1,W2,W3")
    parser.add_argument("--export_only", action="store_true")
    parser.add_argument("--w2_samples", type=int,
                        help="W2's image count (default 2048; the split bench "
                             "of issue 18 uses 16384)")
    parser.add_argument("--lanczos_max_iterations", type=int,
                        default=wl.LANCZOS_MAX_ITERATIONS,
                        help="cap on Lanczos steps (both sides, via the manifest)")
    parser.add_argument("--probes", type=int, default=wl.HUTCHINSON_PROBES,
                        help="Hutchinson probes (both sides, via the manifest)")
    parser.add_argument("--gop", choices=("on", "off", "only"), default="on",
                        help="the GOP rows (issue 14): with the others, not "
                        "at all, or alone")
    args = parser.parse_args()

    device = torch.device(args.device)
    precision = set_strict_fp32()
    names = [s.strip().upper() for s in args.workloads.split(",") if s.strip()]
    workloads = wl.all_workloads(args.smoke, names, w2_samples=args.w2_samples)
    manifest = wl.export(workloads, args.out, args.smoke,
                         lanczos_max_iterations=args.lanczos_max_iterations,
                         probes=args.probes)
    print(f"[baseline] exported {[w.name for w in workloads]} to {args.out}")
    if args.export_only:
        return 0

    timer = Timer(device)
    if args.smoke:
        quick = dict(warmup=1, min_repeats=2, max_repeats=3, budget_s=0.2)
        slow = dict(warmup=0, min_repeats=1, max_repeats=1, budget_s=0.0)
    else:
        quick = dict(warmup=10, min_repeats=20, max_repeats=200, budget_s=3.0)
        slow = dict(warmup=1, min_repeats=1, max_repeats=15, budget_s=4.0)
    settings = manifest["settings"]
    results = {
        "device": str(device),
        "device_name": device_description(device),
        "torch_version": torch.__version__,
        "cudnn_version": torch.backends.cudnn.version()
        if device.type == "cuda" else None,
        "precision": f"float32, {precision}",
        "smoke": args.smoke,
        "method": "perf_counter between torch.cuda.synchronize(); warm-up; "
                  "median of repeats",
        "settings": settings,
        "workloads": {},
    }
    transforms = functional_transforms() if args.gop != "off" else None
    if args.gop != "off" and transforms is None:
        print("[baseline] GOP rows skipped: neither torch.func (PyTorch >= 2.0) "
              "nor functorch imports", flush=True)
    results["gop"] = args.gop
    for w in workloads:
        t_start = time.perf_counter()
        problem = Problem(w, device)
        r: Dict = {"num_parameters": problem.n, "num_samples": w.num_samples,
                   "loss": problem.loss()}
        entry = next(e for e in manifest["workloads"] if e["name"] == w.name)
        if args.gop != "only":
            time_hessian_and_llc(args, w, problem, entry, settings, timer,
                                 quick, slow, r)
        results["workloads"][w.name] = r
        # Written before the GOP phase too: a process killed for memory there
        # (W1 at N = 4096 holds 30 GB of per-sample gradients) keeps the rest.
        with open(args.out / "baseline.json", "w") as f:
            json.dump(results, f, indent=2)
        if entry["gop"] and transforms is not None:
            gop_plan = (dict(warmup=0, min_repeats=1, max_repeats=1, budget_s=0.0)
                        if args.smoke else
                        dict(warmup=0, min_repeats=3, max_repeats=15, budget_s=4.0))
            try:
                r["gop"] = time_gop(w, problem, entry["gop"], timer, gop_plan,
                                    transforms)
            # Out of memory, or an operation vmap lacks: the other rows go on.
            except (RuntimeError, NotImplementedError) as e:
                r["gop"] = {"run": entry["gop"], "error": f"{type(e).__name__}: {e}"}
            print_gop(w.name, r["gop"])
        r["wall_s"] = time.perf_counter() - t_start
        results["workloads"][w.name] = r
        # Written after every workload, so that a timeout keeps what ran.
        with open(args.out / "baseline.json", "w") as f:
            json.dump(results, f, indent=2)
        print(f"[baseline] {w.name}: done in {r['wall_s']:.1f} s", flush=True)
        del problem
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
