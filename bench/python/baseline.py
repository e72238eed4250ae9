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

Method: CUDA synchronisation around every timed region (perf_counter between
two torch.cuda.synchronize()), warm-up runs first, the median of repeats. TF32
is off, as in curvd's engine, so both compute in IEEE float32.

Usage: baseline.py --out DIR [--device cuda|cpu] [--smoke] [--workloads W1,W3]
Writes DIR/manifest.json, DIR/W*.pt, DIR/W*.safetensors, DIR/W1.zoo.safetensors
(for curvd_bench),
DIR/W*.check.safetensors (a probe vector v, H v and the gradient, which
curvd_bench compares with its own) and DIR/baseline.json (the timings).
"""
import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

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


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available()
                        else "cpu")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny workloads, few repeats (CPU CI)")
    parser.add_argument("--workloads", default="W1,W2,W3")
    parser.add_argument("--export_only", action="store_true")
    parser.add_argument("--lanczos_max_iterations", type=int,
                        default=wl.LANCZOS_MAX_ITERATIONS,
                        help="cap on Lanczos steps (both sides, via the manifest)")
    parser.add_argument("--probes", type=int, default=wl.HUTCHINSON_PROBES,
                        help="Hutchinson probes (both sides, via the manifest)")
    args = parser.parse_args()

    device = torch.device(args.device)
    precision = set_strict_fp32()
    names = [s.strip().upper() for s in args.workloads.split(",") if s.strip()]
    workloads = wl.all_workloads(args.smoke, names)
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
    probes = settings["hutchinson_probes"]
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
    for w in workloads:
        t_start = time.perf_counter()
        problem = Problem(w, device)
        r: Dict = {"num_parameters": problem.n, "num_samples": w.num_samples,
                   "loss": problem.loss()}
        r["gradient"] = timer(problem.gradient, **quick)
        g = torch.Generator()
        g.manual_seed(7)
        v = torch.randn(problem.n, generator=g).to(device)
        r["hvp"] = timer(lambda: problem.hvp(v), **quick)
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
        llc_run = next(e["llc"] for e in manifest["workloads"]
                       if e["name"] == w.name)
        if llc_run:
            r["llc"] = time_llc(problem, llc_run, settings, timer, quick, slow)
        r["wall_s"] = time.perf_counter() - t_start
        results["workloads"][w.name] = r
        # Written after every workload, so that a timeout keeps what ran.
        with open(args.out / "baseline.json", "w") as f:
            json.dump(results, f, indent=2)
        print(f"[baseline] {w.name}: n={problem.n} grad {r['gradient']['median_ms']:.2f} ms, "
              f"HVP {r['hvp']['median_ms']:.2f} ms, {probes} HVPs "
              f"{r['hutchinson_hvps']['median_ms']:.1f} ms, Lanczos top-"
              f"{settings['lanczos_top_k']} {lz['median_ms']:.1f} ms in "
              f"{lz['hvps']} HVPs (converged={lz['converged']}), "
              f"top {lz['values'][:1]}; {r['wall_s']:.1f} s", flush=True)
        if "llc" in r:
            fb, chain = r["llc"]["forward_backward"], r["llc"]["sgld"]
            print(f"[baseline] {w.name}: LLC batch {chain['batch_size']}: "
                  f"forward+backward {fb['median_ms']:.2f} ms, SGLD chain "
                  f"{chain['steps']} steps {chain['median_ms']:.1f} ms "
                  f"({chain['steps_per_second']:.0f} steps/s), llc "
                  f"{chain['llc']:.4g}", flush=True)
        del problem
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
