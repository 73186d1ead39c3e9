"""``stylesynth doctor`` as a user runs it: a subprocess, its report and exit code, on this machine as it is and
with things really taken away (PATH without Pure Data and JACK, a shadowed package, checkpoint folders made here)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import STYLESYNTH


def doctor(*args, env=None, timeout=60):
    return subprocess.run([str(STYLESYNTH), "doctor", *args], capture_output=True, text=True, timeout=timeout,
                          env=env or dict(os.environ))


def lines_for(report: str, name: str) -> list[str]:
    """The report lines of check ``name`` (status column, then the name column)."""
    return [line for line in report.splitlines() if re.match(rf"^[A-Z]+\*?\s+{re.escape(name)}\s\s", line)]


@pytest.fixture
def no_checkpoints(tmp_path):
    """Point the model search at an empty folder too, so the report does not depend on what is trained."""
    return dict(os.environ, STYLESYNTH_CHECKPOINTS=str(tmp_path / "none"))


def test_report_covers_everything_and_exits_0(no_checkpoints):
    proc = doctor(env=no_checkpoints)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("python", "package torch", "torch device", "numba cache", "models", "audio devices", "JACK",
                 "Pure Data"):
        assert any(f" {name} " in line for line in proc.stdout.splitlines()), f"no {name} line:\n{proc.stdout}"
    assert "MIDI (" in proc.stdout
    assert "The server can run" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_json_report(no_checkpoints):
    proc = doctor("--json", env=no_checkpoints)
    report = json.loads(proc.stdout)
    assert report["can_run"] is True and proc.returncode == 0
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["package numpy"] == "OK"
    assert all(c["status"] in ("OK", "MISSING", "BROKEN") for c in report["checks"])
    assert all(c["fix"] for c in report["checks"] if c["status"] != "OK"), "every problem needs a fix"


def test_missing_tools_say_how_to_install_them(no_checkpoints, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = dict(no_checkpoints, PATH=str(empty))             # no pd, no jackd, no jack_lsp
    proc = doctor(env=env)
    assert proc.returncode == 0                             # all optional: the server still runs
    pd, = lines_for(proc.stdout, "Pure Data")
    assert pd.startswith("MISSING")
    assert "apt-get install puredata-core" in proc.stdout
    assert "apt-get install jackd2" in proc.stdout


def test_a_missing_required_package_fails(no_checkpoints, tmp_path):
    shadow = tmp_path / "shadow" / "safetensors"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('safetensors is broken in this test')\n")
    env = dict(no_checkpoints, PYTHONPATH=str(tmp_path / "shadow"))
    proc = doctor(env=env)
    assert proc.returncode == 1, proc.stdout
    line, = [x for x in proc.stdout.splitlines() if " package safetensors " in x]
    assert line.startswith("MISSING*") and "safetensors is broken in this test" in line
    assert "cannot run until these are fixed: package safetensors" in proc.stdout


def _model_folder(root, name, tensors=True):
    folder = root / name
    folder.mkdir(parents=True)
    meta = {"format": "stylesynth-generator", "format_version": 1, "architecture": {"family": "cpu"},
            "representation": {"hop": 128}}
    (folder / "model.json").write_text(json.dumps(meta))
    if tensors:
        save_file({"w": np.zeros((64, 64), np.float32), "b": np.zeros(64, np.float32)},
                  str(folder / "generator.safetensors"))
    return folder


def test_checkpoints_are_checked_without_loading(tmp_path):
    root = tmp_path / "ckpt"
    _model_folder(root, "good")
    env = dict(os.environ, STYLESYNTH_CHECKPOINTS=str(root))
    proc = doctor(env=env)
    models, = lines_for(proc.stdout, "models")
    assert models.startswith("OK") and "good (generator.safetensors 0.0 MB, 2 tensors)" in models

    bad = _model_folder(root, "pickled", tensors=False)
    (bad / "generator.safetensors").write_bytes(b"\x80\x04\x95" + b"\0" * 64)   # a pickle's first bytes
    proc = doctor(env=env)
    models, = lines_for(proc.stdout, "models")
    assert models.startswith("BROKEN") and "pickled: generator.safetensors is a pickle/zip" in models
    assert proc.returncode == 0                             # the server refuses that model, the others run


def test_jack_and_its_midi_ports_are_reported(jack_server, no_checkpoints):
    import rtmidi

    source = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"kbd{uuid.uuid4().hex[:6]}")
    source.open_virtual_port("out")
    try:
        proc = doctor(env=dict(no_checkpoints, **jack_server.env))
    finally:
        source.delete()
    jack_line, = lines_for(proc.stdout, "JACK")
    assert jack_line.startswith("OK") and "48000 Hz, 256 frames per period" in jack_line
    midi, = [x for x in proc.stdout.splitlines() if "MIDI (jack)" in x]
    assert midi.startswith("OK") and ":out'" in midi
    audio, = lines_for(proc.stdout, "audio devices")
    assert audio.startswith("OK") and "JACK" in audio
    assert "The server can run (with sound)" in proc.stdout
