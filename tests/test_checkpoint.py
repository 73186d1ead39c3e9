"""Checkpoints load from safetensors + JSON only; corrupt, truncated, mismatched and pickled files are refused."""
from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from stylesynth import checkpoint
from stylesynth.model import Generator, tiny_config
from stylesynth.spectrogram import HITS


@pytest.fixture
def saved(tmp_path):
    G = Generator(tiny_config())
    folder = checkpoint.save_generator(G, tmp_path / "m", HITS, {"name": "m", "training": {"kimg": 0}})
    return G, folder


def test_round_trip_fp16(saved):
    G, folder = saved
    loaded, meta = checkpoint.load_generator(folder)
    assert meta["name"] == "m" and meta["representation_obj"] == HITS
    for (k, a), (_, b) in zip(G.state_dict().items(), loaded.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-2, rtol=1e-2), k
    assert not any(p.requires_grad for p in loaded.parameters())


def test_no_torch_load_anywhere():
    import stylesynth
    from pathlib import Path
    root = Path(stylesynth.__file__).parent
    offenders = [p for p in root.rglob("*.py") if "torch.load(" in p.read_text()]
    assert offenders == []


def expect_refusal(folder, *words):
    with pytest.raises(checkpoint.ModelError) as info:
        checkpoint.load_generator(folder)
    message = str(info.value)
    for word in words:
        assert word in message, message
    return message


def test_pickle_refused(saved):
    _, folder = saved
    (folder / "generator.safetensors").write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    expect_refusal(folder, "pickle", "refusing")


def test_torch_zip_refused(saved):
    _, folder = saved
    (folder / "generator.safetensors").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    expect_refusal(folder, "pickle/torch archive")


def test_truncated_refused(saved):
    _, folder = saved
    path = folder / "generator.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    expect_refusal(folder, "generator.safetensors", "truncated")


def test_garbled_header_refused(saved):
    _, folder = saved
    path = folder / "generator.safetensors"
    data = bytearray(path.read_bytes())
    data[8:40] = b"x" * 32
    path.write_bytes(bytes(data))
    expect_refusal(folder, "corrupt")


def test_wrong_shape_refused(saved, tmp_path):
    _, folder = saved
    other = Generator(tiny_config())
    other_cfg = tiny_config()
    other_cfg.channels = {k: 24 for k in other_cfg.channels}
    bigger = checkpoint.save_generator(Generator(other_cfg), tmp_path / "o", HITS, {"name": "o"})
    shutil.copy(bigger / "generator.safetensors", folder / "generator.safetensors")
    expect_refusal(folder, "shape")
    del other


def test_missing_tensor_refused(saved):
    from safetensors.torch import load_file, save_file
    _, folder = saved
    tensors = load_file(str(folder / "generator.safetensors"))
    tensors.pop(next(iter(tensors)))
    save_file(tensors, str(folder / "generator.safetensors"))
    expect_refusal(folder, "missing 1 tensor")


def test_nan_refused(saved):
    from safetensors.torch import load_file, save_file
    _, folder = saved
    tensors = load_file(str(folder / "generator.safetensors"))
    key = next(k for k in tensors if k.endswith("weight"))
    tensors[key][0] = float("nan")
    save_file(tensors, str(folder / "generator.safetensors"))
    expect_refusal(folder, key, "non-finite")


def test_bad_json_refused(saved):
    _, folder = saved
    (folder / "model.json").write_text("{not json")
    expect_refusal(folder, "model.json", "not valid JSON")
    (folder / "model.json").write_text(json.dumps({"format": "something-else"}))
    expect_refusal(folder, "format")


def test_unknown_model_name_lists_choices():
    message = expect_refusal("no-such-model", "no model 'no-such-model'", "available")
    assert "\n" not in message


def test_synthesizer_refuses_a_generator_that_cannot_make_a_clip(saved):
    from stylesynth.synthesizer import Synthesizer
    _, folder = saved                              # tiny: 64 x 64 images, labelled with the 256 x 256 HITS layout
    with pytest.raises(checkpoint.ModelError, match="64 x 64 images, not a 256 x 256"):
        Synthesizer.load(str(folder))
