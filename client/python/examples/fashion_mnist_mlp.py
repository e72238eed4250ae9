"""An MLP on Fashion-MNIST with curvd: a tanh MLP (784-128-128-10 by default)
trained by minibatch SGD on the first --train_samples training images of
Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist, idx files), streaming
a checkpoint every --every steps to a curvd server, which measures at each the
sharpness, the Hessian trace and the spectral density (SLQ) on the first
--measure_samples of those images, read by the server itself from the same idx
files (a file:// URI with ?labels=..&limit=..). The trainer logs train and test
accuracy (the 10,000 t10k images) itself, and at the end writes
OUT/fashion_mnist.csv (run.results(), one row per checkpoint and kind, with the
accuracies added), OUT/fashion_mnist_scalars.png (sharpness and trace with
their standard errors, and the accuracies) and OUT/fashion_mnist_density.png
(the spectral densities of the first, a middle and the last checkpoint,
overlaid).

    build/bin/curvd --listen=127.0.0.1:50051 --state_dir=/tmp/fmnist \\
        --data_roots=/usr/share/datasets/fashion-mnist &
    PYTHONPATH=client/python /usr/bin/python3 client/python/examples/fashion_mnist_mlp.py \\
        --server=127.0.0.1:50051 --out=/tmp/fmnist-out

The server must have --data_dir under its --data_roots. Pixels are scaled to
[0, 1] on both sides, as the server reads idx images.
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
from curvd import plot  # noqa: E402
import trainer_output  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "bench", "python"))
from workloads import mlp, read_idx  # noqa: E402

TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="curvd's host:port")
    parser.add_argument("--run", default="", help="run id (default fashion-mnist-<time>)")
    parser.add_argument("--out", default=".", help="directory of the CSV and figures")
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--widths", default="784,128,128,10", help="the MLP's layer widths")
    parser.add_argument("--train_samples", type=int, default=60000)
    parser.add_argument("--measure_samples", type=int, default=2048,
                        help="the first training images each measurement uses")
    parser.add_argument("--test_samples", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=200, help="steps between checkpoints")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the trainer trains (the server picks its own)")
    parser.add_argument("--probes", type=int, default=100, help="most Hutchinson probes")
    parser.add_argument("--lanczos_iterations", type=int, default=100)
    parser.add_argument("--slq_runs", type=int, default=10)
    parser.add_argument("--slq_steps", type=int, default=80)
    parser.add_argument("--close_timeout", type=float, default=3600.0,
                        help="seconds to wait for the last measurements")
    return parser.parse_args(argv)


def images(data_dir, names, limit):
    """(inputs [N, 784] in [0, 1], int64 labels) of the first `limit` images."""
    x = read_idx(os.path.join(data_dir, names[0]))[:limit]
    y = read_idx(os.path.join(data_dir, names[1]))[:limit]
    return x.reshape(len(x), -1).to(torch.float32) / 255, y.to(torch.int64)


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def figures(rows, logged):
    """(scalars figure, spectral density figure)."""
    scalars = matplotlib.figure.Figure(figsize=(13, 3.8), layout="constrained")
    left, middle, right = scalars.subplots(1, 3)
    plot.scalar(rows, kinds="sharpness", ax=left)
    left.set_title("λ_max(H) (Lanczos)", fontsize="medium")
    plot.scalar(rows, kinds="hessian_trace", ax=middle)
    middle.set_title("tr H (Hutchinson, ± 1 standard error)", fontsize="medium")
    trainer_output.plot_logged(right, logged,
                               (("train_accuracy", "train"), ("test_accuracy", "test")),
                               "accuracy", "accuracy (the trainer's)")
    measured = sorted({r["step"] for r in rows
                       if r["kind"] == "spectral_density" and r["state"] == "SUCCEEDED"})
    chosen = sorted({measured[0], measured[len(measured) // 2], measured[-1]})
    return scalars, plot.spectral_density(rows, chosen)


def main(argv=None):
    args = parse_args(argv)
    run_id = args.run or f"fashion-mnist-{int(time.time())}"
    device = torch.device(args.device)
    train_x, train_y = (t.to(device) for t in images(args.data_dir, TRAIN, args.train_samples))
    test_x, test_y = (t.to(device) for t in images(args.data_dir, TEST, args.test_samples))
    shard = (f"file://{os.path.abspath(args.data_dir)}/{TRAIN[0]}?labels={TRAIN[1]}"
             f"&limit={args.measure_samples}")
    torch.manual_seed(args.seed)
    model = mlp([int(w) for w in args.widths.split(",")])
    probes = {"max_probes": args.probes, "min_probes": min(10, args.probes)}
    kinds = [{"sharpness": {"max_iterations": args.lanczos_iterations}},
             {"hessian_trace": probes},
             {"spectral_density": {"runs": args.slq_runs, "steps": args.slq_steps}}]
    checkpoints = args.steps // args.every + 1
    client = curvd.Client(args.server)
    run = client.run(run_id, model, shard=shard, loss="cross_entropy", measure=kinds,
                     every=args.every, policy="queue", capacity=checkpoints)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"run {run_id}: MLP {args.widths} tanh on {len(train_y)} Fashion-MNIST images "
          f"({device}), measured on the first {args.measure_samples}; {args.steps} steps, "
          f"a checkpoint every {args.every}")
    logged = {}
    start = time.perf_counter()
    for step in range(args.steps + 1):
        take = torch.randint(0, len(train_y), (args.batch_size,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(train_x[take]), train_y[take])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step % args.every == 0:
            logged[step] = {"train_accuracy": accuracy(model, train_x, train_y),
                            "test_accuracy": accuracy(model, test_x, test_y)}
            print(f"step {step:6d}  batch loss {float(loss):.4f}  train acc "
                  f"{logged[step]['train_accuracy']:.3f}  test acc "
                  f"{logged[step]['test_accuracy']:.3f}")
            run.submit(step, model, train_loss=loss.detach())
        if step < args.steps:
            optimizer.step()
    rows = trainer_output.collect(run, client, args.steps, time.perf_counter() - start,
                                  args.close_timeout)
    trainer_output.write_csv(rows, os.path.join(args.out, "fashion_mnist.csv"), logged)
    scalars, density = figures(rows, logged)
    trainer_output.save(scalars, os.path.join(args.out, "fashion_mnist_scalars.png"))
    trainer_output.save(density, os.path.join(args.out, "fashion_mnist_density.png"))


if __name__ == "__main__":
    main()
