"""Loudness normalisation (ITU-R BS.1770 via pyloudnorm) with a true-peak guard.

The research system normalises every generated clip to -14 LUFS with pyloudnorm and has no clipping protection;
a loud transient then clips after normalisation. Here a clip is brought to the target loudness and, if its true
peak (estimated on a 4x oversampled signal, as BS.1770 does) would exceed ``max_true_peak_db`` dBTP, the whole clip
is turned down until it does not: loudness is then below the target, never above the ceiling.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

DEFAULT_LUFS = -14.0
DEFAULT_TRUE_PEAK_DB = -1.0
OVERSAMPLE = 4

__all__ = ["normalize", "integrated_loudness", "true_peak", "true_peak_db", "DEFAULT_LUFS", "DEFAULT_TRUE_PEAK_DB"]


@lru_cache(maxsize=8)
def _meter(sample_rate: int):
    import pyloudnorm

    return pyloudnorm.Meter(int(sample_rate))


def _check(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        x = x.reshape(-1) if x.size == max(x.shape, default=0) else x
    if x.ndim != 1:
        raise ValueError(f"audio must be mono (1-D), got shape {np.shape(audio)}")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(f"audio has {bad} NaN or infinite sample{'s' if bad != 1 else ''} of {x.size}: "
                         "cannot measure or normalise its loudness")
    return x


def true_peak(audio: np.ndarray) -> float:
    """Linear true peak: the largest magnitude of the clip interpolated 4x.

    The interpolation is exact band-limited (zero-padded FFT), i.e. what an ideal DAC makes of the samples with
    silence before and after; BS.1770's 48-tap filter underestimates peaks near Nyquist by up to ~0.5 dB, this does
    not. The original samples' peak is included, so the result is never below ``max(abs(audio))``."""
    import scipy.fft

    x = _check(audio)
    if x.size == 0:
        return 0.0
    n = scipy.fft.next_fast_len(x.size + 64, real=True)
    spectrum = scipy.fft.rfft(x, n=n)
    up = scipy.fft.irfft(spectrum, n=OVERSAMPLE * n) * OVERSAMPLE
    return float(max(np.max(np.abs(up)), np.max(np.abs(x))))


def true_peak_db(audio: np.ndarray) -> float:
    """True peak in dBTP (``-inf`` for silence)."""
    peak = true_peak(audio)
    return float(20.0 * np.log10(peak)) if peak > 0 else -np.inf


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (pyloudnorm). ``-inf`` for silence or anything below the -70 LUFS gate;
    ``nan`` when the clip is shorter than one 400 ms gating block and cannot be measured."""
    x = _check(audio)
    if x.size < int(0.4 * sample_rate) + 1:
        return float("nan")
    if not np.any(x):
        return -np.inf
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        value = float(_meter(int(sample_rate)).integrated_loudness(x))
    return value if not np.isnan(value) else -np.inf


def normalize(audio: np.ndarray, sample_rate: int, target_lufs: float = DEFAULT_LUFS,
              max_true_peak_db: float = DEFAULT_TRUE_PEAK_DB) -> np.ndarray:
    """Scale a mono clip to ``target_lufs`` integrated loudness, then turn it down if its true peak would pass
    ``max_true_peak_db`` dBTP.

    Parameters
    ----------
    audio : np.ndarray, 1-D
        Mono samples; must be finite.
    sample_rate : int
        In Hz.
    target_lufs : float
        Integrated loudness to reach (BS.1770, pyloudnorm). The research system's value is -14 LUFS.
    max_true_peak_db : float
        Ceiling on the 4x-oversampled peak in dBTP. When normalising would pass it, the gain is reduced so the true
        peak sits exactly on it (the loudness is then below the target): nothing clips.

    Returns
    -------
    np.ndarray, float32
        The scaled clip. Silence returns silence. A clip pyloudnorm cannot measure (shorter than one 400 ms block,
        or entirely below the -70 LUFS absolute gate) is returned unchanged, except that it too is turned down if
        its true peak passes the ceiling. Never NaN.

    Raises
    ------
    ValueError
        If the audio holds NaN or infinite samples (the message says how many), or is not 1-D.
    """
    x = _check(audio)
    if x.size == 0 or not np.any(x):
        return np.zeros(x.size, dtype=np.float32)
    loudness = integrated_loudness(x, sample_rate)
    if np.isfinite(loudness):
        x = x * 10.0 ** ((float(target_lufs) - loudness) / 20.0)
    ceiling = 10.0 ** (float(max_true_peak_db) / 20.0)
    peak = true_peak(x)
    if peak > ceiling:
        x = x * (ceiling / peak)
    return x.astype(np.float32)
