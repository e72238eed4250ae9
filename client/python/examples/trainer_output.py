"""What the example trainers write at the end: their measurement series as CSV
(run.results()'s rows, the trainer's own per-step numbers added as columns)
and figures as PNG."""

import csv
import os
import threading
import time


def write_csv(rows, path, per_step=None):
    """Writes `rows` (run.results(frame=False)) to `path`, one line per row, the
    columns in the order they first appear; the `result` column (a protobuf
    message) is left out. `per_step` maps step -> {column: value} of numbers
    the trainer logged itself (accuracies, say), added to every row of that
    step (empty where a step has none). Makes the directory when missing and
    prints what it wrote. Returns the columns written."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    per_step = per_step or {}
    extra = list(dict.fromkeys(k for values in per_step.values() for k in values))
    columns = list(dict.fromkeys(k for row in rows for k in row if k != "result")) + extra
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **per_step.get(row["step"], {})})
    print(f"wrote {path} ({len(rows)} rows)")
    return columns


def collect(run, client, steps, seconds, close_timeout):
    """After `steps` training steps in `seconds`: closes `run` (waiting up to
    `close_timeout` seconds for its measurements) and `client`, prints the
    checkpoint counts, and returns run.results() as a list of dicts."""
    print(f"trained {steps} steps in {seconds:.1f} s ({steps / seconds:.0f} steps/s); "
          f"waiting for the measurements", flush=True)
    # close() waits on a thread of its own while each result is printed as it
    # arrives, so a long wait shows its progress.
    closer = threading.Thread(target=run.close, kwargs={"timeout": close_timeout})
    closer.start()
    start = time.perf_counter()
    for row in run.watch(timeout=close_timeout):
        value = row["value"]
        print(f"  [{time.perf_counter() - start:7.1f} s] step {row['step']:6d} "
              f"{row['kind']}: {row['state']}"
              + (f" {value:.6g}" if isinstance(value, float) else ""), flush=True)
    closer.join()
    print(f"checkpoints: {run.stats}")
    rows = run.results(frame=False)
    client.close()
    return rows


def print_loss_agreement(rows):
    """Prints how far the server's loss at each SUCCEEDED row of `rows` (its
    `loss`, on its shard) is from the trainer's `train_loss` at that step: the
    largest relative difference, a check that both sides hold the same data
    when checkpoints are submitted before their optimizer step. Returns it,
    None when no row has a train loss."""
    gaps = [abs(r["loss"] - r["train_loss"]) / max(abs(r["train_loss"]), 1e-12)
            for r in rows if r["state"] == "SUCCEEDED" and r["train_loss"] is not None]
    if not gaps:
        return None
    print(f"the server's loss against the trainer's: largest relative difference "
          f"{max(gaps):.2e} over {len(gaps)} measurements")
    return max(gaps)


def plot_logged(ax, logged, keys, ylabel, title):
    """Draws the trainer's own numbers `logged` (step -> {key: value}) into
    matplotlib Axes `ax`: one line per (key, label) of `keys`."""
    steps = sorted(logged)
    for key, label in keys:
        ax.plot(steps, [logged[s][key] for s in steps], marker=".", label=label)
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.legend()


def save(figure, path):
    """Writes matplotlib Figure `figure` to `path` as PNG and prints where."""
    figure.savefig(path, dpi=100)
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")
