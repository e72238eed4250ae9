"""The reference workloads of issue 4 (W1-W3), W1F (W1 on Fashion-MNIST after
some training, for issue 5's trace estimators) and their export for curvd.

Each workload is a model in eval mode, a data shard with fixed seeds, and the
micro-batch size both sides use. `export` writes what curvd needs into a
directory: the model as a TorchScript archive, the shard as a safetensors file
with `inputs` (float) and `targets` (int64 class indices), and manifest.json,
which curvd_bench reads so that both sides measure the same things. W1's
network is also written as a state dict of curvd's zoo MLP (NAME.zoo.safetensors,
parameters fc{i}.weight / fc{i}.bias), for the LLC row of the batched chains
and the GOP row of the zoo model.

Importable with PyTorch 1.13 (Debian's python3, CPU) and 2.x; W2 needs
torchvision and is left out without it. The safetensors files are written by
hand, so the safetensors package is not needed.
"""
import gzip
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

# What both sides measure, recorded in the manifest so curvd_bench uses the same.
LANCZOS_TOP_K = 5
LANCZOS_TOLERANCE = 1e-4
LANCZOS_MAX_ITERATIONS = 300
HUTCHINSON_PROBES = 100
# The LLC rows (issue 12): SGLD with these settings on both sides, burn-in 0,
# n_beta = B / ln B (devinterp's convention, B the sampler's batch), and per
# workload (chains, draws, batch size). Smoke: LLC_SMOKE_DRAWS draws and
# batches of at most LLC_SMOKE_BATCH, the same chains.
LLC_STEP_SIZE = 1e-5
LLC_LOCALIZATION = 100.0
LLC_SEED = 9
LLC_RUNS = {"W1": (4, 200, 512), "W2": (2, 100, 256), "W3": (4, 200, 512)}
LLC_SMOKE_DRAWS, LLC_SMOKE_BATCH = 20, 32
# The GOP rows (issue 14): the empirical Fisher (per-sample, uncentred) of N
# samples of the shard, a subset drawn by GOP_SEED (curvd's rule: the first N
# of a CPU randperm of the shard, sorted), every metric, per layer. N per
# workload (W3: its whole shard of 2822); both sides also run each halving of
# N down to GOP_MIN_SAMPLES, so that a curvd row that must run at a smaller N
# (the generic path over its time budget) has PyTorch's numbers at that N.
GOP_SEED = 21
GOP_TOP_K = 10
GOP_RUNS = {"W1": 4096, "W2": 512, "W3": 2822}
GOP_MIN_SAMPLES = 64
GOP_SMOKE_RUNS, GOP_SMOKE_MIN_SAMPLES = {"W1": 64, "W2": 8, "W3": 50}, 16


@dataclass
class Workload:
    name: str
    description: str
    model: torch.nn.Module  # eval mode, float32, on the CPU
    inputs: torch.Tensor  # float32 [N, ...]
    targets: torch.Tensor  # int64 [N]
    micro_batch_size: int  # 0 = the whole shard in one batch
    notes: List[str] = field(default_factory=list)
    # The same network as curvd's zoo MLP: {"layer_widths": [...],
    # "activation": ...}; None when it is not one. Its LLC row runs on it too.
    zoo: Optional[dict] = None

    @property
    def num_samples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def batches(self) -> List[Tuple[int, int]]:
        """(start, count) of each micro-batch, as curvd's objective cuts them."""
        n = self.num_samples
        size = n if self.micro_batch_size == 0 else min(self.micro_batch_size, n)
        return [(s, min(size, n - s)) for s in range(0, n, size)]


def mlp(widths: List[int]) -> torch.nn.Module:
    layers: List[torch.nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def zoo_state_dict(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The parameters of an `mlp` network under curvd's zoo MLP names: its
    Linear layers in order as fc0, fc1, ... (fc{i}.weight, fc{i}.bias)."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    out: Dict[str, torch.Tensor] = {}
    for i, layer in enumerate(linears):
        out[f"fc{i}.weight"] = layer.weight
        out[f"fc{i}.bias"] = layer.bias
    return out


class ModularAdditionTransformer(torch.nn.Module):
    """One-layer Transformer of the grokking studies: tokens a, b, '=' (id p),
    learned token and position embeddings, multi-head attention, a ReLU MLP,
    residual connections, no LayerNorm; logits over the p residues read at the
    '=' position. With one layer and the readout at the last position a causal
    mask would change nothing that reaches the output, so there is none.

    Takes the token ids as a float tensor [N, 3] and casts them to int64 inside:
    curvd's safetensors shards carry floating-point inputs, and float32 holds
    every id < 2^24 exactly."""

    def __init__(self, p: int, d_model: int, heads: int, d_mlp: int):
        super().__init__()
        self.heads = heads
        self.d_head = d_model // heads
        self.scale = 1.0 / math.sqrt(self.d_head)
        self.embed = torch.nn.Embedding(p + 1, d_model)
        self.position = torch.nn.Parameter(0.02 * torch.randn(3, d_model))
        self.qkv = torch.nn.Linear(d_model, 3 * d_model, bias=False)
        self.attention_out = torch.nn.Linear(d_model, d_model, bias=False)
        self.mlp_in = torch.nn.Linear(d_model, d_mlp)
        self.mlp_out = torch.nn.Linear(d_mlp, d_model)
        self.unembed = torch.nn.Linear(d_model, p, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.to(torch.long)
        h = self.embed(tokens) + self.position  # [N, T, d]
        n, t = h.size(0), h.size(1)
        qkv = self.qkv(h).view(n, t, 3, self.heads, self.d_head)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # [3, N, heads, T, d_head]
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = torch.softmax(
            torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        z = torch.matmul(attention, v).transpose(1, 2).reshape(n, t, -1)
        h = h + self.attention_out(z)
        h = h + self.mlp_out(torch.relu(self.mlp_in(h)))
        return self.unembed(h[:, -1])


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def w1(smoke: bool = False) -> Workload:
    widths = [784, 32, 32, 10] if smoke else [784, 1024, 1024, 10]
    n, batch = (256, 64) if smoke else (8192, 2048)
    torch.manual_seed(1)
    model = mlp(widths).eval()
    g = _generator(11)
    return Workload(
        "W1", f"MLP {'-'.join(map(str, widths))} tanh, CE, {n} samples, "
        f"batches of {batch}", model, torch.randn(n, widths[0], generator=g),
        torch.randint(0, widths[-1], (n,), generator=g), batch,
        zoo={"layer_widths": widths, "activation": "tanh"})


FASHION_MNIST_DIR = Path(os.environ.get("CURVD_FASHION_MNIST_DIR",
                                        "/usr/share/datasets/fashion-mnist"))


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (gzip-compressed, unsigned bytes) as a uint8 tensor."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    flat = torch.frombuffer(bytearray(data[4 + 4 * rank:]), dtype=torch.uint8)
    return flat.reshape(dims)


def w1f(smoke: bool = False) -> Optional[Workload]:
    """W1's network on real data: the first 8192 Fashion-MNIST training images
    (pixels / 255), after 300 steps of SGD (batch 128, lr 0.1) from W1's
    initialisation, so the Hessian has the structure of real data and training
    (the class outliers), which W1's Gaussian inputs lack."""
    images = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
    labels = FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        return None
    widths = [784, 32, 32, 10] if smoke else [784, 1024, 1024, 10]
    n, batch, steps = (256, 64, 20) if smoke else (8192, 2048, 300)
    inputs = read_idx(images)[:n].reshape(n, 784).to(torch.float32) / 255
    targets = read_idx(labels)[:n].to(torch.int64)
    torch.manual_seed(1)
    model = mlp(widths)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    g = _generator(14)
    for _ in range(steps):
        take = torch.randint(0, n, (128,), generator=g)
        optimizer.zero_grad()
        F.cross_entropy(model(inputs[take]), targets[take]).backward()
        optimizer.step()
    return Workload(
        "W1F", f"W1's MLP {'-'.join(map(str, widths))} on the first {n} "
        f"Fashion-MNIST training images after {steps} SGD steps, CE, "
        f"batches of {batch}", model.eval(), inputs, targets, batch,
        [f"data from {FASHION_MNIST_DIR}"])


def w2(smoke: bool = False, samples: Optional[int] = None) -> Optional[Workload]:
    """W2; `samples` overrides its image count (the split bench's 16,384)."""
    try:
        import torchvision  # noqa: F401
        from torchvision.models import resnet18
    except ImportError:
        return None
    n, batch = (16, 8) if smoke else (2048, 512)
    n = samples or n
    torch.manual_seed(2)
    model = resnet18(num_classes=10).eval()
    g = _generator(12)
    return Workload(
        "W2", f"torchvision resnet18(num_classes=10), eval mode, 3x32x32, CE, "
        f"{n} samples, batches of {batch}", model,
        torch.randn(n, 3, 32, 32, generator=g),
        torch.randint(0, 10, (n,), generator=g), batch)


def w3(smoke: bool = False) -> Workload:
    p, d_model, heads, d_mlp = (13, 16, 4, 32) if smoke else (97, 128, 4, 512)
    torch.manual_seed(3)
    model = ModularAdditionTransformer(p, d_model, heads, d_mlp).eval()
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    order = torch.randperm(p * p, generator=_generator(13))
    take = order[: int(0.3 * p * p)]
    inputs = torch.stack([a[take], b[take], torch.full_like(take, p)], dim=1)
    targets = (a[take] + b[take]) % p
    return Workload(
        "W3", f"1-layer Transformer, modular addition p={p}, d_model {d_model}, "
        f"{heads} heads, MLP {d_mlp} ReLU, no LayerNorm, {len(take)} pairs "
        f"(30% of p^2), one batch", model, inputs.to(torch.float32),
        targets.to(torch.int64), 0,
        ["token ids are float32 inputs cast to int64 inside the model"])


def llc_run(name: str, num_samples: int, smoke: bool) -> Optional[dict]:
    """The LLC run of workload `name` (None without one): chains, draws,
    burn-in, the batch min(B, n) and n_beta = B / ln B of that batch."""
    if name not in LLC_RUNS:
        return None
    chains, draws, batch = LLC_RUNS[name]
    if smoke:
        draws, batch = LLC_SMOKE_DRAWS, min(batch, LLC_SMOKE_BATCH)
    batch = min(batch, num_samples)
    return {"chains": chains, "draws": draws, "burn_in": 0,
            "batch_size": batch, "n_beta": batch / math.log(batch)}


def gop_run(name: str, num_samples: int, smoke: bool) -> Optional[dict]:
    """The GOP run of workload `name` (None without one): N (at most the
    shard's size), the ladder N, N // 2, ... down to the minimum (N alone when
    it is below it), the seed and top-k."""
    runs, least = ((GOP_SMOKE_RUNS, GOP_SMOKE_MIN_SAMPLES) if smoke
                   else (GOP_RUNS, GOP_MIN_SAMPLES))
    if name not in runs:
        return None
    n = min(runs[name], num_samples)
    ladder = [n]
    while ladder[-1] // 2 >= least:
        ladder.append(ladder[-1] // 2)
    return {"num_samples": n, "ladder": ladder, "seed": GOP_SEED,
            "top_k": GOP_TOP_K}


def all_workloads(smoke: bool = False, names: Optional[List[str]] = None,
                  w2_samples: Optional[int] = None) -> List[Workload]:
    out = []
    for make, needs in ((w1, ""), (w1f, f"Fashion-MNIST in {FASHION_MNIST_DIR}"),
                        (w2, "torchvision"), (w3, "")):
        name = make.__name__.upper()
        if names and name not in names:
            continue
        workload = make(smoke, w2_samples) if make is w2 else make(smoke)
        if workload is None:
            print(f"[workloads] {name} skipped: it needs {needs}")
            continue
        out.append(workload)
    return out


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F64",
                       torch.int64: "I64"}


def write_safetensors(path: Path, tensors: Dict[str, torch.Tensor]) -> None:
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[t.dtype],
                        "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def to_torchscript(model: torch.nn.Module,
                   example: torch.Tensor) -> Tuple[torch.jit.ScriptModule, str]:
    try:
        return torch.jit.script(model), "script"
    except Exception as e:  # noqa: BLE001 - any scripting failure falls back
        print(f"[workloads] torch.jit.script failed ({type(e).__name__}: "
              f"{str(e).splitlines()[0]}); tracing instead")
        with torch.no_grad():
            return torch.jit.trace(model, example), "trace"


def export(workloads: List[Workload], out_dir: Path, smoke: bool,
           lanczos_max_iterations: int = LANCZOS_MAX_ITERATIONS,
           probes: int = HUTCHINSON_PROBES) -> dict:
    """Writes NAME.pt, NAME.safetensors per workload, NAME.zoo.safetensors for
    one that is a zoo MLP, and manifest.json (with each workload's LLC run and
    GOP run, null for one without, and its zoo spec and state dict, null
    without)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "smoke": smoke,
        "torch_version": torch.__version__,
        "settings": {
            "lanczos_top_k": LANCZOS_TOP_K,
            "lanczos_relative_tolerance": LANCZOS_TOLERANCE,
            "lanczos_max_iterations": lanczos_max_iterations,
            "hutchinson_probes": probes,
            "llc_step_size": LLC_STEP_SIZE,
            "llc_localization": LLC_LOCALIZATION,
            "llc_n_beta_convention": "batch",
            "llc_seed": LLC_SEED,
        },
        "workloads": [],
    }
    for w in workloads:
        archive = out_dir / f"{w.name}.pt"
        shard = out_dir / f"{w.name}.safetensors"
        scripted, how = to_torchscript(w.model, w.inputs[:2])
        torch.jit.save(scripted, str(archive))
        write_safetensors(shard, {"inputs": w.inputs, "targets": w.targets})
        zoo = None
        if w.zoo is not None:
            state_dict = out_dir / f"{w.name}.zoo.safetensors"
            write_safetensors(state_dict, zoo_state_dict(w.model))
            zoo = dict(w.zoo, state_dict=str(state_dict.resolve()))
        manifest["workloads"].append({
            "name": w.name,
            "description": w.description,
            "archive": str(archive.resolve()),
            "shard": str(shard.resolve()),
            "torchscript": how,
            "loss": "cross_entropy",
            "micro_batch_size": w.micro_batch_size,
            "num_samples": w.num_samples,
            "num_parameters": w.num_parameters,
            "notes": w.notes,
            "llc": llc_run(w.name, w.num_samples, smoke),
            "gop": gop_run(w.name, w.num_samples, smoke),
            "zoo": zoo,
        })
    with open(out_dir / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest
