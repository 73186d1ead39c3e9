"""StyleGAN2 building blocks: shapes for both families, determinism, and that a training step moves the weights."""
from __future__ import annotations

import pytest
import torch

from stylesynth import train
from stylesynth.model import Discriminator, Generator, ModulatedConv, paper_config, tiny_config


def test_cpu_family_shapes_and_styles():
    cfg = train.default_architecture("hits")
    G, D = Generator(cfg), Discriminator(cfg)
    assert cfg.resolutions == [16, 32, 64, 128, 256] and cfg.input == "mapped"
    assert cfg.num_ws == 10                       # one per convolution (9) + the last skip output
    z = torch.randn(2, cfg.z_dim)
    with torch.no_grad():
        spec = G(z)
        assert spec.shape == (2, 256, 256)
        assert D(spec).shape == (2,)
    convs = [m for m in G.synthesis.modules() if isinstance(m, ModulatedConv)]
    assert len(convs) == 9 + 5 + 1                # 9 styled convolutions + 5 skip outputs + the detail output
    assert len(G.style_affines()) == len(convs)


def test_paper_family_builds_generates_and_takes_a_step():
    cfg = paper_config()
    assert (cfg.z_dim, cfg.w_dim, cfg.num_ws) == (128, 128, 14)   # as StyleGAN2 at 256 px: 2 log2(256) - 2
    assert cfg.width(4) == 512 and cfg.width(256) == 64
    G, D, G_ema = Generator(cfg), Discriminator(cfg), Generator(cfg)
    with torch.no_grad():
        assert G(torch.randn(1, 128)).shape == (1, 256, 256)
    tc = train.TrainConfig(batch=1, r1_interval=1, style_mixing=0.0)   # batch 1: the 2-D family is ~2 s/clip here
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
    before = D.from_input.weight.detach().clone()
    out = train.train_step(0, torch.rand(1, 256, 256) * 2 - 1, G, D, G_ema, opt_g, opt_d, tc,
                           torch.Generator().manual_seed(0), nimg=0)
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values())
    assert out["r1"] > 0                           # R1 ran on this step
    assert not torch.equal(before, D.from_input.weight)


def test_same_latent_same_spectrogram_bit_for_bit():
    G = Generator(tiny_config()).eval()
    with torch.no_grad():                         # noise strengths start at 0: give the noise a say
        for name, p in G.named_parameters():
            if name.endswith("strength"):
                p.fill_(0.1)
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = G(z, truncation=0.7), G(z, truncation=0.7)
        c = G(z, noise="random")
    assert torch.equal(a, b)                      # fixed noise buffers at inference
    assert not torch.equal(G(z, noise="const"), c)  # training noise is fresh


def test_truncation_pulls_towards_w_avg():
    G = Generator(tiny_config())
    G.w_avg.copy_(torch.randn(16))
    z = torch.randn(4, 16)
    w1, w0 = G.map(z, truncation=1.0), G.map(z, truncation=0.0)
    assert torch.allclose(w0, G.w_avg.expand_as(w0))
    assert torch.allclose(G.map(z, truncation=0.5), (w1 + w0) / 2, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_minibatch_stddev_any_batch(batch):
    D = Discriminator(tiny_config())
    assert D(torch.randn(batch, 64, 64)).shape == (batch,)


def test_mapped_input_lets_w_shape_the_first_layer():
    cfg = tiny_config()
    cfg.input = "mapped"
    G = Generator(cfg).eval()
    ws = G.map(torch.randn(2, cfg.z_dim)).unsqueeze(1).expand(-1, cfg.num_ws, -1)
    with torch.no_grad():
        with_map = G.synthesis(ws, "const")
        G.synthesis.input_map.weight.zero_()     # the same network with the w -> input path cut
        without_map = G.synthesis(ws, "const")
    assert not torch.allclose(with_map, without_map)
    assert Generator(tiny_config()).synthesis.input_map is None   # StyleGAN2's constant input stays the default


def test_band_outputs_are_smooth_across_frequency_until_detail_is_learnt():
    cfg = tiny_config()
    cfg.out_bands = 16                            # 64 rows drawn as 16 interpolated bands
    G = Generator(cfg).eval()
    with torch.no_grad():
        spec = G(torch.randn(2, cfg.z_dim), noise="none")
        rough = (spec[:, 2:] - 2 * spec[:, 1:-1] + spec[:, :-2]).abs().mean()     # second difference over rows
        G.synthesis.detail_gain.fill_(1.0)
        rough_with_detail = (lambda s: (s[:, 2:] - 2 * s[:, 1:-1] + s[:, :-2]).abs().mean())(
            G(torch.randn(2, cfg.z_dim), noise="none"))
    assert rough < 0.5 * rough_with_detail


def test_inference_reuses_demodulation_weights_bit_for_bit_until_the_weights_change():
    """Without autograd the scaled weights and their kernel sums are kept between passes: the output must equal
    the one computed afresh (autograd on), and follow the weights as soon as they change in place."""
    G = Generator(tiny_config()).eval()
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        kept = G(z)
        assert torch.equal(G(z), kept)
    assert torch.equal(G(z).detach(), kept)                  # autograd on: nothing kept, same numbers
    conv = next(m for m in G.synthesis.modules() if isinstance(m, ModulatedConv))
    with torch.no_grad():
        conv.weight.mul_(1.5)                                # an in-place update, as an optimizer step makes
        changed = G(z)
    assert not torch.equal(changed, kept)
    assert torch.equal(G(z).detach(), changed)
    G.load_state_dict(Generator(tiny_config()).state_dict())  # loading copies in place too
    with torch.no_grad():
        loaded = G(z)
    assert not torch.equal(loaded, changed) and torch.equal(G(z).detach(), loaded)
