"""Datasets: make -> load round trip, determinism across workers, refusal of corrupt or clashing folders, and the
``stylesynth data`` command's answers to good and bad arguments."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from stylesynth import dataset, spectrogram
from stylesynth.cli import main


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """10 hits clips in shards of 4 (4 + 4 + 2), made in-process."""
    out = tmp_path_factory.mktemp("data") / "hits"
    dataset.make("hits", 10, out, seed=0, workers=1, shard_size=4, progress=False)
    return out


def test_round_trip(small):
    data = dataset.load(small)
    assert len(data) == 10 and len(data.labels) == 10
    assert data.specs.shape == (10, 256, 256) and data.specs.dtype == torch.float16
    assert float(data.specs.min()) >= -1.0 and float(data.specs.max()) == 1.0
    assert data.rep == spectrogram.HITS
    meta = json.loads((small / "dataset.json").read_text())
    assert meta["model"] == "hits" and meta["n"] == 10 and meta["seed"] == 0
    assert [s["count"] for s in meta["shards"]] == [4, 4, 2]
    assert meta["representation"] == spectrogram.HITS.to_json()
    assert sum(meta["class_counts"].values()) == 10 and meta["class_mix"]["Hits"] == 0.4
    # Clip 7 is exactly what its (seed, index) renders: the order and the labels line up.
    spec, label = dataset.render_spec("hits", 0, 7)
    assert torch.equal(data.specs[7], torch.from_numpy(spec))
    assert data.labels[7] == json.loads(json.dumps(label, sort_keys=True))
    assert sum(data.class_counts().values()) == 10


def test_same_bytes_for_any_number_of_workers(small, tmp_path):
    two = dataset.make("hits", 10, tmp_path / "two", seed=0, workers=2, shard_size=4, progress=False)
    for name in ["shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors",
                 "labels.jsonl", "dataset.json"]:
        assert (two / name).read_bytes() == (small / name).read_bytes(), name


def test_another_seed_is_another_split(small, tmp_path):
    other = dataset.load(dataset.make("hits", 4, tmp_path / "held_out", seed=1, workers=1, progress=False))
    mine = dataset.load(small)
    assert not torch.equal(other.specs[0], mine.specs[0])
    assert other.meta["seed"] == 1


def test_env_dataset(tmp_path):
    data = dataset.load(dataset.make("env", 3, tmp_path / "env", seed=0, workers=1, progress=False))
    assert data.specs.shape == (3, 256, 256) and data.rep == spectrogram.ENV
    assert all(label["class"] in data.meta["class_mix"] for label in data.labels)


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_corrupt_shard_is_refused(small, tmp_path):
    bad = _copy(small, tmp_path / "bad")
    shard = bad / "shard-00001.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 0xFF                          # one flipped byte in the data
    shard.write_bytes(bytes(raw))
    with pytest.raises(dataset.DatasetError, match="shard-00001.safetensors: corrupt"):
        dataset.load(bad)


def test_truncated_shard_is_refused_even_unverified(small, tmp_path):
    bad = _copy(small, tmp_path / "cut")
    shard = bad / "shard-00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.raises(dataset.DatasetError, match="shard-00000.safetensors: corrupt shard"):
        dataset.load(bad, verify=False)


def test_missing_shard_labels_mismatch_and_unfinished(small, tmp_path):
    gone = _copy(small, tmp_path / "gone")
    (gone / "shard-00002.safetensors").unlink()
    with pytest.raises(dataset.DatasetError, match="shard-00002.safetensors: shard missing"):
        dataset.load(gone)
    short = _copy(small, tmp_path / "short")
    lines = (short / "labels.jsonl").read_text().splitlines(keepends=True)
    (short / "labels.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(dataset.DatasetError, match="9 labels for 10 clips"):
        dataset.load(short)
    unfinished = _copy(small, tmp_path / "unfinished")
    (unfinished / "dataset.json").unlink()
    with pytest.raises(dataset.DatasetError, match="did not finish"):
        dataset.load(unfinished)


def test_shape_mismatch_is_refused(small, tmp_path):
    from safetensors.numpy import save_file

    bad = _copy(small, tmp_path / "shape")
    save_file({"spec": np.zeros((2, 128, 256), np.float16)}, str(bad / "shard-00002.safetensors"))
    with pytest.raises(dataset.DatasetError, match=r"holds \(2, 128, 256\).*expected \(2, 256, 256\)"):
        dataset.load(bad, verify=False)


def test_existing_dataset_is_not_overwritten(small):
    before = {f.name: f.read_bytes() for f in small.iterdir()}
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        dataset.make("hits", 2, small, progress=False)
    assert {f.name: f.read_bytes() for f in small.iterdir()} == before


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "speech"}, "model must be one of"), ({"n": 0}, "n must be at least 1"),
    ({"workers": 0}, "workers must be at least 1"), ({"shard_size": 0}, "shard_size"),
    ({"seed": -1}, "seed must be >= 0"),
])
def test_make_refuses_bad_arguments(tmp_path, kwargs, message):
    args = {"model": "hits", "n": 2, "out_dir": tmp_path / "x", **kwargs}
    with pytest.raises(ValueError, match=message):
        dataset.make(**args, progress=False)
    assert not (tmp_path / "x").exists()


# --- the command line -----------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stylesynth", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--model", "speech", "--n", "2"], "invalid choice: 'speech'"),
    (["--model", "hits", "--n", "0"], "must be at least 1"),
    (["--model", "hits", "--n", "lots"], "expected a whole number"),
])
def test_cli_make_bad_args_one_clear_line(tmp_path, args, message):
    result = _cli("data", "make", *args, "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_make_into_existing_dataset_and_show(small, capsys):
    assert main(["data", "make", "--model", "hits", "--n", "2", "--out", str(small), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a dataset" in err
    assert main(["data", "show", str(small)]) == 0
    out = capsys.readouterr().out
    assert "model hits, 10 clips" in out and "Hits" in out


def test_cli_show_refuses_corrupt(small, tmp_path, capsys):
    bad = _copy(small, tmp_path / "bad")
    (bad / "shard-00000.safetensors").write_bytes(b"not a shard")
    assert main(["data", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and err.count("\n") == 1


def test_cli_make_and_examples(tmp_path, capsys):
    assert main(["data", "make", "--model", "hits", "--n", "3", "--workers", "1", "--out", str(tmp_path / "d"),
                 "--no-progress"]) == 0
    assert len(dataset.load(tmp_path / "d")) == 3
    assert main(["data", "examples", "--set", "rate/3", "--n", "2", "--out", str(tmp_path / "ex")]) == 0
    names = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert names == ["rate-3-000.wav", "rate-3-001.wav", "rate-3.labels.jsonl", "rate-3.png"]
    import soundfile as sf
    audio, rate = sf.read(tmp_path / "ex" / "rate-3-000.wav")
    assert rate == 16000 and len(audio) == spectrogram.HITS.n_samples
    assert main(["data", "examples", "--set", "rate/4", "--out", str(tmp_path / "ex2")]) == 2
    assert "unknown set 'rate/4'" in capsys.readouterr().err


def test_stored_spectrogram_is_not_transposed(small):
    """Rows are frequency: a clip's stored spectrogram equals encode() of its audio, not its transpose (the
    generator-v1 bug), and a v1 dataset is refused."""
    from stylesynth import procedural

    audio, _ = procedural.make_clip("hits", np.random.default_rng([0, 3]))
    expected = spectrogram.encode(audio, spectrogram.HITS).astype(np.float16)
    stored = dataset.load(small).specs[3].numpy()
    assert np.array_equal(stored, expected) and not np.array_equal(stored, expected.T)


def test_v1_dataset_is_refused(small, tmp_path):
    old = _copy(small, tmp_path / "v1")
    meta = json.loads((old / "dataset.json").read_text())
    meta["generator_version"] = "1"
    (old / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(dataset.DatasetError, match="transposed"):
        dataset.load(old)
