"""The spectrogram of the sound a generated image becomes: image -> PGHI phase -> waveform -> Gabor transform again.

A magnitude image need not be the transform of any signal. The session-2 generators drew onsets that rise 14 dB in
one 8 ms frame with nothing before them; no waveform has that transform, so once PGHI gave them a phase and the
audio was analysed again, the same onsets rose over three frames by at most 7 dB, and the 9 dB onset detector of
:mod:`stylesynth.features` found no onset in any rendered clip (real clips keep every onset through the same round
trip). What a listener hears is the re-analysed image, so that is what the discriminator should judge
(``stylesynth train --reanalysis``) and what the quality figures should measure (``benchmarks/quality.py --on
audio``).

The phase comes from PGHI (numpy, no gradient), the rest is torch: with the phase held fixed, the re-analysed
magnitude is a differentiable function of the generated one, so the generator learns to draw images whose sound
looks right. Numbers match :func:`stylesynth.spectrogram.encode` of :func:`stylesynth.waveform.magnitude_to_audio`
to float32 precision (``tests/test_reanalysis.py``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stylesynth.pghi import _plan, pghi_batch
from stylesynth.spectrogram import HITS, Representation, decode_torch, encode_torch as analyse
from stylesynth.waveform import floor_tolerance

__all__ = ["pghi_phase_batch", "synthesise", "analyse", "reanalyse"]   # analyse: spectrogram.encode_torch


def pghi_phase_batch(specs: torch.Tensor, rep: Representation = HITS, seed: int = 0) -> torch.Tensor:
    """PGHI phase (B, 257, frames), float32, of images (B, 256, frames) in [-1, 1], as the audio path computes it
    (the floor tolerance of :func:`stylesynth.waveform.floor_tolerance`; item ``b`` uses ``seed + b``)."""
    mags = decode_torch(specs.detach().float().cpu(), rep).double().numpy()
    tol = max(floor_tolerance(m, rep) for m in mags)
    coef = pghi_batch(mags, rep, tol=tol, seed=seed, dtype=np.complex64)
    return torch.from_numpy(np.angle(coef).astype(np.float32))


def synthesise(magnitude: torch.Tensor, phase: torch.Tensor, rep: Representation = HITS) -> torch.Tensor:
    """Inverse Gabor transform with the canonical dual window, differentiable in ``magnitude``.

    Parameters
    ----------
    magnitude, phase : torch.Tensor, (B, 257, frames)
        Linear magnitude and phase in radians (time-invariant convention, as :mod:`stylesynth.pghi`).
    rep : Representation
        Lattice of the coefficients.

    Returns
    -------
    torch.Tensor, (B, n_samples), float32: the same numbers as :func:`stylesynth.pghi.fast_istft`.
    """
    plan = _plan(rep)
    M, a, L = rep.channels, rep.hop, rep.n_samples
    window = torch.from_numpy(plan.syn_window32).to(magnitude.device)         # (S,), S a multiple of M, times M
    S = window.shape[0]
    coef = torch.polar(magnitude.float(), phase.float().to(magnitude.device))
    y = torch.fft.irfft(coef.transpose(1, 2), n=M, dim=-1)                    # (B, frames, M): one period each
    frames = y.shape[1]
    taps = y.repeat(1, 1, S // M) * window                                      # (B, frames, S)
    # Overlap-add on a line (col2im), then fold the line onto the circle: tap j of frame n sits at n a - S/2 + j.
    size = (frames - 1) * a + S
    line = F.fold(taps.transpose(1, 2), output_size=(1, size), kernel_size=(1, S), stride=(1, a)).flatten(1)
    laps = -(-size // L)
    circle = F.pad(line, (0, laps * L - size)).view(-1, laps, L).sum(1)
    return torch.roll(circle, shifts=(-(S // 2)) % L, dims=1)


def reanalyse(specs: torch.Tensor, rep: Representation = HITS, seed: int = 0) -> torch.Tensor:
    """What the audio of generated images looks like: (B, 256, frames) in [-1, 1] -> the same shape, the transform
    of the waveform PGHI makes of each image (before loudness, which only scales it). Gradients flow through the
    magnitude; the phase is PGHI's, held fixed."""
    phase = pghi_phase_batch(specs, rep, seed)
    audio = synthesise(decode_torch(specs.float(), rep), phase, rep)
    return analyse(audio, rep)
