"""The soft-prior query: a Gaver reference built from the state's ``query/*`` controls, inverted to ``w``.

The research system's "Query GAN with soft prior" page: the user describes an impact texture (impulse width,
number of impulses, regular or bursty placement, frequency band, filter order, fade in/out and exponent), a
synthetic Gaver clip is made from it, the encoder inverts it, and the result is pulled towards a class prototype
(that pull is :func:`stylesynth.controls.latent.state_to_w`'s job).

The reference is rendered with :mod:`stylesynth.procedural.gaver` directly rather than through
:func:`stylesynth.procedural.example_sets.query_reference`, because the state's ``query/density`` is a count of
impulses (1-12) while that function takes the paper's five named densities.
"""
from __future__ import annotations

import numpy as np
import torch

from stylesynth.procedural import gaver
from stylesynth.spectrogram import Representation

BAND_TOP = 7900.0       # Hz: the Gaver band-pass needs its upper edge below Nyquist (8 kHz)
MIN_BAND_RATIO = 1.05   # a band narrower than this is widened around its centre

QUERY_FIELDS = ("query_width", "query_density", "query_burst", "query_band_lf", "query_band_hf", "query_order",
                "query_fade_in", "query_fade_out", "query_exponent", "seed")


def reference_params(state, rep: Representation) -> gaver.GaverParams:
    """The Gaver recipe of a state's query controls, made renderable.

    Band edges are swapped if reversed and kept inside [20, 7900] Hz with a minimal width; ``fade_in + fade_out``
    above 1 is scaled down to 1 (the state allows each in [0, 1] alone) and ``fade_in`` kept below 1. Burst
    placement bunches the impulses at a seed-drawn time with gaps of 10-35 % of the impulse width; otherwise they
    are evenly spaced over the clip.
    """
    duration = rep.n_samples / rep.sample_rate
    n = int(state.query_density)
    width = float(state.query_width)
    lf, hf = sorted((float(state.query_band_lf), float(state.query_band_hf)))
    hf = min(max(hf, 20.0 * MIN_BAND_RATIO), BAND_TOP)
    lf = min(max(lf, 20.0), hf / MIN_BAND_RATIO)
    fade_in, fade_out = float(state.query_fade_in), float(state.query_fade_out)
    if fade_in + fade_out > 1.0:
        total = fade_in + fade_out
        fade_in, fade_out = fade_in / total, fade_out / total
    fade_in = min(fade_in, 0.99)          # the fade-in may not cover the whole trail
    rng = np.random.default_rng([int(state.seed), 2])
    if state.query_burst and n > 1:
        gaps = rng.uniform(0.1, 0.35, n - 1) * max(width, 0.05)
        start = float(rng.uniform(0.02, max(0.03, duration - float(gaps.sum()) - 0.05)))
        onsets = [start, *(start + np.cumsum(gaps))]
    else:
        slot = duration / n
        onsets = [0.02 + i * slot for i in range(n)]
    return gaver.GaverParams(
        onsets=[float(t) for t in onsets], lengths=[width] * n, gains=[1.0] * n,
        attack_lf=lf, attack_hf=hf, trail_lf=lf, trail_hf=hf, filter_order=int(state.query_order),
        damping_exponent=float(state.query_exponent), damping_fraction=fade_out, fade_in_fraction=fade_in)


def reference_audio(state, rep: Representation) -> np.ndarray:
    """The query reference clip (float32, ``rep.n_samples`` samples at ``rep.sample_rate``); same state, same clip."""
    params = reference_params(state, rep)
    rng = np.random.default_rng([int(state.seed), 3])
    return gaver.render(params, rng, rep.n_samples, rep.sample_rate)


def query_key(state) -> tuple:
    return tuple(getattr(state, f) for f in QUERY_FIELDS)


def query_latent(state, bundle) -> torch.Tensor:
    """``w`` (w_dim,) of the state's query reference, inverted by the bundle's encoder; cached per query.

    Raises
    ------
    ControlsError
        If the bundle has no encoder (``encoder.safetensors`` missing).
    """
    from stylesynth.controls.bundle import ControlsError
    from stylesynth.controls.encoder import clips_to_specs, invert

    if bundle.encoder is None:
        raise ControlsError(f"model {bundle.model!r} has no encoder.safetensors: the soft-prior query needs one "
                            f"('stylesynth controls build --model {bundle.model}')")
    key = ("query",) + query_key(state)
    cached = bundle._cache.get(key)
    if cached is not None:
        return cached.clone()
    audio = reference_audio(state, bundle.rep)
    if not np.all(np.isfinite(audio)):
        raise ValueError("the query reference is not finite")
    enc = bundle.encoder
    spec = clips_to_specs([audio], bundle.rep, enc.cfg.rows, enc.cfg.frames)
    w = invert(enc, spec)[0]
    if len(bundle._cache) >= 64:       # a small bound: a client sweeping query knobs must not grow memory
        bundle._cache.pop(next(iter(bundle._cache)))
    bundle._cache[key] = w
    return w.clone()

