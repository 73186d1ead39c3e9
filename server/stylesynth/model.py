"""StyleGAN2 for log-magnitude spectrograms, readable top to bottom as the paper (Karras et al., CVPR 2020).

One set of building blocks, two families of the same architecture:

* ``paper``: 2-D convolutions over a 256 x 256 spectrogram image, widths 512 down to 64, z = w = 128, the research
  system's generator. It builds, generates and trains, but at about 0.5 clips/s on a 2-core CPU it is for users with
  a GPU.
* ``cpu``: 1-D convolutions over time with the 256 frequency rows as channels. Everything else is StyleGAN2:
  mapping network, W+ styles, modulated and demodulated convolutions, per-layer noise, skip outputs, minibatch
  standard deviation, EMA. Because a frequency-as-channels generator has no per-bin stochastic input (and noisy
  textures are mostly per-bin speckle), each skip output also gets a learned per-bin noise (``bin_noise``).

Noise is drawn fresh while training and read from fixed buffers at inference (``noise="const"``), so a given latent
always gives the same sound, bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    """Architecture of one generator/discriminator pair. Stored in ``model.json`` beside the weights."""

    family: str = "cpu"              # "cpu" (1-D over time) or "paper" (2-D)
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    rows: int = 256                  # frequency rows of the spectrogram
    frames: int = 256                # time frames
    base_frames: int = 4             # resolution of the synthesis input
    input: str = "const"             # "const": StyleGAN2's learned constant; "mapped": an affine map of w (below)
    channels: dict = field(default_factory=dict)   # resolution (frames, as str) -> width
    d_channels: dict = field(default_factory=dict)
    bin_noise: bool = True           # learned per-frequency-bin noise on the skip outputs (cpu family)
    out_bands: int = 0               # cpu family: skip outputs draw this many bands, interpolated to rows (0: rows)
    mbstd_group: int = 4

    @property
    def conv_dim(self) -> int:
        return 2 if self.family == "paper" else 1

    @property
    def resolutions(self) -> list[int]:
        r, out = self.base_frames, []
        while r <= self.frames:
            out.append(r)
            r *= 2
        return out

    @property
    def num_ws(self) -> int:
        """One style per convolution plus one for the last skip output: 2 * log2(frames / base) + 2."""
        return 2 * (len(self.resolutions) - 1) + 2

    def width(self, res: int) -> int:
        return int(self.channels[str(res)])

    def d_width(self, res: int) -> int:
        return int(self.d_channels[str(res)])

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def paper_config() -> ModelConfig:
    """The research system's generator: 2-D, 256 x 256, widths 512 down to 64 (as StyleGAN2-ADA at 256 px)."""
    widths = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}
    return ModelConfig(family="paper", channels={str(k): v for k, v in widths.items()},
                       d_channels={str(k): v for k, v in widths.items()}, bin_noise=False)


def cpu_config(width: int = 256, d_width: int | None = None, base_frames: int = 4,
               input: str = "const") -> ModelConfig:
    """The CPU-trainable family: 1-D over time, ``width`` channels at every resolution."""
    d_width = d_width or width
    cfg = ModelConfig(family="cpu", base_frames=base_frames, input=input)
    cfg.channels = {str(r): width for r in cfg.resolutions}
    cfg.d_channels = {str(r): d_width for r in cfg.resolutions}
    return cfg


def tiny_config() -> ModelConfig:
    """A few-second config for tests: same code paths, small widths, 64 frames and 64 rows."""
    res = [4, 8, 16, 32, 64]
    return ModelConfig(family="cpu", z_dim=16, w_dim=16, mapping_layers=2, rows=64, frames=64,
                       channels={str(r): 32 for r in res}, d_channels={str(r): 32 for r in res})


# ---------------------------------------------------------------------------------------------------------------
# Equalized learning rate layers (weights stored at unit variance, scaled at run time: section 4.1 of ProGAN)
# ---------------------------------------------------------------------------------------------------------------

class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x):
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.activate else out


class EqualConv(nn.Module):
    """Plain convolution with equalized learning rate (discriminator and skip paths)."""

    def __init__(self, dim: int, in_ch: int, out_ch: int, kernel: int, stride: int = 1, bias: bool = True,
                 activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, *([kernel] * dim)))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1 / math.sqrt(in_ch * kernel ** dim)
        self.conv = F.conv1d if dim == 1 else F.conv2d
        self.stride, self.padding, self.activate = stride, kernel // 2, activate

    def forward(self, x):
        out = self.conv(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.activate else out


# ---------------------------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """z ~ N(0, I) -> w: pixel-norm, then ``layers`` fully connected layers at 0.01 learning rate."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activate=True)
                                   for i in range(layers)])

    def forward(self, z):
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.net(z)


class ModulatedConv(nn.Module):
    """A convolution whose input channels are scaled by a per-sample style, and whose outputs are demodulated
    (divided by their expected standard deviation) instead of normalised with AdaIN (StyleGAN2 section 2.2).

    Written as "modulate the activations, run a shared convolution, scale the outputs": the same result as the
    paper's grouped convolution with per-sample weights, and cheaper on a CPU.
    """

    def __init__(self, dim: int, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, *([kernel] * dim)))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)   # style starts at 1: an identity modulation
        self.scale = 1 / math.sqrt(in_ch * kernel ** dim)
        self.conv = F.conv1d if dim == 1 else F.conv2d
        self.dim, self.padding, self.demodulate, self.upsample = dim, kernel // 2, demodulate, upsample
        self._frozen = None   # (key, scaled weight, w_sq) while the weight does not change: see _weights

    def forward(self, x, w):
        style = self.affine(w)                                             # (B, in)
        weight, w_sq = self._weights()
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="linear" if self.dim == 1 else "bilinear",
                              align_corners=False)
        shape = (x.shape[0], -1) + (1,) * self.dim
        out = self.conv(x * style.view(shape), weight, padding=self.padding)
        if self.demodulate:
            # sigma_o = sqrt(sum_i,k (w_oik s_i)^2): a (B, in) x (in, out) product, no per-sample weights needed.
            demod = torch.rsqrt(style.square() @ w_sq.t() + 1e-8)          # (B, out)
            out = out * demod.view(shape)
        return out

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The scaled weight and its squares summed over the kernel, (out, in), for demodulation.

        Both depend on the weight alone, yet cost a third of a CPU generator pass (the kernel sum is a slow strided
        reduction), so they are kept while the weight stays the same: its version counter (bumped by every
        in-place change: optimizer steps, EMA updates, loading) and storage are the key. Recomputed, never kept,
        when autograd must see them (training the weight). Same operations either way: bit-identical outputs."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            weight = self.weight * self.scale
            return weight, weight.square().flatten(2).sum(2)
        key = (self.weight._version, self.weight.data_ptr(), self.weight.dtype, self.weight.device)
        if self._frozen is None or self._frozen[0] != key:
            with torch.no_grad():
                weight = self.weight * self.scale
                self._frozen = (key, weight, weight.square().flatten(2).sum(2))
        return self._frozen[1], self._frozen[2]


class NoiseInjection(nn.Module):
    """Per-frame (1-D) or per-pixel (2-D) noise with a learned strength. ``noise="const"`` reads a fixed buffer."""

    def __init__(self, shape: tuple[int, ...], seed: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("const", torch.randn((1, 1) + shape, generator=g))

    def forward(self, x, noise: str):
        if noise == "none":
            return x
        n = self.const if noise == "const" else torch.randn((x.shape[0], 1) + x.shape[2:], device=x.device,
                                                            dtype=x.dtype)
        return x + self.strength * n


class StyledLayer(nn.Module):
    def __init__(self, dim, in_ch, out_ch, w_dim, res_shape, seed, upsample=False):
        super().__init__()
        self.conv = ModulatedConv(dim, in_ch, out_ch, 3, w_dim, upsample=upsample)
        self.noise = NoiseInjection(res_shape, seed)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x, w, noise):
        x = self.noise(self.conv(x, w), noise)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return F.leaky_relu(x + self.bias.view(shape), 0.2) * math.sqrt(2)


class ToOutput(nn.Module):
    """The skip branch: a modulated 1x1 convolution to the output (spectrogram rows, or one image channel),
    not demodulated (StyleGAN2's tRGB)."""

    def __init__(self, dim, in_ch, out_ch, w_dim):
        super().__init__()
        self.conv = ModulatedConv(dim, in_ch, out_ch, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x, w):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return self.conv(x, w) + self.bias.view(shape)


class BinNoise(nn.Module):
    """Per-frequency-bin speckle for the 1-D family: noise (rows x frames) times a learned per-row strength,
    itself scaled per sample by the style (so the latent decides how noisy the texture is)."""

    def __init__(self, rows: int, frames: int, w_dim: int, seed: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(rows))
        self.affine = EqualLinear(w_dim, 1, bias_init=1.0)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("const", torch.randn(1, rows, frames, generator=g))

    def forward(self, img, w, noise: str):
        if noise == "none":
            return img
        n = self.const if noise == "const" else torch.randn_like(img)
        return img + self.affine(w).view(-1, 1, 1) * self.strength.view(1, -1, 1) * n


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: ModelConfig, noise_seed: int = 1234):
        super().__init__()
        self.cfg = cfg
        dim, res = cfg.conv_dim, cfg.resolutions
        out_ch = cfg.rows if dim == 1 else 1       # 1-D: rows are channels; 2-D: a one-channel image
        # In the 1-D family a skip output's rows start as independent random projections: horizontal stripes that
        # training must first iron out. Drawing smooth band envelopes (out_bands < rows, interpolated along
        # frequency) gives spectra the smoothness that 2-D upsampling gives images; a full-resolution "detail"
        # output, starting at zero gain, adds narrow partials once they pay off.
        self.bands = cfg.out_bands if dim == 1 and 0 < cfg.out_bands < cfg.rows else 0
        if self.bands:
            out_ch = self.bands

        def shape(r):   # noise shape at frame resolution r (2-D: square, rows scale with frames)
            return (r,) if dim == 1 else (r * cfg.rows // cfg.frames, r)

        self.const = nn.Parameter(torch.randn((1, cfg.width(res[0])) + shape(res[0])))
        # With a constant input, where things happen in time is fixed by the constant and only slowly learnt; the
        # events of a texture fall anywhere. "mapped" adds an affine map of w to the constant, so the latent can
        # place coarse events itself (at base_frames resolution: 16 frames = 128 ms at hop 128).
        self.input_map = (EqualLinear(cfg.w_dim, cfg.width(res[0]) * int(np.prod(shape(res[0]))))
                          if cfg.input == "mapped" else None)
        self.layers = nn.ModuleList()
        self.outputs = nn.ModuleList()
        seed = noise_seed
        self.layers.append(StyledLayer(dim, cfg.width(res[0]), cfg.width(res[0]), cfg.w_dim, shape(res[0]), seed))
        self.outputs.append(ToOutput(dim, cfg.width(res[0]), out_ch, cfg.w_dim))
        for prev, r in zip(res[:-1], res[1:]):
            self.layers.append(StyledLayer(dim, cfg.width(prev), cfg.width(r), cfg.w_dim, shape(r), seed + r,
                                           upsample=True))
            self.layers.append(StyledLayer(dim, cfg.width(r), cfg.width(r), cfg.w_dim, shape(r), seed + r + 1))
            self.outputs.append(ToOutput(dim, cfg.width(r), out_ch, cfg.w_dim))
        self.bin_noise = BinNoise(cfg.rows, cfg.frames, cfg.w_dim, seed + 7) if cfg.bin_noise and dim == 1 else None
        if self.bands:
            self.detail = ToOutput(dim, cfg.width(res[-1]), cfg.rows, cfg.w_dim)
            self.detail_gain = nn.Parameter(torch.zeros(()))

    def forward(self, ws, noise: str = "random"):
        """ws: (B, num_ws, w_dim) -> spectrogram (B, rows, frames), roughly in [-1, 1]."""
        dim = self.cfg.conv_dim
        mode = "linear" if dim == 1 else "bilinear"
        x = self.const.expand((ws.shape[0],) + self.const.shape[1:])
        if self.input_map is not None:
            x = x + self.input_map(ws[:, 0]).view(x.shape)
        x = self.layers[0](x, ws[:, 0], noise)
        img = self.outputs[0](x, ws[:, 1])
        i = 1
        for k in range(1, len(self.outputs)):
            x = self.layers[2 * k - 1](x, ws[:, i], noise)
            x = self.layers[2 * k](x, ws[:, i + 1], noise)
            img = F.interpolate(img, scale_factor=2, mode=mode, align_corners=False) + self.outputs[k](x, ws[:, i + 2])
            i += 2
        if dim == 2:
            img = img[:, 0]
        if self.bands:
            img = F.interpolate(img.transpose(1, 2), size=self.cfg.rows, mode="linear", align_corners=False)
            img = img.transpose(1, 2) + self.detail_gain * self.detail(x, ws[:, -1])
        if self.bin_noise is not None:
            img = self.bin_noise(img, ws[:, -1], noise)
        return img


class Generator(nn.Module):
    """z -> w (mapping) -> W+ (broadcast, truncation, style mixing) -> spectrogram (synthesis)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers)
        self.synthesis = SynthesisNetwork(cfg)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    @property
    def num_ws(self) -> int:
        return self.cfg.num_ws

    def map(self, z, truncation: float = 1.0, update_w_avg: float | None = None):
        """z (B, z_dim) -> w (B, w_dim), pulled towards the tracked mean by ``truncation`` (psi; 1 = none)."""
        w = self.mapping(z).float()          # float32 even under autocast: w_avg and edits live in float32
        if update_w_avg is not None:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, update_w_avg))
        if truncation != 1.0:
            w = self.w_avg.lerp(w, truncation)
        return w

    def synthesize(self, w, noise: str = "const"):
        """w (B, w_dim) or W+ (B, num_ws, w_dim) -> spectrogram (B, rows, frames)."""
        if w.dim() == 2:
            w = w.unsqueeze(1).expand(-1, self.num_ws, -1)
        return self.synthesis(w, noise=noise)

    def forward(self, z, truncation: float = 1.0, noise: str = "const"):
        return self.synthesize(self.map(z, truncation), noise=noise)

    def style_affines(self) -> list[torch.Tensor]:
        """The style-affine weight matrices (in_ch x w_dim) of every modulated convolution, for SeFa."""
        return [m.affine.weight * m.affine.scale for m in self.synthesis.modules() if isinstance(m, ModulatedConv)]


# ---------------------------------------------------------------------------------------------------------------
# Discriminator
# ---------------------------------------------------------------------------------------------------------------

class DiscriminatorBlock(nn.Module):
    """Residual block: two convolutions and a downsample, plus a 1x1 skip, summed and scaled by 1/sqrt(2)."""

    def __init__(self, dim, in_ch, out_ch):
        super().__init__()
        self.conv1 = EqualConv(dim, in_ch, in_ch, 3)
        self.conv2 = EqualConv(dim, in_ch, out_ch, 3)
        self.skip = EqualConv(dim, in_ch, out_ch, 1, bias=False, activate=False)
        self.pool = F.avg_pool1d if dim == 1 else F.avg_pool2d

    def forward(self, x):
        y = self.pool(self.conv2(self.conv1(x)), 2)
        return (y + self.skip(self.pool(x, 2))) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.conv_dim
        res = cfg.resolutions[::-1]                   # 256 ... 4
        in_ch = cfg.rows if dim == 1 else 1
        self.from_input = EqualConv(dim, in_ch, cfg.d_width(res[0]), 1)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(dim, cfg.d_width(r), cfg.d_width(n))
                                      for r, n in zip(res[:-1], res[1:])])
        last = cfg.d_width(res[-1])
        self.final_conv = EqualConv(dim, last + 1, last, 3)
        spatial = res[-1] if dim == 1 else res[-1] * (res[-1] * cfg.rows // cfg.frames)
        self.final_linear = nn.Sequential(EqualLinear(last * spatial, last, activate=True), EqualLinear(last, 1))

    def minibatch_stddev(self, x):
        """Append the standard deviation across a group of samples as one extra channel (ProGAN), so the
        discriminator can see a lack of variety."""
        b = x.shape[0]
        g = min(self.cfg.mbstd_group, b)
        while b % g:
            g -= 1
        y = x.view((g, -1) + x.shape[1:])
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().flatten(1).mean(1)   # (b/g,)
        std = std.repeat(g).view((b, 1) + (1,) * (x.dim() - 2)).expand((b, 1) + x.shape[2:])
        return torch.cat([x, std], dim=1)

    def forward(self, spec):
        x = spec if self.cfg.conv_dim == 1 else spec.unsqueeze(1)
        x = self.blocks(self.from_input(x))
        x = self.final_conv(self.minibatch_stddev(x))
        return self.final_linear(x.flatten(1)).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
