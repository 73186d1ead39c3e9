"""Water filling a vessel: decaying drip/bubble tones whose pitch rises as the vessel fills, over a pouring hiss.

Each drip is a bubble's ring, a damped sinusoid that also glides up in pitch as the bubble rises (Minnaert
resonance). The pitch of drip ``i`` follows the fill level: the air column above the water shortens, so its
resonance rises from ``f_start`` to ``f_end`` (geometrically over the clip). A band-passed noise hiss, louder as
the stream thickens, sits under the drips.
"""
from __future__ import annotations

import numpy as np

from stylesynth.procedural.common import add_at, filtered_noise, finish, log_uniform, smooth_random
from stylesynth.spectrogram import HITS, SAMPLE_RATE


def make(rng: np.random.Generator, n_samples: int = HITS.n_samples, sample_rate: int = SAMPLE_RATE
         ) -> tuple[np.ndarray, dict]:
    """Draw and render a water-filling clip: ``(audio float32, label)``.

    The label's ``drip_freqs`` rise with time (fill level); ``onsets`` lists every drip.
    """
    duration = n_samples / sample_rate
    rate = log_uniform(rng, 4.0, 30.0)                     # drips per second
    f_start = log_uniform(rng, 250.0, 900.0)
    f_end = f_start * log_uniform(rng, 1.5, 4.0)           # pitch rises with the fill level
    f_end = min(f_end, 6000.0)
    glide = log_uniform(rng, 0.2, 1.5)                     # each bubble's own upward glide, octaves per 100 ms
    gaps = rng.exponential(1.0 / rate, int(rate * duration * 2) + 4)
    onsets = np.cumsum(gaps)
    onsets = onsets[onsets < duration - 0.01]
    if len(onsets) == 0:
        onsets = np.array([rng.uniform(0.0, duration / 2)])
    fill = onsets / duration
    base = f_start * (f_end / f_start) ** fill
    freqs = base * np.exp(rng.normal(0.0, 0.08, len(onsets)))   # small scatter around the fill pitch
    taus = rng.uniform(0.006, 0.03, len(onsets))
    amps = rng.uniform(0.3, 1.0, len(onsets))
    audio = np.zeros(n_samples)
    lengths = []
    for onset, f, tau, a in zip(onsets, freqs, taus, amps):
        n = int(6.9 * tau * sample_rate)
        t = np.arange(n) / sample_rate
        inst = f * 2.0 ** (glide * t / 0.1)                  # Hz, gliding up
        phase = 2 * np.pi * np.cumsum(inst) / sample_rate
        add_at(audio, int(onset * sample_rate), a * np.exp(-t / tau) * np.sin(phase))
        lengths.append(n / sample_rate)
    hiss_level = float(rng.uniform(0.02, 0.15))
    hiss_band = (log_uniform(rng, 800.0, 2500.0), log_uniform(rng, 4000.0, 7800.0))
    hiss = filtered_noise(rng, n_samples, "bandpass", hiss_band, 2)
    swell = 1.0 + 0.4 * smooth_random(rng, n_samples, 3.0, sample_rate)
    audio += hiss_level * hiss / (np.std(hiss) + 1e-12) * swell * 0.3
    params = {"rate_hz": rate, "f_start": f_start, "f_end": f_end, "glide_oct_per_100ms": glide,
              "drip_freqs": freqs, "drip_taus": taus, "drip_amps": amps, "hiss_level": hiss_level,
              "hiss_band": hiss_band}
    return finish(audio, params, onsets, lengths, (min(freqs.min(), hiss_band[0]), max(freqs.max() * 1.5,
                                                                                     hiss_band[1])), sample_rate)
