"""Controls files: a round trip is exact; files that do not match the checkpoint, or are corrupt, truncated,
pickled or hand-edited into nonsense are refused with a message naming the file and the problem."""
import json
import pickle

import pytest
import torch
from test_controls_unit import make_bundle, tiny_generator

from stylesynth.checkpoint import save_generator
from stylesynth.controls import ControlsError, load_bundle, load_controls, save_bundle, state_to_w
from stylesynth.controls.bundle import META_FILE, TENSORS_FILE
from stylesynth.controls.encoder import Encoder, EncoderConfig, save_encoder
from stylesynth.model import Generator, tiny_config
from stylesynth.spectrogram import HITS
from stylesynth.state import DEFAULT



@pytest.fixture()
def checkpoint(tmp_path):
    """A checkpoint folder with a tiny generator, matching controls and a matching (untrained) encoder."""
    gen = tiny_generator()
    folder = save_generator(gen, tmp_path / "tiny", HITS, {"name": "tiny"}, dtype=torch.float32)
    from stylesynth.controls.bundle import file_sha256
    sha = file_sha256(folder / "generator.safetensors")
    bundle = make_bundle(gen)
    bundle.generator_sha256 = sha
    save_bundle(bundle, folder)
    torch.manual_seed(0)
    save_encoder(Encoder(EncoderConfig.for_generator(gen)), folder / "encoder.safetensors",
                 {"generator_sha256": sha})
    return folder, gen, bundle


def test_round_trip_is_exact(checkpoint):
    folder, gen, bundle = checkpoint
    loaded = load_controls(folder, gen)
    assert loaded.model == "tiny" and loaded.w_dim == 16 and loaded.encoder is not None
    assert loaded.prototype_names == ["Hits", "Scratches"]
    assert loaded.start_point_names == ["Hit - Wood", "Scratch - Carpet"]
    for name in bundle.directions:
        assert torch.equal(loaded.directions[name], bundle.directions[name])
        assert loaded.direction_scales[name] == pytest.approx(bundle.direction_scales[name])
    assert torch.equal(loaded.sefa_vectors, bundle.sefa_vectors)
    s, _ = DEFAULT.with_values({"brightness": 2.0, "sefa/1": -1.0, "prototype": "Hits", "seed": 9})
    assert torch.equal(state_to_w(s, gen, loaded), state_to_w(s, gen, bundle))
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["prototypes"] == ["Hits", "Scratches"]     # what the patch/layout generators read


def test_missing_controls_say_how_to_make_them(tmp_path):
    folder = save_generator(tiny_generator(), tmp_path / "bare", HITS, {"name": "bare"})
    with pytest.raises(ControlsError, match=r"no semantic controls .*stylesynth controls build --model bare"):
        load_bundle(folder)
    assert load_controls(folder) is None           # what the synthesizer asks: a bare generator has none
    with pytest.raises(ControlsError, match="no model 'no-such-model'"):
        load_bundle("no-such-model")


def test_wrong_latent_size_refused(checkpoint, tmp_path):
    folder, gen, _ = checkpoint
    cfg = tiny_config()
    cfg.w_dim = cfg.z_dim = 8
    other = Generator(cfg).eval()
    with pytest.raises(ControlsError, match="built for w_dim 16, but the generator's w_dim is 8"):
        load_bundle(folder, other)


def test_controls_for_another_generator_file_refused(checkpoint):
    folder, gen, _ = checkpoint
    retrained = tiny_generator(seed=1)                       # same shape, other weights: a new training export
    save_generator(retrained, folder, HITS, {"name": "tiny"}, dtype=torch.float32)
    with pytest.raises(ControlsError, match="built for another generator .*rebuild"):
        load_bundle(folder, retrained)


def test_corrupt_truncated_and_pickled_tensor_files_refused(checkpoint):
    folder, gen, _ = checkpoint
    path = folder / TENSORS_FILE
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ControlsError, match=f"{TENSORS_FILE}.*truncated"):
        load_bundle(folder, gen)
    path.write_bytes(b"\x07\x00" + b"garbage" * 20)
    with pytest.raises(ControlsError, match=TENSORS_FILE):
        load_bundle(folder, gen)
    path.write_bytes(pickle.dumps({"directions": [1, 2, 3]}))
    with pytest.raises(ControlsError, match="pickle"):
        load_bundle(folder, gen)
    path.write_bytes(b"")
    with pytest.raises(ControlsError, match="truncated"):
        load_bundle(folder, gen)


def _edit(folder, **changes):
    meta = json.loads((folder / META_FILE).read_text())
    meta.update(changes)
    (folder / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("changes,match", [
    ({"format": "something-else"}, "not a stylesynth controls description"),
    ({"format_version": 99}, "newer than this stylesynth"),
    ({"w_dim": "sixteen"}, "w_dim must be a positive whole number"),
    ({"w_dim": 32}, r"tensor 'directions' has shape \(3, 16\), controls.json needs \(3, 32\)"),
    ({"prototypes": ["Hits"]}, r"tensor 'prototypes' has shape \(2, 16\), controls.json needs \(1, 16\)"),
    ({"start_points": ["A", "A"]}, "'start_points' lists a name twice"),
    ({"prototypes": ["none", "Scratches"]}, "prototypes name 'none' is reserved"),
    ({"directions": ["brightness", "rate", "loudness"]}, "direction 'loudness' is not a semantic slider"),
    ({"sefa_count": 4}, r"sefa_vectors has shape \(10, 16\), controls.json needs \(4, 16\)"),
    ({"representation": None}, "missing 'representation'"),
])
def test_hand_edited_json_that_no_longer_matches_refused(checkpoint, changes, match):
    folder, gen, _ = checkpoint
    _edit(folder, **changes)
    with pytest.raises(ControlsError, match=match):
        load_bundle(folder, gen)


def test_json_garbage_refused(checkpoint):
    folder, gen, _ = checkpoint
    (folder / META_FILE).write_text("{not json")
    with pytest.raises(ControlsError, match=f"{META_FILE}: not valid JSON"):
        load_bundle(folder, gen)


def _rewrite_tensors(folder, **changes):
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(folder / TENSORS_FILE))
    tensors.update(changes)
    save_file(tensors, str(folder / TENSORS_FILE))


def test_non_finite_and_non_unit_values_refused(checkpoint):
    folder, gen, bundle = checkpoint
    protos = torch.stack(list(bundle.prototypes.values()))
    protos[1, 3] = float("nan")
    _rewrite_tensors(folder, prototypes=protos)
    with pytest.raises(ControlsError, match="'prototypes' holds non-finite values"):
        load_bundle(folder, gen)
    _rewrite_tensors(folder, prototypes=torch.stack(list(bundle.prototypes.values())),
                     directions=2 * torch.stack(list(bundle.directions.values())))
    with pytest.raises(ControlsError, match="direction 'brightness' has length 2.0000, not 1"):
        load_bundle(folder, gen)
    dirs = torch.stack(list(bundle.directions.values()))
    sefa = bundle.sefa_vectors.clone()
    sefa[1] = sefa[0]
    _rewrite_tensors(folder, directions=dirs, sefa_vectors=sefa)
    with pytest.raises(ControlsError, match="SeFa vectors are not orthonormal"):
        load_bundle(folder, gen)
    _rewrite_tensors(folder, sefa_vectors=bundle.sefa_vectors, direction_scales=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ControlsError, match="direction 'rate' has scale -1.0"):
        load_bundle(folder, gen)


def test_extra_or_missing_tensors_refused(checkpoint):
    folder, gen, _ = checkpoint
    _rewrite_tensors(folder, surprise=torch.zeros(3))
    with pytest.raises(ControlsError, match=r"unexpected \['surprise'\]"):
        load_bundle(folder, gen)


def test_mismatched_or_corrupt_encoder_refused(checkpoint):
    folder, gen, _ = checkpoint
    enc_path = folder / "encoder.safetensors"
    save_encoder(Encoder(EncoderConfig.for_generator(gen)), enc_path, {"generator_sha256": "0" * 64})
    with pytest.raises(ControlsError, match="encoder was trained for another generator"):
        load_bundle(folder, gen)
    wide = EncoderConfig(rows=64, frames=64, w_dim=8, width=32)
    save_encoder(Encoder(wide), enc_path, {})
    with pytest.raises(ControlsError, match="encoder gives w_dim 8, the controls have 16"):
        load_bundle(folder, gen)
    enc_path.write_bytes(enc_path.read_bytes()[:100])
    with pytest.raises(ControlsError, match="encoder.safetensors.*truncated"):
        load_bundle(folder, gen)
    # Without the encoder the controls still load (sliders, prototypes, start points work; the query does not).
    assert load_bundle(folder, gen, with_encoder=False).encoder is None
