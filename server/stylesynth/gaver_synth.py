"""A model-free renderer: the control state drawn directly as a Gaver clip (the ``gaver`` model).

It has the same shape as :class:`stylesynth.synthesizer.Synthesizer` (``name``, ``rep``, ``sample_rate``,
``prototypes``, ``start_points``, ``render(state)``), so the server, its tests and its benchmarks run end to end
on any machine, with no checkpoint and in a few milliseconds per clip. The mapping is literal rather than learnt:
the ``query/*`` controls describe the events, ``brightness`` moves the band by octaves, ``rate`` adds or removes
events, ``impact`` shortens or lengthens them, ``seed`` draws the noise and onsets, ``start`` picks a stored
recipe. It is a test instrument and a fallback, not a substitute for the trained model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from stylesynth.procedural import gaver
from stylesynth.spectrogram import HITS, Representation

TARGET_RMS_DB = -20.0   # loudness stand-in: pyloudnorm's -14 LUFS is the trained model's job


@dataclass
class GaverClip:
    """What :meth:`GaverSynth.render` returns: ``audio`` float32 mono, ``timings`` in ms."""

    audio: np.ndarray
    timings: dict = field(default_factory=dict)
    spec: np.ndarray | None = None


# Named start points: query-control recipes (band_lf, band_hf, width, density, exponent).
START_POINTS = {
    "Knock - Wood": (150.0, 1200.0, 0.08, 3, 4.0),
    "Tap - Metal": (2000.0, 7500.0, 0.12, 5, 2.0),
    "Scrape - Gravel": (300.0, 4000.0, 0.9, 2, 0.6),
}


class GaverSynth:
    """Renders a :class:`~stylesynth.state.ControlState` as a procedural Gaver clip (see the module docstring).

    Parameters
    ----------
    rep : Representation
        Clip length and rate (``HITS``: 2.048 s at 16 kHz).
    """

    name = "gaver"
    prototypes = ["Hits", "Scratches"]
    start_points = list(START_POINTS)

    def __init__(self, rep: Representation = HITS):
        self.rep = rep
        self.sample_rate = rep.sample_rate

    def render(self, state) -> GaverClip:
        """One clip for ``state``; the same state always gives the same samples."""
        t0 = time.perf_counter()
        params = self.gaver_params(state)
        rng = np.random.default_rng(state.seed)
        audio = gaver.render(params, rng, self.rep.n_samples, self.sample_rate, normalise=False)
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        peak = float(np.abs(audio).max())
        if rms > 0:  # an RMS target, but never past a 0.9 peak (hits have a high crest factor)
            audio = audio * min(10.0 ** (TARGET_RMS_DB / 20.0) / rms, 0.9 / peak)
        audio = audio.astype(np.float32)
        return GaverClip(audio=audio, timings={"generator": (time.perf_counter() - t0) * 1000, "pghi": 0.0,
                                               "loudness": 0.0})

    def gaver_params(self, state) -> gaver.GaverParams:
        """The event recipe the state describes."""
        lf, hf = sorted((state.query_band_lf, state.query_band_hf))
        width, density, exponent = state.query_width, state.query_density, state.query_exponent
        if state.start in START_POINTS:
            lf, hf, width, density, exponent = START_POINTS[state.start]
        if state.prototype == "Scratches":
            width = width + state.strength * (0.8 - width)
        elif state.prototype == "Hits":
            width = width + state.strength * (0.1 - width)
        shift = 2.0 ** (0.5 * state.brightness)                 # +-5 -> +-2.5 octaves
        nyq = self.sample_rate / 2 * 0.95
        lf = float(np.clip(lf * shift, 30.0, nyq / 1.5))
        hf = float(np.clip(hf * shift, lf * 1.2, nyq))
        n = int(np.clip(round(density * 2.0 ** (0.4 * state.rate)), 1, 24))
        width = float(np.clip(width * 2.0 ** (-0.4 * state.impact), 0.01, 1.5))
        duration = self.rep.seconds
        rng = np.random.default_rng([state.seed, 1])
        if state.query_burst:
            centre = rng.uniform(0.1, 0.6) * duration
            onsets = sorted(float(np.clip(centre + rng.normal(0, 0.08), 0.0, duration - 0.01)) for _ in range(n))
        else:
            onsets = gaver.spread_onsets(rng, n, duration, jitter=0.2)
        fade_out = float(np.clip(state.query_fade_out, 0.0, 1.0))
        fade_in = float(np.clip(state.query_fade_in, 0.0, max(0.0, 0.99 - fade_out)))
        sefa = np.asarray(state.sefa)
        gains = [float(np.clip(1.0 + 0.1 * sefa[i % len(sefa)], 0.1, 1.5)) for i in range(n)]
        return gaver.GaverParams(
            onsets=onsets, lengths=[width] * n, gains=gains,
            attack_lf=float(min(max(lf, 200.0), nyq / 2)), attack_hf=float(min(max(hf, 400.0), nyq)),
            trail_lf=lf, trail_hf=hf, filter_order=int(state.query_order),
            damping_exponent=float(exponent) * (1.0 + 0.5 * (1.0 - state.truncation)),
            damping_fraction=fade_out, fade_in_fraction=fade_in)


def load(model: str, device: str = "cpu"):
    """The renderer for a model name: ``"gaver"`` is this module's; anything else is a trained checkpoint loaded
    by :class:`stylesynth.synthesizer.Synthesizer` (imported only then: it pulls in torch)."""
    if model == "gaver":
        return GaverSynth()
    from stylesynth.synthesizer import Synthesizer

    return Synthesizer.load(model, device=device)
