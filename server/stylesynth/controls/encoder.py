"""The inversion network: spectrogram (+ a mask channel) -> the generator's ``w``, and how it is trained.

The research system inverts with a ResNet-34 on 256 x 256 images; on two CPU cores that is too slow to train in
minutes. This encoder is a ResNet-style stack of 1-D convolutions over time with the frequency rows as channels
(the same layout as the ``cpu`` generator family): a stem sees the spectrogram and its mask (2 x rows channels,
adjacent rows averaged in pairs) and halves the time axis, residual blocks halve it on down to 4 frames, and a
two-layer head gives a standardised ``w`` that is mapped back with the training latents' mean and standard
deviation (buffers of the module). About 0.7 M parameters; one training step of 32 clips takes ~0.1 s on one core.

Training (:func:`train_encoder`) follows the research system: generator samples with known ``w``, random time and
frequency masks, loss = MSE on ``w`` (standardised) + MSE on the regenerated spectrogram. To fit a few CPU minutes,
the generator samples are drawn once into a pool (the generator is the expensive part) and the encoder runs many
epochs over it with fresh masks; the regeneration loss, which needs a pass through the generator, comes last on
small batches. :func:`refine` optionally polishes an inversion with a few steps of latent optimisation.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ENCODER_FORMAT = "stylesynth-encoder"
ENCODER_VERSION = 1


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of an encoder: it reads (rows, frames) spectrograms and writes ``w_dim`` latents."""

    rows: int
    frames: int
    w_dim: int
    width: int = 128          # channels of every residual block
    stem_stride: int = 2      # the stem halves the time axis: most of the cost is there, at full resolution
    row_pool: int = 2         # adjacent frequency rows averaged before the stem (halves its cost again)
    min_frames: int = 4       # time resolution at the head

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "EncoderConfig":
        return cls(**{k: int(d[k]) for k in cls.__dataclass_fields__})

    @classmethod
    def for_generator(cls, generator, width: int | None = None) -> "EncoderConfig":
        """Matching ``generator``'s spectrogram shape and latent size; ``width`` defaults to the generator's
        first width, capped at 128 (the CPU budget: 256 costs 4 times as much per step)."""
        cfg = generator.cfg
        if width is None:
            width = min(128, cfg.width(cfg.resolutions[0]))
        return cls(rows=cfg.rows, frames=cfg.frames, w_dim=cfg.w_dim, width=int(width),
                   row_pool=2 if cfg.rows >= 128 else 1)


class ResBlock(nn.Module):
    """Two 3-tap convolutions with group norm; the first halves the time axis. Skip: average pooling."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(8, width)
        self.conv2 = nn.Conv1d(width, width, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, width)

    def forward(self, x):
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        y = self.norm2(self.conv2(y))
        return F.leaky_relu(y + F.avg_pool1d(x, 2), 0.2)


class Encoder(nn.Module):
    """Spectrogram (B, rows, frames) in [-1, 1] and a mask of the same shape (1 = known) -> w (B, w_dim)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.frames < cfg.min_frames * cfg.stem_stride or cfg.frames & (cfg.frames - 1):
            raise ValueError(f"encoder frames must be a power of two >= {cfg.min_frames * cfg.stem_stride}, "
                             f"got {cfg.frames}")
        self.cfg = cfg
        if cfg.row_pool < 1 or cfg.rows % cfg.row_pool:
            raise ValueError(f"row_pool must divide rows ({cfg.rows}), got {cfg.row_pool}")
        self.stem = nn.Conv1d(2 * cfg.rows // cfg.row_pool, cfg.width, 3, stride=cfg.stem_stride, padding=1)
        n_blocks = int(math.log2(cfg.frames // cfg.stem_stride // cfg.min_frames))
        self.blocks = nn.Sequential(*[ResBlock(cfg.width) for _ in range(n_blocks)])
        self.head = nn.Sequential(nn.Linear(cfg.width * cfg.min_frames, cfg.width), nn.LeakyReLU(0.2),
                                  nn.Linear(cfg.width, cfg.w_dim))
        # The head predicts a standardised w; these map it back (set from the training latents).
        self.register_buffer("w_mean", torch.zeros(cfg.w_dim))
        self.register_buffer("w_std", torch.ones(cfg.w_dim))

    def forward(self, spec, mask=None):
        if mask is None:
            mask = torch.ones_like(spec)
        x = torch.cat([spec * mask, mask], dim=1)
        if self.cfg.row_pool > 1:
            b, c, t = x.shape
            x = x.view(b, c // self.cfg.row_pool, self.cfg.row_pool, t).mean(2)
        x = self.blocks(F.leaky_relu(self.stem(x), 0.2))
        return self.w_mean + self.w_std * self.head(x.flatten(1))


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------

def to_grid(specs: torch.Tensor, rows: int, frames: int) -> torch.Tensor:
    """Bring spectrograms (B, R, T) to a generator's (rows, frames) by area averaging.

    The shipped generators use the full 256 x 256 representation (nothing to do); only small test generators
    (:func:`stylesynth.model.tiny_config`, 64 x 64) need example clips shrunk to their grid.
    """
    if specs.shape[-2:] == (rows, frames):
        return specs
    if specs.shape[-2] < rows or specs.shape[-1] < frames:
        raise ValueError(f"cannot bring a {tuple(specs.shape[-2:])} spectrogram up to ({rows}, {frames})")
    return F.adaptive_avg_pool2d(specs.unsqueeze(1), (rows, frames)).squeeze(1)


def clips_to_specs(clips, rep, rows: int, frames: int) -> torch.Tensor:
    """Audio clips (list of 1-D arrays at ``rep``'s rate) -> model spectrograms (N, rows, frames) in [-1, 1]."""
    from stylesynth.spectrogram import encode_torch

    if not len(clips):
        return torch.empty(0, rows, frames)
    audio = np.zeros((len(clips), rep.n_samples))
    for i, clip in enumerate(clips):          # cut or zero-pad each clip to the model's length
        clip = np.asarray(clip, dtype=np.float64).reshape(-1)[: rep.n_samples]
        audio[i, : len(clip)] = clip
    return to_grid(encode_torch(torch.from_numpy(audio), rep), rows, frames)


def random_masks(batch: int, rows: int, frames: int, generator: torch.Generator, p: float = 0.5,
                 max_fraction: float = 0.3) -> torch.Tensor:
    """Masks (batch, rows, frames) of ones with, each with probability ``p``, a random span of frames and a random
    band of rows zeroed (up to ``max_fraction`` of the axis): the research system's masked-encoder training, which
    makes the encoder robust to parts of a reference it cannot trust."""
    mask = torch.ones(batch, rows, frames)
    r = torch.rand(batch, 4, generator=generator)
    for i in range(batch):
        if r[i, 0] < p:
            n = int(r[i, 1] * max_fraction * frames)
            start = int(torch.randint(0, frames - n + 1, (1,), generator=generator))
            mask[i, :, start:start + n] = 0
        if r[i, 2] < p:
            n = int(r[i, 3] * max_fraction * rows)
            start = int(torch.randint(0, rows - n + 1, (1,), generator=generator))
            mask[i, start:start + n, :] = 0
    return mask


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class EncoderTraining:
    """Settings of :func:`train_encoder`; the defaults take about 4 minutes on one busy CPU core (measured: with a
    128-d, 256 x 256 generator at kimg 9, 2500 steps on 4096 samples recovered R^2 0.49 of w and regenerated
    held-out samples to 1.6 dB; 800 steps on 2048 samples: R^2 0.18, 2.1 dB)."""

    pool: int = 4096            # generator samples drawn once (512 MB as float16; the generator is the slow part)
    steps: int = 2500           # w-loss steps over the pool (~20 epochs), fresh masks every time
    batch: int = 32
    regen_steps: int = 100      # final steps adding the regenerated-spectrogram loss (a generator pass each)
    regen_batch: int = 8
    regen_weight: float = 4.0   # spectrogram MSE is ~0.01-0.1: weighted to matter next to the w loss
    lr: float = 2e-3
    psi_range: tuple = (0.5, 1.1)   # truncation of the training latents: typical ones and a little beyond
    seed: int = 0


def sample_latents(generator, n: int, seed: int, psi_range=(1.0, 1.0), w_mean: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """``n`` latents ``w`` from Gaussian z (what the mapping expects), each truncated by a psi drawn in
    ``psi_range`` towards ``w_mean`` (default: the generator's tracked ``w_avg``)."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, generator.cfg.z_dim, generator=g)
    psi = torch.empty(n, 1).uniform_(*psi_range, generator=g)
    with torch.no_grad():
        w = generator.map(z)
        centre = generator.w_avg if w_mean is None else w_mean
        return centre + psi * (w - centre)


def synthesize(generator, w: torch.Tensor, chunk: int = 32, progress: Callable[[int], None] | None = None
               ) -> torch.Tensor:
    """Spectrograms of latents (N, w_dim), in chunks, with the generator's fixed noise (deterministic)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(w), chunk):
            out.append(generator.synthesize(w[i:i + chunk], noise="const").clamp(-1, 1))
            if progress:
                progress(len(out[-1]))
    return torch.cat(out) if out else torch.empty(0, generator.cfg.rows, generator.cfg.frames)


def train_encoder(generator, settings: EncoderTraining | None = None, cfg: EncoderConfig | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> tuple[Encoder, dict]:
    """Train an encoder for ``generator`` on its own samples.

    Parameters
    ----------
    generator : stylesynth.model.Generator
        The (EMA) generator to invert; frozen, in eval mode.
    settings : EncoderTraining, optional
        Pool size, steps, batch sizes, loss weight, learning rate, seed.
    cfg : EncoderConfig, optional
        Encoder shape; by default :meth:`EncoderConfig.for_generator`.
    progress : callable, optional
        ``progress(stage, done, total)`` with stage ``"pool"``, ``"train"`` or ``"regen"``.

    Returns
    -------
    encoder : Encoder
        In eval mode.
    log : dict
        Settings, seconds per stage and the final training losses.
    """
    s = settings or EncoderTraining()
    cfg = cfg or EncoderConfig.for_generator(generator)
    rows, frames = generator.cfg.rows, generator.cfg.frames
    report = progress or (lambda *a: None)
    torch.manual_seed(s.seed)
    encoder = Encoder(cfg)
    g = torch.Generator().manual_seed(s.seed + 1)
    t0 = time.perf_counter()

    # The pool: standardisation from untruncated latents, training latents spread over psi_range.
    w_ref = sample_latents(generator, 4096, s.seed + 2)
    w_mean, w_std = w_ref.mean(0), w_ref.std(0).clamp_min(1e-4)
    encoder.w_mean.copy_(w_mean)
    encoder.w_std.copy_(w_std)
    pool_w = sample_latents(generator, s.pool, s.seed + 3, s.psi_range, w_mean=w_mean)
    done = [0]

    def pool_progress(n):
        done[0] += n
        report("pool", done[0], s.pool)

    pool_x = synthesize(generator, pool_w, progress=pool_progress).to(torch.float16)
    t_pool = time.perf_counter() - t0

    opt = torch.optim.Adam(encoder.parameters(), lr=s.lr)
    total = s.steps + s.regen_steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=max(total, 1), pct_start=0.1)
    encoder.train()
    losses = {"w": float("nan"), "spec": float("nan")}
    for step in range(total):
        regen = step >= s.steps
        b = s.regen_batch if regen else s.batch
        idx = torch.randint(0, s.pool, (b,), generator=g)
        x, w = pool_x[idx].float(), pool_w[idx]
        mask = random_masks(b, rows, frames, g)
        w_hat = encoder(x, mask)
        loss_w = ((w_hat - w) / w_std).square().mean()
        loss = loss_w
        if regen:
            # On the representation's range: a young generator overshoots [-1, 1] by a lot, and the pool is clipped.
            loss_spec = (generator.synthesize(w_hat, noise="const").clamp(-1, 1) - x).square().mean()
            loss = loss + s.regen_weight * loss_spec
            losses["spec"] = loss_spec.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses["w"] = loss_w.item()
        report("regen" if regen else "train", step + 1, total)
    encoder.eval().requires_grad_(False)
    log = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()},
           "config": cfg.to_json(), "seconds_pool": round(t_pool, 1),
           "seconds_total": round(time.perf_counter() - t0, 1),
           "final_w_loss": round(losses["w"], 4), "final_spec_loss": round(losses["spec"], 5)}
    return encoder, log


# ---------------------------------------------------------------------------------------------------------------
# Inversion and its figures
# ---------------------------------------------------------------------------------------------------------------

def invert(encoder: Encoder, specs: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """``w`` (N, w_dim) of spectrograms (N, rows, frames) in [-1, 1], with nothing masked."""
    with torch.no_grad():
        return torch.cat([encoder(specs[i:i + chunk].float()) for i in range(0, len(specs), chunk)]) \
            if len(specs) else torch.empty(0, encoder.cfg.w_dim)


def refine(generator, w0: torch.Tensor, specs: torch.Tensor, steps: int = 50, lr: float = 0.02) -> torch.Tensor:
    """Polish inversions by latent optimisation: Adam on ``w`` (started at ``w0``, e.g. the encoder's guess) to
    minimise the MSE between ``generator(w)`` and ``specs``. Deterministic (fixed noise); ``steps=0`` returns
    ``w0``. Costs a generator forward and backward per step."""
    if steps <= 0:
        return w0.clone()
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    target = specs.float()
    for _ in range(int(steps)):
        loss = (generator.synthesize(w, noise="const") - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return w.detach()


def spectral_error_db(generator, w: torch.Tensor, specs: torch.Tensor, db_floor: float = -50.0) -> np.ndarray:
    """Per clip: mean absolute difference in dB between ``generator(w)`` and ``specs`` (both clipped to the
    representation's [floor, 0] dB range). 0 is perfect; a spectrogram against a flat floor is ~10-20 dB."""
    regen = synthesize(generator, w)
    scale = -db_floor / 2.0
    return ((regen.clamp(-1, 1) - specs.float().clamp(-1, 1)).abs() * scale).flatten(1).mean(1).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------

def save_encoder(encoder: Encoder, path: str | Path, info: dict) -> Path:
    """Write ``encoder.safetensors``: the weights (float32) and, in the safetensors header, a JSON description
    (format, config, ``info`` such as the generator's sha256 and the figures). Atomic."""
    import os

    from safetensors.torch import save_file

    path = Path(path)
    meta = {"format": ENCODER_FORMAT, "format_version": ENCODER_VERSION, "config": encoder.cfg.to_json(), **info}
    tensors = {k: v.detach().float().contiguous() for k, v in encoder.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"stylesynth": json.dumps(meta)})
    os.replace(tmp, path)
    return path


def read_encoder_meta(path: Path) -> dict:
    """The JSON description in an encoder file's header; :class:`~stylesynth.checkpoint.ModelError` if absent."""
    from safetensors import safe_open

    from stylesynth.checkpoint import ModelError

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("stylesynth", "null"))
    except Exception as exc:   # garbled header or JSON
        raise ModelError(f"{path}: unreadable encoder description ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != ENCODER_FORMAT:
        raise ModelError(f"{path}: not a stylesynth encoder (its header lacks format {ENCODER_FORMAT!r})")
    if int(meta.get("format_version", 0)) > ENCODER_VERSION:
        raise ModelError(f"{path}: encoder format {meta.get('format_version')} is newer than this stylesynth "
                         f"understands ({ENCODER_VERSION})")
    return meta


def load_encoder(path: str | Path) -> tuple[Encoder, dict]:
    """Load an encoder file: tensors checked against its own config (names, shapes, finite values).

    Returns the encoder (eval mode, frozen) and its header description.
    """
    from stylesynth.checkpoint import ModelError, load_into, read_tensors

    path = Path(path)
    tensors = read_tensors(path)          # refuses pickles, truncation, garbage first
    meta = read_encoder_meta(path)
    try:
        cfg = EncoderConfig.from_json(meta["config"])
        encoder = Encoder(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: bad encoder config ({exc})") from None
    load_into(encoder, tensors, path)
    return encoder.eval().requires_grad_(False), meta
