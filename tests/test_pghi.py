"""PGHI (stylesynth.pghi) and the spectrogram -> audio step (stylesynth.waveform): quality floors on synthetic
signals, determinism, anchoring, the fast transforms matching the representation, edge cases.

The floors are the spectral convergence measured when they were written (seed 0) plus a 1.5-2 dB margin; they test
quality, not time (time is benchmarks/pghi.py's job).
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from stylesynth import pghi as P
from stylesynth import waveform as W
from stylesynth.spectrogram import ENV, HITS, decode, encode, istft, stft

REPS = [pytest.param(HITS, id="hop128"), pytest.param(ENV, id="hop256")]


def make(name, rep, seed=0):
    """chirp: 100 Hz-7 kHz sweep; clicks: 16 impulses with random amplitude/sign, 5 close pairs; noise: white;
    impacts: 5 band-passed noise bursts with exponential decays over a faint floor."""
    rng = np.random.default_rng(seed)
    n, sr = rep.n_samples, rep.sample_rate
    t = np.arange(n) / sr
    if name == "chirp":
        return 0.5 * np.sin(2 * np.pi * (100 * t + (7000 - 100) / (2 * t[-1]) * t ** 2))
    if name == "clicks":
        x = np.zeros(n)
        pos = rng.choice(np.arange(600, n - 600), 16, replace=False)
        x[pos] = rng.uniform(0.2, 1.0, 16) * rng.choice([-1.0, 1.0], 16)
        x[pos[:5] + rng.integers(20, 200, 5)] += rng.uniform(0.2, 1.0, 5)
        return x
    if name == "noise":
        return 0.1 * rng.standard_normal(n)
    if name == "impacts":
        x = 1e-3 * rng.standard_normal(n)
        for onset in np.sort(rng.uniform(0.02, 0.9, 5)) * n:
            lf = float(np.exp(rng.uniform(np.log(80), np.log(3000))))
            hf = min(lf * float(np.exp(rng.uniform(np.log(1.5), np.log(12)))), 7800.0)
            length = int(rng.uniform(0.05, 0.4) * sr)
            burst = sosfilt(butter(4, [lf, hf], btype="band", fs=sr, output="sos"), rng.standard_normal(length))
            burst *= np.exp(-np.arange(length) / (length / 5))
            start = int(onset)
            stop = min(n, start + length)
            x[start:stop] += burst[: stop - start]
        return x
    raise ValueError(name)


# measured (seed 0): hop 128 r0 chirp -50.1 clicks -24.6 noise -14.2 impacts -15.2; r10 -61.0 -30.5 -20.2 -22.8
#                    hop 256 r0 chirp -45.7 clicks -24.9 noise -12.2 impacts -13.4; r10 -58.3 -30.9 -22.1 -23.2
FLOORS = {
    (128, 0): {"chirp": -48.0, "clicks": -23.0, "noise": -13.0, "impacts": -13.5},
    (128, 10): {"chirp": -58.0, "clicks": -28.5, "noise": -18.5, "impacts": -21.0},
    (256, 0): {"chirp": -44.0, "clicks": -23.0, "noise": -11.0, "impacts": -12.0},
    (256, 10): {"chirp": -56.0, "clicks": -29.0, "noise": -20.0, "impacts": -21.5},
}


@pytest.fixture(scope="module", autouse=True)
def _jit():
    P.warmup()


# ---------------------------------------------------------------------------------------------------------------
# Quality
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rep", REPS)
@pytest.mark.parametrize("name", ["chirp", "clicks", "noise", "impacts"])
@pytest.mark.parametrize("refine", [0, 10])
def test_quality_floor(rep, name, refine):
    x = make(name, rep)
    mag = np.abs(stft(x, rep))
    coef = P.pghi(mag, rep, refine=refine)
    sc = P.spectral_convergence(mag, coef, rep)
    floor = FLOORS[(rep.hop, refine)][name]
    assert sc < floor, f"{name} hop {rep.hop} refine {refine}: spectral convergence {sc:.2f} dB, floor {floor} dB"


@pytest.mark.parametrize("rep", REPS)
def test_refinement_improves_noisy_signals(rep):
    mag = np.abs(stft(make("noise", rep), rep))
    sc0 = P.spectral_convergence(mag, P.pghi(mag, rep), rep)
    sc3 = P.spectral_convergence(mag, P.pghi(mag, rep, refine=3), rep)
    assert sc3 < sc0 - 2.0


@pytest.mark.parametrize("rep", REPS)
def test_single_click_is_reconstructed_up_to_sign(rep):
    # one impulse: the log-magnitude is a paraboloid, the gradients are exact, and the DC/Nyquist fix decides the
    # only remaining ambiguity (a global sign) between two equally valid answers
    x = np.zeros(rep.n_samples)
    x[rep.n_samples // 2 + 37] = -0.7
    mag = np.abs(stft(x, rep))
    y = P.fast_istft(P.pghi(mag, rep), rep)
    corr = abs(np.dot(x, y)) / (np.linalg.norm(x) * np.linalg.norm(y))
    assert corr > 0.9999
    assert P.spectral_convergence(mag, y, rep) < -60


@pytest.mark.parametrize("rep", REPS)
def test_dc_and_nyquist_come_out_real(rep):
    # after the region fix the magnitude-weighted DC/Nyquist phase sum points along the real axis
    x = make("clicks", rep)
    mag = np.abs(stft(x, rep))
    coef = P.pghi(mag, rep)
    edges = np.concatenate([coef[0], coef[-1]])
    weights = np.abs(edges) ** 2
    resultant = np.sum(weights * np.exp(2j * np.angle(edges)))
    assert abs(np.angle(resultant)) < 1e-3


# ---------------------------------------------------------------------------------------------------------------
# Determinism, anchoring, batches
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rep", REPS)
def test_deterministic(rep):
    mag = np.abs(stft(make("impacts", rep), rep))
    a = P.pghi(mag, rep, seed=3)
    b = P.pghi(mag.copy(), rep, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(P.pghi(mag, rep, refine=2), P.pghi(mag, rep, refine=2))
    spec = encode(make("chirp", rep), rep)
    np.testing.assert_array_equal(W.spectrogram_to_audio(spec, rep), W.spectrogram_to_audio(spec, rep))


def test_seed_only_changes_sub_tolerance_phases():
    rep = HITS
    mag = np.abs(stft(make("chirp", rep), rep))
    a, b = P.pghi_phase(mag, rep, seed=0), P.pghi_phase(mag, rep, seed=1)
    significant = mag > P.DEFAULT_TOL * mag.max()
    np.testing.assert_array_equal(a[significant], b[significant])
    assert np.mean(a[~significant] != b[~significant]) > 0.99


def test_known_phase_is_kept_and_continued():
    rep = HITS
    x = make("chirp", rep)
    c = stft(x, rep)
    mag, true_phase = np.abs(c), np.angle(c)
    known = np.full(mag.shape, np.nan)
    known[:, 100:116] = true_phase[:, 100:116]
    phase = P.pghi_phase(mag, rep, known_phase=known)
    np.testing.assert_allclose(np.angle(np.exp(1j * (phase[:, 100:116] - true_phase[:, 100:116]))), 0, atol=1e-6)
    # integrated from the true phase, the neighbouring frames follow it (not an arbitrary rotation)
    strong = mag[:, 116:130] > 1e-2 * mag.max()
    err = np.angle(np.exp(1j * (phase[:, 116:130] - true_phase[:, 116:130])))[strong]
    assert np.median(np.abs(err)) < 0.05
    with pytest.raises(ValueError, match="shape"):
        P.pghi(mag, rep, known_phase=known[:, :10])


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_matches_single(workers):
    rep = HITS
    mags = np.stack([np.abs(stft(make(n, rep), rep)) for n in ("chirp", "noise", "impacts")])
    batch = P.pghi_batch(mags, rep, seed=5, workers=workers)
    for b in range(3):
        np.testing.assert_array_equal(batch[b], P.pghi(mags[b], rep, seed=5 + b))
    refined = P.pghi_batch(mags, rep, refine=2, seed=5)
    np.testing.assert_allclose(refined[1], P.pghi(mags[1], rep, refine=2, seed=6), rtol=1e-9, atol=1e-12)


def test_threads_do_not_share_work_arrays():
    """The work arrays are per thread: two threads turning different clips of the same shape into audio at the same
    time (the render thread and a batch worker) get what each gets alone, and the arrays live on for the next clip of
    the thread that made them."""
    import threading

    rep = HITS
    mags = [np.abs(P.fast_stft(make(n, rep, seed=3), rep)) for n in ("chirp", "noise")]
    alone = [W.magnitude_to_audio(m, rep) for m in mags]
    got = [[], []]

    def run(k):
        for _ in range(20):
            got[k].append(W.magnitude_to_audio(mags[k], rep))

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (0, 1):
        for y in got[k]:
            np.testing.assert_array_equal(y, alone[k])
    assert P._workspace(rep.frames, rep.rows + 1) is P._workspace(rep.frames, rep.rows + 1)


def test_magnitude_layout_and_dtype_do_not_change_the_phase():
    """A decoded spectrogram is bin-major, a transform's magnitude frame-major (transposed or only converted inside);
    float32 and float64 magnitudes go through the same float32 kernel; a negative sign is taken as the magnitude."""
    rep = HITS
    mag = np.abs(stft(make("impacts", rep), rep))
    assert mag.flags.f_contiguous and not mag.flags.c_contiguous
    ref = P.pghi_phase(mag, rep, seed=2)
    for other in (np.ascontiguousarray(mag), np.asfortranarray(mag.astype(np.float32)), -mag, mag[:, ::1].copy()):
        np.testing.assert_array_equal(P.pghi_phase(other, rep, seed=2), ref)


def test_keep_freed_memory_sets_glibc_malloc():
    """warmup() keeps freed blocks for reuse (glibc); elsewhere it reports that nothing was changed."""
    import platform

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert P.keep_freed_memory() is expected


# ---------------------------------------------------------------------------------------------------------------
# Fast transforms = the representation
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rep", REPS)
def test_fast_transforms_match_representation(rep):
    x = make("impacts", rep, seed=1) + make("chirp", rep)
    c = stft(x, rep)
    np.testing.assert_allclose(P.fast_stft(x, rep), c, rtol=0, atol=1e-10 * np.abs(c).max())
    y_ref = istft(c, rep)
    y = P.fast_istft(c, rep)
    assert 20 * np.log10(np.linalg.norm(y - y_ref) / np.linalg.norm(y_ref)) < -120
    y32 = P.fast_istft(c.astype(np.complex64), rep)
    assert y32.dtype == np.float32
    assert 20 * np.log10(np.linalg.norm(y32 - y_ref) / np.linalg.norm(y_ref)) < -100
    # batched
    xb = np.stack([x, 0.5 * x])
    np.testing.assert_allclose(P.fast_stft(xb, rep)[1], 0.5 * c, atol=1e-10 * np.abs(c).max())
    assert P.fast_istft(P.fast_stft(xb, rep), rep).shape == (2, rep.n_samples)


@pytest.mark.parametrize("rep", REPS)
def test_spectral_convergence_of_exact_coefficients(rep):
    x = make("noise", rep)
    c = stft(x, rep)
    assert P.spectral_convergence(np.abs(c), c, rep) < -100
    assert P.spectral_convergence(np.abs(c), x, rep) < -200
    assert P.spectral_convergence(np.abs(c), np.zeros(rep.n_samples), rep) == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------------------------------------------

def test_silent_magnitude_gives_silence_not_nan():
    rep = HITS
    coef = P.pghi(np.zeros((257, 256)), rep)
    assert np.all(coef == 0)
    audio = W.magnitude_to_audio(np.zeros((257, 256)), rep)
    assert np.all(audio == 0)
    spec = -np.ones((256, 256), dtype=np.float32)          # the floor everywhere
    out = W.spectrogram_to_audio(spec, rep)
    assert np.isfinite(out).all()


def test_bad_input_raises_clear_errors():
    rep = HITS
    bad = np.ones((257, 256))
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        P.pghi(bad, rep)
    for value, dtype, order in ((np.inf, np.float32, "C"), (-np.inf, np.float64, "F"), (np.nan, np.float32, "F")):
        bad = np.asarray(np.ones((257, 256)), dtype=dtype, order=order)
        bad[7, 9] = value
        bad[200, 3] = value
        with pytest.raises(ValueError, match="2 NaN/inf"):      # counted on the raw bits, either dtype and layout
            P.pghi(bad, rep)
    with pytest.raises(ValueError, match="shape"):
        P.pghi(np.ones((256, 256)), rep)
    spec = np.zeros((256, 256), dtype=np.float32)
    spec[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        W.spectrogram_to_audio(spec, rep)
    with pytest.raises(ValueError, match="frames"):
        W.spectrogram_to_audio(np.zeros((256, 100), dtype=np.float32), rep)


# ---------------------------------------------------------------------------------------------------------------
# waveform: the spectrogram -> audio step
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rep", REPS)
def test_spectrogram_to_audio(rep):
    from stylesynth import loudness

    x = make("impacts", rep) + 0.2 * make("chirp", rep)
    spec = encode(x, rep)
    audio = W.spectrogram_to_audio(spec, rep)
    assert audio.dtype == np.float32 and audio.shape == (rep.n_samples,)
    assert np.isfinite(audio).all()
    assert loudness.true_peak_db(audio) <= -1.0 + 1e-6
    raw = W.spectrogram_to_audio(spec, rep, lufs=None)
    # the decoded magnitude (peak 1) is what PGHI reconstructs
    mag = decode(spec, rep)
    assert P.spectral_convergence(mag, raw.astype(np.float64), rep) < -14
    # generator overshoot is clipped, not propagated
    assert np.isfinite(W.spectrogram_to_audio(spec * 3, rep)).all()


def test_spectrogram_to_audio_reaches_lufs_when_the_peak_allows():
    from stylesynth import loudness

    rep = HITS
    spec = encode(make("noise", rep), rep)                  # low crest factor: -14 LUFS fits under -1 dBTP
    audio = W.spectrogram_to_audio(spec, rep, lufs=-20.0)
    assert loudness.integrated_loudness(audio, rep.sample_rate) == pytest.approx(-20.0, abs=0.5)


def test_spectrogram_batch_matches_single():
    rep = HITS
    specs = np.stack([encode(make(n, rep), rep) for n in ("chirp", "clicks")])
    out = W.spectrogram_to_audio_batch(specs, rep, seed=2)
    assert out.shape == (2, rep.n_samples) and out.dtype == np.float32
    for b in range(2):       # equal up to the batched FFT's rounding
        np.testing.assert_allclose(out[b], W.spectrogram_to_audio(specs[b], rep, seed=2 + b), rtol=0, atol=1e-6)


def test_decode_batches_like_single_clips():
    rep = HITS
    spec = encode(make("impacts", rep), rep)
    db = np.maximum((np.clip(spec, -1, 1) - 1.0) * 25.0, -50.0)            # the definition, in float64
    np.testing.assert_allclose(decode(spec, rep)[:256], 10.0 ** (db / 10.0), rtol=1e-5)
    np.testing.assert_allclose(decode(spec[None], rep)[0], decode(spec, rep), rtol=1e-12)


def test_floor_tolerance_tracks_the_peak():
    rep = HITS
    mag = decode(np.full((256, 256), -1.0, dtype=np.float32), rep)
    mag[0, 0] = 10 ** (-20 / 10)                           # the image never reaches +1: peak -20 dB
    tol = W.floor_tolerance(mag, rep)
    floor = 10 ** (rep.db_floor / 10)
    assert floor / mag.max() < tol < 1.01 * floor / mag.max()


def test_magnitude_to_audio_detects_a_decoded_floor():
    rep = HITS
    spec = encode(make("chirp", rep), rep) - 0.1           # a generator image peaking at -2.5 dB
    mag = decode(spec, rep)
    assert W._auto_tolerance(mag, rep) == pytest.approx(W.floor_tolerance(mag, rep))
    assert W._auto_tolerance(np.abs(stft(make("chirp", rep), rep)), rep) == P.DEFAULT_TOL
    # floor coefficients get a random phase instead of being integrated: same quality
    auto = W.magnitude_to_audio(mag, rep)
    forced = W.magnitude_to_audio(mag, rep, tol=P.DEFAULT_TOL)
    sc_auto = P.spectral_convergence(mag, auto.astype(np.float64), rep)
    sc_forced = P.spectral_convergence(mag, forced.astype(np.float64), rep)
    assert sc_auto < sc_forced + 0.3


def test_benchmark_script_smoke(tmp_path):
    """benchmarks/pghi.py runs end to end (without tifresi, one hop, one repeat) and writes finite figures."""
    import json
    import math
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "pghi.py"
    out = tmp_path / "pghi.json"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--no-tifresi", "--hops", "128", "--repeats", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    doc = json.loads(out.read_text())
    assert doc["tifresi"]["status"] == "skipped (--no-tifresi)"
    for key, methods in doc["results"].items():
        assert set(methods) >= {"ours", "ours_refine10", "librosa_gl32", "librosa_gl100"}, key
        for name, r in methods.items():
            assert math.isfinite(r["sc_db"]) and r["ms"] > 0, (key, name, r)
        assert methods["ours_refine10"]["sc_db"] < methods["ours"]["sc_db"]
    assert "goals:" in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# Bit-exact outputs: speed work must not change a single output bit
# ---------------------------------------------------------------------------------------------------------------

BITS_FILE = Path(__file__).parent / "data" / "pghi_bits.json"


def _bit_exact_outputs():
    """name -> array for the paths whose bits are pinned: the audio path (magnitude_to_audio) on every signal and
    hop, complex128 coefficients, the phase alone, anchored, batched on threads, float32 frame-major input, the
    decoded-spectrogram path and a silent clip; twice in a row where buffers could carry state between calls."""
    out = {}
    for rep in (HITS, ENV):
        hop = rep.hop
        for name in ("chirp", "clicks", "noise", "impacts"):
            mag = np.abs(P.fast_stft(make(name, rep, seed=1), rep))
            out[f"audio/{name}@{hop}"] = W.magnitude_to_audio(mag, rep)
            out[f"audio-again/{name}@{hop}"] = W.magnitude_to_audio(mag, rep)
        mag = np.abs(P.fast_stft(make("impacts", rep, seed=2), rep))
        out[f"coef128/{hop}"] = P.pghi(mag, rep)
        out[f"istft64/{hop}"] = P.fast_istft(out[f"coef128/{hop}"], rep)
        out[f"phase/{hop}"] = P.pghi_phase(mag, rep, tol=1e-4, seed=3)
        known = np.full(mag.shape, np.nan)
        known[:, :6] = P.pghi_phase(mag, rep)[:, :6] + 0.5
        out[f"anchored/{hop}"] = P.pghi(mag, rep, known_phase=known, dtype=np.complex64)
        mags = np.stack([np.abs(P.fast_stft(make(s, rep, seed=4), rep)) for s in ("chirp", "noise", "clicks")])
        out[f"batch/{hop}"] = W.magnitude_to_audio_batch(mags, rep, workers=2)
        x32 = make("clicks", rep, seed=5).astype(np.float32)
        out[f"float32-in/{hop}"] = W.magnitude_to_audio(np.abs(P.fast_stft(x32, rep)), rep)
        spec = encode(make("chirp", rep, seed=6), rep) - 0.1               # peaks below +1: floor tolerance
        out[f"decoded/{hop}"] = W.spectrogram_to_audio(spec, rep, lufs=None, seed=7)
        out[f"silent/{hop}"] = W.magnitude_to_audio(np.zeros((rep.rows + 1, rep.frames)), rep)
        out[f"refine/{hop}"] = W.magnitude_to_audio(mag, rep, refine=2)
    return out


def _digest(a):
    a = np.ascontiguousarray(a)
    return f"{a.dtype.str}{a.shape}:" + hashlib.sha256(a.tobytes()).hexdigest()


def _host_cpu():
    """The CPU numba compiles for: vector width and FMA decide the last bits of the fast-math kernels."""
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name()


def write_bit_reference():
    """Record the digests (``python tests/test_pghi.py --write-bits``), from the implementation before a change."""
    P.warmup()
    doc = {"cpu": _host_cpu(), "digests": {k: _digest(v) for k, v in _bit_exact_outputs().items()},
           "sums": {k: [float(np.sum(np.abs(v), dtype=np.float64)), float(np.sum(np.abs(v) ** 2, dtype=np.float64))]
                    for k, v in _bit_exact_outputs().items()}}
    BITS_FILE.parent.mkdir(exist_ok=True)
    BITS_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def test_outputs_are_bit_identical_to_the_recorded_ones():
    """Every pinned output has the bytes recorded before the speed work (tests/data/pghi_bits.json). On another CPU
    than the recording one, fast-math kernels may round the last bits differently: there the outputs' sums must
    agree to 1e-5 instead."""
    doc = json.loads(BITS_FILE.read_text())
    got = _bit_exact_outputs()
    assert sorted(got) == sorted(doc["digests"])
    if doc["cpu"] == _host_cpu():
        changed = [k for k, v in got.items() if _digest(v) != doc["digests"][k]]
        assert not changed, f"outputs changed bits: {changed}"
    else:
        for k, v in got.items():
            s1, s2 = doc["sums"][k]
            assert np.sum(np.abs(v), dtype=np.float64) == pytest.approx(s1, rel=1e-5, abs=1e-9), k
            assert np.sum(np.abs(v) ** 2, dtype=np.float64) == pytest.approx(s2, rel=1e-5, abs=1e-12), k


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write-bits"]:
        write_bit_reference()
        print(f"wrote {BITS_FILE}")
