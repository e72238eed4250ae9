"""Regenerates the example figures of curvd.plot in docs/plots/ from a real, small
CPU run: two MLPs (8-24-24-4, tanh, 916 parameters) trained by full-batch
gradient descent on a fixed synthetic 4-class problem at two learning rates,
streaming a checkpoint every 50 steps to a curvd server that measures
sharpness, the Hessian trace, the SLQ spectral density, a loss slice along the
top eigenvector and the exact Hessian at each.

    build/bin/curvd --listen=127.0.0.1:50051 --devices=cpu --state_dir=/tmp/gallery &
    PYTHONPATH=client/python /usr/bin/python3 client/python/examples/plot_gallery.py \\
        --server=127.0.0.1:50051 --out=docs/plots

A few minutes on two CPU cores (the exact Hessians take most of it). Each
invocation trains new runs, gallery-<time>-lr*; --reuse=gallery-<time> draws the
figures again from runs stored before.
"""

import argparse
import os
import time

import matplotlib
import matplotlib.figure

matplotlib.use("Agg")

import torch  # noqa: E402

import curvd  # noqa: E402
from curvd import plot  # noqa: E402

KINDS = ["sharpness", {"hessian_trace": {"max_probes": 40}},
         {"spectral_density": {"runs": 8, "steps": 60}},
         {"loss_slice": {"points": 41, "t_min": -2.0, "t_max": 2.0}}, "exact_hessian"]
STEPS = 301
EVERY = 50
LEARNING_RATES = (0.5, 2.0)


def data(n=256, d=8, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    teacher = torch.randn(d, classes, generator=g)
    return x, (x @ teacher + 0.5 * torch.randn(n, classes, generator=g)).argmax(1)


def model(d=8, hidden=24, classes=4):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, classes))


def train(client, run_id, lr):
    """Trains one MLP at `lr`, streaming every EVERY-th step; returns its results."""
    net = model()
    inputs, targets = data()
    run = client.run(run_id, net, shard=(inputs, targets), loss="cross_entropy",
                     measure=KINDS, every=EVERY, policy="block")
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for step in range(STEPS):
        loss = torch.nn.functional.cross_entropy(net(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.submit(step, net, train_loss=loss.detach())
    run.close(timeout=1200)
    return run.results()


def save(figure, out, name):
    path = os.path.join(out, name)
    figure.savefig(path, dpi=80)
    print(f"{path}: {os.path.getsize(path) // 1024} KiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--out", default="docs/plots")
    parser.add_argument("--reuse", default="", help="the run id prefix of stored runs")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import pandas
    prefix = args.reuse or f"gallery-{int(time.time())}"
    tables = []
    with curvd.Client(args.server) as client:
        for lr in LEARNING_RATES:
            run_id = f"{prefix}-lr{lr}"
            table = client.run(run_id).results() if args.reuse else train(client, run_id, lr)
            tables.append(table.assign(run=f"lr = {lr}"))  # the legend's labels
    results = pandas.concat(tables, ignore_index=True)

    figure = matplotlib.figure.Figure(figsize=(9, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    plot.scalar(results, kinds="sharpness", ax=left)
    plot.scalar(results, kinds="hessian_trace", ax=right)
    for ax, title in ((left, "top eigenvalue (Lanczos)"),
                      (right, "tr H (Hutchinson, ± 1 standard error)")):
        ax.set_title(title, fontsize="medium")
    save(figure, args.out, "scalar.png")

    one = results[results["run"] == f"lr = {LEARNING_RATES[-1]}"]
    steps = [0, 100, 300]
    save(plot.spectral_density(one, steps, sigma_fraction=0.01), args.out,
         "spectral_density.png")
    save(plot.loss_slice(one, steps), args.out, "loss_slice.png")
    figure = matplotlib.figure.Figure(figsize=(9, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    plot.eigenvalues(one, steps, ax=left)
    plot.eigenvalue_histogram(one, steps, bins=60, ax=right)
    save(figure, args.out, "exact_hessian.png")


if __name__ == "__main__":
    main()
