"""Measurements on a waveform that check a label: onsets and event lengths from the envelope, spectral centroid.

Deliberately independent of how the clips are made (they read only the audio), so tests can hold a label against
what is actually in the sound, and training can watch its samples' onset counts and brightness spread.
"""
from __future__ import annotations

import numpy as np

from stylesynth.spectrogram import SAMPLE_RATE

HOP_S = 0.005                     # envelope resolution: 5 ms


def envelope_db(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, hop_s: float = HOP_S) -> np.ndarray:
    """RMS level per ``hop_s`` frame in dB relative to the loudest frame (0 dB at the peak, floored at -120)."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    hop = max(int(hop_s * sample_rate), 1)
    n = len(x) // hop
    if n == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    peak = rms.max()
    if peak <= 0:
        return np.full(n, -120.0)
    return np.maximum(20 * np.log10(np.maximum(rms / peak, 1e-6)), -120.0)


def detect_onsets(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, rise_db: float = 12.0,
                  floor_db: float = -30.0, lookback_s: float = 0.03, refractory_s: float = 0.06) -> list[float]:
    """Onset times (s) where the envelope jumps: an attack.

    Parameters
    ----------
    audio : array
        Mono audio.
    sample_rate : int
        Its rate in Hz.
    rise_db : float
        A frame is an onset if it is at least this much louder than the quietest frame of the preceding
        ``lookback_s`` ...
    floor_db : float
        ... and within this many dB of the clip's peak (ignores the noise floor's flicker) ...
    lookback_s : float
        How far back the quiet reference frame may be.
    refractory_s : float
        ... and at least this long after the previous onset (one attack is one onset).
    """
    env = envelope_db(audio, sample_rate)
    look = max(int(round(lookback_s / HOP_S)), 1)
    refractory = int(round(refractory_s / HOP_S))
    onsets: list[float] = []
    last = -refractory - 1
    for i in range(len(env)):
        before = env[max(0, i - look): i]
        reference = before.min() if len(before) else -120.0
        if env[i] >= floor_db and env[i] - reference >= rise_db and i - last > refractory:
            onsets.append(i * HOP_S)
            last = i
    return onsets


def event_lengths(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, threshold_db: float = -30.0) -> list[float]:
    """Lengths (s) of the stretches where the envelope stays above ``threshold_db`` re the peak: how long the
    sound events last (overlapping events count as one)."""
    above = envelope_db(audio, sample_rate) >= threshold_db
    edges = np.diff(np.concatenate([[0], above.astype(int), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [float((b - a) * HOP_S) for a, b in zip(starts, stops)]


def spectral_centroid(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Power-weighted mean frequency (Hz) of the whole clip: the brightness a listener hears, roughly."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    power = np.abs(np.fft.rfft(x)) ** 2
    total = power.sum()
    if total <= 0:
        return 0.0
    return float((np.fft.rfftfreq(len(x), 1.0 / sample_rate) * power).sum() / total)
