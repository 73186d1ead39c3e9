"""``stylesynth reconstruct``: good files round-trip, bad files give one clear line and a non-zero exit (or a
defined, reported result), never a traceback; tiles join without dips."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import hilbert

from stylesynth.spectrogram import ENV, HITS

SR = 16000
SERVER = str(Path(__file__).resolve().parents[1] / "server")


def run_cli(*args, timeout=180):
    env = dict(os.environ)
    env["PYTHONPATH"] = SERVER + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run([sys.executable, "-m", "stylesynth", "reconstruct", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def _mix(seconds, sr=SR, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (220 * t + 150 * t ** 2)) + 0.02 * rng.standard_normal(len(t))
    for onset in np.arange(0.3, seconds - 0.2, 0.9):
        i = int(onset * sr)
        x[i: i + 600] += 0.4 * rng.standard_normal(600) * np.exp(-np.arange(600) / 120)
    return x


@pytest.fixture(scope="module")
def good_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "mix.wav"
    sf.write(path, _mix(5.0), SR, subtype="FLOAT")
    return path


def test_round_trip_with_png(good_wav, tmp_path):
    out, png = tmp_path / "sub" / "out.wav", tmp_path / "fig.png"
    proc = run_cli(good_wav, "-o", out, "--png", png)
    assert proc.returncode == 0, proc.stderr
    assert "spectral convergence" in proc.stdout and "end to end" in proc.stdout
    y, sr = sf.read(out)
    assert sr == SR and len(y) == 5 * SR and sf.info(out).subtype == "PCM_16"
    assert np.max(np.abs(y)) > 0.1
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hop_256_and_refine(good_wav, tmp_path):
    proc = run_cli(good_wav, "-o", tmp_path / "o.wav", "--hop", "256", "--refine", "3")
    assert proc.returncode == 0, proc.stderr
    assert "hop 256" in proc.stdout and "3 fast Griffin-Lim" in proc.stdout


def test_missing_file(tmp_path):
    proc = run_cli(tmp_path / "missing.wav", "-o", tmp_path / "o.wav")
    assert proc.returncode != 0
    assert "no such file" in proc.stderr and "missing.wav" in proc.stderr
    assert not (tmp_path / "o.wav").exists()


def test_not_audio(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("hello, I am text\n" * 40)
    proc = run_cli(path, "-o", tmp_path / "o.wav")
    assert proc.returncode != 0 and "not an audio file" in proc.stderr


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    proc = run_cli(path, "-o", tmp_path / "o.wav")
    assert proc.returncode != 0 and "empty" in proc.stderr


def test_wav_without_samples(tmp_path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0), SR)
    proc = run_cli(path, "-o", tmp_path / "o.wav")
    assert proc.returncode != 0 and "no audio" in proc.stderr


def test_nan_samples(tmp_path):
    x = _mix(1.0).astype(np.float32)
    x[100:105] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    proc = run_cli(path, "-o", tmp_path / "o.wav")
    assert proc.returncode != 0 and "5 of 16000 samples are not finite" in proc.stderr


def test_stereo_is_mixed_with_a_note(tmp_path):
    x = _mix(1.5)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1), SR)
    proc = run_cli(path, "-o", tmp_path / "o.wav")
    assert proc.returncode == 0, proc.stderr
    assert "2 channels mixed to mono" in proc.stdout
    assert sf.info(tmp_path / "o.wav").channels == 1


def test_44k1_is_resampled_with_a_note(tmp_path):
    sr = 44100
    t = np.arange(int(1.2 * sr)) / sr
    path = tmp_path / "cd.wav"
    sf.write(path, 0.4 * np.sin(2 * np.pi * 1000 * t), sr)
    proc = run_cli(path, "-o", tmp_path / "o.wav")
    assert proc.returncode == 0, proc.stderr
    assert "resampled 44100 Hz -> 16000 Hz" in proc.stdout
    y, out_sr = sf.read(tmp_path / "o.wav")
    assert out_sr == SR and abs(len(y) - int(1.2 * SR)) <= 1


def test_silent_input(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR), SR)
    proc = run_cli(path, "-o", tmp_path / "o.wav")
    assert proc.returncode == 0, proc.stderr
    assert "silent" in proc.stdout
    assert np.all(sf.read(tmp_path / "o.wav")[0] == 0)


def test_bad_options(good_wav, tmp_path):
    proc = run_cli(good_wav, "-o", tmp_path / "o.wav", "--hop", "100")
    assert proc.returncode != 0 and "invalid choice" in proc.stderr
    proc = run_cli(good_wav, "-o", tmp_path / "o.wav", "--refine", "-2")
    assert proc.returncode != 0 and "--refine" in proc.stderr


def test_unwritable_output(good_wav, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli(good_wav, "-o", blocker / "o.wav")           # a file where a folder should be
    assert proc.returncode != 0 and "cannot write" in proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# The tiling, in process
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rep", [pytest.param(HITS, id="hop128"), pytest.param(ENV, id="hop256")])
def test_tiles_join_without_dips(rep):
    from stylesynth.commands.reconstruct import reconstruct

    t = np.arange(int(9.5 * SR)) / SR
    x = 0.5 * np.sin(2 * np.pi * (300 * t + 40 * t ** 2))
    result = reconstruct(x, rep)
    assert result.tiles >= 3 and len(result.audio) == len(x)
    # the envelope, in 50 ms blocks away from the file's ends, stays within 0.5 dB of the input's: tiles that
    # were phased independently would partly cancel inside each crossfade (dips of up to 10 dB)
    env_out, env_in = np.abs(hilbert(result.audio)), np.abs(hilbert(x))
    blocks = len(x) // 800
    ratio = (env_out[: blocks * 800].reshape(blocks, 800).mean(1) /
             env_in[: blocks * 800].reshape(blocks, 800).mean(1))[2:-2]
    assert np.all(np.abs(20 * np.log10(ratio)) < 0.5), 20 * np.log10(ratio.min())
    assert result.end_to_end_sc_db < -35


def test_reconstruct_lengths_and_silence():
    from stylesynth.commands.reconstruct import reconstruct

    for n in (1, 500, HITS.n_samples, HITS.n_samples + 1):
        out = reconstruct(np.full(n, 0.1), HITS)
        assert len(out.audio) == n and np.isfinite(out.audio).all()
    silent = reconstruct(np.zeros(3000), HITS)
    assert np.all(silent.audio == 0) and np.isnan(silent.pghi_sc_db)
