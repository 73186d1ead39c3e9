"""``stylesynth render`` as a user runs it: a shipped model and a seed give a wav (and the picture of that wav);
a bad model name, a NaN, an unknown control give one clear line and exit 2; out-of-range values are clamped with a
note."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

SERVER = str(Path(__file__).resolve().parents[1] / "server")


def render(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=SERVER + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "stylesynth", "render", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.mark.parametrize("model, seconds", [("hits", 2.048), ("env", 4.096)])
def test_a_seed_renders_a_wav_and_its_picture(tmp_path, model, seconds):
    out, png = tmp_path / "clip.wav", tmp_path / "clip.png"
    proc = render("--model", model, "--seed", 7, "--set", "brightness=2", "-o", out, "--png", png)
    assert proc.returncode == 0, proc.stderr
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) == round(seconds * sr)
    assert np.isfinite(audio).all() and np.sqrt(np.mean(audio ** 2)) > 0.01 and np.abs(audio).max() <= 1.0
    assert Image.open(png).size[0] >= 400
    again = tmp_path / "again.wav"
    assert render("--model", model, "--seed", 7, "--set", "brightness=2", "-o", again).returncode == 0
    assert np.array_equal(sf.read(again)[0], audio)                # same state, same samples


@pytest.mark.parametrize("args, message", [
    (["--model", "nosuch"], "no model 'nosuch' (available: env, hits)"),
    (["--set", "brightness=nan"], "brightness refuses nan"),
    (["--set", "bogus=1"], "unknown control 'bogus'"),
    (["--seed", "seven"], "invalid int value: 'seven'"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    out = tmp_path / "x.wav"
    proc = render(*args, "-o", out)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not out.exists()


def test_out_of_range_is_clamped_with_a_note(tmp_path):
    proc = render("--seed", -3, "--set", "brightness=9", "-o", tmp_path / "x.wav")
    assert proc.returncode == 0
    assert "seed -3 is below the minimum 0: clamped to 0" in proc.stdout
    assert "brightness" in proc.stdout and "clamped to 5" in proc.stdout
