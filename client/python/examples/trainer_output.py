"""What the example trainers write at the end: their measurement series as CSV
(run.results()'s rows, the trainer's own per-step numbers added as columns)
and figures as PNG."""

import csv
import os


def write_csv(rows, path, per_step=None):
    """Writes `rows` (run.results(frame=False)) to `path`, one line per row, the
    columns in the order they first appear; the `result` column (a protobuf
    message) is left out. `per_step` maps step -> {column: value} of numbers
    the trainer logged itself (accuracies, say), added to every row of that
    step (empty where a step has none). Returns the columns written."""
    per_step = per_step or {}
    extra = list(dict.fromkeys(k for values in per_step.values() for k in values))
    columns = list(dict.fromkeys(k for row in rows for k in row if k != "result")) + extra
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **per_step.get(row["step"], {})})
    return columns


def save(figure, path):
    """Writes matplotlib Figure `figure` to `path` as PNG and prints where."""
    figure.savefig(path, dpi=100)
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")
