"""Building controls for real: an encoder trained (briefly) on a tiny generator, example sets inverted, directions
checked on held-out examples; and the ``controls``, ``transfer`` and ``query`` commands on a small checkpoint."""
import dataclasses
import json

import numpy as np
import pytest
import soundfile
import torch
from test_controls_unit import tiny_generator

from stylesynth import cli
from stylesynth.checkpoint import save_generator
from stylesynth.controls import load_bundle, state_to_w
from stylesynth.controls import recipes as R
from stylesynth.controls.build import BuildSettings, compute_controls
from stylesynth.controls.directions import orthonormal, separation
from stylesynth.controls.encoder import (EncoderTraining, clips_to_specs, invert, random_masks, sample_latents,
                                         synthesize, train_encoder)
from stylesynth.model import Generator, ModelConfig
from stylesynth.spectrogram import HITS
from stylesynth.state import DEFAULT



@pytest.fixture(scope="module")
def trained():
    gen = tiny_generator()
    encoder, log = train_encoder(gen, EncoderTraining(pool=256, steps=150, batch=16, regen_steps=4, regen_batch=4,
                                                      lr=1e-3, seed=0))
    return gen, encoder, log


@pytest.fixture(scope="module")
def built(trained):
    gen, encoder, _ = trained
    settings = BuildSettings(examples=8, check_examples=8, candidates=1, scale_latents=1024, refine_steps=10)
    return compute_controls(gen, encoder, R.HITS_RECIPE, settings, model="tiny")


def test_encoder_learns_to_invert_generator_samples(trained):
    gen, encoder, log = trained
    assert log["final_w_loss"] < 1.0 and np.isfinite(log["final_spec_loss"])
    w = sample_latents(gen, 64, seed=99)                      # held out: another seed than the pool
    w_hat = invert(encoder, synthesize(gen, w))
    r2 = 1 - float((w_hat - w).square().sum() / (w - w.mean(0)).square().sum())
    assert r2 > 0.3, f"the encoder recovers only {r2:.2f} of the latents' variance"
    untrained = type(encoder)(encoder.cfg)
    untrained.load_state_dict({k: v for k, v in encoder.state_dict().items() if k.startswith("w_")}, strict=False)
    r2_untrained = 1 - float((invert(untrained.eval(), synthesize(gen, w)) - w).square().sum()
                             / (w - w.mean(0)).square().sum())
    assert r2 > r2_untrained + 0.2


def test_masks_hide_spans_and_bands_but_not_everything():
    g = torch.Generator().manual_seed(0)
    m = random_masks(200, 64, 64, g)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    full = (m == 1).flatten(1).all(1).float().mean()
    assert 0.15 < float(full) < 0.4                       # ~25 % unmasked (the inference case)
    assert float(m.mean()) > 0.8


class FeatureEncoder(torch.nn.Module):
    """A fixed, hand-written "encoder" for pipeline tests: w is a fixed rotation of a few spectrogram statistics
    (spectral centroid, onset count, share of loud frames, level), so what the build does with inverted examples can
    be checked without depending on what a briefly trained network happened to learn."""

    def __init__(self, w_dim: int):
        super().__init__()
        from stylesynth.controls.encoder import EncoderConfig
        self.cfg = EncoderConfig(rows=64, frames=64, w_dim=w_dim, width=32, row_pool=1)
        q, _ = torch.linalg.qr(torch.randn(w_dim, w_dim, generator=torch.Generator().manual_seed(3)))
        self.register_buffer("rotation", q[:, :4])

    def forward(self, spec, mask=None):
        power = 10 ** ((spec.clamp(-1, 1) - 1) * 2.5)             # [-1, 1] -> linear power, floor -50 dB
        rows = torch.arange(spec.shape[1], dtype=spec.dtype)
        centroid = (power.sum(2) * rows).sum(1) / power.sum((1, 2)) / spec.shape[1]
        level = 10 * torch.log10(power.sum(1) + 1e-9)                           # (B, frames) dB
        level = level - level.amax(1, keepdim=True)
        onsets = (level.diff(dim=1) > 6).float().sum(1) / 10
        loud = (level > -10).float().mean(1)
        feats = torch.stack([centroid * 4, onsets, loud * 4, level.mean(1) / 10], dim=1)
        return feats @ self.rotation.T


def test_build_pipeline_puts_held_out_poles_the_right_way(trained):
    """Examples -> inversion -> prototypes -> unit directions -> signs, with a transparent encoder: every
    direction must separate held-out and fresh examples almost perfectly, and point from pole B to pole A."""
    gen, _, _ = trained
    encoder = FeatureEncoder(gen.cfg.w_dim)
    settings = BuildSettings(examples=12, check_examples=10, scale_latents=512, refine_steps=10)
    directions_only = dataclasses.replace(R.HITS_RECIPE, prototypes={}, start_points=())
    bundle, figures = compute_controls(gen, encoder, directions_only, settings, model="tiny")
    # Impact overlaps by nature (hits last 0.05-0.4 s, scratches 0.15-1.2 s, 1-7 events each): a lower bar.
    bar = {"brightness": 0.9, "rate": 0.9, "impact": 0.7}
    for name, recipe in zip(bundle.directions, R.HITS_RECIPE.directions):
        check = figures["directions"][name]["heldout_check"]
        assert check["auc"] > bar[name] and check["effect"] > 1, (name, check)
        specs = lambda sources, seed: clips_to_specs([c[0] for c in R.draw_pole(sources, 12, seed, HITS)],  # noqa
                                                     HITS, 64, 64)
        fresh = separation(invert(encoder, specs(recipe.pole_a, 4242)), invert(encoder, specs(recipe.pole_b, 4243)),
                           bundle.directions[name])
        assert fresh["auc"] > bar[name], (name, fresh)
        # Swapping the poles flips the direction: the sign convention is pole A minus pole B.
        assert separation(invert(encoder, specs(recipe.pole_b, 4242)), invert(encoder, specs(recipe.pole_a, 4243)),
                          bundle.directions[name])["auc"] < 1 - bar[name]


def test_directions_point_the_right_way_on_held_out_examples(built, trained):
    """The same with the briefly trained encoder of an untrained generator: its features are arbitrary, so only
    the sign is held to (the build's own held-out check, 10 + 10 clips of other seeds); the shipped model's test
    (test_controls_shipped.py) holds the real encoder to AUC > 0.75."""
    bundle, figures = built
    assert list(bundle.directions) == ["brightness", "rate", "impact"]
    for name in bundle.directions:
        check = figures["directions"][name]["heldout_check"]
        assert check["auc"] > 0.5 and check["effect"] > 0, (name, check)
    # Directions are distinct (none a copy of another, as the original's swapped pair was).
    d = torch.stack(list(bundle.directions.values()))
    assert float((d @ d.T - torch.eye(3)).abs().max()) < 0.99


def test_built_bundle_is_complete_and_usable(built, trained, tmp_path):
    bundle, figures = built
    gen, _, _ = trained
    assert bundle.prototype_names == ["Hits", "Scratches", "Modal", "Water"]
    assert [s.name for s in R.HITS_RECIPE.start_points] == bundle.start_point_names
    assert len(bundle.sefa_vectors) == 10 and orthonormal(bundle.sefa_vectors)
    assert all(v > 0 for v in bundle.direction_scales.values())
    for name in bundle.start_point_names:
        s, _ = DEFAULT.with_values({"start": name, "brightness": 1.0, "prototype": "Water"})
        assert torch.isfinite(state_to_w(s, gen, bundle)).all()
    # The query path through the real encoder: deterministic, and the pull moves it towards the prototype.
    q, _ = DEFAULT.with_values({"query/run": True, "query/width": 0.6, "query/density": 2})
    w1, w2 = state_to_w(q, gen, bundle), state_to_w(q, gen, bundle)
    assert torch.equal(w1, w2)
    qp, _ = q.with_values({"prototype": "Scratches", "strength": 0.7})
    p = bundle.prototypes["Scratches"]
    assert float((state_to_w(qp, gen, bundle)[0, 0] - p).norm()) < float((w1[0, 0] - p).norm())


# --- the commands, on a small checkpoint whose spectrograms are full size (so audio can be made) ----------------

def small_config() -> ModelConfig:
    res = [4, 8, 16, 32, 64, 128, 256]
    return ModelConfig(family="cpu", z_dim=32, w_dim=32, mapping_layers=2, channels={str(r): 32 for r in res},
                       d_channels={str(r): 32 for r in res})


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    gen = Generator(small_config()).eval()
    with torch.no_grad():
        gen.map(torch.randn(512, 32), update_w_avg=0.0)
    folder = save_generator(gen, tmp_path_factory.mktemp("ckpt") / "small", HITS, {"name": "small"})
    code = cli.main(["controls", "build", "--model", "hits", "--checkpoint", str(folder), "--examples", "2",
                     "--check-examples", "2", "--candidates", "1", "--encoder-pool", "16", "--encoder-steps", "3",
                     "--regen-steps", "1", "--no-progress"])
    assert code == 0
    return folder


def test_build_writes_the_three_files_and_show_reads_them(small_checkpoint, capsys):
    folder = small_checkpoint
    for name in ("encoder.safetensors", "controls.safetensors", "controls.json"):
        assert (folder / name).is_file()
    meta = json.loads((folder / "controls.json").read_text())
    assert meta["model"] == "hits" and meta["w_dim"] == 32 and meta["directions"] == ["brightness", "rate", "impact"]
    enc = meta["figures"]["encoder"]
    assert enc["generator_error_db"]["n"] == 64 and enc["gaver_error_db"]["median"] >= 0
    capsys.readouterr()
    assert cli.main(["controls", "show", "--model", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "brightness" in out and "tinny / muffled" in out and "Hit - Metal" in out and "SeFa: 10" in out


def test_show_draws_every_sliders_sweep(small_checkpoint, tmp_path, capsys):
    import matplotlib.image

    png = tmp_path / "sliders.png"
    assert cli.main(["controls", "show", "--model", str(small_checkpoint), "--png", str(png), "--seed", "2"]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    height, width, _ = matplotlib.image.imread(str(png)).shape
    assert height > width > 500          # 7 rows (3 directions + 4 SeFa) of 5 slider positions


def test_transfer_and_query_write_audio(small_checkpoint, tmp_path, capsys):
    folder = small_checkpoint
    ref = tmp_path / "ref.wav"
    clip = R.draw(R.Source("set", "brightness/tinny"), 1, 0, HITS)[0][0]
    soundfile.write(str(ref), np.concatenate([clip, clip]), 16000)            # longer than a clip: cut
    out = tmp_path / "out.wav"
    assert cli.main(["transfer", "--model", str(folder), "--seed", "3", "--reference", str(ref),
                     "--attribute", "brightness", "-o", str(out)]) == 0
    audio, rate = soundfile.read(str(out))
    assert rate == 16000 and len(audio) == HITS.n_samples and np.isfinite(audio).all()
    assert "brightness: coordinate" in capsys.readouterr().out
    q = tmp_path / "q.wav"
    assert cli.main(["query", "--model", str(folder), "--prototype", "Hits", "--width", "0.05", "--density", "4",
                     "-o", str(q), "--reference-out", str(tmp_path / "qref.wav")]) == 0
    assert soundfile.info(str(q)).frames == HITS.n_samples and (tmp_path / "qref.wav").is_file()


@pytest.mark.parametrize("argv,match", [
    (["controls", "build", "--model", "no-such-model"], "no model 'no-such-model'"),
    (["controls", "show", "--model", "no-such-model"], "no model 'no-such-model'"),
    (["transfer", "--model", "SMALL", "--reference", "missing.wav", "--attribute", "brightness", "-o", "x.wav"],
     "missing.wav: no such file"),
    (["transfer", "--model", "SMALL", "--reference", "REF", "--attribute", "loudness", "-o", "x.wav"],
     "has no direction 'loudness' .choices: brightness, rate, impact, sefa/1"),
    (["transfer", "--model", "SMALL", "--reference", "REF", "--attribute", "impact", "--start", "Nope", "-o",
      "x.wav"], "start point 'Nope' is not one of model 'hits'"),
    (["query", "--model", "SMALL", "--prototype", "Dogs", "-o", "x.wav"], "prototype 'Dogs' is not one of"),
    (["query", "--model", "SMALL", "--width", "nan", "-o", "x.wav"], "query/width refuses nan"),
    (["controls", "show", "--model", "SMALL", "--png", "x.png", "--start", "Nope"],
     "start point 'Nope' is not one of model 'hits'"),
])
def test_command_errors_are_one_line_exit_2(small_checkpoint, tmp_path, capsys, argv, match):
    import re
    ref = tmp_path / "ref.wav"
    soundfile.write(str(ref), np.zeros(1000), 16000)
    argv = [str(small_checkpoint) if a == "SMALL" else str(ref) if a == "REF" else a for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err


def test_controls_refused_after_the_generator_changes(small_checkpoint, tmp_path, capsys):
    import shutil
    folder = tmp_path / "copy"
    shutil.copytree(small_checkpoint, folder)
    torch.manual_seed(5)
    save_generator(Generator(small_config()).eval(), folder, HITS, {"name": "small"})   # a new training export
    capsys.readouterr()
    assert cli.main(["controls", "show", "--model", str(folder)]) == 1      # shown, with a warning and status 1
    assert "built for another generator" in capsys.readouterr().out
    from stylesynth.checkpoint import load_generator
    from stylesynth.controls import ControlsError
    with pytest.raises(ControlsError, match="built for another generator"):     # use with the generator fails
        load_bundle(folder, load_generator(folder)[0])
