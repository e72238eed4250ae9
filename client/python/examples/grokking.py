"""Grokking with curvd: the one-layer modular-addition Transformer of Power et al.
(2022) and Nanda et al. (2023) (bench/python/workloads.py's W3 architecture:
d_model 128, 4 heads, ReLU MLP 512, no LayerNorm) trained full-batch by AdamW
(lr 1e-3, weight decay 1.0, betas 0.9, 0.98) on 30% of the p^2 pairs of
(a + b) mod p, p = 97, streaming a checkpoint every --every steps to a curvd
server, which measures at each the sharpness, the Hessian trace, the
second-order loss expansion and the LLC on the same training data
(builtin://modular_addition; curvd.modular_addition computes the same split
here). The trainer logs train and test accuracy itself, and at the end writes
OUT/grokking.csv (run.results(), one row per checkpoint and kind, with the
accuracies added) and OUT/grokking.png.

    build/bin/curvd --listen=127.0.0.1:50051 --state_dir=/tmp/grok &
    PYTHONPATH=client/python /usr/bin/python3 client/python/examples/grokking.py \\
        --server=127.0.0.1:50051 --out=/tmp/grok-out

Measured on an H200 (2026-12-01, scripts/gpu_examples.sh, the server on the
same GPU): the default 20,000 steps and 81 checkpoints took 156 s, measurements
included. Train accuracy was 1.0 from step 1,000; test accuracy stayed at
0.27-0.30 to step 15,000, then rose (0.37 at 17,000, 0.62 at 18,000, 0.97 at
19,000) to 1.0 at 20,000. In the memorising phase the train loss swings between
1e-7 and 1e-2 and the sharpness and trace spike with it. That run used the
server's default LLC divergence factor, 100: with L(w*) below 0.01 a chain then
counts as diverged above a loss of 1, while the tempered posterior's own loss,
L(w*) + lambda / (n beta), is about 1 there (lambda in the hundreds, n beta =
355), so 68 of the 81 LLCs, all but one of steps 500 to 17,750, FAILED with "every llc chain
diverged". The default here is 1000 (a loss of 10, twice that of guessing
uniformly among 97): not yet run at full size. The LLC chains' R-hat (1.5-1.8
after grokking) says 200 draws are too few to mix; raise --llc_draws for
numbers to quote. The checkpoints (81 at --every=250) are
queued, not dropped, so close() waits until the server has measured them all.
The CPU is no place for the default size (a full-batch step took 3.8 s on a
shared two-core machine): use a GPU, or a smaller --p and model.

The loss expansion -rho |g|^2 + rho^2/2 g^T H g + rho^2 sigma^2/(2 N_s) tr(H^3),
sigma^2 = 1 / (h0 ess), uses rho = the learning rate, ess = the training
split's size (full batch), N_s = --every and h0 = --h0. Each checkpoint is
submitted before its optimizer step, so the server's loss at step s is the
train loss logged at s; the end of the run prints how far apart they are, a
check that both sides hold the same data.
"""

import argparse
import os
import sys
import time

import matplotlib
import matplotlib.figure

matplotlib.use("Agg")

import torch  # noqa: E402

import curvd  # noqa: E402
from curvd import modular_addition, plot  # noqa: E402
import trainer_output  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "bench", "python"))
from workloads import ModularAdditionTransformer  # noqa: E402

ACCURACIES = (("train_accuracy", "train"), ("test_accuracy", "test"))
EXPANSION_TERMS = ("first_order_term", "second_order_term", "noise_term")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="curvd's host:port")
    parser.add_argument("--run", default="", help="run id (default grokking-p<p>-<time>)")
    parser.add_argument("--out", default=".", help="directory of grokking.csv and .png")
    parser.add_argument("--p", type=int, default=97, help="the modulus")
    parser.add_argument("--train_fraction", type=float, default=0.3,
                        help="share of the p^2 pairs in the training split")
    parser.add_argument("--seed", type=int, default=0, help="the split's and the init's")
    parser.add_argument("--steps", type=int, default=20000, help="optimizer steps")
    parser.add_argument("--every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="AdamW's learning rate (also the loss expansion's rho)")
    parser.add_argument("--weight_decay", type=float, default=1.0, help="AdamW's weight decay")
    parser.add_argument("--d_model", type=int, default=128, help="the residual width")
    parser.add_argument("--heads", type=int, default=4, help="attention heads")
    parser.add_argument("--d_mlp", type=int, default=512, help="the MLP's hidden width")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the trainer trains (the server picks its own)")
    parser.add_argument("--probes", type=int, default=100,
                        help="most Hutchinson probes of tr(H) and tr(H^3)")
    parser.add_argument("--lanczos_iterations", type=int, default=100,
                        help="the sharpness's Lanczos iterations at most")
    parser.add_argument("--h0", type=float, default=1.0, help="the loss expansion's h0")
    parser.add_argument("--llc_chains", type=int, default=4, help="LLC: SGLD chains")
    parser.add_argument("--llc_draws", type=int, default=200, help="LLC: draws per chain")
    parser.add_argument("--llc_burn_in", type=int, default=100,
                        help="LLC: steps discarded before the first draw")
    parser.add_argument("--llc_step_size", type=float, default=1e-5, help="LLC: SGLD's epsilon")
    parser.add_argument("--llc_localization", type=float, default=100.0,
                        help="LLC: gamma, the pull towards the checkpoint")
    parser.add_argument("--llc_divergence_factor", type=float, default=1000.0,
                        help="LLC: a chain diverges above this factor times max(L(w*), 0.01); "
                             "the server's default, 100, is too low here (see above)")
    parser.add_argument("--close_timeout", type=float, default=3600.0,
                        help="seconds to wait for the last measurements")
    return parser.parse_args(argv)


def measurements(args, train_size):
    """The kinds measured at every checkpoint, with the settings of `args`."""
    probes = {"max_probes": args.probes, "min_probes": min(10, args.probes)}
    return [
        {"sharpness": {"max_iterations": args.lanczos_iterations}},
        {"hessian_trace": probes},
        {"loss_expansion": {"rho": args.lr, "h0": args.h0, "ess": float(train_size),
                            "num_steps": float(args.every), "trace_h3": probes}},
        {"llc": {"chains": args.llc_chains, "draws": args.llc_draws,
                 "burn_in": args.llc_burn_in, "step_size": args.llc_step_size,
                 "localization": args.llc_localization, "batch_size": min(512, train_size),
                 "divergence_factor": args.llc_divergence_factor}},
    ]


def make_model(args):
    """The Transformer of `args`, initialised from args.seed, on the CPU (the
    run's archive is exported there; training then moves the weights)."""
    torch.manual_seed(args.seed)
    return ModularAdditionTransformer(args.p, args.d_model, args.heads, args.d_mlp)


def make_optimizer(model, args):
    """AdamW over `model`'s parameters with the learning rate and weight decay of `args`."""
    return torch.optim.AdamW(model.parameters(), lr=args.lr,
                             weight_decay=args.weight_decay, betas=(0.9, 0.98))


def forward_backward(model, optimizer, inputs, targets):
    """One full-batch training step up to the update: returns (logits, loss) of
    `inputs`, with the gradients of the cross-entropy against `targets` in the
    parameters (`optimizer`'s old ones cleared); optimizer.step() completes it."""
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return logits, loss


def accuracy(logits, targets):
    return float((logits.argmax(1) == targets).float().mean())


def figure(rows, logged):
    """Accuracy and loss against step (the trainer's), and the measured scalars."""
    fig = matplotlib.figure.Figure(figsize=(13, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    trainer_output.plot_logged(axes[0, 0], logged, ACCURACIES, "accuracy",
                               "accuracy (the trainer's)")
    trainer_output.plot_logged(axes[1, 2], logged,
                               (("train_loss", "train"), ("test_loss", "test")),
                               "cross-entropy", "loss (the trainer's)")
    axes[1, 2].set_yscale("log")
    for ax, kind, title in ((axes[0, 1], "sharpness", "λ_max(H) (Lanczos)"),
                            (axes[0, 2], "hessian_trace", "tr H (Hutchinson, ± 1 s.e.)"),
                            (axes[1, 1], "llc", "LLC λ̂ (SGLD, ± 1 s.e.)")):
        plot.scalar(rows, kinds=kind, ax=ax)
        ax.set_title(title, fontsize="medium")
    expansion = axes[1, 0]
    for term in EXPANSION_TERMS + ("total",):
        plot.scalar(rows, f"loss_expansion.{term}", kinds="loss_expansion", ax=expansion)
        expansion.containers[-1].set_label(term)
    expansion.set(ylabel="loss change")
    expansion.set_title("second-order expansion of one step", fontsize="medium")
    expansion.legend(fontsize="small")
    return fig


def main(argv=None):
    args = parse_args(argv)
    run_id = args.run or f"grokking-p{args.p}-{int(time.time())}"
    split = dict(p=args.p, train_fraction=args.train_fraction, seed=args.seed)
    device = torch.device(args.device)
    train_x, train_y = (t.to(device) for t in modular_addition.shard(**split, split="train"))
    test_x, test_y = (t.to(device) for t in modular_addition.shard(**split, split="test"))
    model = make_model(args)
    optimizer = make_optimizer(model, args)
    checkpoints = args.steps // args.every + 1
    client = curvd.Client(args.server)
    # The archive is exported on the CPU; training then moves the weights.
    run = client.run(run_id, model, shard=modular_addition.uri(**split, split="train"),
                     loss="cross_entropy", measure=measurements(args, len(train_y)),
                     every=args.every, policy="queue", capacity=checkpoints)
    model.to(device)
    print(f"run {run_id}: p={args.p}, {len(train_y)} train / {len(test_y)} test pairs, "
          f"{sum(p.numel() for p in model.parameters())} parameters on {device}, "
          f"{args.steps} steps, a checkpoint every {args.every}")
    logged = {}
    start = time.perf_counter()
    for step in range(args.steps + 1):
        logits, loss = forward_backward(model, optimizer, train_x, train_y)
        if step % args.every == 0:
            with torch.no_grad():
                test_logits = model(test_x)
            logged[step] = {
                "train_accuracy": accuracy(logits, train_y),
                "test_accuracy": accuracy(test_logits, test_y),
                "train_loss": float(loss),
                "test_loss": float(torch.nn.functional.cross_entropy(test_logits, test_y))}
            print(f"step {step:6d}  train loss {logged[step]['train_loss']:.4f} "
                  f"acc {logged[step]['train_accuracy']:.3f}  test loss "
                  f"{logged[step]['test_loss']:.4f} acc {logged[step]['test_accuracy']:.3f}")
            run.submit(step, model, train_loss=loss.detach())
        if step < args.steps:
            optimizer.step()
    rows = trainer_output.collect(run, client, args.steps, time.perf_counter() - start,
                                  args.close_timeout)
    # train_loss is a column already: the loss each checkpoint was submitted with.
    trainer_output.write_csv(rows, os.path.join(args.out, "grokking.csv"),
                             {s: {k: v for k, v in values.items() if k != "train_loss"}
                              for s, values in logged.items()})
    trainer_output.print_loss_agreement(rows)
    trainer_output.save(figure(rows, logged), os.path.join(args.out, "grokking.png"))


if __name__ == "__main__":
    main()
