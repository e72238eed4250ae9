"""The LLC on models whose learning coefficient is known, through curvd: the
minimally singular model and deep linear networks, each at a checkpoint built
here from a teacher, measured by the server's `llc` kind (SGLD) and set beside
the theory.

- Minimally singular: f(x; w) = x . w[0:r], w of --parameters entries, of which
  the loss sees r. With whitened inputs ((1/N) X^T X = I_r) and the teacher's
  own outputs as targets, MSE gives L(w) - L(w*) = ||w[0:r] - w*[0:r]||^2 and
  H = 2 I_r: lambda = rank(H) / 2 (singular learning theory for a minimally
  singular model; the seed study of docs/llc_rank_study.md). The server also
  measures the exact Hessian, whose rank is the x-axis.
- Deep linear networks without biases, widths H_0 .. H_L (--dln_widths), at a
  w* whose product has rank r (--dln_ranks): seeded Gaussian weights on the
  first r units of every hidden layer, 0 on the others. With whitened inputs
  and targets f(x; w*), L(W) - L(w*) = ||W_L..W_1 - W*_L..W*_1||_F^2 / H_L,
  and lambda is Aoyagi's (M. Aoyagi, "Consideration on the learning
  efficiency of multiple-layered neural networks with linear units", Neural
  Networks 172, 106132, 2024), computed by aoyagi_lambda() as
  ../shared/VALIDATION.md states it. The exact Hessian's rank / 2 is shown too:
  for these singular models it is not lambda.

Each configuration is its own run with one checkpoint (step 0, the teacher w*,
so L(w*) = 0), its model a scripted nn.Module and its data (inputs, targets)
float64 tensors the client uploads as a safetensors shard; the measurements are
in float64. The checkpoint is constructed, not trained: theory gives lambda at
the true parameters, which this construction is (tests/core/llc_theory_test.cc
measures the same points). The SGLD settings are those of that test, chosen
there so that the finite-temperature and step-size biases stay small: for the
minimally singular model n_beta = 1000, gamma = 20, eps = 2e-5, minibatches of
half the shard (biases about -1% and +1%); for the deep linear networks
n_beta = 500, gamma = 1, eps = 1e-4, full batch (the exact finite-temperature
value of widths 4, 3, 8 at r = 0 is 1.3% below lambda = 6). At the end it writes
OUT/llc_toy_models.csv (run.results() of every run, one row per kind, with the
columns model, widths, true_rank, theory and hessian_rank added) and
OUT/llc_toy_models.png (lambda_hat +- 1 standard error against the theory,
with the line y = x).

Measured with the defaults on the CPU (72 s in all, seed 0), lambda_hat +- 1
standard error against the theory: minimally singular d = 1000, r = 5, 10, 20,
50: 2.48 +- 0.10, 5.08 +- 0.12, 10.26 +- 0.19, 25.52 +- 0.32 (-0.3 to +1.6
standard errors; every exact-Hessian rank r); deep linear 4-3-8 at r = 0, 1, 2,
3 against 6, 8.5, 11, 13.5: 6.22 +- 0.17, 8.68 +- 0.09, 11.10 +- 0.08,
13.99 +- 0.09 (R-hat at most 1.04). The full-rank product r = 3, a regular
model, is 3.6% (5 standard errors) high: SGLD's step bias, about eps a / 4 on
a mode of curvature a, grows with the weights the rank adds, and eps = 1e-4
was chosen for r = 0: --dln_step_size=3e-5 --dln_burn_in=6000
--dln_draws=12000 gave 13.59 +- 0.12 (+0.7 standard errors). rank(H) / 2 at
w* is 0, 5.5, 10 and 13.5: below lambda except where the model is regular.

    build/bin/curvd --listen=127.0.0.1:50051 --state_dir=/tmp/llc-toy &
    PYTHONPATH=client/python /usr/bin/python3 client/python/examples/llc_toy_models.py \\
        --server=127.0.0.1:50051 --out=/tmp/llc-toy-out
"""

import argparse
import fractions
import math
import os
import time

import matplotlib
import matplotlib.figure

matplotlib.use("Agg")

import torch  # noqa: E402

import curvd  # noqa: E402
import trainer_output  # noqa: E402


class MinimallySingular(torch.nn.Module):
    """f(x; w) = x . w[0:rank], outputs [N, 1]; w has `parameters` entries,
    standard Gaussian from `seed`."""

    def __init__(self, parameters: int, rank: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(parameters, generator=generator,
                                                dtype=torch.float64))
        self.rank = rank

    def forward(self, x):
        return x.mv(self.w[:self.rank]).unsqueeze(1)


class DeepLinear(torch.nn.Module):
    """x W_1^T .. W_L^T, W_l [widths[l], widths[l-1]], no biases: seeded
    standard Gaussian weights on the first `rank` units of every hidden layer,
    0 on the others, so that the product has rank `rank` (generically)."""

    def __init__(self, widths, rank: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        layers = []
        for l in range(1, len(widths)):
            layer = torch.nn.Linear(widths[l - 1], widths[l], bias=False).double()
            weight = torch.randn(widths[l], widths[l - 1], generator=generator,
                                 dtype=torch.float64)
            if l < len(widths) - 1:
                weight[rank:, :] = 0  # the units past `rank` of hidden layer l
            if l > 1:
                weight[:, rank:] = 0  # and their outgoing weights
            with torch.no_grad():
                layer.weight.copy_(weight)
            layers.append(layer)
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def aoyagi_lambda(widths, rank):
    """Aoyagi's (2024) learning coefficient of the deep linear network of
    `widths` H_0 .. H_L (no biases) at a true product of rank `rank`, as a
    Fraction: with M_j = H_j - rank, S the l + 1 smallest M_j for the smallest
    l >= 1 with max_S M < min_{not S} M, sum_S M >= l max_S M and sum_S M <
    l min_{not S} M (the complement's conditions dropped when it is empty),
    s = sum_S M, Mbar = ceil(s / l), a = s - (Mbar - 1) l:
      lambda = (-r^2 + r (H_0 + H_L)) / 2 + a (l - a) / (4 l)
               - l (l - 1) / 4 (s / l)^2 + (1/2) sum_{i<j in S} M_i M_j.
    Raises ValueError for a rank above the narrowest width."""
    if not 0 <= rank <= min(widths):
        raise ValueError(f"rank {rank} is not in [0, {min(widths)}] for widths {widths}")
    m = sorted(h - rank for h in widths)
    for l in range(1, len(m)):
        chosen, rest = m[:l + 1], m[l + 1:]
        total = sum(chosen)
        if rest and not (chosen[-1] < rest[0] and total < l * rest[0]):
            continue
        if total >= l * chosen[-1]:
            break
    f = fractions.Fraction
    m_bar = -(-total // l)
    a = total - (m_bar - 1) * l
    pairs = sum(chosen[i] * chosen[j] for i in range(len(chosen))
                for j in range(i + 1, len(chosen)))
    return (f(-rank * rank + rank * (widths[0] + widths[-1]), 2) + f(a * (l - a), 4 * l)
            - f(l * (l - 1), 4) * f(total, l) ** 2 + f(pairs, 2))


def whitened_inputs(n, k, seed):
    """N = `n` float64 inputs in R^k with (1/N) X^T X = I_k exactly: sqrt(N)
    times the orthonormal columns of a seeded Gaussian [n, k] (n >= k)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=generator, dtype=torch.float64))
    return q * math.sqrt(n)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="curvd's host:port")
    parser.add_argument("--run", default="", help="run id prefix (default llc-toy-<time>)")
    parser.add_argument("--out", default=".", help="directory of the CSV and the figure")
    parser.add_argument("--seed", type=int, default=0,
                        help="the teachers', the inputs' and the chains' seed")
    parser.add_argument("--parameters", type=int, default=1000,
                        help="the minimally singular model's parameter count d")
    parser.add_argument("--ranks", default="5,10,20,50",
                        help="the minimally singular model's ranks r (comma-separated; none: '')")
    parser.add_argument("--ms_chains", type=int, default=8, help="SGLD chains per rank")
    parser.add_argument("--ms_burn_in", type=int, default=300, help="SGLD steps discarded")
    parser.add_argument("--ms_draws", type=int, default=2000, help="SGLD draws kept per chain")
    parser.add_argument("--ms_step_size", type=float, default=2e-5, help="SGLD's eps")
    parser.add_argument("--ms_n_beta", type=float, default=1000.0, help="n_beta, as given")
    parser.add_argument("--ms_localization", type=float, default=20.0, help="gamma")
    parser.add_argument("--dln_widths", default="4,3,8",
                        help="the deep linear network's widths H_0,..,H_L")
    parser.add_argument("--dln_ranks", default="0,1,2,3",
                        help="ranks of the true product (comma-separated; none: '')")
    parser.add_argument("--dln_samples", type=int, default=128,
                        help="samples of each deep linear shard (full batch)")
    parser.add_argument("--dln_chains", type=int, default=12, help="SGLD chains per rank")
    parser.add_argument("--dln_burn_in", type=int, default=3000, help="SGLD steps discarded")
    parser.add_argument("--dln_draws", type=int, default=6000, help="SGLD draws kept per chain")
    parser.add_argument("--dln_step_size", type=float, default=1e-4, help="SGLD's eps")
    parser.add_argument("--dln_n_beta", type=float, default=500.0, help="n_beta, as given")
    parser.add_argument("--dln_localization", type=float, default=1.0, help="gamma")
    parser.add_argument("--close_timeout", type=float, default=3600.0,
                        help="seconds to wait for each run's measurements")
    return parser.parse_args(argv)


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def sgld(args, prefix, batch_size):
    """The llc options of the model family `prefix` ("ms" or "dln")."""
    return {"llc": {"sampler": "SGLD", "n_beta_convention": "GIVEN",
                    "n_beta": getattr(args, f"{prefix}_n_beta"),
                    "step_size": getattr(args, f"{prefix}_step_size"),
                    "localization": getattr(args, f"{prefix}_localization"),
                    "chains": getattr(args, f"{prefix}_chains"),
                    "burn_in": getattr(args, f"{prefix}_burn_in"),
                    "draws": getattr(args, f"{prefix}_draws"),
                    "batch_size": batch_size, "seed": args.seed}}


def configurations(args):
    """[(run suffix, columns, model, (inputs, targets), llc options)] of every
    configuration; `columns` holds model, widths, true_rank and theory."""
    configs = []
    for r in _ints(args.ranks):
        model = MinimallySingular(args.parameters, r, args.seed + r)
        x = whitened_inputs(max(2 * r, 64), r, args.seed + 1)
        columns = {"model": "minimally_singular", "widths": str(args.parameters),
                   "true_rank": r, "theory": r / 2}
        configs.append((f"ms-r{r}", columns, model, x, sgld(args, "ms", len(x) // 2)))
    widths = _ints(args.dln_widths)
    for r in _ints(args.dln_ranks):
        model = DeepLinear(widths, r, args.seed + 100 + r)
        x = whitened_inputs(args.dln_samples, widths[0], args.seed + 2)
        columns = {"model": "deep_linear", "widths": "-".join(map(str, widths)),
                   "true_rank": r, "theory": float(aoyagi_lambda(widths, r))}
        configs.append((f"dln-r{r}", columns, model, x, sgld(args, "dln", len(x))))
    with torch.no_grad():
        return [(name, columns, model, (x, model(x)), llc)
                for name, columns, model, x, llc in configs]


def figure(rows):
    """lambda_hat +- 1 standard error against the theory (rank(H) / 2 for the
    minimally singular model, Aoyagi's lambda for the deep linear networks,
    whose exact Hessian's rank / 2 is drawn too), each panel with y = x."""
    fig = matplotlib.figure.Figure(figsize=(11, 4.5), layout="constrained")
    panels = dict(zip(("minimally_singular", "deep_linear"), fig.subplots(1, 2)))
    titles = {"minimally_singular": "minimally singular: λ̂ against rank(H) / 2",
              "deep_linear": "deep linear networks: λ̂ against Aoyagi's λ"}
    for name, ax in panels.items():
        llc = [r for r in rows if r["model"] == name and r["kind"] == "llc"
               and r["state"] == "SUCCEEDED"]
        ax.set_title(titles[name], fontsize="medium")
        if not llc:
            ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
            continue
        x = [r["hessian_rank"] / 2 if name == "minimally_singular" and r["hessian_rank"]
             is not None else r["theory"] for r in llc]
        ax.errorbar(x, [r["value"] for r in llc], yerr=[r["standard_error"] for r in llc],
                    fmt="o", capsize=3, label="λ̂ ± 1 s.e. (SGLD)")
        if name == "deep_linear":
            ranked = [(xi, r["hessian_rank"] / 2) for xi, r in zip(x, llc)
                      if r["hessian_rank"] is not None]
            ax.plot([p[0] for p in ranked], [p[1] for p in ranked], "x", color="grey",
                    label="rank(H) / 2 at w*")
        for r, xi in zip(llc, x):
            ax.annotate(f"r={r['true_rank']}", (xi, r["value"]), textcoords="offset points",
                        xytext=(5, -12), fontsize="small")
        top = max(x + [r["value"] for r in llc]) * 1.1
        ax.plot([0, top], [0, top], color="black", linestyle="--", linewidth=1, label="y = x")
        ax.set(xlabel="rank(H) / 2 (exact Hessian)" if name == "minimally_singular"
               else "Aoyagi's λ", ylabel="λ̂", xlim=(0, top), ylim=(0, top))
        ax.legend(fontsize="small")
    return fig


def main(argv=None):
    args = parse_args(argv)
    prefix = args.run or f"llc-toy-{int(time.time())}"
    client = curvd.Client(args.server)
    runs = []
    for name, columns, model, shard, llc in configurations(args):
        run = client.run(f"{prefix}-{name}", model, shard=shard, loss="mse",
                         measure=[llc, "exact_hessian"], policy="block",
                         settings={"precision": "PRECISION_FLOAT64"})
        run.submit(0, model)
        runs.append((run, columns))
        print(f"run {run.run_id}: {columns['model']} {columns['widths']}, rank "
              f"{columns['true_rank']}, {sum(p.numel() for p in model.parameters())} "
              f"parameters ({run.model_export}), {len(shard[1])} samples; theory λ = "
              f"{columns['theory']:g}")
    rows = []
    for run, columns in runs:
        run.close(timeout=args.close_timeout)
        measured = run.results(frame=False)
        ranks = [r["exact_hessian.rank"] for r in measured
                 if r["kind"] == "exact_hessian" and r["state"] == "SUCCEEDED"]
        for row in measured:
            row.update(columns, hessian_rank=ranks[0] if ranks else None)
            if row["kind"] == "llc" and row["state"] == "SUCCEEDED":
                print(f"{run.run_id}: λ̂ = {row['value']:.3f} ± {row['standard_error']:.3f} "
                      f"(R-hat {row['llc.r_hat'] or float('nan'):.3f}), theory "
                      f"{columns['theory']:g}, rank(H) = {row['hessian_rank']}: "
                      f"{(row['value'] - columns['theory']) / row['standard_error']:+.1f} "
                      f"standard errors")
            elif row["state"] != "SUCCEEDED":
                print(f"{run.run_id}: {row['kind']} {row['state']}: {row['error_message']}")
        rows += measured
    client.close()
    trainer_output.write_csv(rows, os.path.join(args.out, "llc_toy_models.csv"))
    trainer_output.save(figure(rows), os.path.join(args.out, "llc_toy_models.png"))


if __name__ == "__main__":
    main()
