"""Spectrogram -> audio: the step every generated clip goes through (server, ``render``, ``reconstruct``, data).

``spectrogram_to_audio`` = decode the model's [-1, 1] dB image to linear magnitude (Nyquist row appended at the
floor) -> phase by PGHI (:mod:`stylesynth.pghi`, optionally refined by fast Griffin-Lim) -> inverse Gabor transform
with the dual window -> loudness normalisation to -14 LUFS with a true-peak ceiling (:mod:`stylesynth.loudness`).

CPU time per 2 s clip on one core (``benchmarks/pghi.py``, a busy 2-core machine): decode ~0.15 ms, PGHI +
synthesis 0.7-3 ms (tonal to noisy), loudness ~0.9 ms (BS.1770 gating + the 4x true-peak estimate); each refinement
iteration adds ~1 ms.
"""
from __future__ import annotations

import numpy as np

from stylesynth import loudness
from stylesynth.pghi import DEFAULT_TOL, fast_istft, pghi, pghi_batch
from stylesynth.spectrogram import HITS, Representation, decode

__all__ = ["floor_tolerance", "magnitude_to_audio", "magnitude_to_audio_batch",
           "spectrogram_to_audio", "spectrogram_to_audio_batch"]


def floor_tolerance(magnitude: np.ndarray, rep: Representation = HITS, tol: float = DEFAULT_TOL) -> float:
    """PGHI tolerance for a decoded spectrogram: ``tol``, raised to just above the representation's floor relative to
    the clip's peak, so coefficients sitting on the floor (clamped, no phase information) get a random phase
    instead of being integrated through. Matters when the generator's image never reaches +1."""
    peak = float(np.max(magnitude)) if np.size(magnitude) else 0.0
    if peak <= 0:
        return tol
    floor = 10.0 ** (rep.db_floor / 10.0)
    return max(float(tol), min(1.0, floor / peak * 1.0001))


def _auto_tolerance(magnitude: np.ndarray, rep: Representation) -> float:
    """:func:`floor_tolerance` when ``magnitude`` sits on the representation's floor (a decoded spectrogram: its
    minimum equals ``10 ** (db_floor / 10)`` to float32 precision), else :data:`DEFAULT_TOL`."""
    mag = np.asarray(magnitude)
    if mag.size == 0:
        return DEFAULT_TOL
    floor = 10.0 ** (rep.db_floor / 10.0)
    if abs(float(mag.min()) - floor) <= 1e-6 * floor:
        return floor_tolerance(mag, rep)
    return DEFAULT_TOL


def _check_frames(x: np.ndarray, rep: Representation) -> None:
    if x.shape[-1] != rep.frames:
        raise ValueError(f"expected {rep.frames} frames (hop {rep.hop}, {rep.seconds:.3f} s), got shape {x.shape}")


def magnitude_to_audio(magnitude: np.ndarray, rep: Representation = HITS, refine: int = 0,
                       tol: float | None = None, seed: int = 0) -> np.ndarray:
    """Linear magnitude (257, frames) -> float32 audio (``rep.n_samples``,) via PGHI and the dual window.

    Parameters
    ----------
    magnitude : np.ndarray, (257, frames)
        Linear Gabor magnitude in ``rep`` (any overall scale; the audio has the matching level).
    rep : Representation
    refine : int
        Fast Griffin-Lim iterations after PGHI (0 = none).
    tol : float, optional
        As :func:`stylesynth.pghi.pghi`. By default ``1e-5``, raised to just above the floor when the magnitude is a
        decoded spectrogram (:func:`floor_tolerance`): floor coefficients then get a random phase instead of being
        integrated, which is what they are worth, and several times faster on tonal sounds.
    seed : int
        As :func:`stylesynth.pghi.pghi`.
    """
    _check_frames(np.asarray(magnitude), rep)
    if tol is None:
        tol = _auto_tolerance(magnitude, rep)
    coef = pghi(magnitude, rep, tol=tol, refine=refine, seed=seed, dtype=np.complex64)
    return fast_istft(coef, rep)


def magnitude_to_audio_batch(magnitudes: np.ndarray, rep: Representation = HITS, refine: int = 0,
                             tol: float | None = None, seed: int = 0, workers: int = 1) -> np.ndarray:
    """Batched :func:`magnitude_to_audio`: (B, 257, frames) -> float32 (B, n_samples); item ``b`` uses ``seed + b``.
    ``tol=None`` picks the largest automatic tolerance over the batch."""
    _check_frames(np.asarray(magnitudes), rep)
    if tol is None:
        tol = max((_auto_tolerance(m, rep) for m in np.asarray(magnitudes)), default=DEFAULT_TOL)
    coef = pghi_batch(magnitudes, rep, tol=tol, refine=refine, seed=seed, workers=workers, dtype=np.complex64)
    return fast_istft(coef, rep)


def spectrogram_to_audio(spec: np.ndarray, rep: Representation = HITS, refine: int = 0,
                         lufs: float | None = loudness.DEFAULT_LUFS, seed: int = 0,
                         max_true_peak_db: float = loudness.DEFAULT_TRUE_PEAK_DB) -> np.ndarray:
    """The model's spectrogram -> float32 audio: decode -> PGHI -> inverse transform -> loudness.

    Parameters
    ----------
    spec : np.ndarray, (256, frames)
        The generator's image in [-1, 1] (rows: frequency, low first; values outside are clipped). As
        :func:`stylesynth.spectrogram.encode` makes.
    rep : Representation
        ``HITS`` (hop 128, 2.048 s) or ``ENV`` (hop 256, 4.096 s).
    refine : int
        Fast Griffin-Lim iterations after PGHI (0 = none; 10 gains 5-15 dB of spectral convergence, ~15 ms).
    lufs : float or None
        Integrated loudness target (-14 LUFS, as the research system); ``None`` skips normalisation (the peak of
        the magnitude is then 1, as decoded).
    seed : int
        Seed for the phase of sub-floor coefficients: same image and seed -> identical samples.
    max_true_peak_db : float
        True-peak ceiling applied after loudness normalisation (nothing clips).

    Returns
    -------
    np.ndarray, float32, (rep.n_samples,)

    Raises
    ------
    ValueError
        Wrong shape, or NaN/inf in ``spec``.
    """
    x = np.asarray(spec)
    if x.ndim != 2:
        raise ValueError(f"spectrogram must be 2-D ({rep.rows}, {rep.frames}), got shape {x.shape}")
    _check_frames(x, rep)
    magnitude = decode(x, rep)
    audio = magnitude_to_audio(magnitude, rep, refine=refine, tol=floor_tolerance(magnitude, rep), seed=seed)
    if lufs is None:
        return audio
    return loudness.normalize(audio, rep.sample_rate, float(lufs), max_true_peak_db)


def spectrogram_to_audio_batch(specs: np.ndarray, rep: Representation = HITS, refine: int = 0,
                               lufs: float | None = loudness.DEFAULT_LUFS, seed: int = 0, workers: int = 1,
                               max_true_peak_db: float = loudness.DEFAULT_TRUE_PEAK_DB) -> np.ndarray:
    """Batched :func:`spectrogram_to_audio`: (B, 256, frames) -> float32 (B, n_samples).

    Item ``b`` uses seed ``seed + b`` (so item 0 equals the unbatched call with ``seed``). ``workers > 1`` runs PGHI
    on several threads.
    """
    x = np.asarray(specs)
    if x.ndim != 3:
        raise ValueError(f"spectrograms must be 3-D (batch, {rep.rows}, {rep.frames}), got shape {x.shape}")
    _check_frames(x, rep)
    mags = decode(x, rep)
    out = np.empty((len(mags), rep.n_samples), dtype=np.float32)
    if len(mags) == 0:
        return out
    # one tolerance per item (the floor relative to each item's own peak)
    tols = [floor_tolerance(m, rep) for m in mags]
    if len(set(tols)) == 1:
        out[:] = magnitude_to_audio_batch(mags, rep, refine=refine, tol=tols[0], seed=seed, workers=workers)
    else:
        for b in range(len(mags)):
            out[b] = magnitude_to_audio(mags[b], rep, refine=refine, tol=tols[b], seed=seed + b)
    if lufs is not None:
        for b in range(len(out)):
            out[b] = loudness.normalize(out[b], rep.sample_rate, float(lufs), max_true_peak_db)
    return out
