"""Semantic control of a trained generator: from a :class:`~stylesynth.state.ControlState` to the latent W+.

The research system's example-based framework (Kamath et al., TASLP 2024), rebuilt for this project:

* :mod:`~stylesynth.controls.encoder` -- a small CNN that inverts a spectrogram to the generator's ``w``
  (trained on generator samples, shipped beside the generator as ``encoder.safetensors``);
* :mod:`~stylesynth.controls.recipes` -- per model, which procedural examples define each direction, prototype and
  named start point;
* :mod:`~stylesynth.controls.directions` -- prototypes (mean offset projected on the set's first singular vector),
  directions (prototype(A) - prototype(B)), separation checks and selective attribute transfer;
* :mod:`~stylesynth.controls.sefa` -- closed-form factorisation of the style affines (unsupervised directions);
* :mod:`~stylesynth.controls.query` -- the soft-prior query: a Gaver reference built from the ``query/*`` controls,
  inverted by the encoder;
* :mod:`~stylesynth.controls.bundle` -- ``controls.safetensors`` + ``controls.json`` per checkpoint, validated
  against the generator they were built for;
* :mod:`~stylesynth.controls.build` -- ``stylesynth controls build``: everything above, for one checkpoint;
* :mod:`~stylesynth.controls.latent` -- :func:`state_to_w`, the pure, deterministic state -> W+ resolution the
  synthesizer calls for every clip.
"""
from __future__ import annotations

from stylesynth.controls.bundle import ControlsBundle, ControlsError, load_bundle, load_controls, save_bundle
from stylesynth.controls.latent import state_to_w, z_from_seed

__all__ = ["ControlsBundle", "ControlsError", "load_bundle", "load_controls", "save_bundle", "state_to_w",
           "z_from_seed"]
