"""Loudness normalisation (stylesynth.loudness): target within 0.5 LU, nothing above the true-peak ceiling,
silence -> silence, unmeasurable input unchanged, NaN/inf -> a clear ValueError."""
import numpy as np
import pytest
from scipy.signal import resample_poly

from stylesynth import loudness

SR = 16000


def _signals():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    noise = 0.05 * rng.standard_normal(2 * SR)
    tone = 0.01 * np.sin(2 * np.pi * 997 * t)
    hits = np.zeros(2 * SR)
    for start in (1000, 9000, 20000):
        hits[start: start + 1600] += rng.standard_normal(1600) * np.exp(-np.arange(1600) / 300)
    loud = np.clip(3.0 * rng.standard_normal(2 * SR), -4, 4)        # far above full scale
    high = 0.3 * np.sin(2 * np.pi * 7000 * t + 0.4)                  # inter-sample peaks near Nyquist
    return {"noise": noise, "tone": tone, "hits": hits, "loud": loud, "high": high}


@pytest.mark.parametrize("name", ["noise", "tone", "hits", "loud", "high"])
def test_target_or_ceiling(name):
    x = _signals()[name]
    y = loudness.normalize(x, SR, target_lufs=-14.0, max_true_peak_db=-1.0)
    assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
    ceiling = 10 ** (-1.0 / 20)
    # no sample, and no 16x-oversampled inter-sample point, above the ceiling
    assert np.max(np.abs(y)) <= ceiling + 1e-6
    assert np.max(np.abs(resample_poly(y.astype(np.float64), 16, 1))) <= ceiling * 10 ** (0.1 / 20)
    lufs = loudness.integrated_loudness(y, SR)
    if loudness.true_peak_db(y) < -1.0 - 1e-3:
        assert lufs == pytest.approx(-14.0, abs=0.5)                 # the target was reachable: reached
    else:
        assert lufs < -14.0 + 0.5                                    # the ceiling decided: quieter, never louder


@pytest.mark.parametrize("target", [-30.0, -23.0, -14.0])
def test_targets_within_half_lu(target):
    y = loudness.normalize(_signals()["noise"], SR, target_lufs=target, max_true_peak_db=0.0)
    assert loudness.integrated_loudness(y, SR) == pytest.approx(target, abs=0.5)


def test_peaky_clip_is_limited_by_the_ceiling():
    y = loudness.normalize(_signals()["hits"], SR)
    assert loudness.true_peak_db(y) == pytest.approx(-1.0, abs=0.01)
    assert loudness.integrated_loudness(y, SR) < -14.0


def test_true_peak_sees_inter_sample_peaks():
    # a sine at fs/4 sampled at 45 degrees: samples reach 0.707, the waveform 1.0
    x = np.sin(2 * np.pi * 0.25 * np.arange(4000) + np.pi / 4)
    assert np.max(np.abs(x)) == pytest.approx(np.sqrt(0.5), abs=1e-9)
    assert loudness.true_peak(x) == pytest.approx(1.0, abs=0.02)


def test_silence_gives_silence():
    for n in (0, 100, 2 * SR):
        y = loudness.normalize(np.zeros(n), SR)
        assert y.shape == (n,) and np.all(y == 0) and y.dtype == np.float32


def test_too_short_to_measure_is_unchanged_unless_it_would_clip():
    x = 0.1 * np.sin(np.linspace(0, 50, 2000))                      # 125 ms < one 400 ms gating block
    y = loudness.normalize(x, SR)
    np.testing.assert_allclose(y, x, rtol=1e-6)
    assert np.isnan(loudness.integrated_loudness(x, SR))
    loud = 5.0 * np.sin(np.linspace(0, 50, 2000))
    assert loudness.true_peak_db(loudness.normalize(loud, SR)) == pytest.approx(-1.0, abs=0.01)


def test_below_the_absolute_gate_is_unchanged():
    x = 1e-6 * np.random.default_rng(1).standard_normal(2 * SR)      # about -120 LUFS: gated out
    assert loudness.integrated_loudness(x, SR) == -np.inf
    np.testing.assert_allclose(loudness.normalize(x, SR), x, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad):
    x = _signals()["noise"].copy()
    x[[5, 50, 500]] = bad
    with pytest.raises(ValueError, match="3 NaN or infinite samples"):
        loudness.normalize(x, SR)


def test_never_nan():
    rng = np.random.default_rng(2)
    for scale in (1e-12, 1e-3, 1.0, 1e6):
        y = loudness.normalize(scale * rng.standard_normal(SR), SR)
        assert np.isfinite(y).all()


def test_rejects_multichannel():
    with pytest.raises(ValueError, match="mono"):
        loudness.normalize(np.zeros((2, SR)), SR)


def _clips():
    rng = np.random.default_rng(4)
    t = np.arange(32768) / 16000
    hits = np.zeros(32768)
    for start in rng.integers(0, 30000, 5):
        hits[start:start + 1500] += rng.normal(size=1500) * np.exp(-np.arange(1500) / 200)
    quiet_then_loud = np.concatenate([1e-4 * rng.normal(size=20000), rng.normal(size=12768)])
    return {"noise": rng.normal(size=32768) * 0.1, "tone": 0.3 * np.sin(2 * np.pi * 440 * t), "hits": hits,
            "gated": quiet_then_loud, "long": rng.normal(size=16000 * 5) * 0.05, "odd": rng.normal(size=7001),
            # the env model's 4.096 s clip: its last gating block reaches past the end
            "env clip": rng.normal(size=65536) * 0.1}


@pytest.mark.parametrize("name", list(_clips()))
def test_fast_loudness_equals_pyloudnorm(name):
    """The vectorised meter gives pyloudnorm's own figure (its filters, blocks and gates), and the normalised clip
    equals the straightforward float64 recipe (pyloudnorm gain, then the 4x FFT true-peak ceiling)."""
    import pyloudnorm
    import scipy.fft

    x = _clips()[name]
    reference = pyloudnorm.Meter(16000).integrated_loudness(x)
    assert loudness.integrated_loudness(x, 16000) == pytest.approx(reference, abs=1e-9)
    y = x * 10 ** ((-14.0 - reference) / 20)
    n = scipy.fft.next_fast_len(y.size + 64, real=True)
    peak = max(np.abs(scipy.fft.irfft(scipy.fft.rfft(y, n=n), n=4 * n) * 4).max(), np.abs(y).max())
    ceiling = 10 ** (-1.0 / 20)
    expected = y * (ceiling / peak) if peak > ceiling else y
    np.testing.assert_allclose(loudness.normalize(x, 16000), expected, rtol=1e-5, atol=1e-7)


def _reference_true_peak(x: np.ndarray) -> float:
    """The 4x true peak the straightforward way: one inverse FFT four times the zero-padded length."""
    import scipy.fft

    n = scipy.fft.next_fast_len(x.size + 64, real=True)
    up = scipy.fft.irfft(scipy.fft.rfft(np.asarray(x, dtype=np.float64), n=n), n=4 * n) * 4
    return float(max(np.abs(up).max(), np.abs(x).max()))


@pytest.mark.parametrize("name", ["noise", "tone", "hits", "loud", "high", "nyquist", "odd", "env clip"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_true_peak_by_phases_equals_the_long_transform(name, dtype):
    """The three in-between phases (length-n transforms) and the samples' own give the 4x-long transform's peak:
    to 1e-4 relative here (float32), where the stated tolerance is 0.05 dB (0.6 %). The near-Nyquist tone cut off
    at full scale is where the zero padding and the Nyquist bin matter most."""
    rng = np.random.default_rng(3)
    clips = dict(_signals())
    clips["nyquist"] = 0.9 * np.sin(np.pi * 0.99995 * np.arange(32768))
    clips["odd"] = rng.normal(size=7001)
    clips["env clip"] = 0.1 * rng.normal(size=65536)
    x = clips[name].astype(dtype)
    assert loudness.true_peak(x) == pytest.approx(_reference_true_peak(x), rel=1e-4)


@pytest.mark.parametrize("name", ["noise", "hits", "gated", "env clip"])
def test_float32_clips_measure_as_their_float64_copy(name):
    """The server's clips are float32 and are measured without a float64 copy: same loudness to 1e-9 LU and the
    same normalised samples as the float64 copy."""
    x = _clips()[name].astype(np.float32)
    assert loudness.integrated_loudness(x, 16000) == pytest.approx(
        loudness.integrated_loudness(x.astype(np.float64), 16000), abs=1e-9)
    np.testing.assert_array_equal(loudness.normalize(x, 16000), loudness.normalize(x.astype(np.float64), 16000))
