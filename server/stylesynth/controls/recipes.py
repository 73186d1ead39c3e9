"""Which procedural examples define each model's directions, prototypes and named start points.

A *source* is a way to draw labelled clips: an example set of :mod:`stylesynth.procedural.example_sets`
(``"set:brightness/tinny"``), a training class (``"class:Modal"``), or any clip of the model's mix
(``"mix:env"``), optionally filtered by a predicate on the label (e.g. modal clips whose material is metal).

* impacts model ``hits``: brightness = tinny - muffled, rate = 5 and 7 events - 1 and 2 events, impact = hits -
  scratches (the research system's three); prototypes Hits, Scratches, Modal, Water; start points from chosen
  clips ("Hit - Metal", "Scratch - Carpet", "Modal - Bar", "Water - Fill", ...).
* environmental model ``env``: brightness = the brightest vs the darkest third of each class (by label centroid),
  rate (shown as density) = the busiest vs the sparsest third of each class whose event count varies; one
  prototype per class; start points "Rain - Heavy", "Dog Bark 1", ... Both poles hold the same classes in the same
  numbers: poles drawn from the whole mix (bright = centroid above 2.5 kHz) were mostly Rain and Keyboard against
  Wind and Vehicle, so their direction moved the class as much as the brightness.

Each direction names the feature (:data:`stylesynth.features.FEATURE_NAMES`) its slider should move, which the
checks and ``benchmarks/controls.py`` measure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from stylesynth import procedural
from stylesynth.procedural import example_sets
from stylesynth.spectrogram import ENV, HITS, Representation

Predicate = Callable[[dict], bool]


@dataclass(frozen=True)
class Source:
    """A way to draw labelled clips: ``kind`` "set", "class" or "mix", ``name`` of the set/class/model, and an
    optional label predicate (``where``) with a short description of it (``note``).

    ``rank_by`` (a label key) keeps, of ``pool`` times as many clips as asked, those with the highest values
    (``highest``) or the lowest: "the brightest fifth of the Rain clips" without a fixed threshold per class.
    """

    kind: str
    name: str
    where: Predicate | None = None
    note: str = ""
    rank_by: str | None = None
    highest: bool = True
    pool: int = 3

    def describe(self) -> str:
        notes = [self.note] if self.note else []
        if self.rank_by:
            notes.append(f"{'highest' if self.highest else 'lowest'} {self.rank_by} of {self.pool}x")
        return f"{self.kind}:{self.name}" + (f" ({'; '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class DirectionRecipe:
    """Slider ``name`` (a state parameter: brightness, rate, impact) from pole A (``+``) to pole B (``-``)."""

    name: str
    pole_a: tuple[Source, ...]
    pole_b: tuple[Source, ...]
    label_a: str
    label_b: str
    feature: str            # the measurable attribute the slider should move up
    description: str = ""


@dataclass(frozen=True)
class StartRecipe:
    """A named start point: the ``pick``-th best inverted clip (best = regenerated closest) among ``candidates``
    clips drawn from ``source``."""

    name: str
    source: Source
    pick: int = 0


@dataclass(frozen=True)
class Recipe:
    model: str
    rep: Representation
    directions: tuple[DirectionRecipe, ...]
    prototypes: dict[str, Source] = field(default_factory=dict)
    start_points: tuple[StartRecipe, ...] = ()
    #: Least clips per direction pole (and per held-out pole): a pole spread over nine classes needs several of
    #: each, or the within-class differences drown in which clips were drawn.
    min_pole_examples: int = 0
    min_check_examples: int = 0


def _top(label: dict) -> float:
    return float(label["band"][1])


HITS_RECIPE = Recipe(
    model="hits", rep=HITS,
    directions=(
        DirectionRecipe("brightness", (Source("set", "brightness/tinny"),), (Source("set", "brightness/muffled"),),
                        "tinny", "muffled", "centroid_hz", "bands reaching 7.5-7.9 kHz vs stopping at 0.5-1.75 kHz"),
        DirectionRecipe("rate", (Source("set", "rate/5"), Source("set", "rate/7")),
                        (Source("set", "rate/1"), Source("set", "rate/2")),
                        "5-7 events", "1-2 events", "onsets_per_s", "events per 2 s"),
        DirectionRecipe("impact", (Source("set", "impact/hits"),), (Source("set", "impact/scratches"),),
                        "hits", "scratches", "event_length_s",
                        "short sharp hits (0.05-0.4 s) vs long scratches (0.15-1.2 s); + is sharper"),
    ),
    prototypes={"Hits": Source("class", "Hits"), "Scratches": Source("class", "Scratches"),
                "Modal": Source("class", "Modal"), "Water": Source("class", "Water")},
    start_points=(
        StartRecipe("Hit - Metal", Source("class", "Modal", lambda l: l["material"] == "metal", "metal")),
        StartRecipe("Hit - Wood", Source("class", "Modal", lambda l: l["material"] == "wood", "wood")),
        StartRecipe("Hit - Glass", Source("class", "Modal", lambda l: l["material"] == "glass", "glass")),
        StartRecipe("Modal - Bar", Source("class", "Modal", lambda l: l["shape"] == "bar", "bar")),
        StartRecipe("Modal - Plate", Source("class", "Modal", lambda l: l["shape"] == "plate", "plate")),
        StartRecipe("Hit - Sharp", Source("class", "Hits", lambda l: _top(l) > 6000, "band above 6 kHz")),
        StartRecipe("Knock - Muffled", Source("class", "Hits", lambda l: _top(l) < 1500, "band below 1.5 kHz")),
        StartRecipe("Scratch - Carpet", Source("class", "Scratches", lambda l: _top(l) < 1500,
                                               "band below 1.5 kHz")),
        StartRecipe("Scratch - Gravel", Source("class", "Scratches",
                                               lambda l: _top(l) > 5000 and l["n_events"] >= 3,
                                               "band above 5 kHz, 3+ events")),
        StartRecipe("Water - Fill", Source("class", "Water", lambda l: l["rate_hz"] < 12, "under 12 drips/s")),
        StartRecipe("Water - Fast Fill", Source("class", "Water", lambda l: l["rate_hz"] > 20, "over 20 drips/s")),
    ),
)

def _within_class(classes, key: str, highest: bool) -> tuple[Source, ...]:
    """One source per class, each keeping the top (or bottom) fifth of its class by label ``key``."""
    return tuple(Source("class", c, rank_by=key, highest=highest, pool=5) for c in classes)


#: Environmental classes whose number of events varies from clip to clip (Wind has none, a vehicle pass-by one).
ENV_COUNTED = tuple(c for c in procedural.environment.CLASSES if c not in ("Wind", "MovingMotorVehicle"))

ENV_RECIPE = Recipe(
    model="env", rep=ENV,
    directions=(
        DirectionRecipe("brightness", _within_class(procedural.environment.CLASSES, "centroid_hz", True),
                        _within_class(procedural.environment.CLASSES, "centroid_hz", False),
                        "bright", "dark", "centroid_hz", "spectral centroid, within each class"),
        DirectionRecipe("rate", _within_class(ENV_COUNTED, "n_events", True),
                        _within_class(ENV_COUNTED, "n_events", False),
                        "busy", "sparse", "onsets_per_s", "density: events per second, within each class"),
    ),
    prototypes={name: Source("class", name) for name in procedural.environment.CLASSES},
    start_points=(
        StartRecipe("Rain - Heavy", Source("class", "Rain", lambda l: l["rate_hz"] > 300, "over 300 drops/s")),
        StartRecipe("Rain - Light", Source("class", "Rain", lambda l: l["rate_hz"] < 80, "under 80 drops/s")),
        StartRecipe("Dog Bark 1", Source("class", "DogBark"), pick=0),
        StartRecipe("Dog Bark 2", Source("class", "DogBark"), pick=1),
        StartRecipe("Footstep", Source("class", "Footstep")),
        StartRecipe("Gunshot", Source("class", "Gunshot")),
        StartRecipe("Keyboard", Source("class", "Keyboard")),
        StartRecipe("Vehicle - Pass-by", Source("class", "MovingMotorVehicle")),
        StartRecipe("Wind", Source("class", "Wind")),
        StartRecipe("Stream", Source("class", "WaterStream")),
        StartRecipe("Sneeze/Cough", Source("class", "SneezeCough")),
    ),
    # 10 (3 held out) per class and pole: with 2-3 per class the held-out AUC was chance (0.50) on the 46-kimg
    # model, with 5 per class 0.66/0.59, with 10 per class 0.65/0.62.
    min_pole_examples=10 * len(procedural.environment.CLASSES),
    min_check_examples=3 * len(procedural.environment.CLASSES),
)

RECIPES: dict[str, Recipe] = {"hits": HITS_RECIPE, "env": ENV_RECIPE}


def recipe_for(model: str, rep: Representation | None = None) -> Recipe:
    """The recipe of a model name; for another name (a checkpoint path, a test model), the recipe whose clip
    length matches ``rep`` (hop 128: ``hits``, hop 256: ``env``)."""
    if model in RECIPES:
        return RECIPES[model]
    for recipe in RECIPES.values():
        if rep is not None and recipe.rep.hop == rep.hop:
            return recipe
    raise ValueError(f"no control recipe for model {model!r} (known: {', '.join(RECIPES)}; or a checkpoint whose "
                     f"representation has hop {HITS.hop} or {ENV.hop})")


def draw(source: Source, n: int, seed: int, rep: Representation, max_tries: int = 200
         ) -> list[tuple[np.ndarray, dict]]:
    """``n`` labelled clips from ``source``, reproducibly from ``seed``.

    Example sets use their own seeding; classes and mixes draw clip ``i`` from ``default_rng([seed, i])`` and keep
    those whose label satisfies ``where``. Raises :class:`ValueError` if fewer than ``n`` of ``n * max_tries``
    draws match (a predicate that is too strict for its generator).
    """
    n = int(n)
    if source.rank_by is not None:
        plain = Source(source.kind, source.name, source.where, source.note)
        clips = draw(plain, n * source.pool, seed, rep, max_tries)
        # Stable sort on the label value: ties keep their draw order, so the choice is reproducible.
        order = sorted(range(len(clips)), key=lambda i: clips[i][1][source.rank_by], reverse=source.highest)
        return [clips[i] for i in sorted(order[:n])]
    if source.kind == "set":
        clips = example_sets.example_set(source.name, n, seed=seed, n_samples=rep.n_samples)
        return [c for c in clips if source.where is None or source.where(c[1])][:n]
    out: list[tuple[np.ndarray, dict]] = []
    for i in range(n * max_tries):
        rng = np.random.default_rng([int(seed), i])
        if source.kind == "class":
            clip = procedural.render_class(source.name, rng, rep.n_samples)
        elif source.kind == "mix":
            clip = procedural.make_clip(source.name, rng)
        else:
            raise ValueError(f"unknown source kind {source.kind!r}")
        if source.where is None or source.where(clip[1]):
            out.append(clip)
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} of {n * max_tries} clips from {source.describe()} matched; need {n}")


def draw_pole(sources: tuple[Source, ...], n: int, seed: int, rep: Representation) -> list[tuple[np.ndarray, dict]]:
    """``n`` clips for one pole, split as evenly as possible over its sources."""
    k = len(sources)
    counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
    clips = []
    for i, (source, count) in enumerate(zip(sources, counts)):
        if count:
            clips += draw(source, count, seed * 7919 + i, rep)
    return clips
