"""Audio features measured on model spectrograms, and the Fréchet distance between two sets of them.

The quality figure of a generator (``benchmarks/quality.py``, and ``stylesynth train`` now and then) is a Fréchet
distance between these features of generated clips and of held-out procedural clips. They are computed on the
spectrogram itself (no phase reconstruction needed), so they are cheap enough to run during training:

* band levels: 16 log-spaced bands, mean and standard deviation over time of their dB level;
* spectral centroid (Hz) and flatness, mean and spread over active frames;
* onset rate (onsets per second, from positive spectral flux);
* envelope shape: frame-level dB statistics, the fraction of the clip above -20 dB of its peak (how much of the
  clip is "event"), the mean event length, and the temporal centroid.
"""
from __future__ import annotations

import numpy as np

from stylesynth.spectrogram import HITS, Representation

N_BANDS = 16


def _band_edges(rows: int) -> np.ndarray:
    """Log-spaced band edges over ``rows`` frequency rows, each band at least one row wide."""
    edges = np.round(np.geomspace(1, rows, N_BANDS + 1)).astype(int)
    edges[0] = 0
    for i in range(1, len(edges)):                  # the lowest bands would be empty on a log scale
        edges[i] = max(edges[i], edges[i - 1] + 1)
    return np.minimum(edges, rows)


def onset_frames(db_frames: np.ndarray, rep: Representation = HITS, threshold_db: float = 9.0) -> np.ndarray:
    """Frames where the broadband level jumps by more than ``threshold_db`` within ~10 ms and is a local peak of
    that jump, at least 50 ms after the previous onset. ``db_frames``: per-frame level in dB (frames,)."""
    lag = max(1, int(round(0.010 * rep.sample_rate / rep.hop)))
    rise = np.zeros_like(db_frames)
    rise[lag:] = db_frames[lag:] - db_frames[:-lag]
    gap = max(1, int(round(0.050 * rep.sample_rate / rep.hop)))
    onsets, last = [], -gap
    for n in range(1, len(rise) - 1):
        if rise[n] > threshold_db and rise[n] >= rise[n - 1] and rise[n] >= rise[n + 1] and n - last >= gap:
            onsets.append(n)
            last = n
    return np.asarray(onsets, dtype=int)


def clip_features(spec: np.ndarray, rep: Representation = HITS) -> np.ndarray:
    """Feature vector of one spectrogram (rows, frames) in [-1, 1] (the model's scale)."""
    spec = np.asarray(spec, dtype=np.float64)
    rows, frames = spec.shape
    db = (np.clip(spec, -1, 1) - 1.0) * (-rep.db_floor / 2.0)              # [floor, 0] dB
    power = 10.0 ** (db / 10.0)
    freqs = np.arange(rows) * rep.sample_rate / rep.channels
    edges = _band_edges(rows)
    bands = np.stack([db[a:b].mean(0) for a, b in zip(edges[:-1], edges[1:])])      # (bands, frames)
    frame_power = power.sum(0)
    frame_db = 10 * np.log10(frame_power / frame_power.max() + 1e-12)
    active = frame_db > -30
    if not active.any():
        active[np.argmax(frame_db)] = True
    centroid = (power * freqs[:, None]).sum(0) / np.maximum(power.sum(0), 1e-12)
    flatness = np.exp(np.log(power + 1e-12).mean(0)) / np.maximum(power.mean(0), 1e-12)
    onsets = onset_frames(frame_db, rep)
    seconds = frames * rep.hop / rep.sample_rate
    above = frame_db > -20
    runs = np.diff(np.concatenate([[0], above.astype(int), [0]]))
    lengths = (np.flatnonzero(runs == -1) - np.flatnonzero(runs == 1)) * rep.hop / rep.sample_rate
    weights = frame_power / frame_power.sum()
    return np.concatenate([
        bands.mean(1), bands.std(1),
        [centroid[active].mean(), centroid[active].std(), flatness[active].mean(), flatness[active].std(),
         len(onsets) / seconds, frame_db.mean(), frame_db.std(), above.mean(),
         lengths.mean() if len(lengths) else 0.0, (weights * np.arange(frames)).sum() / frames],
    ])


FEATURE_NAMES = ([f"band{i}_mean" for i in range(N_BANDS)] + [f"band{i}_std" for i in range(N_BANDS)] +
                 ["centroid_hz", "centroid_std_hz", "flatness", "flatness_std", "onsets_per_s", "level_mean_db",
                  "level_std_db", "event_fraction", "event_length_s", "temporal_centroid"])


def batch_features(specs, rep: Representation = HITS) -> np.ndarray:
    """Features of many spectrograms: an array or tensor (N, rows, frames) -> (N, n_features)."""
    specs = specs.float().cpu().numpy() if hasattr(specs, "cpu") else np.asarray(specs)
    return np.stack([clip_features(s, rep) for s in specs])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples), each feature first
    standardised by the statistics of ``b`` (the reference) so that Hz and dB weigh alike."""
    from scipy import linalg

    mu, sd = b.mean(0), b.std(0) + 1e-8
    a, b = (a - mu) / sd, (b - mu) / sd
    m1, m2 = a.mean(0), b.mean(0)
    # A little ridge keeps the product well-conditioned when a feature is constant (e.g. no onsets at all).
    ridge = 1e-6 * np.eye(a.shape[1])
    c1, c2 = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    covmean = linalg.sqrtm(c1 @ c2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def diversity(features: np.ndarray) -> dict:
    """Quick spread figures for watching mode collapse: std of centroid (Hz), of onset rate, of event fraction."""
    i = FEATURE_NAMES.index
    return {"centroid_std_hz": float(features[:, i("centroid_hz")].std()),
            "onset_rate_std": float(features[:, i("onsets_per_s")].std()),
            "event_fraction_std": float(features[:, i("event_fraction")].std())}
