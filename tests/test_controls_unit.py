"""Semantic controls, the parts that need no training: prototypes, directions, transfer, SeFa, the query reference,
and state -> W+ (every ingredient, determinism, and every refusal)."""
import math

import numpy as np
import pytest
import torch

from stylesynth import params as P
from stylesynth.controls import ControlsBundle, ControlsError, state_to_w, z_from_seed
from stylesynth.controls import directions as D
from stylesynth.controls.query import reference_audio, reference_params
from stylesynth.controls.sefa import sefa
from stylesynth.model import Generator, tiny_config
from stylesynth.spectrogram import HITS
from stylesynth.state import DEFAULT, ControlError, ControlState



def tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(tiny_config()).eval().requires_grad_(False)
    with torch.no_grad():            # a tracked mean, as training leaves one
        g.map(torch.randn(512, g.cfg.z_dim), update_w_avg=0.0)
    return g


def make_bundle(generator, seed: int = 0, encoder=None, model: str = "tiny") -> ControlsBundle:
    """A hand-made bundle: random orthonormal directions and SeFa vectors, random prototypes and start points."""
    d = generator.cfg.w_dim
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    basis = q.T
    return ControlsBundle(
        model=model, w_dim=d, generator_sha256="", rep=HITS,
        directions={"brightness": basis[0], "rate": basis[1], "impact": basis[2]},
        direction_scales={"brightness": 0.5, "rate": 0.25, "impact": 0.1},
        sefa_vectors=basis[3:13].contiguous(), sefa_eigenvalues=torch.linspace(10, 1, 10),
        sefa_scales=torch.full((10,), 0.2),
        prototypes={"Hits": torch.randn(d, generator=g), "Scratches": torch.randn(d, generator=g)},
        start_points={"Hit - Wood": torch.randn(d, generator=g), "Scratch - Carpet": torch.randn(d, generator=g)},
        encoder=encoder)


@pytest.fixture(scope="module")
def gen():
    return tiny_generator()


@pytest.fixture(scope="module")
def bundle(gen):
    return make_bundle(gen)


def state(**values) -> ControlState:
    s, _ = DEFAULT.with_values({k.replace("__", "/"): v for k, v in values.items()})
    return s


# --- prototypes, directions, transfer ---------------------------------------------------------------------------

def test_prototype_keeps_the_sets_common_axis_only():
    w_mean = torch.zeros(8)
    axis = torch.zeros(8)
    axis[2] = 1.0
    g = torch.Generator().manual_seed(0)
    # Every example is 3 along axis 2 (plus a little noise elsewhere): the prototype is ~3 * axis.
    ws = 3.0 * axis + 0.05 * torch.randn(40, 8, generator=g)
    p = D.prototype(ws, w_mean)
    assert abs(float(p[2]) - 3.0) < 0.05 and float(p.abs().sum() - p[2].abs()) < 0.1
    # The mean offset is projected: an offset spread evenly in +-x around a common y keeps only y.
    ws = torch.zeros(20, 8)
    ws[:, 1] = 2.0
    ws[::2, 0], ws[1::2, 0] = 0.3, -0.3
    p = D.prototype(ws + 1.0, torch.ones(8))
    assert torch.allclose(p - 1.0, torch.tensor([0, 2.0, 0, 0, 0, 0, 0, 0]), atol=1e-5)
    with pytest.raises(ValueError, match="latents"):
        D.prototype(torch.zeros(0, 8), w_mean)


def test_direction_is_unit_and_points_from_b_to_a():
    g = torch.Generator().manual_seed(1)
    a = torch.tensor([2.0, 0, 0, 0]) + 0.1 * torch.randn(20, 4, generator=g)
    b = torch.tensor([-1.0, 0, 0, 0]) + 0.1 * torch.randn(20, 4, generator=g)
    r = D.direction(a, b, torch.zeros(4))
    assert abs(float(r["unit"].norm()) - 1) < 1e-6 and float(r["unit"][0]) > 0.99
    assert abs(r["norm"] - 3.0) < 0.1
    sep = D.separation(a, b, r["unit"])
    assert sep["auc"] == 1.0 and sep["effect"] > 5
    assert D.separation(b, a, r["unit"])["auc"] == 0.0
    with pytest.raises(ValueError, match="same prototype"):
        D.direction(a, a.clone(), torch.zeros(4))


def test_conditional_directions_are_orthogonal_to_the_others_and_keep_their_own_part():
    s = 2 ** -0.5
    units = {"a": torch.tensor([1.0, 0, 0, 0]), "b": torch.tensor([s, s, 0, 0]), "c": torch.tensor([0, 0, 0, 1.0])}
    out = D.conditional(units)
    assert torch.allclose(out["a"], torch.tensor([1.0, -1.0, 0, 0]) * s, atol=1e-6)   # a loses b's part
    assert torch.allclose(out["b"], torch.tensor([0, 1.0, 0, 0]), atol=1e-6)         # b loses a's part
    assert torch.allclose(out["c"], units["c"])                                       # already alone
    for name, unit in out.items():
        assert abs(float(unit.norm()) - 1) < 1e-6
        assert all(abs(float(unit @ units[o])) < 1e-6 for o in units if o != name)
    with pytest.raises(ValueError, match="'a' lies within the span of the others"):
        D.conditional({"a": units["a"], "b": units["a"] * 1.0, "c": units["c"]})


def test_transfer_replaces_only_the_coordinate_along_the_direction():
    g = torch.Generator().manual_seed(2)
    unit = torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0)
    w, ref = torch.randn(16, generator=g), torch.randn(16, generator=g)
    out = D.transfer(w, ref, unit)
    assert torch.allclose(out @ unit, ref @ unit, atol=1e-5)
    rest = lambda v: v - (v @ unit) * unit  # noqa: E731
    assert torch.allclose(rest(out), rest(w), atol=1e-5)
    half = D.transfer(w, ref, unit, amount=0.5)
    assert torch.allclose(half @ unit, (w @ unit + ref @ unit) / 2, atol=1e-5)
    assert torch.allclose(D.transfer(w, ref, unit, amount=0.0), w, atol=1e-6)
    # A reference far outside the limits moves the coordinate only to the nearest limit.
    low, high = float(w @ unit) - 0.1, float(w @ unit) + 0.1
    far = D.transfer(w, w + 50 * unit, unit, limits=(low, high))
    assert abs(float(far @ unit) - high) < 1e-5 and torch.allclose(rest(far), rest(w), atol=1e-5)


# --- SeFa --------------------------------------------------------------------------------------------------------

def test_sefa_vectors_orthonormal_sorted_and_eigenvectors(gen):
    vectors, values = sefa(gen, 10)
    assert vectors.shape == (10, gen.cfg.w_dim) and D.orthonormal(vectors, 1e-5)
    assert bool((values[:-1] >= values[1:]).all())
    a = torch.cat([x.double() for x in gen.style_affines()])
    a = a / a.norm(dim=1, keepdim=True)
    m = a.T @ a
    for v, lam in zip(vectors.double(), values.double()):
        assert torch.allclose(m @ v, lam * v, atol=1e-4 * float(values[0]))
    # Nothing else in w space moves the styles more than the first vector.
    top = float((a @ vectors[0].double()).norm())
    rand = torch.nn.functional.normalize(torch.randn(50, gen.cfg.w_dim, dtype=torch.float64), dim=1)
    assert float((a @ rand.T).norm(dim=0).max()) <= top + 1e-9
    again, _ = sefa(gen, 10)
    assert torch.equal(again, vectors)          # deterministic, sign included
    with pytest.raises(ValueError, match="k must be"):
        sefa(gen, gen.cfg.w_dim + 1)


# --- the query reference -----------------------------------------------------------------------------------------

def test_query_reference_follows_the_controls():
    s = state(query__density=5, query__width=0.05, query__band_lf=3000.0, query__band_hf=6000.0, seed=4)
    params = reference_params(s, HITS)
    assert len(params.onsets) == 5 and params.lengths == [0.05] * 5
    assert params.trail_lf == 3000.0 and params.trail_hf == 6000.0
    a, b = reference_audio(s, HITS), reference_audio(s, HITS)
    assert a.shape == (HITS.n_samples,) and np.array_equal(a, b) and np.isfinite(a).all()
    # Reversed band edges, a band at Nyquist and fades summing past 1 are made renderable, not refused.
    odd = state(query__band_lf=8000.0, query__band_hf=100.0, query__fade_in=1.0, query__fade_out=1.0)
    p = reference_params(odd, HITS)
    assert 20 <= p.trail_lf < p.trail_hf <= 7900 and p.fade_in_fraction + p.damping_fraction <= 1 + 1e-9
    assert np.isfinite(reference_audio(odd, HITS)).all()
    burst = reference_params(state(query__burst=True, query__density=4, query__width=0.1), HITS)
    assert max(np.diff(burst.onsets)) < 0.05          # bunched: gaps of 10-35 % of the width


# --- state -> W+ --------------------------------------------------------------------------------------------------

def test_state_to_w_shape_and_determinism(gen, bundle):
    s = state(brightness=1.5, sefa__2=-2.0, prototype="Hits", seed=11)
    w1, w2 = state_to_w(s, gen, bundle), state_to_w(s, gen, bundle)
    assert w1.shape == (1, gen.num_ws, gen.cfg.w_dim) and w1.dtype == torch.float32
    assert torch.equal(w1, w2)
    assert torch.equal(w1[0, 0], w1[0, -1])                           # the same w on every style layer
    # A fresh generator object with the same weights gives the same latent (nothing cached by identity).
    assert torch.equal(state_to_w(s, tiny_generator(), make_bundle(tiny_generator())), w1)
    assert not torch.equal(state_to_w(state(seed=12), gen, bundle), state_to_w(state(seed=11), gen, bundle))


def test_seed_latents_are_looked_up_only_while_the_mapping_is_unchanged():
    """A slider storm maps its seed once (stylesynth.controls.latent._SeedLatents); the latent looked up has the
    bits of a computed one, belongs to its caller, and a change of the mapping's weights or tracked mean is seen."""
    from stylesynth.controls import latent as L

    g = tiny_generator(3)
    b = make_bundle(g)
    s = state(seed=21, truncation=0.6)
    first = state_to_w(s, g, b)
    assert torch.equal(state_to_w(s, g, b), first)
    base = L.base_latent(s, g, b)
    assert torch.equal(base, L._truncated_seed_latent(g, 21, 0.6))
    L.base_latent(s, g, b).mul_(0)                                 # the caller's own: the next one is intact
    assert torch.equal(state_to_w(s, g, b), first)
    with torch.no_grad():
        next(g.mapping.parameters()).mul_(1.5)                     # in place: the tensor's version moves
    changed = L.base_latent(s, g, b)
    assert not torch.equal(changed, base) and torch.equal(changed, L._truncated_seed_latent(g, 21, 0.6))
    with torch.no_grad():
        g.w_avg.add_(1.0)                                          # the tracked mean (truncation's centre)
    moved = L.base_latent(s, g, b)
    assert not torch.equal(moved, changed) and torch.equal(moved, L._truncated_seed_latent(g, 21, 0.6))
    for seed in range(L._SeedLatents.SIZE + 3):                   # bounded per generator
        L.base_latent(state(seed=seed), g, b)
    assert len(L._seed_latents._cache[g]) == L._SeedLatents.SIZE


def test_seed_latent_is_gaussian_z_mapped_and_truncated(gen, bundle):
    z = z_from_seed(5, gen.cfg.z_dim)
    assert torch.equal(z, z_from_seed(5, gen.cfg.z_dim)) and z.shape == (1, gen.cfg.z_dim)
    zs = torch.cat([z_from_seed(k, 64) for k in range(200)])
    assert abs(float(zs.mean())) < 0.05 and abs(float(zs.std()) - 1) < 0.05 and float(zs.min()) < -2.5
    w_raw = gen.map(z)[0]
    for psi in (1.0, 0.5, 0.0):
        w = state_to_w(state(seed=5, truncation=psi), gen, bundle)[0, 0]
        assert torch.allclose(w, gen.w_avg + psi * (w_raw - gen.w_avg), atol=1e-6)


def test_each_ingredient_moves_w_as_documented(gen, bundle):
    base = state_to_w(state(seed=3), gen, bundle)[0, 0]
    for name in ("brightness", "rate", "impact"):
        moved = state_to_w(state(seed=3, **{name: -4.0}), gen, bundle)[0, 0]
        assert torch.allclose(moved - base, -4.0 * bundle.direction_scales[name] * bundle.directions[name],
                              atol=1e-5)
    moved = state_to_w(state(seed=3, sefa__7=2.5), gen, bundle)[0, 0]
    assert torch.allclose(moved - base, 2.5 * 0.2 * bundle.sefa_vectors[6], atol=1e-5)
    # Start point replaces the seed latent (truncation does not touch it).
    start = state_to_w(state(seed=3, start="Hit - Wood", truncation=0.1), gen, bundle)[0, 0]
    assert torch.equal(start, bundle.start_points["Hit - Wood"])
    # Prototype pull, then edits at full size.
    p = bundle.prototypes["Scratches"]
    pulled = state_to_w(state(seed=3, prototype="Scratches", strength=0.7), gen, bundle)[0, 0]
    assert torch.allclose(pulled, 0.3 * base + 0.7 * p, atol=1e-5)
    both = state_to_w(state(seed=3, prototype="Scratches", strength=0.7, rate=2.0), gen, bundle)[0, 0]
    assert torch.allclose(both - pulled, 2.0 * 0.25 * bundle.directions["rate"], atol=1e-5)
    full = state_to_w(state(seed=3, prototype="Scratches", strength=1.0), gen, bundle)[0, 0]
    assert torch.allclose(full, p, atol=1e-6)


@pytest.mark.parametrize("field,value,match", [
    ("brightness", math.nan, "brightness refuses nan"),
    ("rate", math.inf, "rate refuses inf"),
    ("sefa_3", -math.inf, "sefa/3 refuses -inf"),
    ("truncation", math.nan, "truncation refuses nan"),
    ("strength", math.inf, "strength refuses inf"),
    ("impact", 7.5, r"impact 7.5 is outside \[-5, 5\]"),
    ("truncation", 1.5, r"truncation 1.5 is outside \[0, 1\]"),
    ("seed", -1, r"seed -1 is outside"),
    ("prototype", "Dogs", "prototype 'Dogs' is not one of model 'tiny'.s: none, Hits, Scratches"),
    ("start", "Hit - Glass", "start point 'Hit - Glass' is not one of model 'tiny'.s: '' \\(seed\\), 'Hit - Wood'"),
])
def test_bad_values_refused_with_precise_messages(gen, bundle, field, value, match):
    # Built directly (not through with_value), as a buggy caller could: state_to_w checks again.
    bad = ControlState(**{field: value})
    with pytest.raises(ControlError, match=match):
        state_to_w(bad, gen, bundle)


def test_query_values_checked_only_when_the_query_runs(gen, bundle):
    bad = ControlState(query_width=math.nan)
    state_to_w(bad, gen, bundle)                          # the query is off: its values are not used
    with pytest.raises(ControlError, match="query/width refuses nan"):
        state_to_w(ControlState(query_width=math.nan, query_run=True), gen, bundle)


def test_missing_directions_and_encoder_refused(gen):
    b = make_bundle(gen)
    del b.directions["impact"], b.direction_scales["impact"]
    b.sefa_vectors, b.sefa_eigenvalues, b.sefa_scales = b.sefa_vectors[:4], b.sefa_eigenvalues[:4], b.sefa_scales[:4]
    state_to_w(state(brightness=1.0, sefa__4=1.0), gen, b)
    with pytest.raises(ControlError, match="model 'tiny' has no impact direction .it has: brightness, rate."):
        state_to_w(state(impact=0.5), gen, b)
    with pytest.raises(ControlError, match="has 4 SeFa directions; sefa/5 must be 0"):
        state_to_w(state(sefa__5=1.0), gen, b)
    with pytest.raises(ControlsError, match="needs one"):
        state_to_w(state(query__run=True), gen, b)


def test_bundle_for_another_latent_size_refused(gen):
    other = Generator(tiny_config().__class__(**{**tiny_config().to_json(), "w_dim": 8, "z_dim": 8}))
    with pytest.raises(ControlsError, match="w_dim 16, the generator 8"):
        state_to_w(DEFAULT, other, make_bundle(gen))


def test_every_slider_in_the_params_table_is_used():
    semantic = [n for n, p in P.PARAMS.items() if p.group == "semantic"]
    assert semantic == ["brightness", "rate", "impact"]
    assert P.SEFA_DIMENSIONS == 10


# --- recipes -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["hits", "env"])
def test_every_recipe_source_draws_matching_clips(model):
    from stylesynth.controls import recipes as R
    recipe = R.recipe_for(model)
    assert [d.name for d in recipe.directions] == (["brightness", "rate", "impact"] if model == "hits"
                                                   else ["brightness", "rate"])
    sources = [s for d in recipe.directions for s in d.pole_a + d.pole_b]
    sources += list(recipe.prototypes.values()) + [sp.source for sp in recipe.start_points]
    for source in sources:
        clips = R.draw(source, 2, seed=1, rep=recipe.rep)
        assert len(clips) == 2, source.describe()
        for audio, label in clips:
            assert audio.shape == (recipe.rep.n_samples,) and np.isfinite(audio).all()
            assert source.where is None or source.where(label), source.describe()
    assert len({sp.name for sp in recipe.start_points}) == len(recipe.start_points)


def test_recipe_choice_and_refusals():
    from stylesynth.controls import recipes as R
    from stylesynth.spectrogram import ENV, Representation
    assert R.recipe_for("some/path", ENV).model == "env" and R.recipe_for("x", HITS).model == "hits"
    with pytest.raises(ValueError, match="no control recipe for model 'x'"):
        R.recipe_for("x", Representation(hop=64))
    never = R.Source("class", "Hits", lambda label: False, "impossible")
    with pytest.raises(ValueError, match=r"only 0 of 6 clips from class:Hits \(impossible\) matched; need 2"):
        R.draw(never, 2, seed=0, rep=HITS, max_tries=3)


def test_ranked_source_keeps_the_top_or_bottom_of_its_own_class():
    from stylesynth.controls import recipes as R
    from stylesynth.spectrogram import ENV
    high = R.draw(R.Source("class", "Rain", rank_by="rate_hz", highest=True), 3, seed=2, rep=ENV)
    low = R.draw(R.Source("class", "Rain", rank_by="rate_hz", highest=False), 3, seed=2, rep=ENV)
    pool = R.draw(R.Source("class", "Rain"), 9, seed=2, rep=ENV)
    rates = sorted(label["rate_hz"] for _, label in pool)
    assert sorted(label["rate_hz"] for _, label in high) == rates[-3:]
    assert sorted(label["rate_hz"] for _, label in low) == rates[:3]


def test_env_poles_hold_the_same_classes_in_the_same_numbers():
    from stylesynth.controls import recipes as R
    for d in R.ENV_RECIPE.directions:
        a = R.draw_pole(d.pole_a, 18, seed=4, rep=R.ENV_RECIPE.rep)
        b = R.draw_pole(d.pole_b, 18, seed=4, rep=R.ENV_RECIPE.rep)
        count = lambda clips: sorted(label["class"] for _, label in clips)  # noqa: E731
        assert count(a) == count(b), d.name
        key = "centroid_hz" if d.name == "brightness" else "n_events"
        assert np.mean([label[key] for _, label in a]) > np.mean([label[key] for _, label in b]), d.name
