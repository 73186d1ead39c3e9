"""Training a StyleGAN2 spectrogram model on a CPU (or a GPU), resumable, with a run folder that holds everything.

A run folder holds

* ``config.json``: the architecture (:class:`~stylesynth.model.ModelConfig`) and :class:`TrainConfig`;
* ``state.safetensors`` + ``state.json``: G, D, the EMA generator, both Adams' moments, the step and kimg: a run
  resumes exactly where its last snapshot stopped (every random draw is seeded by (seed, step, rank), so the data
  order and latents after a resume are the ones an uninterrupted run would have drawn);
* ``log.jsonl``: one line per log interval (losses, clips/s) and per evaluation (Fréchet distance, diversity);
* ``samples/``: a PNG grid of fixed-latent samples per evaluation, so progress can be looked at;
* ``best/``: the EMA generator with the lowest Fréchet distance so far, exported as a checkpoint folder.

With no state in the run folder but a checkpoint to start from (``--warm-start``, by default the shipped model), a
run warm-restarts: G and the EMA from the checkpoint, D from its ``discriminator.safetensors`` if present.

Loss and regularisation are StyleGAN2's: non-saturating logistic loss, lazy R1 on reals every ``r1_interval``
steps, style mixing, EMA of G with a ramp-up, tracked w average. Path-length regularisation is left out: it costs an
extra backward pass that a 2-core budget spends better on more images (the generator is still smooth enough for
the semantic edits, which is what path length is for).

Data parallel: under ``torchrun`` (``WORLD_SIZE > 1``) every rank draws its own batch and gradients are averaged with
an all-reduce (gloo on CPU, nccl on GPU) before each optimizer step; rank 0 writes the run folder.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stylesynth import checkpoint, features, plots
from stylesynth.model import Discriminator, Generator, ModelConfig, cpu_config, tiny_config
from stylesynth.spectrogram import ENV, HITS, Representation

REPRESENTATIONS = {"hits": HITS, "env": ENV}


@dataclass
class TrainConfig:
    model: str = "hits"                 # which representation / data: "hits" or "env"
    batch: int = 32
    lr: float = 0.0025
    betas: tuple = (0.0, 0.99)
    r1_gamma: float = 0.4               # ADA's heuristic 0.0002 * 256^2 / batch
    r1_interval: int = 16
    style_mixing: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05            # EMA half-life at most 5 % of the images seen: early samples stay current
    w_avg_beta: float = 0.995
    kimg: float = 200.0
    seed: int = 0
    snapshot_minutes: float = 5.0
    eval_minutes: float = 15.0
    eval_samples: int = 256
    log_every: int = 10
    data_n: int = 16000
    data_dir: str = ""
    amp: str = "none"                   # "bf16": autocast the losses' forward and backward passes (R1 stays fp32)
    reanalysis: bool = False            # D judges sounds (image -> PGHI -> waveform -> image), not images
    consistency: float = 0.0            # with reanalysis: G loss + this * mean |sound's image - image| (see heard)

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = {k: (tuple(v) if k == "betas" else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d)


def default_architecture(model: str, size: str = "cpu") -> ModelConfig:
    if size == "tiny":
        return tiny_config()
    if size == "paper":
        from stylesynth.model import paper_config
        return paper_config()
    # Wide where the maps are short, narrower at 128/256 frames where the FLOPs are (see the model issue's note).
    cfg = cpu_config(256, base_frames=16, input="mapped")
    cfg.out_bands = 64
    cfg.channels.update({"128": 192, "256": 128})
    cfg.d_channels.update({"128": 192, "256": 128})
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# Run-folder state: modules and optimizers flattened into one safetensors file (no pickles)
# ---------------------------------------------------------------------------------------------------------------

def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = opt.state_dict()
    tensors, meta = {}, {"param_groups": state["param_groups"], "steps": {}}
    for idx, s in state["state"].items():
        for k, v in s.items():
            if torch.is_tensor(v) and v.dim() > 0:
                tensors[f"{prefix}/{idx}/{k}"] = v.contiguous()
            else:
                meta["steps"][f"{idx}/{k}"] = float(v)
    return tensors, meta


def _unflatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "/"):
            _, idx, k = key.split("/")
            state.setdefault(int(idx), {})[k] = v
    for key, v in meta["steps"].items():
        idx, k = key.split("/")
        state.setdefault(int(idx), {})[k] = torch.tensor(v)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_state(run_dir: Path, G, D, G_ema, opt_g, opt_d, progress: dict) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for prefix, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        tensors.update({f"{prefix}.{k}": v.contiguous() for k, v in module.state_dict().items()})
    tg, mg = _flatten_optimizer("opt_g", opt_g)
    td, md = _flatten_optimizer("opt_d", opt_d)
    tensors.update(tg)
    tensors.update(td)
    save_file(tensors, str(run_dir / "state.tmp"))
    os.replace(run_dir / "state.tmp", run_dir / "state.safetensors")
    meta = dict(progress, opt_g=mg, opt_d=md)
    (run_dir / "state.json.tmp").write_text(json.dumps(meta, indent=1))
    os.replace(run_dir / "state.json.tmp", run_dir / "state.json")


def load_state(run_dir: Path, G, D, G_ema, opt_g, opt_d) -> dict:
    tensors = checkpoint.read_tensors(run_dir / "state.safetensors")
    meta = json.loads((run_dir / "state.json").read_text())
    for prefix, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        part = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        checkpoint.load_into(module, part, run_dir / "state.safetensors")
    _unflatten_optimizer("opt_g", opt_g, tensors, meta["opt_g"])
    _unflatten_optimizer("opt_d", opt_d, tensors, meta["opt_d"])
    return meta


# ---------------------------------------------------------------------------------------------------------------
# One training step
# ---------------------------------------------------------------------------------------------------------------

def sample_ws(G: Generator, z: torch.Tensor, mixing: float, gen: torch.Generator, update_w_avg: float | None):
    """Latents for a batch with style mixing: a random cut-off after which a second latent's styles take over."""
    w = G.map(z, update_w_avg=update_w_avg)
    ws = w.unsqueeze(1).repeat(1, G.num_ws, 1)
    if mixing > 0 and torch.rand((), generator=gen) < mixing:
        z2 = torch.randn(z.shape, generator=gen).to(z.device)
        cutoff = int(torch.randint(1, G.num_ws, (), generator=gen))
        ws[:, cutoff:] = G.map(z2).unsqueeze(1)
    return ws


def _all_average(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the ranks (a no-op in a single process)."""
    import torch.distributed as dist

    if not tensors or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    flat = torch.cat([t.flatten() for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def average_gradients(module: torch.nn.Module) -> None:
    """Data-parallel step: every rank applies the same averaged gradient, so the weights stay identical."""
    _all_average([p.grad for p in module.parameters() if p.grad is not None])


def autocast(tc: TrainConfig, device: str, enabled: bool = True):
    """bf16 autocast when the run asks for it (2-2.7x faster steps on a CPU with avx512_bf16, measured by
    benchmarks/train.py), else a no-op context."""
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=enabled and tc.amp == "bf16")


def heard(specs: torch.Tensor, tc: TrainConfig, seed: int) -> torch.Tensor:
    """What D is shown of a batch: the images themselves, or with ``tc.reanalysis`` the spectrogram of the audio
    they render to (:mod:`stylesynth.reanalysis`; float32, outside autocast).

    Reals go through the same round trip. Shown the exact transforms of the real waveforms instead, D learned to
    tell PGHI's signature (its phase is never the true one) within 10 kimg (G loss 2 -> 5 at 210 kimg): a thing no
    image can undo, so it taught G nothing. With the renderer on both sides, only what G draws differs."""
    if not tc.reanalysis:
        return specs
    from stylesynth.reanalysis import reanalyse

    with torch.autocast(specs.device.type, enabled=False):
        return reanalyse(specs.float(), REPRESENTATIONS[tc.model], seed=seed)


def train_step(step: int, real: torch.Tensor, G, D, G_ema, opt_g, opt_d, tc: TrainConfig,
               gen: torch.Generator, nimg: int) -> dict:
    device = real.device
    batch = real.shape[0]
    z_dim = G.cfg.z_dim
    torch.manual_seed(int(torch.randint(0, 2 ** 31, (), generator=gen)))   # the per-layer noise draws

    # Generator: make D call its samples real.
    G.requires_grad_(True)
    D.requires_grad_(False)
    z = torch.randn((batch, z_dim), generator=gen).to(device)
    with autocast(tc, device):
        fake = G.synthesis(sample_ws(G, z, tc.style_mixing, gen, tc.w_avg_beta), noise="random")
        sound = heard(fake, tc, seed=step)
        loss_g = F.softplus(-D(sound)).float().mean()
        if tc.reanalysis and tc.consistency:
            # D alone moved the onsets' shape too slowly (no change in 10 kimg): also ask directly that the image be
            # what its sound looks like. Real clips sit at ~0.05 here (PGHI is not exact), so this cannot reach 0.
            loss_g = loss_g + tc.consistency * (sound - fake.float().clamp(-1, 1)).abs().mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    average_gradients(G)
    opt_g.step()
    _all_average([G.w_avg])      # each rank tracked w_avg on its own batch

    # Discriminator: reals up, fakes down, and every r1_interval steps an R1 penalty on reals (lazy regularisation,
    # scaled by the interval so its average strength is r1_gamma).
    G.requires_grad_(False)
    D.requires_grad_(True)
    z = torch.randn((batch, z_dim), generator=gen).to(device)
    with torch.no_grad(), autocast(tc, device):
        fake = heard(G.synthesis(sample_ws(G, z, tc.style_mixing, gen, None), noise="random"), tc, seed=step)
    do_r1 = tc.r1_interval > 0 and step % tc.r1_interval == 0
    with torch.no_grad():
        real = heard(real, tc, seed=step + 1)
    real = real.detach().requires_grad_(do_r1)
    # R1 differentiates D's gradient: kept in float32, where a bf16 gradient norm would be too coarse.
    with autocast(tc, device, enabled=not do_r1):
        real_logits = D(real).float()
        loss_d = F.softplus(D(fake.float()).float()).mean() + F.softplus(-real_logits).mean()
    r1 = torch.zeros(())
    if do_r1:
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        r1 = grad.square().flatten(1).sum(1).mean()
        loss_d = loss_d + r1 * (tc.r1_gamma / 2) * tc.r1_interval
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    average_gradients(D)
    opt_d.step()

    # EMA of G, its half-life ramped up with the images seen.
    ema_nimg = tc.ema_kimg * 1000
    if tc.ema_rampup:
        ema_nimg = min(ema_nimg, nimg * tc.ema_rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)
    return {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach()), "r1": float(r1.detach()),
            "real_score": float(real_logits.detach().mean())}


# ---------------------------------------------------------------------------------------------------------------
# Evaluation and pictures
# ---------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def generate(G: Generator, n: int, seed: int, batch: int = 32, truncation: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    out = []
    device = next(G.parameters()).device
    for i in range(0, n, batch):
        z = torch.randn((min(batch, n - i), G.cfg.z_dim), generator=gen).to(device)
        out.append(G(z, truncation=truncation, noise="const").float().cpu())
    return torch.cat(out)


def evaluate(G_ema: Generator, real_features: np.ndarray, rep: Representation, n: int, seed: int = 12345) -> dict:
    """Fréchet distances of ``n`` EMA samples to the reals' features: ``fd`` on the images, ``fd_audio`` on the
    spectrograms of the audio they render to (what a listener gets); diversity figures of both sets."""
    from stylesynth.reanalysis import reanalyse

    fake = generate(G_ema, n, seed)
    fake_features = features.batch_features(fake, rep)
    figures = {"fd": features.frechet_distance(fake_features, real_features)}
    if tuple(fake.shape[1:]) == (rep.rows, rep.frames):          # not for the tiny test config's crops
        heard_features = features.batch_features(reanalyse(fake, rep), rep)
        figures["fd_audio"] = features.frechet_distance(heard_features, real_features)
    figures.update({f"fake_{k}": v for k, v in features.diversity(fake_features).items()})
    figures.update({f"real_{k}": v for k, v in features.diversity(real_features).items()})
    return figures


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------

def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo" if not torch.cuda.is_available() else "nccl")
        return dist.get_rank(), world
    return 0, 1


def prepare_data(tc: TrainConfig, rep: Representation, log) -> "object":
    from stylesynth import dataset

    data_dir = Path(tc.data_dir)
    if not (data_dir / dataset.META_FILE).is_file():
        log(f"making {tc.data_n} {tc.model} clips in {data_dir} (once; later runs reuse them)")
        dataset.make(tc.model, tc.data_n, data_dir, seed=tc.seed, workers=os.cpu_count() or 1)
    data = dataset.load(data_dir)
    if data.meta.get("model") != tc.model:
        raise ValueError(f"{data_dir} holds {data.meta.get('model')!r} clips, this run trains {tc.model!r}")
    return data


@dataclass
class RunResult:
    """What :func:`run` leaves: its progress (step, nimg, seconds, best_fd, warm_start) and the modules."""

    progress: dict
    G: Generator
    D: Discriminator
    G_ema: Generator


def run(run_dir: str | os.PathLike, tc: TrainConfig, arch: ModelConfig | None = None, device: str = "cpu",
        warm_start: str | None = None, max_steps: int | None = None, progress: bool = True,
        export_to: str | None = None, export_last: str | None = None) -> RunResult:
    """Train (or resume) the run in ``run_dir`` until ``tc.kimg`` thousand images, or ``max_steps`` steps.

    ``export_last``: instead of training, evaluate the run's latest EMA generator and write it there as a checkpoint
    folder (``best/`` holds the one with the lowest training-eval FD, which on 256 clips is noisy: a run's end is
    often the better model by a larger benchmark)."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    if export_last and not (run_dir / "state.safetensors").is_file():
        raise ValueError(f"--export-last: {run_dir} holds no trained state (no state.safetensors)")
    rank, world = _dist_info()
    main = rank == 0
    run_dir.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        if main:
            tqdm.write(f"[train {tc.model}] {msg}")

    config_path = run_dir / "config.json"
    switched_to_reanalysis = False
    if config_path.is_file():       # resuming: the run's own config wins over the command line's architecture
        saved = json.loads(config_path.read_text())
        arch = ModelConfig.from_json(saved["architecture"])
        kimg, data_dir, amp, reanalysis, consistency = tc.kimg, tc.data_dir, tc.amp, tc.reanalysis, tc.consistency
        tc = TrainConfig.from_json(saved["train"])
        tc.kimg, tc.data_dir, tc.amp = kimg, data_dir or tc.data_dir, amp   # these may change on a resume
        if consistency:
            tc.consistency = consistency
        if reanalysis and not tc.reanalysis:        # switched on for the rest of the run (a fine-tune); never off
            tc.reanalysis = switched_to_reanalysis = True
            log("reanalysis switched on: D judges sounds from here on; best/ is chosen by fd_audio")
    arch = arch or default_architecture(tc.model)
    rep = REPRESENTATIONS[tc.model]
    if tc.reanalysis and (arch.rows, arch.frames) != (rep.rows, rep.frames):
        raise ValueError(f"--reanalysis needs full {rep.rows}x{rep.frames} images (PGHI works on the whole "
                         f"lattice); this architecture makes {arch.rows}x{arch.frames}")
    if not tc.data_dir:
        tc.data_dir = str(run_dir / "data")
    if main:
        config_path.write_text(json.dumps({"architecture": arch.to_json(), "train": asdict(tc)}, indent=1))

    data = prepare_data(tc, rep, log)
    specs = data.specs
    if (specs.shape[1], specs.shape[2]) != (arch.rows, arch.frames):   # the tiny test config trains on a crop
        specs = specs[:, : arch.rows, : arch.frames]
    n_eval = min(tc.eval_samples, len(specs))
    real_features = features.batch_features(specs[-n_eval:], rep)

    torch.manual_seed(tc.seed)      # the same initial weights on every rank, and in every rerun
    G, D, G_ema = Generator(arch).to(device), Discriminator(arch).to(device), Generator(arch).to(device)
    G_ema.load_state_dict(G.state_dict())
    G_ema.requires_grad_(False).eval()
    c = tc.r1_interval / (tc.r1_interval + 1) if tc.r1_interval else 1.0
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr, betas=tuple(tc.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr * c, betas=tuple(b ** c for b in tc.betas))

    state = {"step": 0, "nimg": 0, "seconds": 0.0, "best_fd": None, "warm_start": None, "transferred_from": None}
    if (run_dir / "state.safetensors").is_file():
        state.update(load_state(run_dir, G, D, G_ema, opt_g, opt_d))
        log(f"resumed at step {state['step']} ({state['nimg'] / 1000:.1f} kimg)")
        if switched_to_reanalysis:
            state["best_fd"] = None             # the image FD it held is not comparable with fd_audio
            state["reanalysis_from_kimg"] = state["nimg"] / 1000
    elif warm_start:
        folder = checkpoint.resolve(warm_start)
        shipped, meta = checkpoint.load_generator(folder, device)
        if shipped.cfg.to_json() != arch.to_json():
            raise ValueError(f"--warm-start {folder}: its architecture differs from this run's")
        G.load_state_dict(shipped.state_dict())
        G_ema.load_state_dict(shipped.state_dict())
        if (folder / checkpoint.DISCRIMINATOR_FILE).is_file():
            D.load_state_dict(checkpoint.load_discriminator(folder, arch).state_dict())
        trained = meta.get("training", {})
        if meta["representation_obj"] == rep:
            state["nimg"] = int(trained.get("nimg", trained.get("kimg", 0) * 1000))
            log(f"warm start from {folder} ({state['nimg'] / 1000:.1f} kimg; optimizer moments start afresh)")
        else:
            # Transfer from another model (e.g. env from hits: same shape, other clip length): the images it saw
            # were not this model's data, so this run's kimg count starts at 0 (the EMA ramps up afresh too).
            log(f"transfer from {folder} (a {meta['representation_obj'].seconds:.3f} s model, "
                f"{trained.get('kimg', '?')} kimg there); kimg counts from 0 on this model's data")
            state["transferred_from"] = {"model": meta.get("name"), "kimg": trained.get("kimg"),
                                         "seconds_per_clip": meta["representation_obj"].seconds}
        state["warm_start"] = str(folder)
    G.train().requires_grad_(True)

    fixed_z_seed = 777
    total = int(tc.kimg * 1000)
    last_snapshot = last_eval = time.time()
    if state["step"] == 0 or not (run_dir / "samples").is_dir():
        last_eval = -math.inf                             # evaluate at once on a fresh run: the baseline figure
    bar = tqdm(total=round(total / 1000, 1), initial=round(state["nimg"] / 1000, 1), unit="kimg",
               disable=not (progress and main), dynamic_ncols=True)
    window, t_window = [], time.time()
    steps_done = 0
    gen = torch.Generator()

    def snapshot(final: bool = False) -> None:
        if not main:
            return
        save_state(run_dir, G, D, G_ema, opt_g, opt_d, {k: state[k] for k in state})
        log(f"snapshot at {state['nimg'] / 1000:.1f} kimg" + (" (final)" if final else ""))

    def export(folder: Path, figures: dict) -> None:
        info = {"name": tc.model, "training": {"kimg": round(state["nimg"] / 1000, 3), "nimg": state["nimg"],
                                                "steps": state["step"],
                                                "cpu_seconds": round(state["seconds"], 1), "batch": tc.batch,
                                                "data": {"dir": tc.data_dir, "n": len(specs),
                                                         "seed": data.meta.get("seed")},
                                                "warm_start": state.get("warm_start"),
                                                "transferred_from": state.get("transferred_from"),
                                                "device": device,
                                                "amp": tc.amp,
                                                "reanalysis": tc.reanalysis,
                                                "reanalysis_from_kimg": state.get("reanalysis_from_kimg"),
                                                "consistency": tc.consistency,
                                                "world_size": world},
                "figures": figures}
        checkpoint.save_generator(G_ema, folder, rep, info, discriminator=D)

    evaluated_at = [None]

    def evaluate_and_export() -> None:
        """The quality figure now, a sample grid, and ``best/`` (and ``--export``) if it is the best so far."""
        G_ema.eval()
        figures = evaluate(G_ema, real_features, rep, n_eval)
        figures["kimg"] = round(state["nimg"] / 1000, 2)
        log("eval " + ", ".join(f"{k}={v:.3g}" for k, v in figures.items()))
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"eval": figures, "time": time.time()}) + "\n")
        plots.spectrogram_grid(generate(G_ema, 16, fixed_z_seed).numpy(), rep,
                               run_dir / "samples" / f"kimg{state['nimg'] // 1000:05d}.png", cols=8,
                               suptitle=f"{tc.model} EMA generator, {state['nimg'] / 1000:.1f} kimg, "
                                        f"FD {figures['fd']:.2f}")
        score = figures.get("fd_audio", figures["fd"]) if tc.reanalysis else figures["fd"]
        if state["best_fd"] is None or score < state["best_fd"]:
            state["best_fd"] = score
            export(run_dir / "best", figures)
            if export_to:
                export(Path(export_to), figures)
        evaluated_at[0] = state["nimg"]

    if export_last:
        G_ema.eval()
        figures = evaluate(G_ema, real_features, rep, n_eval)
        figures["kimg"] = round(state["nimg"] / 1000, 2)
        if main:
            export(Path(export_last), figures)
            log(f"exported the EMA generator at {state['nimg'] / 1000:.1f} kimg to {export_last} "
                + ", ".join(f"{k}={v:.3g}" for k, v in figures.items() if k.startswith("fd")))
        bar.close()
        return RunResult(dict(state), G, D, G_ema)

    while state["nimg"] < total and (max_steps is None or steps_done < max_steps):
        step = state["step"]
        gen.manual_seed(tc.seed * 1_000_003 + step * 97 + rank)
        idx = torch.randint(0, len(specs), (tc.batch,), generator=gen)
        real = specs[idx].float().to(device)
        t0 = time.time()
        out = train_step(step, real, G, D, G_ema, opt_g, opt_d, tc, gen, state["nimg"])
        state["seconds"] += time.time() - t0
        state["step"] += 1
        state["nimg"] += tc.batch * world
        steps_done += 1
        window.append(out)
        bar.update(round(state["nimg"] / 1000, 1) - bar.n)
        if len(window) >= tc.log_every:
            rate = len(window) * tc.batch * world / (time.time() - t_window)
            mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            bar.set_postfix(G=f"{mean['loss_g']:.2f}", D=f"{mean['loss_d']:.2f}", clips_s=f"{rate:.1f}")
            if main:
                with open(run_dir / "log.jsonl", "a") as f:
                    f.write(json.dumps({"kimg": state["nimg"] / 1000, "step": state["step"], **mean,
                                        "clips_per_s": rate, "time": time.time()}) + "\n")
            window, t_window = [], time.time()
        now = time.time()
        if main and now - last_eval > tc.eval_minutes * 60:
            evaluate_and_export()
            last_eval = time.time()
        if now - last_snapshot > tc.snapshot_minutes * 60:
            snapshot()
            last_snapshot = time.time()
    bar.close()
    if main and state["nimg"] >= total and evaluated_at[0] != state["nimg"] and max_steps is None:
        # The run's end is the figure people quote: evaluate it (and export it if best) rather than stop at
        # whatever the last timed evaluation saw. A finished run started again only does this.
        evaluate_and_export()
    snapshot(final=True)
    return RunResult(dict(state), G, D, G_ema)
