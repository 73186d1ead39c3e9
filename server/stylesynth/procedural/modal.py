"""Modal impacts: struck bars and plates as sums of exponentially damped sinusoids.

A struck object rings at its modes. Each mode ``k`` has a frequency ``f0 * ratio_k`` (the ratio series is fixed by
the object's shape), an amplitude set by where it is struck (a strike at a node of mode ``k`` does not excite it),
and a decay set by the material (internal friction damps high modes faster: ``1/tau_k = 1/tau_0 + loss * f_k``).
A short noise click marks the contact. Events repeat the same object at the listed onsets, with varying force.
"""
from __future__ import annotations

import numpy as np

from stylesynth.procedural.common import add_at, decay, filtered_noise, finish, log_uniform
from stylesynth.spectrogram import HITS, SAMPLE_RATE

#: Mode frequency ratios. Bar: free-free (Euler-Bernoulli) beam, ratios (2k+1)^2 / 9 approx. Plate: a clamped
#: circular plate (Bessel-function roots), approximate.
RATIOS = {
    "bar": [1.0, 2.756, 5.404, 8.933, 13.344, 18.638, 24.816],
    "plate": [1.0, 2.081, 3.413, 3.893, 5.005, 5.949, 6.748, 7.829, 8.375, 9.718],
}
#: Material -> (fundamental range Hz, fundamental decay tau_0 range s, extra loss per Hz): metal rings long and
#: evenly, wood is short and dull, glass rings high and fairly long, plastic is short.
MATERIALS = {
    "metal": ((180.0, 1500.0), (0.4, 1.6), 2e-5),
    "glass": ((600.0, 2500.0), (0.2, 0.8), 6e-5),
    "wood": ((120.0, 700.0), (0.04, 0.15), 6e-4),
    "plastic": ((200.0, 1200.0), (0.03, 0.1), 4e-4),
}


def mode_table(shape: str, material: str, f0: float, strike_position: float, tau0: float,
               sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies, amplitudes and decay times of the modes below Nyquist.

    Parameters
    ----------
    shape : {"bar", "plate"}
        Picks the ratio series :data:`RATIOS`.
    material : str
        A key of :data:`MATERIALS`; sets how much faster high modes decay.
    f0 : float
        Fundamental in Hz.
    strike_position : float
        Where the object is struck, 0 (edge) to 0.5 (centre): mode ``k`` is weighted by ``|sin(pi (k+1) p)|``,
        so a centre strike loses the even modes, an edge strike brings out the high ones.
    tau0 : float
        Decay time constant of the fundamental in seconds.
    """
    ratios = np.asarray(RATIOS[shape])
    freqs = f0 * ratios
    keep = freqs < 0.45 * sample_rate
    freqs = freqs[keep]
    k = np.arange(len(ratios))[keep]
    amps = (np.abs(np.sin(np.pi * (k + 1) * strike_position)) + 0.03) / (1.0 + k) ** 0.5
    loss = MATERIALS[material][2]
    taus = 1.0 / (1.0 / tau0 + loss * freqs * 2 * np.pi)
    return freqs, amps, taus


def make(rng: np.random.Generator, n_samples: int = HITS.n_samples, sample_rate: int = SAMPLE_RATE
         ) -> tuple[np.ndarray, dict]:
    """Draw and render a modal impact clip: ``(audio float32, label)``; 1-5 strikes of one bar or plate."""
    shape = ["bar", "plate"][int(rng.integers(2))]
    material = list(MATERIALS)[int(rng.integers(len(MATERIALS)))]
    f_range, tau_range, _ = MATERIALS[material]
    f0 = log_uniform(rng, *f_range)
    tau0 = log_uniform(rng, *tau_range)
    strike = float(rng.uniform(0.05, 0.5))
    freqs, amps, taus = mode_table(shape, material, f0, strike, tau0, sample_rate)
    # One strike's response, long enough to fall 60 dB (6.9 tau), at most the clip.
    length = min(int(6.9 * taus.max() * sample_rate) + 1, n_samples)
    t = np.arange(length) / sample_rate
    phases = rng.uniform(0, 2 * np.pi, len(freqs))
    ring = (amps[:, None] * np.exp(-t[None, :] / taus[:, None])
            * np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(axis=0)
    n_click = int(0.004 * sample_rate)
    click = filtered_noise(rng, n_click, "highpass", 1000.0, 2) * decay(n_click, 0.001) * 0.3 * amps.sum()
    ring[:n_click] += click
    n_events = int(rng.integers(1, 6))
    duration = n_samples / sample_rate
    slot = (duration - 0.02) / n_events
    onsets = sorted(float(0.02 + i * slot + rng.uniform(0, 0.5) * slot) for i in range(n_events))
    gains = rng.uniform(0.4, 1.0, n_events)
    audio = np.zeros(n_samples)
    for onset, gain in zip(onsets, gains):
        add_at(audio, int(onset * sample_rate), gain * ring)
    audio += rng.standard_normal(n_samples) * 1e-4 * np.abs(ring).max()
    params = {"shape": shape, "material": material, "f0": f0, "tau0": tau0, "strike_position": strike,
              "mode_freqs": freqs, "mode_amps": amps, "mode_taus": taus, "gains": gains}
    lengths = [min(6.9 * float(taus.max()), duration - o) for o in onsets]
    return finish(audio, params, onsets, lengths, (freqs.min(), freqs.max()), sample_rate)
