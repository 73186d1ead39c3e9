"""The example sets behind the semantic controls, and the Gaver reference of the soft-prior query.

Each control direction is learned from two sets of Gaver clips that differ in one attribute and vary randomly in
the others (research system, Kamath et al. 2024):

* ``brightness/tinny`` (every band reaches 7.5-7.9 kHz) vs ``brightness/muffled`` (every band stops at
  0.5-1.75 kHz);
* ``rate/1``, ``rate/2``, ``rate/3``, ``rate/5``, ``rate/7``: that many events in 2 s (short, fast-decaying events
  on an even grid with a little jitter, so the count is what a listener hears);
* ``impact/hits`` (events 0.05-0.4 s, fast decay) vs ``impact/scratches`` (0.15-1.2 s, held then dropped).

All sets are 2.048 s clips (the impacts model's length) and every clip carries its label.
"""
from __future__ import annotations

import numpy as np

from stylesynth.procedural import gaver
from stylesynth.procedural.common import log_uniform
from stylesynth.spectrogram import HITS, SAMPLE_RATE

RATES = (1, 2, 3, 5, 7)
RATE_SPAN = 2.0                       # "n events in 2 s"
TINNY_TOP = (7500.0, 7900.0)
MUFFLED_TOP = (500.0, 1750.0)
SET_NAMES = (["brightness/tinny", "brightness/muffled"] + [f"rate/{r}" for r in RATES]
             + ["impact/hits", "impact/scratches"])

#: Soft-prior query densities -> events per 2 s (the rate sets' extremes and middle).
DENSITIES = {"very low": 1, "low": 2, "medium": 3, "high": 5, "very high": 7}


def _with_top(params: gaver.GaverParams, rng: np.random.Generator, top: tuple[float, float],
              min_lf: float, max_ratio: float) -> gaver.GaverParams:
    """Move both bands so they end at a frequency drawn in ``top`` (lower edges at least ``min_lf``)."""
    for name in ("attack", "trail"):
        hf = float(rng.uniform(*top))
        lf = max(hf / log_uniform(rng, 1.5, max_ratio), min_lf)
        setattr(params, f"{name}_lf", lf)
        setattr(params, f"{name}_hf", hf)
    return params


def _brightness(rng: np.random.Generator, tinny: bool) -> tuple[gaver.GaverParams, str]:
    kind = "hit" if rng.random() < 0.5 else "scratch"
    params = gaver.sample_params(rng, kind)
    if tinny:
        return _with_top(params, rng, TINNY_TOP, min_lf=1500.0, max_ratio=5.0), kind
    return _with_top(params, rng, MUFFLED_TOP, min_lf=40.0, max_ratio=8.0), kind


def _rate(rng: np.random.Generator, n_events: int) -> gaver.GaverParams:
    params = gaver.sample_params(rng, "hit", n_events=n_events)
    slot = RATE_SPAN / n_events
    # Even grid with 15 % jitter; events last at most 40 % of a slot and decay fast, so each one is heard.
    params.onsets = [float(0.02 + i * slot + rng.uniform(0.0, 0.15) * slot) for i in range(n_events)]
    params.lengths = [min(log_uniform(rng, 0.05, 0.2), 0.4 * slot) for _ in range(n_events)]
    params.gains = [float(rng.uniform(0.8, 1.0)) for _ in range(n_events)]
    params.damping_exponent = log_uniform(rng, 2.0, 6.0)
    params.damping_fraction = float(rng.uniform(0.8, 1.0))
    return params


def example_set(name: str, n: int, seed: int = 0, n_samples: int = HITS.n_samples
                ) -> list[tuple[np.ndarray, dict]]:
    """``n`` labelled clips of a named example set.

    Parameters
    ----------
    name : str
        One of :data:`SET_NAMES`: "brightness/tinny", "brightness/muffled", "rate/1" .. "rate/7" (1, 2, 3, 5, 7),
        "impact/hits", "impact/scratches".
    n : int
        Number of clips (the research system finds more than 10 per set are needed for a stable direction).
    seed : int
        Clip ``i`` draws from ``default_rng([seed, i])``: reproducible, and a set grows without changing its
        first clips.
    n_samples : int
        Clip length (the impacts model's, 32768 at 16 kHz, by default).

    Returns
    -------
    list of (audio float32, label dict)
        The label has ``"class"`` ("Hits" or "Scratches"), ``"set"``, every parameter and measured summaries.
    """
    if name not in SET_NAMES:
        raise ValueError(f"unknown example set {name!r}; known: {', '.join(SET_NAMES)}")
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    group, value = name.split("/")
    out = []
    for i in range(int(n)):
        rng = np.random.default_rng([int(seed), i])
        if group == "brightness":
            params, kind = _brightness(rng, value == "tinny")
        elif group == "rate":
            params, kind = _rate(rng, int(value)), "hit"
        else:
            kind = "hit" if value == "hits" else "scratch"
            params = gaver.sample_params(rng, kind)
        audio = gaver.render(params, rng, n_samples)
        label = gaver.describe(params, audio)
        out.append((audio, {"class": "Hits" if kind == "hit" else "Scratches", "set": name, **label}))
    return out


def query_reference(impulse_width: float, density: str, burst: bool, band_lf: float, band_hf: float,
                    filter_order: int, fade_in: float, fade_out: float, fade_exponent: float, seed: int = 0,
                    n_samples: int = HITS.n_samples, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """A Gaver reference built from the soft-prior query's controls (the encoder then inverts it).

    Parameters
    ----------
    impulse_width : float
        Length of each event in seconds, 0.01 to 2.0.
    density : {"very low", "low", "medium", "high", "very high"}
        Number of events: 1, 2, 3, 5 or 7 per 2 s.
    burst : bool
        Irregular placement: the events bunch into one burst at a random time instead of an even spread.
    band_lf, band_hf : float
        Frequency band of the events in Hz, ``20 <= band_lf < band_hf <= 7900``.
    filter_order : int
        Butterworth order of the band-pass, 1 to 8.
    fade_in : float
        Fraction of each event's trail faded in, 0 to 1.
    fade_out : float
        Fraction of each event's trail faded out, 0 to 1; ``fade_in + fade_out <= 1``.
    fade_exponent : float
        Exponent of both fades, 0.1 to 10 (above 1: fast decay, a hit; below 1: a held scrape).
    seed : int
        Seed of the noise and of the burst placement.
    n_samples, sample_rate : int
        Clip length and rate (the impacts model's by default).

    Returns
    -------
    audio : float32 array (n_samples,)
    label : dict, with ``"class": "Query"`` and every control.

    Raises
    ------
    ValueError
        Naming the argument that is out of range.
    """
    if density not in DENSITIES:
        raise ValueError(f"density must be one of {', '.join(repr(d) for d in DENSITIES)}, got {density!r}")
    if not 0.01 <= impulse_width <= 2.0:
        raise ValueError(f"impulse_width must be in [0.01, 2.0] s, got {impulse_width}")
    if not 20.0 <= band_lf < band_hf <= 7900.0:
        raise ValueError(f"band must satisfy 20 <= band_lf < band_hf <= 7900 Hz, got [{band_lf}, {band_hf}]")
    if int(filter_order) != filter_order or not 1 <= filter_order <= 8:
        raise ValueError(f"filter_order must be a whole number in 1..8, got {filter_order}")
    for arg, value in (("fade_in", fade_in), ("fade_out", fade_out)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{arg} must be in [0, 1], got {value}")
    if fade_in + fade_out > 1.0:
        raise ValueError(f"fade_in + fade_out must be at most 1, got {fade_in} + {fade_out}")
    if not 0.1 <= fade_exponent <= 10.0:
        raise ValueError(f"fade_exponent must be in [0.1, 10], got {fade_exponent}")
    if not isinstance(burst, (bool, np.bool_)):
        raise ValueError(f"burst must be True or False, got {burst!r}")
    rng = np.random.default_rng(int(seed))
    duration = n_samples / sample_rate
    n_events = max(1, int(round(DENSITIES[density] * duration / RATE_SPAN)))
    if burst:
        # Bunched: gaps of a tenth to a third of the impulse width, the bunch starting at a random time.
        gaps = rng.uniform(0.1, 0.35, n_events - 1) * max(impulse_width, 0.05)
        span = float(gaps.sum())
        start = float(rng.uniform(0.02, max(0.03, duration - span - 0.05)))
        onsets = [start] + list(start + np.cumsum(gaps))
    else:
        slot = duration / n_events
        onsets = [0.02 + i * slot for i in range(n_events)]
    params = gaver.GaverParams(
        onsets=[float(t) for t in onsets], lengths=[float(impulse_width)] * n_events, gains=[1.0] * n_events,
        attack_lf=float(band_lf), attack_hf=float(band_hf), trail_lf=float(band_lf), trail_hf=float(band_hf),
        filter_order=int(filter_order), damping_exponent=float(fade_exponent), damping_fraction=float(fade_out),
        fade_in_fraction=float(fade_in))
    audio = gaver.render(params, rng, n_samples, sample_rate)
    label = {"class": "Query", "impulse_width": float(impulse_width), "density": density, "burst": bool(burst),
             **gaver.describe(params, audio, sample_rate)}
    return audio, label
