"""The representation the models are trained in: a Gabor transform with a Gaussian window, in dB, in [-1, 1].

This mirrors the research system (Kamath et al., TASLP 2024), so a spectrogram made here means the same thing to the
generator, to PGHI and to the semantic controls:

* 16 kHz mono; ``M = 512`` frequency channels (257 rfft bins, the Nyquist row dropped -> 256 rows); 256 frames.
* hop 128 for 2.048 s clips (impacts, scratches), hop 256 for 4.096 s clips (environmental sounds).
* A Gaussian window ``g(l) = exp(-pi l^2 / gamma)`` with ``gamma = hop * M``, truncated where it falls below
  ``1e-4``. It is longer than ``M``, so each frame is folded modulo ``M`` before the FFT (a periodic Gabor transform,
  as LTFAT's ``dgtreal``). The signal is treated as circular: a clip of ``hop * 256`` samples gives exactly 256
  frames, and the transform is exactly invertible with the canonical dual window.
* Phase convention: time-invariant (phase measured from each window's centre). For a stationary sinusoid at bin
  ``m`` the phase advances ``2 pi hop m / M`` per frame; PGHI's gradient formulas (``pghi.py``) assume this.
* ``10 * log10(|X| / max)`` floored at -50 dB, then ``db / 25 + 1`` -> [-1, 1].

Two paths: numpy (one clip, used by the data generator, PGHI and the CLI) and torch (batched, used in training and
by the quality figures). They agree to float32 precision (``tests/test_spectrogram.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
CHANNELS = 512          # M: FFT length after folding
ROWS = CHANNELS // 2    # 256 rows kept (rfft bins 0..255; Nyquist dropped)
FRAMES = 256
DB_FLOOR = -50.0
WINDOW_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Representation:
    """How a clip becomes a spectrogram. ``hop`` fixes the clip length: ``hop * frames`` samples."""

    hop: int = 128
    sample_rate: int = SAMPLE_RATE
    channels: int = CHANNELS
    frames: int = FRAMES
    db_floor: float = DB_FLOOR

    @property
    def n_samples(self) -> int:
        return self.hop * self.frames

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def rows(self) -> int:
        return self.channels // 2

    @property
    def gamma(self) -> float:
        """Time-frequency spread of the Gaussian window, chosen so its spread matches the lattice (hop * M)."""
        return float(self.hop * self.channels)

    def to_json(self) -> dict:
        return {"sample_rate": self.sample_rate, "hop": self.hop, "channels": self.channels,
                "frames": self.frames, "db_floor": self.db_floor, "window": "gaussian",
                "scaling": "10*log10(|X|/max), floor db_floor, x = db/(-db_floor/2) + 1"}

    @classmethod
    def from_json(cls, d: dict) -> "Representation":
        return cls(hop=int(d["hop"]), sample_rate=int(d.get("sample_rate", SAMPLE_RATE)),
                   channels=int(d.get("channels", CHANNELS)), frames=int(d.get("frames", FRAMES)),
                   db_floor=float(d.get("db_floor", DB_FLOOR)))


HITS = Representation(hop=128)   # 2.048 s
ENV = Representation(hop=256)    # 4.096 s


# ---------------------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def analysis_window(rep: Representation = HITS) -> tuple[np.ndarray, int]:
    """The truncated Gaussian window and its half-width ``W``: taps ``g[0..2W]`` stand for offsets ``-W..W``."""
    half = int(np.floor(np.sqrt(-rep.gamma * np.log(WINDOW_TOLERANCE) / np.pi)))
    offsets = np.arange(-half, half + 1)
    window = np.exp(-np.pi * offsets.astype(np.float64) ** 2 / rep.gamma)
    window.setflags(write=False)
    return window, half


@lru_cache(maxsize=8)
def dual_window(rep: Representation = HITS) -> np.ndarray:
    """The canonical dual window ``S^-1 g`` on the whole circular signal (length ``n_samples``), centred at 0.

    The frame operator of this lattice is ``S f(l) = M * sum_k f(l - k M) * w_k(l)`` with
    ``w_k(l) = sum_n g(l - n a) g(l - n a - k M)``, ``a``-periodic in ``l``. Because ``a`` divides ``M``, ``S`` splits
    into ``a`` independent circular convolutions (one per residue ``l mod a``) over the frame index, so it is
    inverted exactly with FFTs rather than approximately.
    """
    g_taps, half = analysis_window(rep)
    L, a, M = rep.n_samples, rep.hop, rep.channels
    g = np.zeros(L)
    g[np.arange(-half, half + 1) % L] = g_taps
    n_frames = L // a
    max_k = (2 * half) // M + 1
    ks = np.arange(-max_k, max_k + 1)
    residues = np.arange(a)
    # w[k, r] = sum_n g(r - n a) g(r - n a - k M)
    n = np.arange(n_frames)
    w = np.empty((len(ks), a))
    for i, k in enumerate(ks):
        idx = (residues[:, None] - n[None, :] * a) % L
        w[i] = (g[idx] * g[(idx - k * M) % L]).sum(axis=1)
    # Per residue r, S acts on sequence f_r[j] = f(r + j a) as convolution with h_r[k M / a] = M w_k(r).
    step = M // a
    kernel = np.zeros((a, n_frames))
    for i, k in enumerate(ks):
        kernel[:, (k * step) % n_frames] += M * w[i]
    g_poly = g.reshape(n_frames, a).T                      # g_poly[r, j] = g(r + j a)
    dual_poly = np.fft.ifft(np.fft.fft(g_poly, axis=1) / np.fft.fft(kernel, axis=1), axis=1).real
    dual = dual_poly.T.reshape(L)
    dual.setflags(write=False)
    return dual


# ---------------------------------------------------------------------------------------------------------------
# numpy path
# ---------------------------------------------------------------------------------------------------------------

def _fit_length(x: np.ndarray, rep: Representation) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) >= rep.n_samples:
        return x[: rep.n_samples]
    return np.pad(x, (0, rep.n_samples - len(x)))


@lru_cache(maxsize=8)
def _frame_index(rep: Representation) -> np.ndarray:
    _, half = analysis_window(rep)
    offsets = np.arange(-half, half + 1)
    return (np.arange(rep.frames)[:, None] * rep.hop + offsets[None, :]) % rep.n_samples


@lru_cache(maxsize=8)
def _fold_matrix(rep: Representation) -> np.ndarray:
    """0/1 matrix that folds the ``2W+1`` window taps onto ``M`` FFT positions (offset mod M)."""
    _, half = analysis_window(rep)
    offsets = np.arange(-half, half + 1)
    fold = np.zeros((len(offsets), rep.channels))
    fold[np.arange(len(offsets)), offsets % rep.channels] = 1.0
    return fold


def stft(x: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """Complex Gabor coefficients of a clip, shape ``(M/2 + 1, frames)`` = (257, 256), time-invariant phase.

    Parameters
    ----------
    x : array, 1-D
        Mono audio at ``rep.sample_rate``. Cut or zero-padded to ``rep.n_samples``, then treated as circular.
    rep : Representation
        ``HITS`` (hop 128, 2.048 s) or ``ENV`` (hop 256, 4.096 s).
    """
    g, _ = analysis_window(rep)
    segments = _fit_length(x, rep)[_frame_index(rep)] * g          # (frames, 2W+1)
    folded = segments @ _fold_matrix(rep)                           # (frames, M)
    return np.fft.rfft(folded, axis=1).T


def istft(coefficients: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """Invert :func:`stft` with the canonical dual window: ``istft(stft(x)) == x`` to about -110 dB.

    ``coefficients`` has shape (257, frames); it need not be a consistent transform (PGHI output is not quite):
    the result is then the least-squares signal whose transform is closest to it.
    """
    coefficients = np.asarray(coefficients)
    M, a, L = rep.channels, rep.hop, rep.n_samples
    y = np.fft.irfft(coefficients.T, n=M, axis=1) * M              # (frames, M): one period per frame
    dual = dual_window(rep)
    out = np.zeros(L)
    # Each frame contributes on the dual window's support; its samples repeat with period M.
    span = np.arange(-(L // 2), L // 2)
    support = span[np.abs(dual[span % L]) > 1e-12 * np.abs(dual).max()]
    d = dual[support % L]
    for n in range(coefficients.shape[1]):
        out[(n * a + support) % L] += d * y[n, support % M]
    return out


def magnitude_to_db(magnitude: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """``10 log10(|X| / max)`` floored at ``rep.db_floor``. A silent clip gives the floor everywhere, not NaN."""
    magnitude = np.abs(magnitude)
    peak = magnitude.max()
    if not np.isfinite(peak) or peak <= 0:
        return np.full(magnitude.shape, rep.db_floor)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(magnitude / peak)
    return np.maximum(db, rep.db_floor)


def db_to_unit(db: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """[floor, 0] dB -> [-1, 1]."""
    return db / (-rep.db_floor / 2.0) + 1.0


def unit_to_db(x: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """[-1, 1] -> [floor, 0] dB; values outside [-1, 1] are clipped (a generator may overshoot)."""
    return (np.clip(x, -1.0, 1.0) - 1.0) * (-rep.db_floor / 2.0)


def encode(x: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """Audio -> the model's spectrogram: float32, shape (256, 256), values in [-1, 1]; rows are frequency (low
    first), columns are time."""
    magnitude = np.abs(stft(x, rep))[: rep.rows]
    return db_to_unit(magnitude_to_db(magnitude, rep), rep).astype(np.float32)


def decode(spec: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """The model's spectrogram(s) -> linear magnitude, max 1, the Nyquist row appended at the floor.

    ``spec``: [-1, 1], shape (..., 256, frames) (one clip or a batch). Returns float64 (..., 257, frames).
    Computed in float32 (the generator's precision; 8x faster than float64 and equal to ~1e-7 relative).
    Phase is PGHI's job (:mod:`stylesynth.pghi`). NaN or infinite values raise ``ValueError``.
    """
    x = np.asarray(spec, dtype=np.float32)
    if x.ndim < 2 or x.shape[-2] != rep.rows:
        raise ValueError(f"spectrogram must have {rep.rows} rows (frequency, low first), got shape {x.shape}")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(f"spectrogram has {bad} NaN or infinite values")
    half_range = np.float32(-rep.db_floor / 2.0)
    ln10_over_10 = np.float32(np.log(10.0) / 10.0)
    out = np.empty(x.shape[:-2] + (rep.rows + 1, x.shape[-1]), dtype=np.float64)
    out[..., : rep.rows, :] = np.exp((np.clip(x, -1.0, 1.0) - np.float32(1.0)) * half_range * ln10_over_10)
    out[..., rep.rows, :] = 10.0 ** (rep.db_floor / 10.0)
    return out


# ---------------------------------------------------------------------------------------------------------------
# torch path (batched; same numbers)
# ---------------------------------------------------------------------------------------------------------------

def encode_torch(x, rep: Representation = HITS):
    """Batched :func:`encode`, differentiable: ``x`` is a float tensor (batch, n_samples) -> (batch, 256, 256) in
    [-1, 1], float32. Computed in ``x``'s precision (float64 agrees with :func:`encode` to ~1e-7, float32 to ~1e-5);
    a silent clip gives the floor everywhere.

    The window is zero-padded to ``[-span, span)``, ``span`` a multiple of ``M``, so folding a frame modulo ``M``
    is a reshape and a sum (no dense fold matrix), and the circular frames are one ``unfold`` of the padded clip.
    """
    import torch

    g, half = analysis_window(rep)
    M, a, L = rep.channels, rep.hop, rep.n_samples
    x = x if x.is_floating_point() else x.to(torch.float64)
    if x.shape[-1] < L:
        x = torch.nn.functional.pad(x, (0, L - x.shape[-1]))
    x = x[..., :L]
    span = M * -(-(half + 1) // M)
    window = torch.zeros(2 * span, dtype=x.dtype, device=x.device)
    window[span - half: span + half + 1] = torch.from_numpy(np.array(g)).to(window)
    ext = torch.cat([x[:, L - span:], x, x[:, :span]], dim=1)               # circular padding
    frames = ext.unfold(1, 2 * span, a)[:, : rep.frames] * window           # (B, frames, 2 span)
    folded = frames.reshape(frames.shape[0], rep.frames, -1, M).sum(2)       # tap j: offset j - span = j (mod M)
    spec = torch.fft.rfft(folded, dim=-1)[..., : rep.rows].transpose(1, 2)   # (B, rows, frames)
    magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-30)  # abs() has no gradient at 0
    peak = magnitude.amax(dim=(1, 2), keepdim=True)
    db = 10.0 * torch.log10(magnitude / peak)
    silent = peak <= 1e-14                                                  # only the 1e-30 guard is left
    db = torch.where(silent, torch.full_like(db, rep.db_floor), db).clamp_min(rep.db_floor)
    return (db / (-rep.db_floor / 2.0) + 1.0).to(torch.float32)


def decode_torch(spec, rep: Representation = HITS):
    """Batched :func:`decode`: (batch, 256, frames) in [-1, 1] -> linear magnitude (batch, 257, frames)."""
    import torch

    db = (spec.clamp(-1.0, 1.0) - 1.0) * (-rep.db_floor / 2.0)
    floor = torch.full_like(db[:, :1], rep.db_floor)
    return 10.0 ** (torch.cat([db, floor], dim=1) / 10.0)
