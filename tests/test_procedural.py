"""The procedural generators: labels agree with what is measured on the waveform, every class renders, seeds
reproduce, bad arguments are refused with a clear message."""
import json

import numpy as np
import pytest

from stylesynth import procedural
from stylesynth.procedural import environment, example_sets, gaver, measure, modal, water
from stylesynth.spectrogram import ENV, HITS, SAMPLE_RATE


# --- the measurement tools themselves --------------------------------------------------------------------------

def test_onset_detector_finds_known_clicks():
    rng = np.random.default_rng(0)
    x = 1e-4 * rng.standard_normal(HITS.n_samples)
    times = [0.1, 0.55, 0.65, 1.3]              # 100 ms apart still counts as two
    for t in times:
        i = int(t * SAMPLE_RATE)
        x[i:i + 160] += rng.standard_normal(160) * np.exp(-np.arange(160) / 40)
    found = measure.detect_onsets(x)
    assert len(found) == len(times)
    assert np.allclose(found, times, atol=0.011)


def test_detectors_on_silence():
    silence = np.zeros(HITS.n_samples)
    assert measure.detect_onsets(silence) == []
    assert measure.spectral_centroid(silence) == 0.0


# --- Gaver example sets: labels match measurements -------------------------------------------------------------

@pytest.mark.parametrize("rate", example_sets.RATES)
def test_rate_label_equals_detected_onsets(rate):
    for audio, label in example_sets.example_set(f"rate/{rate}", 6, seed=11):
        assert label["n_events"] == rate == len(label["onsets"])
        detected = measure.detect_onsets(audio)
        assert len(detected) == rate, (detected, label["onsets"])
        # ...and at the labelled times (within two envelope frames).
        assert np.allclose(detected, label["onsets"], atol=0.012)


def test_tinny_is_brighter_than_muffled():
    tinny = [measure.spectral_centroid(a) for a, _ in example_sets.example_set("brightness/tinny", 8, seed=2)]
    muffled = [measure.spectral_centroid(a) for a, _ in example_sets.example_set("brightness/muffled", 8, seed=2)]
    assert min(tinny) > max(muffled)
    assert np.mean(tinny) > 3 * np.mean(muffled)


def test_brightness_bands_follow_the_research_ranges():
    for _, label in example_sets.example_set("brightness/tinny", 5, seed=4):
        assert 7500 <= label["attack_hf"] <= 7900 and 7500 <= label["trail_hf"] <= 7900
    for _, label in example_sets.example_set("brightness/muffled", 5, seed=4):
        assert 500 <= label["attack_hf"] <= 1750 and 500 <= label["trail_hf"] <= 1750


def test_scratches_last_longer_than_hits():
    def mean_measured_length(name):
        return np.mean([np.mean(measure.event_lengths(a)) for a, _ in example_sets.example_set(name, 10, seed=5)])

    hits, scratches = mean_measured_length("impact/hits"), mean_measured_length("impact/scratches")
    assert scratches > 2 * hits, (hits, scratches)
    for _, label in example_sets.example_set("impact/hits", 5, seed=5):
        assert all(0.05 <= t <= 0.4 for t in label["event_lengths"])
    for _, label in example_sets.example_set("impact/scratches", 5, seed=5):
        assert all(0.15 <= t <= 1.2 for t in label["event_lengths"])


def test_example_sets_are_reproducible_and_growable():
    a = example_sets.example_set("impact/hits", 3, seed=9)
    b = example_sets.example_set("impact/hits", 5, seed=9)
    for (xa, la), (xb, lb) in zip(a, b):
        assert np.array_equal(xa, xb) and la == lb
    assert not np.array_equal(a[0][0], example_sets.example_set("impact/hits", 1, seed=10)[0][0])


def test_unknown_example_set_is_refused():
    with pytest.raises(ValueError, match="unknown example set 'rate/4'.*rate/5"):
        example_sets.example_set("rate/4", 2)


# --- soft-prior query reference --------------------------------------------------------------------------------

QUERY = dict(impulse_width=0.1, density="medium", burst=False, band_lf=300.0, band_hf=3000.0, filter_order=4,
             fade_in=0.0, fade_out=0.8, fade_exponent=2.0, seed=0)


def test_query_reference_density_and_band():
    for density, count in example_sets.DENSITIES.items():
        audio, label = example_sets.query_reference(**{**QUERY, "density": density})
        assert audio.shape == (HITS.n_samples,) and audio.dtype == np.float32
        assert label["class"] == "Query" and label["n_events"] == count
        assert len(measure.detect_onsets(audio)) == count
        json.dumps(label)
    low, _ = example_sets.query_reference(**{**QUERY, "band_lf": 100.0, "band_hf": 600.0})
    high, _ = example_sets.query_reference(**{**QUERY, "band_lf": 4000.0, "band_hf": 7800.0})
    assert measure.spectral_centroid(high) > 3 * measure.spectral_centroid(low)


def test_query_burst_bunches_events():
    _, even = example_sets.query_reference(**{**QUERY, "density": "very high"})
    _, burst = example_sets.query_reference(**{**QUERY, "density": "very high", "burst": True})
    assert np.ptp(burst["onsets"]) < 0.5 * np.ptp(even["onsets"])


@pytest.mark.parametrize("change, message", [
    ({"density": "dense"}, "density must be one of"),
    ({"impulse_width": 0.0}, "impulse_width"),
    ({"band_lf": 3000.0, "band_hf": 300.0}, "band"),
    ({"band_hf": 9000.0}, "band"),
    ({"filter_order": 9}, "filter_order"),
    ({"filter_order": 2.5}, "filter_order"),
    ({"fade_out": 1.5}, "fade_out"),
    ({"fade_in": 0.5, "fade_out": 0.8}, "fade_in \\+ fade_out"),
    ({"fade_exponent": 0.0}, "fade_exponent"),
    ({"burst": "yes"}, "burst"),
])
def test_query_reference_refuses_out_of_range(change, message):
    with pytest.raises(ValueError, match=message):
        example_sets.query_reference(**{**QUERY, **change})


def test_gaver_params_validation_names_the_parameter():
    params = gaver.sample_params(np.random.default_rng(0), "hit")
    params.trail_lf, params.trail_hf = 2000.0, 1000.0
    with pytest.raises(ValueError, match="trail band"):
        gaver.render(params, np.random.default_rng(0))
    params = gaver.sample_params(np.random.default_rng(0), "hit")
    params.lengths = params.lengths[:-1] + [-0.1]
    with pytest.raises(ValueError, match="lengths"):
        gaver.render(params, np.random.default_rng(0))


def test_gaver_attack_and_trail_gains_and_damping():
    """One event, no floor: the attack (gain 20) is louder than the trail (gain 10), and the trail decays."""
    params = gaver.GaverParams(onsets=[0.1], lengths=[0.4], gains=[1.0], attack_lf=500, attack_hf=4000,
                               trail_lf=500, trail_hf=4000, damping_exponent=3.0, damping_fraction=1.0,
                               noise_floor_db=-200.0)
    audio = gaver.render(params, np.random.default_rng(1), normalise=False)
    sr = SAMPLE_RATE
    attack = audio[int(0.101 * sr):int(0.118 * sr)]            # inside the 20 ms attack
    trail_start = audio[int(0.125 * sr):int(0.16 * sr)]
    trail_end = audio[int(0.4 * sr):int(0.49 * sr)]
    rms = lambda x: np.sqrt(np.mean(np.asarray(x, float) ** 2))
    assert 1.3 < rms(attack) / rms(trail_start) < 3.0           # about 20/10, less the trail's early fade
    assert rms(trail_end) < 0.1 * rms(trail_start)
    silent = 1e-6 * np.abs(audio).max()                        # only the -200 dB floor outside the event
    assert np.abs(audio[: int(0.099 * sr)]).max() < silent and np.abs(audio[int(0.501 * sr):]).max() < silent


# --- every class --------------------------------------------------------------------------------------------------

def _check_clip(audio, label, n_samples, name):
    assert audio.shape == (n_samples,) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio))
    assert np.sqrt(np.mean(audio.astype(float) ** 2)) > 1e-3, "silent"
    assert np.abs(audio).max() <= 1.0
    assert label["class"] == name
    for key in ("onsets", "n_events", "event_lengths", "band", "centroid_hz", "rms_db"):
        assert key in label, key
    json.loads(json.dumps(label))


@pytest.mark.parametrize("name", list(environment.CLASSES))
def test_every_env_class_renders(name):
    for seed in range(3):
        audio, label = procedural.render_class(name, np.random.default_rng([seed, 1]), ENV.n_samples)
        _check_clip(audio, label, ENV.n_samples, name)


@pytest.mark.parametrize("name", ["Hits", "Scratches", "Modal", "Water"])
def test_every_hits_class_renders(name):
    for seed in range(3):
        audio, label = procedural.render_class(name, np.random.default_rng([seed, 2]), HITS.n_samples)
        _check_clip(audio, label, HITS.n_samples, name)


def test_class_names_and_mixes():
    assert list(environment.CLASSES) == ["Rain", "WaterStream", "Wind", "MovingMotorVehicle", "Footstep",
                                         "Keyboard", "Gunshot", "DogBark", "SneezeCough"]
    for model, mix in procedural.MIXES.items():
        assert abs(sum(mix.values()) - 1.0) < 1e-4 and set(mix) <= set(procedural.CLASSES)
    assert procedural.MIXES["hits"] == {"Hits": 0.4, "Scratches": 0.4, "Modal": 0.1, "Water": 0.1}


def test_make_clip_follows_the_mix_and_the_seed():
    counts = {}
    for i in range(300):
        _, label = procedural.make_clip("hits", np.random.default_rng([7, i]))
        counts[label["class"]] = counts.get(label["class"], 0) + 1
    assert 90 <= counts["Hits"] <= 150 and 90 <= counts["Scratches"] <= 150
    assert 12 <= counts["Modal"] <= 50 and 12 <= counts["Water"] <= 50
    a, la = procedural.make_clip("env", np.random.default_rng([3, 4]))
    b, lb = procedural.make_clip("env", np.random.default_rng([3, 4]))
    c, _ = procedural.make_clip("env", np.random.default_rng([3, 5]))
    assert np.array_equal(a, b) and la == lb and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="model must be one of"):
        procedural.make_clip("speech", np.random.default_rng(0))


def test_modal_rings_at_its_labelled_modes():
    for seed in range(4):
        audio, label = modal.make(np.random.default_rng(seed))
        spectrum = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
        peak = freqs[np.argmax(spectrum)]
        assert min(abs(peak - f) / f for f in label["mode_freqs"]) < 0.02, (peak, label["mode_freqs"])


def test_water_pitch_rises_with_fill_level():
    for seed in range(4):
        audio, label = water.make(np.random.default_rng(seed))
        assert label["f_end"] > label["f_start"]
        n = len(audio) // 3
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        band = (freqs > 150) & (freqs < 6000)

        def dominant(x):
            return freqs[band][np.argmax(np.abs(np.fft.rfft(x))[band])]

        assert dominant(audio[-n:]) > dominant(audio[:n]), seed
