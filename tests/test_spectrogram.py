"""The representation (stylesynth.spectrogram): exact inversion, numpy and torch paths agree, ranges, edge cases."""
import numpy as np
import pytest

from stylesynth.spectrogram import (ENV, HITS, Representation, analysis_window, db_to_unit, decode, decode_torch,
                                    dual_window, encode, encode_torch, istft, magnitude_to_db, stft, unit_to_db)

REPS = [pytest.param(HITS, id="hop128"), pytest.param(ENV, id="hop256")]


def _signal(rep, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(rep.n_samples) / rep.sample_rate
    x = 0.3 * np.sin(2 * np.pi * (150 * t + 900 * t ** 2)) + 0.05 * rng.standard_normal(rep.n_samples)
    x[rep.n_samples // 3] += 0.8
    return x


@pytest.mark.parametrize("rep", REPS)
def test_round_trip_below_minus_100_db(rep):
    x = _signal(rep)
    c = stft(x, rep)
    assert c.shape == (rep.rows + 1, rep.frames)
    y = istft(c, rep)
    err_db = 20 * np.log10(np.linalg.norm(y - x) / np.linalg.norm(x))
    assert err_db < -100, err_db


@pytest.mark.parametrize("rep", REPS)
def test_window_and_lattice(rep):
    g, half = analysis_window(rep)
    assert len(g) == 2 * half + 1 and g[half] == 1.0
    assert g[0] >= 1e-4 and np.exp(-np.pi * (half + 1) ** 2 / rep.gamma) < 1e-4   # truncated at 1e-4
    assert rep.gamma == rep.hop * rep.channels
    assert rep.n_samples == rep.hop * rep.frames
    # the dual window reconstructs: sum_n g(l - na) * dual(l - na) summed over the lattice is 1/M per sample
    assert np.isfinite(dual_window(rep)).all()


@pytest.mark.parametrize("rep", REPS)
def test_numpy_and_torch_encode_agree(rep):
    torch = pytest.importorskip("torch")
    xs = np.stack([_signal(rep, seed) for seed in range(3)])
    a = np.stack([encode(x, rep) for x in xs])
    b = encode_torch(torch.from_numpy(xs), rep).numpy()
    assert a.dtype == b.dtype == np.float32
    assert a.shape == b.shape == (3, rep.rows, rep.frames)
    np.testing.assert_allclose(a, b, atol=2e-6, rtol=0)


@pytest.mark.parametrize("rep", REPS)
def test_numpy_and_torch_decode_agree(rep):
    torch = pytest.importorskip("torch")
    spec = encode(_signal(rep), rep)
    a = decode(spec, rep)
    b = decode_torch(torch.from_numpy(spec[None]), rep).numpy()[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=0)


@pytest.mark.parametrize("rep", REPS)
def test_encode_range_shape_and_peak(rep):
    spec = encode(_signal(rep), rep)
    assert spec.shape == (rep.rows, rep.frames) and spec.dtype == np.float32
    assert spec.min() >= -1.0 and spec.max() <= 1.0
    assert spec.max() == pytest.approx(1.0)          # normalised to the clip's peak
    tone = np.sin(2 * np.pi * 1000 * np.arange(rep.n_samples) / rep.sample_rate)
    assert encode(tone, rep).min() == -1.0           # far from the tone the -50 dB floor is reached


@pytest.mark.parametrize("rep", REPS)
def test_silent_input_gives_floor_not_nan(rep):
    zeros = np.zeros(rep.n_samples)
    spec = encode(zeros, rep)
    assert np.isfinite(spec).all()
    assert np.all(spec == -1.0)
    assert np.all(magnitude_to_db(np.zeros((4, 4)), rep) == rep.db_floor)
    torch = pytest.importorskip("torch")
    spec_t = encode_torch(torch.zeros(2, rep.n_samples, dtype=torch.float64), rep).numpy()
    assert np.isfinite(spec_t).all() and np.all(spec_t == -1.0)


@pytest.mark.parametrize("rep", REPS)
def test_short_and_long_input_are_fitted(rep):
    x = _signal(rep)
    assert encode(x[: rep.n_samples // 3], rep).shape == (rep.rows, rep.frames)
    np.testing.assert_array_equal(encode(np.concatenate([x, x]), rep), encode(x, rep))


@pytest.mark.parametrize("rep", REPS)
def test_decode_appends_nyquist_row_at_floor(rep):
    spec = encode(_signal(rep), rep)
    mag = decode(spec, rep)
    assert mag.shape == (rep.rows + 1, rep.frames)
    np.testing.assert_allclose(mag[-1], 10 ** (rep.db_floor / 10), rtol=1e-12)
    assert mag.max() == pytest.approx(1.0)
    # decode inverts encode's scaling on the kept rows (up to float32 rounding of the image)
    ref = np.abs(stft(_signal(rep), rep))[: rep.rows]
    ref_db = np.maximum(10 * np.log10(ref / ref.max()), rep.db_floor)
    np.testing.assert_allclose(10 * np.log10(mag[: rep.rows]), ref_db, atol=1e-4)


def test_unit_db_mapping_and_clipping():
    db = np.array([-50.0, -25.0, 0.0])
    np.testing.assert_allclose(db_to_unit(db), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(unit_to_db(np.array([-3.0, 0.0, 2.0])), [-50.0, -25.0, 0.0])


def test_representation_json_round_trip():
    for rep in (HITS, ENV):
        assert Representation.from_json(rep.to_json()) == rep
    assert HITS.seconds == pytest.approx(2.048) and ENV.seconds == pytest.approx(4.096)
