#!/usr/bin/env python3
"""The Python client's speed (issue 13), against a real curvd server over
loopback, in one run, each figure beside its baseline:

  submit   run.submit() latency for W1's network (workloads.w1, 1.86 M
           parameters) training on --device (SGD, batches of 2048): median, p90
           (the target's figure), max over --submits submits, one every 10
           steps, after 5 untimed ones; the run stores every checkpoint (no
           measurements), so the background uploader is as busy as it can be
           (it coalesces). Baseline: the training step itself, without submit.
  training the grokking example's training step (examples/grokking.py's model,
           optimizer and forward_backward) in steps per second with run.submit
           called every step of a run with every=10, against the same loop with
           curvd disabled (no submit call), same process, interleaved segments of
           equal length; a baseline segment starts once the server has finished
           what it was given (waiting at most --idle_timeout s; the row counts
           those it had not).
           Twice: the server measuring on the CPU, then sharing --device. The
           plan measured at each checkpoint (coalescing policy, so the server is
           busy throughout a curvd segment): sharpness (Lanczos) and the Hessian
           trace (Hutchinson) on the training split, as one plan. The row's
           ratio is the median over the pairs of segments, beside the pairs'
           geometric mean with its standard error.
  upload   a --upload_mb checkpoint of float32 tensors, fresh random content each
           repetition: safetensors encoding plus client.upload (sha256, then the
           chunked WriteBlob stream until the server commits it); then the same
           content again, which must send 0 bytes.

Usage: client_speed.py --curvd BUILD/bin/curvd [--device cuda:0] [--smoke]
           [--rows submit,training,upload] [--out DIR] [--server_library_path DIR]
Writes DIR/client_speed.json, DIR/client_speed.md and the servers' logs
(DIR/curvd-cpu.log, DIR/curvd-cuda0.log) and prints the table last.
Exit status 0 when every row ran (the targets are reported, not enforced), 1
otherwise. scripts/bench_python_client.sh drives it on the GPU machine.
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(REPO, "client", "python"),
                os.path.join(REPO, "client", "python", "examples"),
                os.path.join(REPO, "tests", "python"), HERE]

import torch  # noqa: E402

import curvd  # noqa: E402
from curvd import blob_upload, modular_addition, safetensors_format  # noqa: E402
from curvd_server import CurvdServer  # noqa: E402
import grokking  # noqa: E402
import workloads  # noqa: E402

SUBMIT_TARGET_MS = 2.0
TRAINING_TARGET_RATIO = 0.95
UPLOAD_TARGET_SECONDS = 0.5
# The grokking example at a size a two-core CPU trains at tens of steps/s.
SMOKE_GROKKING_ARGS = ["--p", "23", "--d_model", "32", "--heads", "4", "--d_mlp", "64"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curvd", required=True, help="the curvd server binary")
    parser.add_argument("--device", default="cuda:0", help="where the trainer trains")
    parser.add_argument("--rows", default="submit,training,upload",
                        help="comma list of submit, training (= training_cpu and "
                             "training_gpu), training_cpu, training_gpu, upload")
    parser.add_argument("--smoke", action="store_true",
                        help="small sizes and few repetitions, to try the script on a CPU")
    parser.add_argument("--out", default=".", help="directory of the JSON and markdown")
    parser.add_argument("--server_library_path", default="",
                        help="prepended to LD_LIBRARY_PATH for the server only")
    parser.add_argument("--server_threads", type=int,
                        help="OMP_NUM_THREADS of the server (default: its CPUs under "
                             "--trainer_cpus, else the cores less two, left to the "
                             "trainer's thread and its uploader)")
    parser.add_argument("--trainer_cpus",
                        help="CPU list (e.g. 0-1 or 0,8) for this process, its trainer and "
                             "uploader; the servers get the other CPUs (default: no pinning)")
    parser.add_argument("--server_cpus",
                        help="CPU list for the servers alone, the trainer left where the "
                             "kernel puts it (as `taskset -c LIST curvd` or a container's "
                             "cpuset would); not with --trainer_cpus")
    parser.add_argument("--worker_nice", type=int,
                        help="the servers' --worker_nice (default: curvd's own, 10)")
    parser.add_argument("--uploader", choices=("process", "thread"), default="process",
                        help="the runs' uploader (Client.run's uploader)")
    parser.add_argument("--measure", choices=("sharpness_trace", "none"),
                        default="sharpness_trace",
                        help="what the training rows' server measures at each checkpoint; "
                             "none stores the checkpoints only, leaving the client's own cost")
    parser.add_argument("--server_micro_batch", type=int, default=0,
                        help="micro_batch_size of the training rows' measurements "
                             "(default 0: the server's choice)")
    parser.add_argument("--submits", type=int, help="timed submits (default 200; smoke 20)")
    parser.add_argument("--repetitions", type=int,
                        help="pairs of training segments per server (default 5; smoke 2)")
    parser.add_argument("--segment_seconds", type=float,
                        help="length of one training segment (default 1.5; smoke 0.5)")
    parser.add_argument("--lanczos_iterations", type=int, help="default 20; smoke 5")
    parser.add_argument("--probes", type=int, help="trace probes, default 20; smoke 4")
    parser.add_argument("--idle_timeout", type=float, default=60.0,
                        help="longest wait for the server to finish before a baseline "
                             "segment of a training row (default 60)")
    parser.add_argument("--upload_mb", type=float, help="checkpoint MiB (default 100; smoke 16)")
    parser.add_argument("--upload_repetitions", type=int, help="default 5; smoke 2")
    args = parser.parse_args(argv)
    defaults = dict(submits=(200, 20), repetitions=(5, 2), segment_seconds=(1.5, 0.5),
                    lanczos_iterations=(20, 5), probes=(20, 4), upload_mb=(100, 16),
                    upload_repetitions=(5, 2))
    for name, (full, smoke) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.server_cpus is not None:
        if args.trainer_cpus is not None:
            parser.error("give --trainer_cpus or --server_cpus, not both")
        args.server_cpus = cpu_list(args.server_cpus)
        if not args.server_cpus < os.sched_getaffinity(0):
            parser.error(f"--server_cpus must be a proper subset of {sorted(os.sched_getaffinity(0))}")
    if args.trainer_cpus is not None:
        args.trainer_cpus = cpu_list(args.trainer_cpus)
        args.server_cpus = os.sched_getaffinity(0) - args.trainer_cpus
        if not args.server_cpus or not args.trainer_cpus <= os.sched_getaffinity(0):
            parser.error(f"--trainer_cpus must be a proper subset of {sorted(os.sched_getaffinity(0))}")
    if args.server_threads is None:
        args.server_threads = (len(args.server_cpus) if args.server_cpus
                               else max(1, (os.cpu_count() or 2) - 2))
    return args


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cpu_list(text):
    """The CPU numbers of a list such as "0-1,8"."""
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def cpu_ranges(cpus):
    """ "0-1,8" for [0, 1, 8]: the inverse of cpu_list."""
    ranges = []
    for cpu in sorted(cpus):
        if ranges and ranges[-1][1] == cpu - 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)


@contextlib.contextmanager
def pinned(cpus):
    """Context: the calling thread (and so what it starts) runs on `cpus`
    inside, on its earlier CPUs again after; no pinning when `cpus` is None."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def start_server(args, devices):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.server_threads),
               MKL_NUM_THREADS=str(args.server_threads))
    if args.server_library_path:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (args.server_library_path, env.get("LD_LIBRARY_PATH", "")) if p)
    flags = [] if args.worker_nice is None else [f"--worker_nice={args.worker_nice}"]
    server = CurvdServer(binary=args.curvd, devices=devices, env=env, flags=flags)
    try:
        with pinned(args.server_cpus):  # the server's process inherits them
            server.start(timeout=120)
    except BaseException:
        server.close()
        raise
    return server


def stop_server(server, out):
    """Kills `server`, keeping its log as OUT/curvd-<devices>.log."""
    server.kill()
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(server.root, "curvd.log"),
                    os.path.join(out, f"curvd-{server.devices.replace(':', '')}.log"))
    server.close()


def submit_row(client, args, device):
    """W1's network training on `device`, submitting every `every` steps."""
    workload = workloads.w1()
    model = workload.model.train()
    every = 2 if args.smoke else 10
    run = client.run(f"speed-submit-{int(time.time() * 1000)}", model, every=every,
                     example_input=workload.inputs[:2], uploader=args.uploader)
    model.to(device)
    batch = 16 if args.smoke else workload.micro_batch_size
    x = workload.inputs[:batch].to(device)
    y = workload.targets[:batch].to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def train_step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    # No synchronisation around submit: it must not wait for the GPU, which
    # is still working on the step when submit is called. The first few
    # submits (pinned buffers allocated, the uploader's first checkpoint) are
    # not timed.
    warmup = 5
    steps = (warmup + args.submits) * every
    submits = []
    for step in range(steps):
        loss = train_step()
        start = time.perf_counter()
        taken = run.submit(step, model, train_loss=loss.detach())
        if taken and step >= warmup * every:
            submits.append(time.perf_counter() - start)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    synchronize(device)
    step_ms = 1e3 * (time.perf_counter() - start) / steps
    run.close(timeout=120)
    ms = [1e3 * s for s in submits]
    return {"parameters": workload.num_parameters, "batch": batch, "every": every,
            "submits": len(ms), "warmup_submits": warmup,
            "median_ms": statistics.median(ms), "p90_ms": percentile(ms, 0.9),
            "max_ms": max(ms), "step_ms": step_ms, "run_stats": run.stats,
            "target_ms": SUBMIT_TARGET_MS, "pass": percentile(ms, 0.9) < SUBMIT_TARGET_MS}


def stat_cpu_seconds(path):
    """User + system CPU seconds of a /proc .../stat file; None when it is gone."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds():
    """{thread id: user + system CPU seconds} of this process's threads (Linux
    /proc; empty elsewhere)."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return {}
    seconds = {int(tid): stat_cpu_seconds(f"/proc/self/task/{tid}/stat") for tid in tids}
    return {tid: cpu for tid, cpu in seconds.items() if cpu is not None}


def process_cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (all its threads); 0 when it
    is gone or `pid` is None."""
    cpu = None if pid is None else stat_cpu_seconds(f"/proc/{pid}/stat")
    return cpu or 0.0


def upload_child_pid(run):
    """The pid of `run`'s upload process while one runs, else None."""
    child = run._upload_process and run._upload_process._process  # noqa: SLF001
    return child.pid if child is not None else None


def cpu_shares(before, after, wall, trainer, uploader):
    """CPU seconds per wall second of the trainer's thread, the run's uploader
    thread and every other thread of the process together, between the
    thread_cpu_seconds() snapshots `before` and `after`."""
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    trainer_s, uploader_s = used.pop(trainer, 0.0), used.pop(uploader, 0.0)
    return {"trainer": trainer_s / wall, "uploader": uploader_s / wall,
            "other_threads": sum(used.values()) / wall}


def wait_idle(run, timeout):
    """Waits until every checkpoint submitted to `run` is measured or dropped;
    False when `timeout` seconds passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = run.stats
        if s["processed"] + s["failed"] + s["coalesced"] + s["dropped"] >= s["submitted"]:
            return True
        time.sleep(0.01)
    return False


def geometric_mean_and_se(ratios):
    """The geometric mean of `ratios` and its standard error (the standard error
    of the mean log ratio, carried through exp by the delta method; 0 for one
    ratio). The pairs' ratios scatter by ±10 % on a busy host, so a median of a
    few pairs alone cannot tell 0.94 from 0.98."""
    logs = [math.log(r) for r in ratios]
    mean = math.exp(statistics.fmean(logs))
    if len(logs) < 2:
        return mean, 0.0
    return mean, mean * statistics.stdev(logs) / math.sqrt(len(logs))


def training_row(client, args, device, server_label):
    """The grokking loop with and without curvd, interleaved."""
    gargs = grokking.parse_args(SMOKE_GROKKING_ARGS if args.smoke else [])
    split = dict(p=gargs.p, train_fraction=gargs.train_fraction, seed=gargs.seed)
    x, y = (t.to(device) for t in modular_addition.shard(**split, split="train"))
    model = grokking.make_model(gargs)
    optimizer = grokking.make_optimizer(model, gargs)
    plan = curvd.plan(sharpness={"max_iterations": args.lanczos_iterations},
                      hessian_trace={"min_probes": min(10, args.probes),
                                     "max_probes": args.probes})
    run = client.run(f"speed-grokking-{int(time.time() * 1000)}", model,
                     shard=modular_addition.uri(**split, split="train"), loss="cross_entropy",
                     measure=[plan] if args.measure != "none" else [], every=10,
                     example_input=x[:2].cpu(), uploader=args.uploader,
                     settings={"micro_batch_size": args.server_micro_batch})
    model.to(device)
    step = 0
    # Where the trainer process's CPU goes, per mode, summed over the timed
    # segments: its threads' CPU seconds, the time inside submit() and the wall
    # time (a diagnosis of the ratio: the client's own cost against contention).
    trainer_tid = threading.get_native_id()
    cpu = {mode: {"wall": 0.0, "submit": 0.0, "before": None, "shares": []}
           for mode in ("curvd", "baseline")}
    timed = False

    def segment(steps, with_curvd):
        nonlocal step
        account = cpu["curvd" if with_curvd else "baseline"]
        synchronize(device)
        threads_before = thread_cpu_seconds()
        child = upload_child_pid(run)
        child_before = process_cpu_seconds(child)
        start = time.perf_counter()
        in_submit = 0.0
        for _ in range(steps):
            _, loss = grokking.forward_backward(model, optimizer, x, y)
            if with_curvd:
                submit_start = time.perf_counter()
                run.submit(step, model, train_loss=loss.detach())
                in_submit += time.perf_counter() - submit_start
            optimizer.step()
            step += 1
        synchronize(device)
        wall = time.perf_counter() - start
        if timed:
            account["wall"] += wall
            account["submit"] += in_submit
            shares = cpu_shares(threads_before, thread_cpu_seconds(), wall, trainer_tid,
                                run._thread.native_id)  # noqa: SLF001
            # The child's CPU where it ran throughout (a restart loses a segment).
            shares["upload_process"] = (
                (process_cpu_seconds(child) - child_before) / wall
                if child is not None and child == upload_child_pid(run) else 0.0)
            account["shares"].append(shares)
        return steps / wall

    # Warm-up (untimed): the trainer's kernels and allocator, the server's model
    # load and first measurement; it also sizes the segments.
    segment(20, True)
    rate = max(segment(20, True), segment(20, False))
    steps = max(20, int(rate * args.segment_seconds) // 10 * 10)
    timed = True
    baseline, with_curvd, busy_baselines = [], [], 0
    for rep in range(args.repetitions):
        order = (False, True) if rep % 2 == 0 else (True, False)
        for curvd_on in order:
            if curvd_on:
                with_curvd.append(segment(steps, True))
            else:
                busy_baselines += not wait_idle(run, args.idle_timeout)
                baseline.append(segment(steps, False))
    stats = run.stats
    closed = run.close(timeout=5)
    rows = run.results(frame=False)
    ratios = [c / b for c, b in zip(with_curvd, baseline)]
    ratio = statistics.median(ratios)
    geomean, geomean_se = geometric_mean_and_se(ratios)
    return {"server": server_label, "steps_per_segment": steps,
            "repetitions": args.repetitions,
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_pairs": int(y.numel()),
            "baseline_steps_per_s": statistics.median(baseline),
            "curvd_steps_per_s": statistics.median(with_curvd),
            "baseline_segments": baseline, "curvd_segments": with_curvd,
            "ratios": ratios, "ratio": ratio, "min_ratio": min(ratios),
            "ratio_geomean": geomean, "ratio_geomean_se": geomean_se,
            "baseline_segments_with_server_busy": busy_baselines,
            "idle_timeout_s": args.idle_timeout,
            "submit_seconds_per_s": cpu["curvd"]["submit"] / max(cpu["curvd"]["wall"], 1e-9),
            "cpu_per_s": {mode: {key: statistics.median(share[key] for share in a["shares"])
                                 for key in ("trainer", "uploader", "other_threads",
                                             "upload_process")}
                          for mode, a in cpu.items() if a["shares"]},
            "plan": f"sharpness (max_iterations {args.lanczos_iterations}) + hessian_trace "
                    f"({min(10, args.probes)}-{args.probes} probes), one plan, "
                    f"micro_batch_size {args.server_micro_batch}"
                    if args.measure != "none" else "none (checkpoints stored only)",
            "run_stats": stats, "closed_in_time": closed,
            "measurements": {state: sum(r["state"] == state for r in rows)
                             for state in sorted({r["state"] for r in rows})},
            "target_ratio": TRAINING_TARGET_RATIO, "pass": ratio >= TRAINING_TARGET_RATIO}


def upload_row(client, args):
    """A fresh checkpoint of float32 tensors per repetition, then the same again."""
    total_bytes = int(args.upload_mb * (1 << 20))
    tensor_elements = 1 << 20  # 4 MiB tensors, a large layer's worth
    count = max(1, total_bytes // (4 * tensor_elements))
    encode_s, upload_s, hash_s, again_s, again_bytes, sizes = [], [], [], [], [], []
    for rep in range(args.upload_repetitions):
        generator = torch.Generator().manual_seed(int(time.time() * 1e6) + rep)
        tensors = {f"layer{i}.weight": torch.randn(tensor_elements, generator=generator)
                   for i in range(count)}
        start = time.perf_counter()
        data = safetensors_format.encode_parts(tensors)  # as a run's uploader does
        encoded = time.perf_counter()
        client.upload(data)
        uploaded = time.perf_counter()
        sent = client.upload_stats["bytes_uploaded"]
        client.upload(data)
        again = time.perf_counter()
        again_bytes.append(client.upload_stats["bytes_uploaded"] - sent)
        blob_upload.sha256_digest(data)
        hash_s.append(time.perf_counter() - again)
        encode_s.append(encoded - start)
        upload_s.append(uploaded - encoded)
        again_s.append(again - uploaded)
        sizes.append(sum(len(piece) for piece in data))
    totals = [e + u for e, u in zip(encode_s, upload_s)]
    seconds = statistics.median(totals)
    return {"bytes": sizes[0], "tensors": count, "repetitions": args.upload_repetitions,
            "seconds": seconds, "max_seconds": max(totals),
            "encode_seconds": statistics.median(encode_s),
            "upload_seconds": statistics.median(upload_s),
            "sha256_seconds": statistics.median(hash_s),
            "again_seconds": statistics.median(again_s), "again_bytes": max(again_bytes),
            "megabytes_per_s": sizes[0] / seconds / 1e6,
            "target_seconds": UPLOAD_TARGET_SECONDS,
            "pass": seconds < UPLOAD_TARGET_SECONDS and max(again_bytes) == 0}


def submit_cells(s):
    return (f"median {s['median_ms']:.3f} ms, p90 {s['p90_ms']:.3f}, max {s['max_ms']:.3f} "
            f"({s['submits']} submits, one every {s['every']} steps)",
            f"training step {s['step_ms']:.2f} ms (mean, no submit)",
            f"{s['median_ms'] / s['step_ms']:.3f} of a step")


def training_cells(t):
    busy = (f", {t['baseline_segments_with_server_busy']} baseline segment(s) with the "
            f"server still busy" if t["baseline_segments_with_server_busy"] else "")
    shares = t.get("cpu_per_s", {})
    where = "; ".join(f"{mode} CPU/s: trainer {c['trainer']:.2f}, uploader {c['uploader']:.2f}, "
                      f"other {c['other_threads']:.2f}, upload process "
                      f"{c.get('upload_process', 0.0):.2f}" for mode, c in shares.items())
    where += f"; in submit {t['submit_seconds_per_s']:.3f} s/s" if shares else ""
    return (f"{t['curvd_steps_per_s']:.1f} steps/s ({where})",
            f"{t['baseline_steps_per_s']:.1f} steps/s ({t['repetitions']} × "
            f"{t['steps_per_segment']} steps each{busy})",
            f"{t['ratio']:.3f} (min {t['min_ratio']:.3f}; geometric mean "
            f"{t['ratio_geomean']:.3f} ± {t['ratio_geomean_se']:.3f})")


def upload_cells(u):
    return (f"{u['seconds']:.3f} s median, max {u['max_seconds']:.3f} (encode "
            f"{u['encode_seconds']:.3f} + upload {u['upload_seconds']:.3f}; "
            f"{u['megabytes_per_s']:.0f} MB/s)",
            f"sha256 alone {u['sha256_seconds']:.3f} s; again: {u['again_bytes']} bytes in "
            f"{u['again_seconds']:.3f} s", "")


def markdown(result):
    """The table of `result` (main's dict) as markdown lines."""
    rows = result["rows"]
    entries = [(f"submit latency, W1 (1.86 M parameters) on {result['device']}",
                f"p90 < {SUBMIT_TARGET_MS:g} ms", submit_cells, rows.get("submit"))]
    config = (f"uploader {result.get('uploader', 'thread')}, measuring "
              f"{result.get('measure', 'sharpness_trace')}, server threads "
              f"{result.get('server_threads')}")
    if result.get("server_micro_batch"):
        config += f", micro-batches of {result['server_micro_batch']}"
    if result.get("trainer_cpus"):
        config += (f", trainer on CPUs {cpu_ranges(result['trainer_cpus'])}, server on "
                   f"{cpu_ranges(result['server_cpus'])}")
    elif result.get("server_cpus"):
        config += (f", server on CPUs {cpu_ranges(result['server_cpus'])}, trainer "
                   "unpinned")
    entries += [(f"grokking loop, submit every 10, server on {t['server']} ({config})",
                 f"≥ {TRAINING_TARGET_RATIO:g}", training_cells, t)
                for t in rows.get("training", [])]
    upload = rows.get("upload")
    if upload is not None:
        megabytes = f"{upload['bytes'] / (1 << 20):.0f} MiB" if "bytes" in upload else "a"
        entries.append((f"{megabytes} checkpoint upload over loopback",
                        f"< {UPLOAD_TARGET_SECONDS:g} s, 0 bytes again", upload_cells, upload))
    lines = ["| row | curvd | baseline (curvd disabled), context | ratio | target | result |",
             "| --- | --- | --- | ---: | --- | --- |"]
    for label, target, cells, row in entries:
        if row is None:
            continue
        if "error" in row:
            values, verdict = (row["error"], "", ""), "ERROR"
        else:
            values, verdict = cells(row), "PASS" if row["pass"] else "FAIL"
        lines.append("| " + " | ".join((label, *values, target, verdict)) + " |")
    return lines


def guarded(function, *args):
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - one failed row must not hide the others
        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {error}".splitlines()[0][:200]}


def write(result, out):
    """Writes `result` as client_speed.json and its table as client_speed.md
    under `out`; returns the table's lines."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "client_speed.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = markdown(result)
    with open(os.path.join(out, "client_speed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args.trainer_cpus is not None:
        # Before any thread starts: torch's and the runs' threads and the upload
        # processes inherit the trainer's CPUs.
        os.sched_setaffinity(0, args.trainer_cpus)
    device = torch.device(args.device)
    rows = set(args.rows.split(","))
    from google.protobuf.internal import api_implementation
    import google.protobuf
    import grpc
    result = {"device": str(device), "smoke": args.smoke, "rows": {},
              "python": sys.version.split()[0], "torch": torch.__version__,
              "grpcio": grpc.__version__, "protobuf": google.protobuf.__version__,
              "protobuf_implementation": api_implementation.Type(),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "cpus": os.cpu_count(), "server_threads": args.server_threads,
              "worker_nice": args.worker_nice, "measure": args.measure,
              "server_micro_batch": args.server_micro_batch,
              "trainer_cpus": sorted(args.trainer_cpus or []),
              "server_cpus": sorted(args.server_cpus or []),
              "uploader": args.uploader}
    print(f"[client_speed] {json.dumps({k: v for k, v in result.items() if k != 'rows'})}",
          flush=True)
    start = time.perf_counter()
    # Rows in the order of the list, each written out as soon as it is done (a
    # run cut short keeps what it measured); the server measures on the CPU,
    # then, for the second training row, on the trainer's device.
    shared = f"{device}, shared with the trainer"
    plan = [("submit", "cpu", lambda c: submit_row(c, args, device)),
            ("upload", "cpu", lambda c: upload_row(c, args)),
            ("training_cpu", "cpu", lambda c: training_row(c, args, device, "cpu")),
            ("training_gpu", str(device), lambda c: training_row(c, args, device, shared))]
    if "training" in rows:
        rows |= {"training_cpu", "training_gpu"}
    # A SIGTERM (timeout's) unwinds through the finally below, which kills the
    # server, rather than leaving it running on the device.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = None
    try:
        for name, devices, row in plan:
            if name not in rows:
                continue
            if server is None or server.devices != devices:
                if server is not None:
                    stop_server(server, args.out)
                server = start_server(args, devices)
            client = curvd.Client(server.target)
            try:
                value = guarded(row, client)
            finally:
                client.close()
            if name.startswith("training"):
                value.setdefault("server", shared if devices != "cpu" else "cpu")
                result["rows"].setdefault("training", []).append(value)
            else:
                result["rows"][name] = value
            print(f"[client_speed] {name}: {value}", flush=True)
            result["seconds"] = time.perf_counter() - start
            write(result, args.out)
    finally:
        if server is not None:
            stop_server(server, args.out)
    lines = write(result, args.out)
    print(json.dumps(result, indent=1))
    print()
    print(f"Python client speed on {result['gpu'] or result['device']} "
          f"({'smoke, ' if args.smoke else ''}{result['seconds']:.0f} s; python "
          f"{result['python']}, torch {result['torch']}, grpcio {result['grpcio']}, protobuf "
          f"{result['protobuf']} {result['protobuf_implementation']}):")
    print("\n".join(lines))
    failed = [r for r in [result["rows"].get("submit"), result["rows"].get("upload"),
                          *result["rows"].get("training", [])] if r is not None and "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
