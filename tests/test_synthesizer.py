"""The synthesizer's generator pass: the traced graph it runs for every render gives the eager module's output bit
for bit, follows weight changes, and is used only where it was made for (one W+ latent on the CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stylesynth.model import Generator, cpu_config
from stylesynth.spectrogram import HITS
from stylesynth.state import DEFAULT
from stylesynth.synthesizer import Synthesizer

pytestmark = pytest.mark.timeout(120)


def eager(synth: Synthesizer, w: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return synth.generator.synthesize(w, noise="const")[0].numpy()


def test_the_shipped_model_renders_through_the_traced_pass_bit_for_bit():
    synth = Synthesizer.load("hits")
    states = [DEFAULT.with_values({"model": "hits", "brightness": b, "seed": s, "sefa/2": -b})[0]
              for b, s in ((0.0, 0), (2.5, 0), (-4.0, 7), (1.25, 123))]
    for state in states:
        w = synth.latent(state)
        np.testing.assert_array_equal(synth.spectrogram(w), eager(synth, w))
    assert isinstance(synth._traced[1], torch.jit.ScriptFunction)   # the traced graph ran, not the fallback


def test_a_reloaded_model_reuses_its_trace():
    """TorchScript never frees a traced graph: a model reloaded (a /stylesynth/model message) must not trace again,
    or every reload leaks the weights' worth of memory (measured: ~16 MB a time)."""
    state = DEFAULT.with_value("seed", 3)[0]
    first = Synthesizer.load("hits")
    first.render(state)
    second = Synthesizer.load("hits")
    assert np.array_equal(second.render(state).audio, first.render(state).audio)
    assert second._traced[1] is first._traced[1]


def test_a_weight_change_makes_a_new_trace():
    torch.manual_seed(0)
    cfg = cpu_config(16)
    cfg.z_dim = cfg.w_dim = 32
    synth = Synthesizer(Generator(cfg).eval(), {"name": "small", "representation_obj": HITS})
    w = torch.randn(1, synth.generator.num_ws, cfg.w_dim)
    before = synth.spectrogram(w)
    np.testing.assert_array_equal(before, eager(synth, w))
    first = synth._traced[1]
    with torch.no_grad():
        synth.generator.synthesis.layers[3].conv.weight.mul_(1.5)   # in place, as an optimizer or EMA would
    after = synth.spectrogram(w)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, eager(synth, w))
    assert synth._traced[1] is not first


def test_other_shapes_run_eagerly():
    torch.manual_seed(0)
    cfg = cpu_config(16)
    cfg.z_dim = cfg.w_dim = 32
    synth = Synthesizer(Generator(cfg).eval(), {"name": "small", "representation_obj": HITS})
    w = torch.randn(1, cfg.w_dim)                                    # a plain w, not W+
    np.testing.assert_array_equal(synth.spectrogram(w), eager(synth, w))
    assert synth._traced is None
