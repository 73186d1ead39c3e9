"""The shipped impacts model's controls: they match its generator, and each direction moves its own attribute the
right way, on held-out examples (inverted by the shipped encoder) and on generated clips.

Skipped only when ``checkpoints/hits`` is absent; a shipped generator without controls, or with controls built for
an older generator, fails (rebuild with ``stylesynth controls build --model hits``).
"""
import numpy as np
import pytest
import torch

from stylesynth import features as F
from stylesynth.checkpoint import REPO_CHECKPOINTS, load_generator
from stylesynth.controls import load_bundle, state_to_w
from stylesynth.controls import recipes as R
from stylesynth.controls.directions import separation
from stylesynth.controls.encoder import clips_to_specs, invert
from stylesynth.state import DEFAULT

FOLDER = REPO_CHECKPOINTS / "hits"
pytestmark = pytest.mark.skipif(not (FOLDER / "model.json").is_file(),
                                reason="checkpoints/hits is absent (the trained impacts model is not installed)")

# Attribute each slider should raise (impact: towards sharp hits, so event length falls).
ATTRIBUTE = {"brightness": ("centroid_hz", 1), "rate": ("onsets_per_s", 1), "impact": ("event_length_s", -1)}



@pytest.fixture(scope="module")
def shipped():
    generator, meta = load_generator(FOLDER)
    bundle = load_bundle(FOLDER, generator)      # refuses controls of another generator or latent size
    return generator, bundle, meta["representation_obj"]


def test_controls_complete(shipped):
    generator, bundle, rep = shipped
    assert list(bundle.directions) == ["brightness", "rate", "impact"]
    assert {"Hits", "Scratches"} <= set(bundle.prototypes)
    assert len(bundle.start_points) >= 5 and len(bundle.sefa_vectors) == 10
    assert bundle.encoder is not None
    for name in bundle.start_points:
        s, _ = DEFAULT.with_value("start", name)
        spec = generator.synthesize(state_to_w(s, generator, bundle), noise="const")
        assert torch.isfinite(spec).all()


# What the shipped generator cannot do yet, measured: a strict xfail fails the day it starts to
# work, so this list has to be emptied as the model improves (then the plain assertions below hold it there).
NOT_YET: dict = {
    # Emptied: the rate slider passed at 200 kimg once the example inversions were refined by 100 steps of latent
    # optimisation (controls build's default), as the impact held-out AUC had passed before it.
}


def _known(kind: str, name: str):
    reason = NOT_YET.get((kind, name))
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else name


@pytest.mark.parametrize("name", [_known("held-out", n) for n in ("brightness", "rate", "impact")])
def test_directions_separate_held_out_examples_the_right_way(shipped, name):
    generator, bundle, rep = shipped
    enc = bundle.encoder
    recipe = next(r for r in R.HITS_RECIPE.directions if r.name == name)
    specs = [clips_to_specs([c[0] for c in R.draw_pole(pole, 12, seed, rep)], rep, enc.cfg.rows, enc.cfg.frames)
             for pole, seed in ((recipe.pole_a, 4242), (recipe.pole_b, 4243))]
    check = separation(invert(enc, specs[0]), invert(enc, specs[1]), bundle.directions[recipe.name])
    # 12 + 12 fresh clips: chance is 0.5 +- ~0.1, swapped poles give well below 0.5.
    assert check["auc"] > 0.6 and check["effect"] > 0, (recipe.name, check)


@pytest.mark.parametrize("name", [_known("slider", n) for n in ATTRIBUTE])
def test_each_slider_moves_its_attribute_the_right_way(shipped, name):
    """Slider -5 vs +5 on 8 seeds: the median change of the slider's attribute has the right sign. An attribute the
    generator cannot vary at all yet (a young model may make no distinct onsets) cannot be judged: skipped, named."""
    generator, bundle, rep = shipped

    def attributes(states):
        ws = torch.cat([state_to_w(s, generator, bundle) for s in states])
        with torch.no_grad():
            specs = generator.synthesize(ws, noise="const").clamp(-1, 1).numpy()
        return np.stack([F.clip_features(x, rep) for x in specs])

    feature, sign = ATTRIBUTE[name]
    j = F.FEATURE_NAMES.index(feature)
    data = attributes([DEFAULT.with_value("seed", k)[0] for k in range(100, 132)])[:, j]
    lo = attributes([DEFAULT.with_values({"seed": k, name: -5.0})[0] for k in range(8)])[:, j]
    hi = attributes([DEFAULT.with_values({"seed": k, name: 5.0})[0] for k in range(8)])[:, j]
    if np.ptp(np.concatenate([data, lo, hi])) == 0:
        pytest.skip(f"the shipped generator cannot vary {feature} at all: {name} cannot be judged")
    deltas = sign * (hi - lo)
    assert np.median(deltas) > 0, f"{name} moves {feature} the wrong way: {np.round(deltas, 3)}"
