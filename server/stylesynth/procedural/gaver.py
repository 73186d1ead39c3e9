"""Gaver's impact and scratch synthesis: band-passed noise events, the "examples" of the example-based controls.

One event of length ``T`` (after Gaver 1993, as the research system builds its examples):

* an **attack**, the first ``attack_fraction`` (5 %) of ``T``: noise band-passed to ``[attack_lf, attack_hf]``
  (Butterworth, order ``attack_order``), gain ``attack_gain`` (20), with a short linear fade at its end;
* a **trail**, the remaining 95 %: noise band-passed to ``[trail_lf, trail_hf]`` with ``filter_order``, gain
  ``trail_gain`` (10), faded out over its last ``damping_fraction`` by a ramp ``(1 -> 0) ** damping_exponent``
  (and, for query references only, faded in over its first ``fade_in_fraction``).

Events start at the listed ``onsets`` and sum over a faint white noise floor. Speed comes from filtering the whole
clip's noise once per band and gating it with per-event envelopes, instead of filtering every event separately.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.signal import sosfilt

from stylesynth.procedural.common import PEAK, add_at, audio_summary, log_uniform, sos
from stylesynth.spectrogram import HITS, SAMPLE_RATE

ATTACK_TAIL = 0.1              # the attack's last 10 % is faded linearly so it does not click into the trail
EDGE_RAMP_S = 0.001            # 1 ms raised-cosine on each gate's first samples: a hard gate would add a
                               # broadband click that smears a "muffled" event up to 8 kHz


@dataclass
class GaverParams:
    """Everything that defines one Gaver clip. Times in seconds, frequencies in Hz.

    Parameters
    ----------
    onsets : list of float
        Start time of each event.
    lengths : list of float
        Length ``T`` of each event (attack + trail), same count as ``onsets``.
    gains : list of float
        Amplitude of each event (1 = full), same count as ``onsets``.
    attack_lf, attack_hf : float
        Band of the attack noise.
    trail_lf, trail_hf : float
        Band of the trail noise.
    filter_order : int
        Butterworth order of the trail band-pass (1..8): higher is a narrower, more "ringing" band.
    damping_exponent : float
        Exponent of the trail's fade-out ramp: > 1 decays fast (a knock), < 1 holds then drops (a scrape).
    damping_fraction : float
        Fraction [0, 1] of the trail covered by the fade-out (0: no fade).
    attack_order : int
        Butterworth order of the attack band-pass.
    attack_gain, trail_gain : float
        The research system's fixed gains, 20 and 10.
    attack_fraction : float
        Share of ``T`` given to the attack (5 %).
    fade_in_fraction : float
        Fraction of the trail faded in (0 for natural sounds; a control of the soft-prior query reference).
    noise_floor_db : float
        Level of the white noise floor, in dB relative to the trail gain.
    """

    onsets: list[float]
    lengths: list[float]
    gains: list[float]
    attack_lf: float
    attack_hf: float
    trail_lf: float
    trail_hf: float
    filter_order: int = 4
    damping_exponent: float = 2.0
    damping_fraction: float = 1.0
    attack_order: int = 2
    attack_gain: float = 20.0
    trail_gain: float = 10.0
    attack_fraction: float = 0.05
    fade_in_fraction: float = 0.0
    noise_floor_db: float = -50.0

    def validate(self, sample_rate: int = SAMPLE_RATE) -> None:
        """Raise ``ValueError`` naming the first parameter that is out of range."""
        nyq = sample_rate / 2.0
        if not (len(self.onsets) == len(self.lengths) == len(self.gains)):
            raise ValueError(f"onsets, lengths and gains must have the same count, got "
                             f"{len(self.onsets)}, {len(self.lengths)}, {len(self.gains)}")
        for name in ("attack", "trail"):
            lf, hf = getattr(self, f"{name}_lf"), getattr(self, f"{name}_hf")
            if not (0 < lf < hf < nyq):
                raise ValueError(f"{name} band must satisfy 0 < {name}_lf < {name}_hf < {nyq:g} Hz, "
                                 f"got [{lf:g}, {hf:g}]")
        if not 1 <= int(self.filter_order) <= 8:
            raise ValueError(f"filter_order must be in 1..8, got {self.filter_order}")
        if not 1 <= int(self.attack_order) <= 8:
            raise ValueError(f"attack_order must be in 1..8, got {self.attack_order}")
        if not 0 <= self.damping_fraction <= 1:
            raise ValueError(f"damping_fraction must be in [0, 1], got {self.damping_fraction:g}")
        if not 0 <= self.fade_in_fraction < 1 or (
                self.fade_in_fraction > 0 and self.fade_in_fraction + self.damping_fraction > 1 + 1e-9):
            raise ValueError(f"fade_in_fraction must be in [0, 1] and leave room for the fade-out, "
                             f"got {self.fade_in_fraction:g} with damping_fraction {self.damping_fraction:g}")
        if not self.damping_exponent > 0:
            raise ValueError(f"damping_exponent must be > 0, got {self.damping_exponent:g}")
        if any(t <= 0 for t in self.lengths):
            raise ValueError(f"event lengths must be > 0, got {self.lengths}")
        if any(t < 0 for t in self.onsets):
            raise ValueError(f"onsets must be >= 0, got {self.onsets}")

    def to_json(self) -> dict:
        """Plain floats and ints only, so the label survives ``json.dumps``."""
        out = {}
        for key, value in asdict(self).items():
            if isinstance(value, list):
                out[key] = [round(float(v), 6) for v in value]
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                out[key] = int(value)
            else:
                out[key] = round(float(value), 6)
        return out


def bandpass_sos(lf: float, hf: float, order: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Butterworth band-pass ``[lf, hf]`` Hz as second-order sections (stable at high orders, unlike b/a)."""
    return sos("bandpass", (lf, hf), order, sample_rate)


def event_envelopes(params: GaverParams, n_samples: int, sample_rate: int = SAMPLE_RATE
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample gates of the attack and the trail for all events (gains included), each of length ``n_samples``.

    Events running past the end of the clip are cut there.
    """
    attack_env = np.zeros(n_samples)
    trail_env = np.zeros(n_samples)
    for onset, length, gain in zip(params.onsets, params.lengths, params.gains):
        start = int(round(onset * sample_rate))
        total = max(int(round(length * sample_rate)), 2)
        n_attack = max(int(round(params.attack_fraction * total)), 1)
        n_trail = total - n_attack
        attack = np.ones(n_attack)
        n_tail = int(ATTACK_TAIL * n_attack)
        if n_tail > 0:
            attack[-n_tail:] = np.linspace(1.0, 0.0, n_tail)
        ramp = _edge_ramp(min(int(EDGE_RAMP_S * sample_rate), n_attack // 2))
        attack[: len(ramp)] *= ramp
        trail = np.ones(n_trail)
        trail_ramp = _edge_ramp(min(int(EDGE_RAMP_S * sample_rate), n_trail // 2))
        trail[: len(trail_ramp)] *= trail_ramp
        n_fade = int(round(params.damping_fraction * n_trail))
        if n_fade > 0:
            trail[-n_fade:] = np.linspace(1.0, 0.0, n_fade) ** params.damping_exponent
        n_in = int(round(params.fade_in_fraction * n_trail))
        if n_in > 0:
            trail[:n_in] *= np.linspace(0.0, 1.0, n_in) ** params.damping_exponent
        add_at(attack_env, start, gain * attack)
        add_at(trail_env, start + n_attack, gain * trail)
    return attack_env, trail_env


def _edge_ramp(n: int) -> np.ndarray:
    """Raised-cosine rise from 0 to 1 over ``n`` samples (empty for ``n`` <= 0)."""
    if n <= 0:
        return np.ones(0)
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def render(params: GaverParams, rng: np.random.Generator, n_samples: int = HITS.n_samples,
           sample_rate: int = SAMPLE_RATE, normalise: bool = True) -> np.ndarray:
    """Synthesise a Gaver clip.

    Parameters
    ----------
    params : GaverParams
        The events and their bands; validated first (``ValueError`` if out of range).
    rng : numpy.random.Generator
        Source of the noise: the same generator state gives the same clip.
    n_samples : int
        Clip length (``spectrogram.HITS.n_samples`` for the impacts model).
    sample_rate : int
        Sampling rate in Hz.
    normalise : bool
        Scale the clip to a peak of 0.9.

    Returns
    -------
    audio : np.ndarray, float32, shape (n_samples,)
    """
    params.validate(sample_rate)
    attack_env, trail_env = event_envelopes(params, n_samples, sample_rate)
    noise = rng.standard_normal((3, n_samples))
    attack = sosfilt(bandpass_sos(params.attack_lf, params.attack_hf, params.attack_order, sample_rate), noise[0])
    trail = sosfilt(bandpass_sos(params.trail_lf, params.trail_hf, params.filter_order, sample_rate), noise[1])
    floor = noise[2] * params.trail_gain * 10.0 ** (params.noise_floor_db / 20.0)
    audio = params.attack_gain * attack * attack_env + params.trail_gain * trail * trail_env + floor
    if normalise:
        peak = np.abs(audio).max()
        if peak > 0:
            audio = audio * (PEAK / peak)
    return audio.astype(np.float32)


# -----------------------------------------------------------------------------------------------------------------
# Natural ranges
# -----------------------------------------------------------------------------------------------------------------

#: Event length T in seconds by impact type (the research system's example sets).
LENGTHS = {"hit": (0.05, 0.4), "scratch": (0.15, 1.2)}
#: A hit decays fast over all its trail; a scratch holds, then drops over a shorter final part.
DAMPING_EXPONENT = {"hit": (1.5, 6.0), "scratch": (0.3, 1.5)}
DAMPING_FRACTION = {"hit": (0.6, 1.0), "scratch": (0.15, 0.6)}
MAX_EVENTS = 7                    # "1, 2, 3, 5 or 7 events in 2 s"


def sample_band(rng: np.random.Generator, low: float = 60.0, high: float = 7900.0,
                min_ratio: float = 1.3, max_ratio: float = 16.0) -> tuple[float, float]:
    """A band ``[lf, hf]`` inside ``[low, high]`` Hz: ``lf`` log-uniform, width ``hf/lf`` log-uniform in
    ``[min_ratio, max_ratio]``; a band that would pass ``high`` is cut there."""
    lf = log_uniform(rng, low, high / min_ratio)
    hf = min(lf * log_uniform(rng, min_ratio, max_ratio), high)
    return lf, hf


def spread_onsets(rng: np.random.Generator, n: int, duration: float, jitter: float = 0.6,
                  start: float = 0.02) -> list[float]:
    """``n`` onsets over ``[start, duration)``, one in each of ``n`` equal slots, placed randomly within the first
    ``jitter`` of its slot, so events are distinct but not metronomic."""
    slot = (duration - start) / n
    return sorted(float(start + i * slot + rng.uniform(0.0, jitter) * slot) for i in range(n))


def sample_params(rng: np.random.Generator, kind: str = "hit", n_events: int | None = None,
                  duration: float = HITS.seconds) -> GaverParams:
    """Draw a natural impact (``kind="hit"``) or scratch (``kind="scratch"``).

    Parameters
    ----------
    rng : numpy.random.Generator
        Where the parameters come from.
    kind : {"hit", "scratch"}
        Impact type: sets the event length range (hits 0.05-0.4 s, scratches 0.15-1.2 s) and the damping shape.
    n_events : int, optional
        Number of events; drawn in 1..7 when not given.
    duration : float
        Clip length in seconds (onsets fall inside it).
    """
    if kind not in LENGTHS:
        raise ValueError(f"kind must be one of {sorted(LENGTHS)}, got {kind!r}")
    n = int(n_events) if n_events is not None else int(rng.integers(1, MAX_EVENTS + 1))
    if n < 1:
        raise ValueError(f"n_events must be >= 1, got {n}")
    onsets = spread_onsets(rng, n, duration)
    lengths = [log_uniform(rng, *LENGTHS[kind]) for _ in range(n)]
    gains = [float(rng.uniform(0.5, 1.0)) for _ in range(n)]
    trail_lf, trail_hf = sample_band(rng)
    attack_lf, attack_hf = sample_band(rng, low=min(max(trail_lf, 200.0), 4000.0), min_ratio=1.5)
    return GaverParams(
        onsets=onsets, lengths=lengths, gains=gains,
        attack_lf=attack_lf, attack_hf=attack_hf, trail_lf=trail_lf, trail_hf=trail_hf,
        filter_order=int(rng.integers(1, 7)),
        damping_exponent=log_uniform(rng, *DAMPING_EXPONENT[kind]),
        damping_fraction=float(rng.uniform(*DAMPING_FRACTION[kind])),
        noise_floor_db=float(rng.uniform(-65.0, -45.0)),
    )


def describe(params: GaverParams, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict:
    """The label of a Gaver clip: every parameter plus the summaries a test can measure on the waveform."""
    label = params.to_json()
    label.update(
        onsets=[round(float(t), 6) for t in params.onsets],
        n_events=len(params.onsets),
        event_lengths=[round(float(t), 6) for t in params.lengths],
        band=[round(float(min(params.attack_lf, params.trail_lf)), 3),
              round(float(max(params.attack_hf, params.trail_hf)), 3)],
    )
    label.update(audio_summary(audio, sample_rate))
    return label


def make(rng: np.random.Generator, kind: str = "hit", n_samples: int = HITS.n_samples,
         sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """Draw and render one natural hit or scratch clip: ``(audio float32, label)``."""
    params = sample_params(rng, kind, duration=n_samples / sample_rate)
    audio = render(params, rng, n_samples, sample_rate)
    return audio, describe(params, audio, sample_rate)
