"""``stylesynth controls build``: the semantic controls of one checkpoint, from procedural examples.

:func:`compute_controls` does the work in memory (tests use it with a tiny generator): invert the recipe's example
sets with the encoder, make prototypes and unit directions, check each direction on held-out examples, choose the
start points, factorise the generator (SeFa), and scale every slider by the spread of the generator's latents
along it. :func:`build` wraps it for a checkpoint folder: it trains (or reuses) the encoder, measures it, and writes
``encoder.safetensors``, ``controls.safetensors`` and ``controls.json`` into the folder.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from stylesynth.controls import directions as D
from stylesynth.controls import recipes as R
from stylesynth.controls.bundle import (ENCODER_FILE, SLIDER_SPAN_SIGMAS, ControlsBundle, file_sha256,
                                        save_bundle)
from stylesynth.controls.encoder import (EncoderTraining, clips_to_specs, invert, load_encoder, refine,
                                         sample_latents, save_encoder, spectral_error_db, synthesize,
                                         train_encoder)
from stylesynth.controls.sefa import sefa
from stylesynth.params import SEFA_DIMENSIONS, SLIDER

Progress = Callable[[str, int, int], None]


@dataclass
class BuildSettings:
    """Settings of a controls build.

    Parameters
    ----------
    examples : int
        Clips per direction pole and per prototype class (the research system: more than 10; default 20).
    check_examples : int
        Held-out clips per pole for the direction checks.
    candidates : int
        Clips drawn per start point; the best-regenerated one is kept.
    refine_steps : int
        Latent-optimisation steps after the encoder for every inverted example (0: encoder only). The encoder
        alone regenerated Gaver examples at 4.4 dB median error and its rate direction did not raise the onset
        count of generated images (Spearman -0.14); 100 steps: 2.7 dB and +0.29, ~1 min more per build.
    span_sigmas : float
        A slider at +-5 moves the latent by this many standard deviations of the data along its direction.
    scale_latents : int
        Generator latents sampled to measure the mean ``w`` and the spreads.
    eval_samples : int
        Held-out generator samples for the encoder's figures.
    seed : int
        Seed of every draw (example clips, latents).
    encoder : EncoderTraining
        Encoder training settings (used when there is no matching encoder to reuse).
    retrain_encoder : bool
        Train a new encoder even if the folder has one for this generator.
    conditional : bool
        Remove from each direction its components along the other directions (InterFaceGAN's conditional
        manipulation), so that e.g. the brightness slider does not also carry the part of the impact axis that
        the brightness examples happened to share.
    """

    examples: int = 20
    check_examples: int = 10
    candidates: int = 6
    refine_steps: int = 100
    span_sigmas: float = SLIDER_SPAN_SIGMAS
    scale_latents: int = 4096
    eval_samples: int = 64
    seed: int = 0
    encoder: EncoderTraining = field(default_factory=EncoderTraining)
    retrain_encoder: bool = False
    conditional: bool = True


def _invert_clips(clips, generator, encoder, rep, refine_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(w (N, w_dim), spectrograms (N, rows, frames)) of labelled clips."""
    specs = clips_to_specs([c[0] for c in clips], rep, generator.cfg.rows, generator.cfg.frames)
    w = invert(encoder, specs)
    if refine_steps:
        w = refine(generator, w, specs, refine_steps)
    return w, specs


def compute_controls(generator, encoder, recipe: R.Recipe, settings: BuildSettings | None = None,
                     rep=None, model: str | None = None, generator_sha256: str = "",
                     progress: Progress | None = None) -> tuple[ControlsBundle, dict]:
    """Directions, prototypes, start points and SeFa of ``generator`` (no file I/O).

    Parameters
    ----------
    generator : stylesynth.model.Generator
        Frozen, eval mode.
    encoder : stylesynth.controls.encoder.Encoder
        Its inversion network.
    recipe : stylesynth.controls.recipes.Recipe
        Which examples define what.
    settings : BuildSettings, optional
    rep : Representation, optional
        The model's representation (default: the recipe's).
    model : str, optional
        Name recorded in the bundle (default: the recipe's model).
    generator_sha256 : str
        sha256 of the generator file, recorded so a later load can refuse another generator.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    bundle : ControlsBundle
        With ``encoder`` attached.
    figures : dict
        Per direction: raw norm, spread, scale and the held-out check; SeFa eigenvalues; start-point errors.
    """
    s = settings or BuildSettings()
    rep = rep or recipe.rep
    report = progress or (lambda *a: None)
    figures: dict = {"directions": {}, "start_points": {}, "prototypes": {}}

    # The generator's own latents: their mean is the prototypes' origin, their spread sets the slider scales.
    data_w = sample_latents(generator, s.scale_latents, s.seed + 11)
    w_mean = data_w.mean(0)
    step_sigmas = s.span_sigmas / SLIDER

    n_pole, n_check = max(s.examples, recipe.min_pole_examples), max(s.check_examples, recipe.min_check_examples)
    n_work = (len(recipe.directions) * 2 * (n_pole + n_check) + len(recipe.prototypes) * s.examples
              + len(recipe.start_points) * s.candidates)
    done = [0]

    def invert_clips(clips):
        w, specs = _invert_clips(clips, generator, encoder, rep, s.refine_steps)
        done[0] += len(clips)
        report("examples", done[0], n_work)
        return w, specs

    raw, poles, gaver_errors = {}, {}, []
    for i, dr in enumerate(recipe.directions):
        seed = s.seed + 100 * i
        wa, sa = invert_clips(R.draw_pole(dr.pole_a, n_pole, seed, rep))
        wb, sb = invert_clips(R.draw_pole(dr.pole_b, n_pole, seed + 1, rep))
        gaver_errors += list(spectral_error_db(generator, torch.cat([wa, wb]), torch.cat([sa, sb]),
                                               rep.db_floor))
        raw[dr.name] = D.direction(wa, wb, w_mean)
        # Held-out examples (other seeds): the direction must put pole A above pole B.
        ha, _ = invert_clips(R.draw_pole(dr.pole_a, n_check, seed + 1000, rep))
        hb, _ = invert_clips(R.draw_pole(dr.pole_b, n_check, seed + 1001, rep))
        poles[dr.name] = (wa, wb, ha, hb)

    units = {name: r["unit"] for name, r in raw.items()}
    if s.conditional and len(units) > 1:
        units = D.conditional(units)
    directions, scales = {}, {}
    for dr in recipe.directions:
        unit, (wa, wb, ha, hb) = units[dr.name], poles[dr.name]
        spread = D.spread(data_w, unit)
        directions[dr.name] = unit
        scales[dr.name] = step_sigmas * spread
        figures["directions"][dr.name] = {
            "plus": dr.label_a, "minus": dr.label_b, "feature": dr.feature, "description": dr.description,
            "pole_a": [src.describe() for src in dr.pole_a], "pole_b": [src.describe() for src in dr.pole_b],
            "raw_norm": round(raw[dr.name]["norm"], 5), "data_spread": round(spread, 5),
            "scale_per_unit": round(scales[dr.name], 5),
            "conditional": s.conditional,
            "cosine_to_example_direction": round(float(unit @ raw[dr.name]["unit"]), 5),
            "train_check": _rounded(D.separation(wa, wb, unit)),
            "heldout_check": _rounded(D.separation(ha, hb, unit)),
            "heldout_check_unconditioned": _rounded(D.separation(ha, hb, raw[dr.name]["unit"])),
        }

    prototypes = {}
    for j, (name, source) in enumerate(recipe.prototypes.items()):
        w, specs = invert_clips(R.draw(source, s.examples, s.seed + 5000 + j, rep))
        prototypes[name] = D.prototype(w, w_mean)
        figures["prototypes"][name] = {"source": source.describe(), "examples": len(w)}

    start_points = {}
    for j, sp in enumerate(recipe.start_points):
        clips = R.draw(sp.source, max(s.candidates, sp.pick + 1), s.seed + 7000 + j, rep)
        w, specs = invert_clips(clips)
        errors = spectral_error_db(generator, w, specs, rep.db_floor)
        order = np.argsort(errors, kind="stable")
        chosen = int(order[sp.pick])
        start_points[sp.name] = w[chosen]
        figures["start_points"][sp.name] = {"source": sp.source.describe(), "candidate": chosen,
                                            "error_db": round(float(errors[chosen]), 3)}

    k = min(SEFA_DIMENSIONS, generator.cfg.w_dim)
    vectors, eigenvalues = sefa(generator, k)
    sefa_scales = torch.tensor([step_sigmas * D.spread(data_w, v) for v in vectors])
    figures["sefa"] = {"eigenvalues": [round(float(e), 4) for e in eigenvalues],
                       "scale_per_unit": [round(float(x), 5) for x in sefa_scales], "exposed_by_default": 4}
    figures["gaver_error_db"] = _summary(gaver_errors)

    info = {"slider": {"range": [-SLIDER, SLIDER], "span_sigmas": s.span_sigmas,
                       "rule": "w' = w + s * scale * unit; scale = span_sigmas / 5 * std of the generator's "
                               "latents along unit"},
            "figures": figures,
            "build": {**{k: v for k, v in asdict(s).items() if k != "encoder"}, "recipe": recipe.model}}
    bundle = ControlsBundle(model=model or recipe.model, w_dim=generator.cfg.w_dim,
                            generator_sha256=generator_sha256, rep=rep, directions=directions,
                            direction_scales=scales, sefa_vectors=vectors, sefa_eigenvalues=eigenvalues,
                            sefa_scales=sefa_scales.float(), prototypes=prototypes, start_points=start_points,
                            info=info, encoder=encoder)
    bundle.validate("built controls")
    return bundle, figures


def encoder_figures(generator, encoder, samples: int, seed: int, db_floor: float) -> dict:
    """How well the encoder inverts held-out generator samples: spectral error of G(E(x)) in dB and the share of
    the latents' variance it recovers (R^2)."""
    w = sample_latents(generator, samples, seed, (0.5, 1.0), w_mean=None)
    specs = synthesize(generator, w)
    w_hat = invert(encoder, specs)
    errors = spectral_error_db(generator, w_hat, specs, db_floor)
    r2 = 1.0 - float((w_hat - w).square().sum() / (w - w.mean(0)).square().sum())
    return {"generator_error_db": _summary(errors), "w_r2": round(r2, 4)}


def build(folder: str | Path, model: str | None = None, settings: BuildSettings | None = None,
          progress: Progress | None = None) -> tuple[ControlsBundle, dict]:
    """Build and write a checkpoint folder's controls (and encoder).

    Parameters
    ----------
    folder : str or Path
        Checkpoint folder (``generator.safetensors`` + ``model.json``); the files are written here.
    model : str, optional
        Recipe name (``hits``, ``env``); by default the folder's name, else chosen by clip length.
    settings : BuildSettings, optional
    progress : callable, optional
        ``progress(stage, done, total)`` with stages ``pool``, ``train``, ``regen``, ``figures``, ``examples``.

    Returns
    -------
    bundle, figures
        As :func:`compute_controls`, figures including the encoder's.
    """
    from stylesynth.checkpoint import GENERATOR_FILE, load_generator, resolve

    s = settings or BuildSettings()
    report = progress or (lambda *a: None)
    folder = resolve(folder)
    generator, meta = load_generator(folder)
    rep = meta["representation_obj"]
    name = model or str(meta.get("name") or folder.name)
    recipe = R.recipe_for(name, rep)
    sha = file_sha256(folder / GENERATOR_FILE)
    t0 = time.perf_counter()

    encoder, encoder_log = None, None
    if (folder / ENCODER_FILE).is_file() and not s.retrain_encoder:
        try:
            old, old_meta = load_encoder(folder / ENCODER_FILE)
            if old_meta.get("generator_sha256") == sha and old.cfg.w_dim == generator.cfg.w_dim:
                encoder, encoder_log = old, dict(old_meta.get("training", {}), reused=True)
        except Exception:       # an unusable old encoder is simply replaced
            encoder = None
    if encoder is None:
        encoder, encoder_log = train_encoder(generator, s.encoder, progress=report)
    report("figures", 0, 1)
    enc_fig = encoder_figures(generator, encoder, s.eval_samples, s.seed + 31, rep.db_floor)
    report("figures", 1, 1)
    bundle, figures = compute_controls(generator, encoder, recipe, s, rep=rep, model=name, generator_sha256=sha,
                                       progress=report)
    enc_fig["gaver_error_db"] = figures.pop("gaver_error_db")
    figures["encoder"] = enc_fig
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    bundle.info["figures"] = figures
    bundle.info["encoder"] = {"training": encoder_log, "refine_steps": s.refine_steps}
    save_encoder(encoder, folder / ENCODER_FILE, {"generator_sha256": sha, "model": name,
                                                  "training": encoder_log, "figures": enc_fig})
    save_bundle(bundle, folder)
    return bundle, figures


def _summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {}
    return {"median": round(float(np.median(v)), 3), "mean": round(float(v.mean()), 3),
            "p90": round(float(np.percentile(v, 90)), 3), "n": int(v.size)}


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) for k, v in d.items()}
