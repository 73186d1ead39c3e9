"""Procedural sounds: labelled synthetic clips for training the models and for the semantic-control example sets.

``make_clip(model, rng)`` draws one class from the model's mix and renders it at the model's clip length
(``spectrogram.HITS`` 2.048 s or ``spectrogram.ENV`` 4.096 s, 16 kHz), returning ``(audio, label)``; the label is a
JSON-serialisable dict with ``"class"``, every parameter, and measurable summaries (``onsets``, ``n_events``,
``event_lengths``, ``band``, ``centroid_hz``, ``rms_db``).

Class mix (:data:`MIXES`, recorded in every ``dataset.json``):

* impacts model ``"hits"`` (2.048 s): Gaver hits 40 %, Gaver scratches 40 %, modal bars/plates 10 %, water filling
  10 %. Gaver events dominate because the semantic-control example sets are Gaver sounds: the model must cover
  them; the modal and water variants add tonal, ringing material the band-passed noise lacks.
* environmental model ``"env"`` (4.096 s): the nine classes of :mod:`stylesynth.procedural.environment`, equal
  shares.

Modules: :mod:`~stylesynth.procedural.gaver` (impacts/scratches), :mod:`~stylesynth.procedural.modal`,
:mod:`~stylesynth.procedural.water`, :mod:`~stylesynth.procedural.environment`,
:mod:`~stylesynth.procedural.example_sets` (the semantic controls' example sets and the soft-prior query reference).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from stylesynth.procedural import environment, gaver, modal, water
from stylesynth.spectrogram import ENV, HITS, Representation

#: Version of the generators: bump when a change alters the clips a seed gives (recorded in ``dataset.json``).
GENERATOR_VERSION = "2"

Renderer = Callable[[np.random.Generator, int], tuple[np.ndarray, dict]]


def _hits(rng: np.random.Generator, n_samples: int) -> tuple[np.ndarray, dict]:
    return gaver.make(rng, "hit", n_samples)


def _scratches(rng: np.random.Generator, n_samples: int) -> tuple[np.ndarray, dict]:
    return gaver.make(rng, "scratch", n_samples)


#: Every class by name -> renderer ``(rng, n_samples) -> (audio, label without "class")``.
CLASSES: dict[str, Renderer] = {
    "Hits": _hits, "Scratches": _scratches, "Modal": modal.make, "Water": water.make, **environment.CLASSES,
}

#: Share of each class in each model's training data.
MIXES: dict[str, dict[str, float]] = {
    "hits": {"Hits": 0.4, "Scratches": 0.4, "Modal": 0.1, "Water": 0.1},
    "env": {name: round(1.0 / len(environment.CLASSES), 6) for name in environment.CLASSES},
}

#: Representation (and so clip length) of each model.
REPRESENTATIONS: dict[str, Representation] = {"hits": HITS, "env": ENV}


def render_class(name: str, rng: np.random.Generator, n_samples: int) -> tuple[np.ndarray, dict]:
    """Render one clip of the named class: ``(audio float32 of n_samples, label)``.

    Parameters
    ----------
    name : str
        A key of :data:`CLASSES`, e.g. ``"Hits"`` or ``"Rain"``.
    rng : numpy.random.Generator
        Source of every random choice: the same state gives the same clip.
    n_samples : int
        Clip length at 16 kHz.
    """
    if name not in CLASSES:
        raise ValueError(f"unknown class {name!r}; known: {', '.join(CLASSES)}")
    audio, label = CLASSES[name](rng, n_samples)
    return audio, {"class": name, **label}


def make_clip(model: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One training clip for ``model`` ("hits" or "env"): the class is drawn from :data:`MIXES`.

    Parameters
    ----------
    model : {"hits", "env"}
        Which model the clip is for; fixes the clip length and the class mix.
    rng : numpy.random.Generator
        Source of every random choice: the same state gives the same clip.

    Returns
    -------
    audio : np.ndarray, float32, shape (rep.n_samples,)
    label : dict
        ``"class"``, every parameter, and measurable summaries; JSON-serialisable.
    """
    if model not in MIXES:
        raise ValueError(f"model must be one of {sorted(MIXES)}, got {model!r}")
    names = list(MIXES[model])
    shares = np.array([MIXES[model][k] for k in names], dtype=np.float64)
    name = names[int(rng.choice(len(names), p=shares / shares.sum()))]
    return render_class(name, rng, REPRESENTATIONS[model].n_samples)
