"""The edge of stability with curvd: a CIFAR-style ResNet (He et al. 2016's
CIFAR layout: a 3x3 stem, 3 stages of n basic blocks of --width, 2 --width,
4 --width channels, depth 6n + 2; ResNet-20 by default, --depth 32 too) trained
by full-batch gradient descent at a fixed learning rate --lr on the first
--samples images of a CIFAR-10 binary shard, streaming a checkpoint every
--every steps to a curvd server, which measures at each the sharpness (the
Hessian's top eigenvalue, Lanczos) on the same images, read by the server
itself from the same batch files (file://..?format=cifar10&limit=N;
cifar_binary.py reads them here the same way). Cohen et al. (2021): under
gradient descent the sharpness rises (progressive sharpening) until it reaches
2 / lr, then hovers there while the loss keeps falling, non-monotonically. At
the end the trainer writes OUT/cifar_resnet_eos.csv (run.results(), one row per
checkpoint, with the trainer's train accuracy, the Ritz value's residual norm
and 2 / lr added) and OUT/cifar_resnet_eos.png (the sharpness against step with
its residual bounds as error bars and the 2 / lr line; the train loss and
accuracy of every step).

    build/bin/curvd --listen=127.0.0.1:50051 --state_dir=/tmp/eos \\
        --data_roots=/data/cifar-10-batches-bin &
    PYTHONPATH=client/python /usr/bin/python3 client/python/examples/cifar_resnet_eos.py \\
        --server=127.0.0.1:50051 --data_dir=/data/cifar-10-batches-bin --out=/tmp/eos-out

Without CIFAR-10, --generate=DIR first writes batch files of the same layout
into DIR (which must then lie under the server's --data_roots) and trains on
those: noise images of random colours labelled by the nearest of 10 colours
(cifar_binary.write_generated), a task the network learns.

The choices, and why. The network has no BatchNorm: the server measures in
eval mode (MeasurementSpec.train_mode unset), where BatchNorm uses its running
statistics, so the measured Hessian would not be that of the train-mode loss
gradient descent follows, and the 2 / lr threshold applies to the latter.
Instead each residual branch is scaled by a learnable gain initialised at 0
(SkipInit, De & Smith 2020), which trains a deep ResNet without normalisation;
the network is then the same function in both modes and the server measures
exactly the Hessian of the loss being descended. The loss is cross-entropy
(Cohen et al. show the edge of stability for it as for MSE; with
cross-entropy the sharpness eventually falls again once the loss nears 0, so
the picture is of the middle of training): the server reads a CIFAR shard's
labels as class indices, which its MSE does not take. Cohen et al. used 5,000
CIFAR-10 images (--samples=5000, the default). With the residual gains at 0
the sharpness starts small (0.45 on the generated data) and rises as they
grow, so the learning rate sets where it stops. Measured on the CPU (ResNet-20
of width 8, 128 generated images, --lanczos_iterations=15): at the default
--lr=0.4 (2 / lr = 5) the sharpness reached 2 / lr at step 30 (5.30) and then
stayed between 1.3 and 1.9 times it to step 150 (every 15 steps: 0.45, 2.28,
5.30, 6.72, 8.18, 9.35, 7.50, 8.28, ...), while the loss fell from 2.33 to 0.28
in spikes and drops; at --lr=0.2 it reached 2 / lr = 10 at step 80 and stayed
between 0.7 and 1.7 times it to step 300 (1.34 to 1.63 over the last seven
checkpoints), the loss falling from 2.33 to 0.22, again with spikes. Gradient
descent thus runs with the sharpness above 2 / lr, where the quadratic model
says it diverges, and does not: the edge of stability, here hovering above the
line rather than on it. Real CIFAR-10 was not tried here; if the sharpness
stalls below 2 / lr, raise --lr.

Each checkpoint is submitted before its step, so the server's loss at step s
is the train loss the trainer logged at s; the end of the run prints how far
apart they are, a check that both sides hold the same images.

On the CPU use few images and a narrow network (--samples=128 --width=8, say):
there a full-batch step of ResNet-20 of width 8 on 128 images took 0.35 s (3 s
while the two cores were busy with other work), and a sharpness measurement of
15 Lanczos iterations 13 to 33 s: the 150 steps above took 53 s to train and
4 minutes until the last measurement was in.
"""

import argparse
import os
import time

import matplotlib
import matplotlib.figure

matplotlib.use("Agg")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cifar_binary  # noqa: E402
import curvd  # noqa: E402
from curvd import plot  # noqa: E402
import trainer_output  # noqa: E402


class BasicBlock(torch.nn.Module):
    """relu(shortcut(x) + gain * conv(relu(conv(x)))): He et al.'s basic block
    without BatchNorm, its residual branch scaled by a learnable gain that
    starts at 0; the shortcut a strided 1x1 convolution where the shape
    changes (option B), else the identity."""

    def __init__(self, channels_in, channels_out, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels_in, channels_out, 3, stride, 1)
        self.conv2 = torch.nn.Conv2d(channels_out, channels_out, 3, 1, 1)
        self.gain = torch.nn.Parameter(torch.zeros(()))
        self.shortcut = torch.nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = torch.nn.Conv2d(channels_in, channels_out, 1, stride)

    def forward(self, x):
        return F.relu(self.shortcut(x) + self.gain * self.conv2(F.relu(self.conv1(x))))


class CifarResNet(torch.nn.Module):
    """He et al.'s CIFAR ResNet of `depth` = 6n + 2 layers (20: n = 3, 32:
    n = 5) with BasicBlocks, stages of `width`, 2 `width` and 4 `width`
    channels (the first block of the second and third stride 2), global
    average pooling and a linear layer to `classes` logits."""

    def __init__(self, depth=20, width=16, classes=10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth {depth} is not 6n + 2 for some n >= 1 (20, 32, ...)")
        blocks = (depth - 2) // 6
        self.stem = torch.nn.Conv2d(3, width, 3, 1, 1)
        layers = []
        channels = width
        for stage in range(3):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, width * 2 ** stage, stride))
                channels = width * 2 ** stage
        self.blocks = torch.nn.Sequential(*layers)
        self.fc = torch.nn.Linear(channels, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="curvd's host:port")
    parser.add_argument("--run", default="", help="run id (default cifar-eos-<time>)")
    parser.add_argument("--out", default=".", help="directory of the CSV and the figure")
    parser.add_argument("--data_dir", default="",
                        help="cifar-10-batches-bin (its training split) or one batch file, "
                             "under the server's --data_roots")
    parser.add_argument("--generate", default="",
                        help="write generated batch files of the CIFAR-10 layout into this "
                             "directory and train on them (instead of --data_dir)")
    parser.add_argument("--generate_records", type=int, default=1000,
                        help="records per generated batch file (6 files)")
    parser.add_argument("--samples", type=int, default=5000,
                        help="the first images of the split: the full batch, and the shard "
                             "the server measures on")
    parser.add_argument("--normalize", choices=("none", "mean_std"), default="mean_std",
                        help="the server's normalize= option, applied on both sides")
    parser.add_argument("--depth", type=int, default=20, help="6n + 2: 20 or 32 (8 for tests)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--lr", type=float, default=0.4,
                        help="gradient descent's fixed learning rate; the threshold is 2 / lr")
    parser.add_argument("--steps", type=int, default=1000, help="gradient descent steps")
    parser.add_argument("--every", type=int, default=20, help="steps between checkpoints")
    parser.add_argument("--seed", type=int, default=0, help="the initialisation's")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the trainer trains (the server picks its own)")
    parser.add_argument("--lanczos_iterations", type=int, default=30,
                        help="most Lanczos steps of each sharpness measurement")
    parser.add_argument("--micro_batch_size", type=int, default=0,
                        help="the server's micro-batch (0: the whole shard at once)")
    parser.add_argument("--close_timeout", type=float, default=3600.0,
                        help="seconds to wait for the last measurements")
    return parser.parse_args(argv)


def add_residuals(rows):
    """Adds to each SUCCEEDED sharpness row of `rows` the column
    sharpness.residual_norm: Lanczos' ||H y - theta y|| of the top Ritz pair,
    which bounds the distance from the Ritz value to an eigenvalue of H."""
    for row in rows:
        if row["kind"] == "sharpness" and row["result"] is not None and row["result"].top:
            row["sharpness.residual_norm"] = row["result"].top[0].residual_norm


def figure(rows, logged, lr):
    """The sharpness (with its residual bounds) and 2 / lr against step; the
    trainer's train loss and accuracy at every step."""
    fig = matplotlib.figure.Figure(figsize=(13, 3.8), layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    plot.scalar(rows, kinds="sharpness", error_column="sharpness.residual_norm", ax=left)
    left.axhline(2 / lr, color="black", linestyle="--", label=f"2 / lr = {2 / lr:g}")
    left.set_ylim(bottom=0)
    left.legend()
    left.set_title("λ_max(H) (Lanczos, ± Ritz residual)", fontsize="medium")
    steps = sorted(logged)
    middle.plot(steps, [logged[s]["train_loss"] for s in steps])
    middle.set(xlabel="step", ylabel="cross-entropy", yscale="log",
               title="train loss (full batch)")
    right.plot(steps, [logged[s]["train_accuracy"] for s in steps])
    right.set(xlabel="step", ylabel="accuracy", title="train accuracy")
    return fig


def main(argv=None):
    args = parse_args(argv)
    if bool(args.data_dir) == bool(args.generate):
        raise SystemExit("give --data_dir (CIFAR-10) or --generate=DIR, one of them")
    # The server computes in IEEE float32; cuDNN's and cuBLAS's default TF32
    # here would put the two sides' losses 1e-3 apart.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    data = args.data_dir
    if args.generate:
        data = cifar_binary.write_generated(args.generate, args.generate_records, args.seed)
        print(f"wrote generated CIFAR-10 batch files into {data}")
    run_id = args.run or f"cifar-eos-{int(time.time())}"
    device = torch.device(args.device)
    inputs, targets = cifar_binary.read_records(data, args.samples, args.normalize)
    inputs, targets = inputs.to(device), targets.to(device)
    torch.manual_seed(args.seed)
    model = CifarResNet(args.depth, args.width)
    checkpoints = args.steps // args.every + 1
    client = curvd.Client(args.server)
    run = client.run(run_id, model,
                     shard=cifar_binary.shard_uri(data, args.samples, args.normalize),
                     loss="cross_entropy",
                     measure=[{"sharpness": {"max_iterations": args.lanczos_iterations}}],
                     every=args.every, policy="queue", capacity=checkpoints,
                     settings={"micro_batch_size": args.micro_batch_size})
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    print(f"run {run_id}: ResNet-{args.depth} (width {args.width}, no BatchNorm, "
          f"{sum(p.numel() for p in model.parameters())} parameters, {run.model_export}) on "
          f"{len(targets)} images ({device}); full-batch GD, lr {args.lr} "
          f"(2 / lr = {2 / args.lr:g}), "
          f"{args.steps} steps, a checkpoint every {args.every}")
    logged = {}
    start = time.perf_counter()
    for step in range(args.steps + 1):
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        logged[step] = {"train_loss": float(loss),
                        "train_accuracy": float((logits.argmax(1) == targets).float().mean())}
        if step % args.every == 0:
            print(f"step {step:6d}  train loss {logged[step]['train_loss']:.4f}  "
                  f"acc {logged[step]['train_accuracy']:.3f}")
            run.submit(step, model, train_loss=loss.detach())
        if step < args.steps:
            optimizer.step()
    rows = trainer_output.collect(run, client, args.steps, time.perf_counter() - start,
                                  args.close_timeout)
    add_residuals(rows)
    trainer_output.write_csv(rows, os.path.join(args.out, "cifar_resnet_eos.csv"),
                             {s: {"train_accuracy": logged[s]["train_accuracy"],
                                  "two_over_lr": 2 / args.lr}
                              for s in logged if s % args.every == 0})
    measured = [(r["step"], r["value"]) for r in rows
                if r["kind"] == "sharpness" and r["state"] == "SUCCEEDED"]
    if measured:
        print("sharpness / (2 / lr) by step: " +
              ", ".join(f"{s}: {v * args.lr / 2:.2f}" for s, v in measured))
    trainer_output.print_loss_agreement(rows)
    trainer_output.save(figure(rows, logged, args.lr),
                        os.path.join(args.out, "cifar_resnet_eos.png"))


if __name__ == "__main__":
    main()
