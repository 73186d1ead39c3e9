"""Latent -> audio and audio file -> model spectrogram, for the ``transfer`` and ``query`` commands and benchmarks.

The serving path (PGHI tuned for latency, loudness, playback) is :mod:`stylesynth.synthesizer`'s; this is the plain
offline version: generator spectrogram -> dB -> linear magnitude -> PGHI phase -> inverse Gabor transform ->
-14 LUFS, with the peak kept below 1 (the research system did not protect against clipping).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stylesynth.spectrogram import Representation

TARGET_LUFS = -14.0
PEAK_LIMIT = 0.99


def spectrogram_to_audio(spec: np.ndarray, rep: Representation) -> np.ndarray:
    """One model spectrogram (256, frames) in [-1, 1] -> float32 audio at ``rep.sample_rate``, -14 LUFS."""
    from stylesynth import pghi
    from stylesynth.spectrogram import decode

    coefficients = pghi.pghi(decode(np.asarray(spec, dtype=np.float64), rep), rep)
    audio = pghi.fast_istft(coefficients, rep)
    return loudness_normalise(np.asarray(audio, dtype=np.float64), rep.sample_rate)


def loudness_normalise(audio: np.ndarray, sample_rate: int, target: float = TARGET_LUFS) -> np.ndarray:
    """Scale to ``target`` LUFS (pyloudnorm), then down if the peak would pass :data:`PEAK_LIMIT`. Silence stays
    silence."""
    import pyloudnorm

    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak == 0.0:
        return audio.astype(np.float32)
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(audio)
    gain = 10.0 ** ((target - loudness) / 20.0) if np.isfinite(loudness) else PEAK_LIMIT / peak
    gain = min(gain, PEAK_LIMIT / peak)
    return (audio * gain).astype(np.float32)


def read_clip(path: str | Path, rep: Representation) -> np.ndarray:
    """A sound file as the model's clip: mono (channels averaged), resampled to ``rep.sample_rate``, cut or
    zero-padded to ``rep.n_samples``.

    Raises
    ------
    ValueError
        Missing, unreadable, empty or non-finite files, with the path and the reason.
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        audio, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:       # soundfile raises LibsndfileError / RuntimeError for unreadable files
        raise ValueError(f"{path}: not a readable sound file ({exc})") from None
    if audio.size == 0:
        raise ValueError(f"{path}: the file holds no samples")
    audio = audio.mean(axis=1)
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"{path}: the file holds non-finite samples (NaN or inf)")
    if rate != rep.sample_rate:
        from math import gcd

        from scipy.signal import resample_poly
        g = gcd(int(rate), rep.sample_rate)
        audio = resample_poly(audio, rep.sample_rate // g, int(rate) // g)
    if len(audio) >= rep.n_samples:
        return audio[: rep.n_samples]
    return np.pad(audio, (0, rep.n_samples - len(audio)))


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """32-bit float wav (no clipping, no dither)."""
    import soundfile

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ValueError(f"{path}: folder {path.parent} does not exist")
    soundfile.write(str(path), np.asarray(audio, dtype=np.float32), sample_rate, subtype="FLOAT")
    return path
