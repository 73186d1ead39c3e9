"""Procedural environmental sounds for the 4.096 s model: nine classes, each a short plausible recipe.

Each ``make_<class>(rng, n_samples)`` returns ``(audio float32, label)``. The recipes are deliberately simple
(filtered noise, envelopes, harmonic sources with formant-ish filters) - enough for a model to learn distinct,
controllable textures, not field recordings:

* Rain: a Poisson rain of short drop clicks (band-passed) over a broadband hiss bed.
* WaterStream: continuous turbulent noise swelling slowly, with a dense scatter of little rising bubble tones.
* Wind: low-passed noise in slow gusts plus a narrow "whistle" band whose centre drifts.
* MovingMotorVehicle: engine firing harmonics and tyre noise passing by: Doppler pitch sweep and a 1/r level swell.
* Footstep: heel-toe pairs of low thumps with a brighter surface crunch, at a walking pace.
* Keyboard: key presses and releases, clicks of band-passed noise plus a small plastic resonance, in bursts.
* Gunshot: a broadband crack and a long low reverberant tail, 1-3 shots.
* DogBark: harmonic barks (rise-fall pitch) through three formant resonances, plus breath noise.
* SneezeCough: coughs (formant-shaped noise bursts) or a sneeze (voiced inhale, then a bright "choo").
"""
from __future__ import annotations

import numpy as np
from scipy.signal import sosfilt

from stylesynth.procedural.common import (add_at, decay, filtered_noise, finish, log_uniform, smooth_random, sos)
from stylesynth.spectrogram import ENV, SAMPLE_RATE

SR = SAMPLE_RATE


def _regular_onsets(rng: np.random.Generator, n: int, interval: float, duration: float, jitter: float = 0.1,
                    start: float | None = None) -> list[float]:
    """``n`` onsets ``interval`` apart with relative ``jitter``, starting somewhere sensible, all inside the clip."""
    start = float(rng.uniform(0.05, max(0.06, duration - n * interval))) if start is None else start
    times = [start + i * interval * (1.0 + rng.uniform(-jitter, jitter)) for i in range(n)]
    return [float(t) for t in times if t < duration - 0.05]


def _harmonic(f0_curve: np.ndarray, n_harmonics: int, rolloff: float, rng: np.random.Generator) -> np.ndarray:
    """A sum of harmonics following an instantaneous-frequency curve (Hz per sample); harmonics above 7.8 kHz
    are left out per sample (no aliasing), amplitude ``1 / k ** rolloff``."""
    phase = 2 * np.pi * np.cumsum(f0_curve) / SR
    out = np.zeros(len(f0_curve))
    for k in range(1, n_harmonics + 1):
        below = (k * f0_curve) < 7800.0
        if not below.any():
            break
        out += below * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k ** rolloff
    return out


def _formants(x: np.ndarray, centres, widths, gains) -> np.ndarray:
    """Parallel band-pass resonances: a crude vocal tract."""
    return sum(g * sosfilt(sos("bandpass", (c - w / 2, c + w / 2), 2), x) for c, w, g in zip(centres, widths, gains))


# ---------------------------------------------------------------------------------------------------------------
# Textures
# ---------------------------------------------------------------------------------------------------------------

def make_rain(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Rain: Poisson drops (clicks of band-passed noise, 2-12 ms) over a hiss bed."""
    duration = n_samples / SR
    rate = log_uniform(rng, 40.0, 600.0)                   # drops per second: drizzle to downpour
    drop_band = (log_uniform(rng, 500.0, 2500.0), log_uniform(rng, 4000.0, 7800.0))
    bed_level = float(rng.uniform(0.1, 0.5))
    bed_cut = log_uniform(rng, 1500.0, 7000.0)
    n_drops = int(rng.poisson(rate * duration))
    impulses = np.zeros(n_samples)
    where = rng.integers(0, n_samples, n_drops)
    np.add.at(impulses, where, rng.lognormal(0.0, 0.7, n_drops))
    drop_tau = float(rng.uniform(0.002, 0.012))
    # Each drop gates fresh band-passed noise: convolving the impulses with one fixed noise kernel instead would
    # give every drop the same spectrum and stripe the spectrogram.
    n_kernel = int(6 * drop_tau * SR)
    gates = np.convolve(impulses, decay(n_kernel, drop_tau))[:n_samples]
    drops = gates * filtered_noise(rng, n_samples, "bandpass", drop_band, 2)
    drops /= np.std(drops) + 1e-12
    bed = filtered_noise(rng, n_samples, "lowpass", bed_cut, 2)
    bed /= np.std(bed) + 1e-12
    audio = drops + bed_level * bed * (1.0 + 0.2 * smooth_random(rng, n_samples, 1.0))
    onsets = np.sort(where) / SR
    params = {"rate_hz": rate, "drop_band": drop_band, "drop_tau": drop_tau, "bed_level": bed_level,
              "bed_cutoff": bed_cut}
    # Too many drops to list every one: the label keeps the first 64 onsets (n_events counts them all).
    audio, label = finish(audio, params, onsets[:64], [6 * drop_tau] * min(64, n_drops), (drop_band[0], 8000.0))
    label["n_events"] = n_drops
    return audio, label


def make_water_stream(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Water stream: turbulent band noise swelling slowly plus many short rising bubble tones."""
    duration = n_samples / SR
    band = (log_uniform(rng, 150.0, 600.0), log_uniform(rng, 2000.0, 6000.0))
    flow = filtered_noise(rng, n_samples, "bandpass", band, 2)
    flow /= np.std(flow) + 1e-12
    swell_rate = log_uniform(rng, 0.5, 4.0)
    flow *= 1.0 + 0.5 * smooth_random(rng, n_samples, swell_rate)
    bubble_rate = log_uniform(rng, 20.0, 120.0)
    n_bubbles = int(rng.poisson(bubble_rate * duration))
    f_lo, f_hi = log_uniform(rng, 300.0, 900.0), log_uniform(rng, 1200.0, 3500.0)
    bubbles = np.zeros(n_samples)
    onsets = np.sort(rng.uniform(0.0, duration, n_bubbles))
    lengths = []
    for onset in onsets:
        tau = rng.uniform(0.004, 0.02)
        n = int(5 * tau * SR)
        t = np.arange(n) / SR
        f = log_uniform(rng, f_lo, f_hi) * (1.0 + 8.0 * t)     # bubbles glide up as they rise
        add_at(bubbles, int(onset * SR), rng.uniform(0.3, 1.0) * np.exp(-t / tau) * np.sin(2 * np.pi * np.cumsum(f) / SR))
        lengths.append(n / SR)
    bubble_level = float(rng.uniform(0.3, 1.5))
    audio = flow + bubble_level * bubbles / (np.std(bubbles) + 1e-12) * 0.3
    params = {"band": band, "swell_rate_hz": swell_rate, "bubble_rate_hz": bubble_rate,
              "bubble_range": (f_lo, f_hi), "bubble_level": bubble_level}
    audio, label = finish(audio, params, onsets[:64], lengths[:64], (band[0], max(band[1], f_hi)))
    label["n_events"] = n_bubbles
    return audio, label


def make_wind(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Wind: gusting low-passed noise and a drifting narrow whistle band."""
    cutoff = log_uniform(rng, 200.0, 1500.0)
    body = filtered_noise(rng, n_samples, "lowpass", cutoff, 2)
    body /= np.std(body) + 1e-12
    gust_rate = log_uniform(rng, 0.2, 1.5)
    gusts = np.clip(0.6 + 0.5 * smooth_random(rng, n_samples, gust_rate), 0.05, None)
    # Whistle: narrow noise (a ~20-60 Hz wide low-pass) shifted up to a wandering centre frequency.
    centre = log_uniform(rng, 300.0, 2000.0)
    drift = centre * (1.0 + 0.3 * smooth_random(rng, n_samples, gust_rate))
    width = log_uniform(rng, 20.0, 80.0)
    narrow = filtered_noise(rng, n_samples, "lowpass", width, 2)
    whistle = narrow / (np.std(narrow) + 1e-12) * np.cos(2 * np.pi * np.cumsum(drift) / SR)
    whistle_level = float(rng.uniform(0.0, 0.5))
    audio = gusts * (body + whistle_level * whistle * gusts)
    params = {"cutoff": cutoff, "gust_rate_hz": gust_rate, "whistle_centre": centre, "whistle_width": width,
              "whistle_level": whistle_level}
    return finish(audio, params, [], [], (20.0, max(cutoff, centre * 1.3)))


def make_moving_motor_vehicle(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """A vehicle passing by: engine firing harmonics and tyre noise, Doppler-shifted and swelling as it passes."""
    duration = n_samples / SR
    t = np.arange(n_samples) / SR
    speed = float(rng.uniform(8.0, 30.0))                  # m/s
    distance = float(rng.uniform(3.0, 12.0))               # closest approach, m
    t_pass = float(rng.uniform(0.25, 0.75) * duration)
    x = speed * (t - t_pass)
    r = np.sqrt(distance ** 2 + x ** 2)
    radial = speed * x / r                                   # > 0 moving away
    doppler = 343.0 / (343.0 + radial)
    firing = log_uniform(rng, 40.0, 150.0)                  # engine firing frequency (1200-4500 rpm, 4 cyl.), Hz
    rpm_drift = 1.0 + 0.05 * smooth_random(rng, n_samples, 0.5)
    f0 = firing * rpm_drift * doppler
    engine = _harmonic(f0, 40, float(rng.uniform(0.6, 1.2)), rng)
    engine = _formants(engine, [log_uniform(rng, 150, 400), log_uniform(rng, 600, 1500)], [200, 800], [1.0, 0.5])
    engine /= np.std(engine) + 1e-12
    tyre_cut = log_uniform(rng, 800.0, 3000.0)
    tyre = filtered_noise(rng, n_samples, "lowpass", tyre_cut, 2)
    tyre /= np.std(tyre) + 1e-12
    tyre_level = float(rng.uniform(0.1, 0.5))
    level = (distance / r) ** 1.0
    audio = level * (engine + tyre_level * tyre) + 0.01 * rng.standard_normal(n_samples)
    params = {"speed_mps": speed, "distance_m": distance, "pass_time": t_pass, "firing_hz": firing,
              "tyre_cutoff": tyre_cut, "tyre_level": tyre_level,
              "doppler_ratio": float(doppler.max() / doppler.min())}
    return finish(audio, params, [t_pass], [duration], (firing * 0.9, min(40 * firing, 7800.0)))


# ---------------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------------

def make_footstep(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Footsteps: heel then toe (20-60 ms later) at a walking pace; a low thump plus a surface crunch."""
    duration = n_samples / SR
    pace = float(rng.uniform(0.4, 0.75))                    # s between steps
    n = int(rng.integers(3, int(duration / pace) + 1))
    onsets = _regular_onsets(rng, n, pace, duration, jitter=0.08)
    thump_cut = log_uniform(rng, 150.0, 500.0)
    crunch_band = (log_uniform(rng, 800.0, 2500.0), log_uniform(rng, 3000.0, 7800.0))
    crunch_level = float(rng.uniform(0.1, 1.0))
    tau = float(rng.uniform(0.015, 0.06))
    toe_delay = float(rng.uniform(0.02, 0.06))
    n_step = int(6 * tau * SR)
    thump = sos("lowpass", thump_cut, 2)
    crunch = sos("bandpass", crunch_band, 2)
    audio = np.zeros(n_samples)
    for onset in onsets:
        gain = rng.uniform(0.6, 1.0)
        for delay, part in ((0.0, 1.0), (toe_delay, 0.6)):
            env = decay(n_step, tau)
            sound = 3.0 * sosfilt(thump, rng.standard_normal(n_step)) + crunch_level * sosfilt(
                crunch, rng.standard_normal(n_step)) * decay(n_step, tau * 1.5)
            add_at(audio, int((onset + delay) * SR), gain * part * env * sound)
    audio += 1e-3 * rng.standard_normal(n_samples)
    params = {"pace_s": pace, "thump_cutoff": thump_cut, "crunch_band": crunch_band, "crunch_level": crunch_level,
              "tau": tau, "toe_delay": toe_delay}
    return finish(audio, params, onsets, [toe_delay + 6 * tau] * len(onsets), (30.0, crunch_band[1]))


def make_keyboard(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Typing: bursts of key presses, each a click plus a release click 60-140 ms later."""
    duration = n_samples / SR
    rate = float(rng.uniform(4.0, 10.0))                    # keys per second while typing
    onsets = []
    t = float(rng.uniform(0.0, 0.3))
    while t < duration - 0.15:
        onsets.append(t)
        t += rng.exponential(1.0 / rate) + 0.04
        if rng.random() < 0.08:                             # pause between words
            t += rng.uniform(0.2, 0.6)
    band = (log_uniform(rng, 800.0, 2500.0), log_uniform(rng, 4000.0, 7800.0))
    click_filter = sos("bandpass", band, 2)
    resonance = log_uniform(rng, 1500.0, 4500.0)
    tau = float(rng.uniform(0.004, 0.012))
    n_click = int(6 * tau * SR)
    tt = np.arange(n_click) / SR
    audio = np.zeros(n_samples)
    lengths = []
    for onset in onsets:
        release = rng.uniform(0.06, 0.14)
        for delay, part in ((0.0, 1.0), (release, 0.5)):
            click = sosfilt(click_filter, rng.standard_normal(n_click)) + 0.5 * np.sin(
                2 * np.pi * resonance * rng.uniform(0.9, 1.1) * tt)
            add_at(audio, int((onset + delay) * SR), rng.uniform(0.5, 1.0) * part * decay(n_click, tau) * click)
        lengths.append(release + 6 * tau)
    audio += 1e-3 * rng.standard_normal(n_samples)
    params = {"rate_hz": rate, "click_band": band, "resonance_hz": resonance, "tau": tau}
    return finish(audio, params, onsets, lengths, band)


def make_gunshot(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Gunshots: a broadband crack (a few ms) and a long low reverberant tail; 1-3 shots."""
    duration = n_samples / SR
    n = int(rng.integers(1, 4))
    onsets = sorted(float(x) for x in rng.uniform(0.05, duration * 0.7, n))
    tail_tau = log_uniform(rng, 0.15, 0.8)
    tail_cut = log_uniform(rng, 400.0, 2500.0)
    crack_ms = float(rng.uniform(1.0, 5.0))
    n_tail = min(int(6.9 * tail_tau * SR), n_samples)
    audio = np.zeros(n_samples)
    for onset in onsets:
        n_crack = int(crack_ms * 1e-3 * SR)
        crack = rng.standard_normal(n_crack) * decay(n_crack, crack_ms * 1e-3 / 3) * 8.0
        tail = sosfilt(sos("lowpass", tail_cut, 2), rng.standard_normal(n_tail)) * decay(n_tail, tail_tau)
        shot = np.concatenate([crack, np.zeros(max(n_tail - n_crack, 0))])[:n_tail] + 2.0 * tail
        add_at(audio, int(onset * SR), rng.uniform(0.7, 1.0) * shot)
    audio += 1e-4 * rng.standard_normal(n_samples)
    params = {"tail_tau": tail_tau, "tail_cutoff": tail_cut, "crack_ms": crack_ms}
    return finish(audio, params, onsets, [6.9 * tail_tau] * n, (20.0, 8000.0))


def make_dog_bark(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Dog barks: a harmonic source with a rise-then-fall pitch, three formant resonances, breath noise."""
    duration = n_samples / SR
    n = int(rng.integers(1, 6))
    spacing = float(rng.uniform(0.3, 0.8))
    onsets = _regular_onsets(rng, n, spacing, duration, jitter=0.25)
    f0 = log_uniform(rng, 250.0, 900.0)                     # small dogs bark high
    bark_len = float(rng.uniform(0.1, 0.3))
    formants = [log_uniform(rng, 500, 1000), log_uniform(rng, 1200, 2000), log_uniform(rng, 2500, 3800)]
    breath = float(rng.uniform(0.1, 0.5))
    audio = np.zeros(n_samples)
    lengths = []
    for onset in onsets:
        length = bark_len * rng.uniform(0.8, 1.2)
        m = int(length * SR)
        x = np.linspace(0.0, 1.0, m)
        contour = f0 * rng.uniform(0.9, 1.1) * (1.0 + 0.4 * np.sin(np.pi * x) - 0.2 * x)
        source = _harmonic(contour, 25, 0.8, rng) + breath * rng.standard_normal(m)
        env = np.minimum(x / 0.08, 1.0) * (1.0 - x) ** 1.5
        bark = _formants(source, formants, [200, 300, 500], [1.0, 0.6, 0.3]) * env
        add_at(audio, int(onset * SR), rng.uniform(0.7, 1.0) * bark / (np.abs(bark).max() + 1e-12))
        lengths.append(length)
    audio += 1e-3 * rng.standard_normal(n_samples)
    params = {"f0": f0, "bark_length": bark_len, "spacing_s": spacing, "formants": formants, "breath": breath}
    return finish(audio, params, onsets, lengths, (f0 * 0.9, min(formants[2] * 1.3, 8000.0)))


def make_sneeze_cough(rng: np.random.Generator, n_samples: int = ENV.n_samples) -> tuple[np.ndarray, dict]:
    """Coughs (1-4 formant-shaped noise bursts, a voiced edge) or one sneeze (a voiced inhale, then a bright
    "choo")."""
    duration = n_samples / SR
    kind = "sneeze" if rng.random() < 0.35 else "cough"
    formants = [log_uniform(rng, 400, 900), log_uniform(rng, 1000, 2200), log_uniform(rng, 2400, 3600)]
    audio = np.zeros(n_samples)
    onsets, lengths = [], []
    f0 = log_uniform(rng, 100.0, 300.0)
    if kind == "cough":
        n = int(rng.integers(1, 5))
        onsets = _regular_onsets(rng, n, float(rng.uniform(0.3, 0.6)), duration, jitter=0.2)
        for onset in onsets:
            length = float(rng.uniform(0.2, 0.45))
            m = int(length * SR)
            x = np.linspace(0.0, 1.0, m)
            source = rng.standard_normal(m) + 0.5 * _harmonic(np.full(m, f0), 20, 1.0, rng)
            env = np.minimum(x / 0.03, 1.0) * np.exp(-x * rng.uniform(3.0, 6.0))
            add_at(audio, int(onset * SR), rng.uniform(0.7, 1.0) * env * _formants(
                source, formants, [300, 500, 700], [1.0, 0.7, 0.4]))
            lengths.append(length)
    else:
        start = float(rng.uniform(0.1, duration - 1.8))
        inhale = float(rng.uniform(0.4, 0.9))
        m = int(inhale * SR)
        x = np.linspace(0.0, 1.0, m)
        voice = _harmonic(f0 * (1.0 + 0.5 * x), 20, 1.0, rng) + 0.5 * rng.standard_normal(m)
        add_at(audio, int(start * SR), 0.25 * x ** 2 * _formants(voice, formants, [200, 300, 400], [1, .6, .3]))
        burst = float(rng.uniform(0.25, 0.5))
        mb = int(burst * SR)
        xb = np.linspace(0.0, 1.0, mb)
        choo = filtered_noise(rng, mb, "bandpass", (log_uniform(rng, 1500, 3000), 7500.0), 2)
        choo = choo / (np.std(choo) + 1e-12) * np.minimum(xb / 0.02, 1.0) * np.exp(-xb * 4.0)
        add_at(audio, int((start + inhale) * SR), choo)
        onsets, lengths = [start, start + inhale], [inhale, burst]
    audio += 1e-3 * rng.standard_normal(n_samples)
    params = {"kind": kind, "f0": f0, "formants": formants}
    return finish(audio, params, onsets, lengths, (f0 * 0.9, 8000.0 if kind == "sneeze" else formants[2] * 1.3))


#: The environmental classes, by the names the soft-prior prototypes use.
CLASSES = {
    "Rain": make_rain,
    "WaterStream": make_water_stream,
    "Wind": make_wind,
    "MovingMotorVehicle": make_moving_motor_vehicle,
    "Footstep": make_footstep,
    "Keyboard": make_keyboard,
    "Gunshot": make_gunshot,
    "DogBark": make_dog_bark,
    "SneezeCough": make_sneeze_cough,
}
