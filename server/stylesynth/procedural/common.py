"""Small signal helpers shared by the procedural generators (filters, envelopes, labels)."""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from stylesynth.spectrogram import SAMPLE_RATE

PEAK = 0.9                     # every clip is peak-normalised here: audible, never clipping
NYQUIST_MARGIN = 0.99          # band edges stay below this fraction of Nyquist (butter needs < 1)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A float between ``low`` and ``high`` whose logarithm is uniform (right for frequencies, times, rates)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sos(kind: str, edges, order: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Butterworth filter as second-order sections. ``kind`` is "bandpass" (``edges = (lf, hf)``), "lowpass" or
    "highpass" (``edges`` one frequency); edges are clamped into the open interval (1 Hz, Nyquist)."""
    nyq = sample_rate / 2.0
    top = NYQUIST_MARGIN * nyq
    if kind == "bandpass":
        hi = min(float(edges[1]), top)
        lo = min(max(float(edges[0]), 1.0), hi * 0.999)
        wn = [lo / nyq, hi / nyq]
    else:
        wn = min(max(float(edges), 1.0), top) / nyq
    return butter(int(order), wn, btype=kind, output="sos")


def filtered_noise(rng: np.random.Generator, n: int, kind: str, edges, order: int = 2,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``n`` samples of white noise through :func:`sos` (unit-variance input)."""
    return sosfilt(sos(kind, edges, order, sample_rate), rng.standard_normal(n))


def smooth_random(rng: np.random.Generator, n: int, rate_hz: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A slowly wandering curve in about [-1, 1] with detail up to ``rate_hz``: random knots, cubic-smoothed.

    Used for gusts, engine-speed drift and stream turbulence: cheap, smooth, and seedable.
    """
    n_knots = max(int(np.ceil(n / sample_rate * rate_hz)) + 4, 4)
    knots = rng.uniform(-1.0, 1.0, n_knots)
    x = np.linspace(1.0, n_knots - 3.0, n)
    i = np.floor(x).astype(int)
    t = x - i
    # Catmull-Rom through the knots: smooth, stays near the knots' range.
    p0, p1, p2, p3 = knots[i - 1], knots[i], knots[i + 1], knots[np.minimum(i + 2, n_knots - 1)]
    return 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3)


def decay(n: int, tau_s: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``exp(-t / tau)`` over ``n`` samples."""
    return np.exp(-np.arange(n) / (tau_s * sample_rate))


def add_at(target: np.ndarray, start: int, values: np.ndarray) -> None:
    """``target[start:start+len(values)] += values``, cut at both ends of ``target``."""
    if start >= len(target) or start + len(values) <= 0:
        return
    lo = max(start, 0)
    hi = min(start + len(values), len(target))
    target[lo:hi] += values[lo - start: hi - start]


def normalise(audio: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """Scale to the given peak; float32. A silent input stays silent (no division by zero)."""
    audio = np.asarray(audio, dtype=np.float64)
    top = np.abs(audio).max() if audio.size else 0.0
    if top > 0 and np.isfinite(top):
        audio = audio * (peak / top)
    return audio.astype(np.float32)


def audio_summary(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict:
    """Spectral centroid (Hz) and RMS level (dBFS) of a clip: cheap, measurable, handy for sorting a dataset."""
    x = np.asarray(audio, dtype=np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    total = power.sum()
    centroid = float((freqs * power).sum() / total) if total > 0 else 0.0
    rms = float(np.sqrt(np.mean(x ** 2)))
    return {"centroid_hz": round(centroid, 2), "rms_db": round(20 * np.log10(max(rms, 1e-12)), 2)}


def jsonable(value):
    """Round floats, unpack numpy scalars and arrays, recursively: labels must survive ``json.dumps``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6)
    return value


def finish(audio: np.ndarray, params: dict, onsets, lengths, band, sample_rate: int = SAMPLE_RATE
           ) -> tuple[np.ndarray, dict]:
    """Normalise a rendered clip and build its label: the parameters plus ``onsets``, ``n_events``,
    ``event_lengths``, ``band`` and the measured :func:`audio_summary`."""
    audio = normalise(audio)
    label = jsonable(dict(params))
    label.update(jsonable({"onsets": list(onsets), "n_events": len(onsets), "event_lengths": list(lengths),
                           "band": [float(band[0]), float(band[1])]}))
    label.update(audio_summary(audio, sample_rate))
    return audio, label
