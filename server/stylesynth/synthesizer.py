"""The render chain for one model: control state -> latent w -> spectrogram -> waveform.

:class:`Synthesizer` ties a trained generator (:mod:`stylesynth.checkpoint`) to its semantic controls
(:mod:`stylesynth.controls`, when the checkpoint ships them) and to phase reconstruction and loudness
(:mod:`stylesynth.waveform`). The server's engine, ``stylesynth render`` and the benchmarks all render through it,
so a state sounds the same wherever it is played.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from stylesynth import checkpoint
from stylesynth.state import ControlState

log = logging.getLogger(__name__)
TRACE_WARMUP = 3   # calls after which TorchScript's profiling executor has specialised a traced graph


@dataclass
class Clip:
    """One rendered clip: ``audio`` float32 mono at ``sample_rate``, loudness-normalised; ``spec`` the generator's
    (256, frames) output in [-1, 1]; ``timings`` in ms per stage."""

    audio: np.ndarray
    spec: np.ndarray
    sample_rate: int
    timings: dict = field(default_factory=dict)


class Synthesizer:
    """A loaded model ready to render control states.

    Parameters
    ----------
    generator : stylesynth.model.Generator
        In eval mode, on ``device``.
    meta : dict
        The checkpoint's ``model.json`` (as returned by :func:`stylesynth.checkpoint.load_generator`).
    controls : stylesynth.controls.bundle.ControlBundle or None
        Directions, prototypes, start points and SeFa vectors; without them only ``seed`` and ``truncation`` act.
    device : str
        Where the generator runs. PGHI and loudness always run on the CPU.
    refine : int
        Fast Griffin-Lim iterations after PGHI (0: PGHI alone, the fastest).
    lufs : float
        Loudness target of every clip.
    """

    def __init__(self, generator, meta: dict, controls=None, device: str = "cpu", refine: int = 0,
                 lufs: float = -14.0):
        self.generator = generator
        self.meta = meta
        self.controls = controls
        self.device = device
        self.refine = refine
        self.lufs = lufs
        self.name = str(meta.get("name", "model"))
        self.rep = meta["representation_obj"]
        self.sample_rate = self.rep.sample_rate
        self._traced = None   # (weights key, one-call synthesis of a single W+ latent): see _synthesis

    @classmethod
    def load(cls, model: str = "hits", device: str = "cpu", **kwargs) -> "Synthesizer":
        """Load a shipped model by name (``hits``, ``env``) or a checkpoint folder; :class:`checkpoint.ModelError`
        with a precise message if it is missing, corrupt or its controls do not match it."""
        generator, meta = checkpoint.load_generator(model, device)
        rep = meta["representation_obj"]
        if (generator.cfg.rows, generator.cfg.frames) != (rep.rows, rep.frames):
            raise checkpoint.ModelError(f"{meta['path']}: the generator makes {generator.cfg.rows} x "
                                        f"{generator.cfg.frames} images, not a {rep.rows} x {rep.frames} clip "
                                        "spectrogram: it cannot be rendered to audio")
        controls = None
        try:
            from stylesynth.controls import bundle
        except ImportError:       # controls package not installed in this build
            bundle = None
        if bundle is not None:
            try:
                controls = bundle.load_controls(meta["path"], generator)
            except (ValueError, OSError) as exc:
                raise checkpoint.ModelError(str(exc)) from None
        return cls(generator, meta, controls, device, **kwargs)

    @property
    def prototypes(self) -> list[str]:
        return list(self.controls.prototypes) if self.controls is not None else []

    @property
    def start_points(self) -> list[str]:
        return list(self.controls.start_points) if self.controls is not None else []

    def latent(self, state: ControlState) -> torch.Tensor:
        """The W+ latent (1, num_ws, w_dim) for ``state``: deterministic, on the generator's device."""
        if self.controls is not None:
            from stylesynth.controls.latent import state_to_w
            return state_to_w(state, self.generator, self.controls)
        moved = [n for n in ("brightness", "rate", "impact") if getattr(state, n)] + \
            [f"sefa/{k}" for k, v in enumerate(state.sefa, 1) if v]
        if state.start or state.prototype not in ("", "none") or state.query_run:
            moved.append("start/prototype/query")
        if moved:
            raise ValueError(f"model {self.name!r} ships no semantic controls, so {', '.join(moved)} cannot act "
                             "(build them with 'stylesynth controls build')")
        return seed_latent(self.generator, state.seed, state.truncation)

    @torch.no_grad()
    def spectrogram(self, w: torch.Tensor) -> np.ndarray:
        """W+ or w -> the generator's spectrogram (rows, frames) in [-1, 1], fixed noise."""
        w = w.to(self.device)
        return self._synthesis(w)(w)[0].float().cpu().numpy()

    def _synthesis(self, w: torch.Tensor):
        """The synthesis to run for ``w``: for one W+ latent on the CPU (every render), the generator traced into
        one TorchScript graph; else, or if tracing fails or differs by a bit, the eager module.

        Why: the server runs this pass on one thread while PGHI, the OSC thread and the audio callback run on
        others. Eagerly it is ~300 small torch calls with Python between them, and each call must take the GIL
        back; beside a busy thread every hand-back can wait a switch interval. The traced graph runs as one call
        that holds no GIL, and skips the Python between the ops (about a fifth of the pass alone). Same kernels in
        the same order: the output is checked bit for bit against the eager pass before it is used. The trace
        keeps the weights it saw, so it is made again if any parameter or buffer changes (version or storage)."""
        g = self.generator

        def eager(x):
            return g.synthesize(x, noise="const")

        if self.device != "cpu" or tuple(w.shape) != (1, g.num_ws, g.cfg.w_dim):
            return eager
        key = tuple((t._version, t.data_ptr()) for t in (*g.parameters(), *g.buffers()))
        if self._traced is None or self._traced[0] != key:
            self._traced = (key, _traced_for(eager, g, w) or eager)
        return self._traced[1]

    def render(self, state: ControlState) -> Clip:
        """Render ``state`` to audio. Same state, same samples, bit for bit."""
        return self.finish(self.generate(state))

    # The two stages below are what the server's engine runs on two threads, one clip apart (generator of the
    # newest state while the previous spectrogram is turned into sound); :meth:`render` chains them, so a state
    # sounds the same through either path.

    def generate(self, state: ControlState) -> "Draft":
        """Stage 1: ``state`` -> latent -> the generator's spectrogram. Touches the model (one thread at a time)."""
        t0 = time.perf_counter()
        w = self.latent(state)
        t1 = time.perf_counter()
        spec = self.spectrogram(w)
        t2 = time.perf_counter()
        return Draft(spec=spec, timings={"latent": (t1 - t0) * 1e3, "generator": (t2 - t1) * 1e3})

    def finish(self, draft: "Draft") -> Clip:
        """Stage 2: a spectrogram -> PGHI phase, inverse transform, loudness. Reads no model state: safe to run
        while :meth:`generate` works on the next state."""
        from stylesynth import loudness, waveform

        t2 = time.perf_counter()
        audio = waveform.spectrogram_to_audio(draft.spec, self.rep, refine=self.refine, lufs=None)
        t3 = time.perf_counter()
        audio = loudness.normalize(audio, self.sample_rate, target_lufs=self.lufs)
        t4 = time.perf_counter()
        timings = dict(draft.timings, pghi=(t3 - t2) * 1e3, loudness=(t4 - t3) * 1e3)
        timings["total"] = sum(timings.values())
        return Clip(audio=audio, spec=draft.spec, sample_rate=self.sample_rate, timings=timings)


#: One trace per distinct set of weights for the life of the process: TorchScript never frees a traced graph (the
#: weights it captured included; tracing a module that holds the generator instead of a closure did not change
#: that), so tracing again on every model reload grew the server ~16 MB a time (the soak
#: benchmark's fuzzed /stylesynth/model messages: +70 MB). Keyed by a digest of the weights; a reused trace is
#: checked bit for bit against the new generator's eager pass before it is used.
_TRACES: dict[str, object] = {}


def _weights_digest(generator) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in (*generator.named_parameters(), *generator.named_buffers()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _traced_for(eager, generator, w: torch.Tensor):
    """The traced pass for ``generator``'s weights: made once per process (:data:`_TRACES`), or None."""
    digest = _weights_digest(generator)
    traced = _TRACES.get(digest)
    if traced is not None and _same_as_eager(traced, eager, w):
        return traced
    traced = _trace_synthesis(eager, w)
    if traced is not None:
        _TRACES[digest] = traced
    return traced


def _probes(w: torch.Tensor) -> list[torch.Tensor]:
    """The latents a trace is checked on: ``w`` and a second one near it."""
    return [w, w + 0.5 * torch.randn(w.shape, generator=torch.Generator().manual_seed(0)).to(w)]


def _same_as_eager(traced, eager, w: torch.Tensor) -> bool:
    with torch.no_grad():
        return all(torch.equal(traced(x), eager(x)) for x in _probes(w))


def _trace_synthesis(eager, w: torch.Tensor):
    """``eager`` (one W+ latent -> spectrogram) traced to TorchScript and warmed up, or None if that fails or
    does not give the eager output bit for bit (on ``w`` and on a second latent)."""
    with torch.no_grad():
        eager(w)                                # fills the modulated convolutions' weight caches before tracing
        try:
            with warnings.catch_warnings():
                # torch.jit is deprecated for torch.compile/torch.export, which need a C++ toolchain at run time
                # (inductor); this stays correct where tracing goes away: the eager pass is the fallback.
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(eager, w, check_trace=False)
                for _ in range(TRACE_WARMUP):
                    traced(w)
                same = _same_as_eager(traced, eager, w)
        except Exception as exc:  # any failure to trace: the eager pass is always right
            log.warning("generator not traced (%s: %s): running it eagerly", type(exc).__name__, exc)
            return None
    if not same:
        log.warning("generator not traced: the traced pass differs from the eager one; running it eagerly")
        return None
    return traced


@dataclass
class Draft:
    """What :meth:`Synthesizer.generate` hands to :meth:`Synthesizer.finish`: the generator's (256, frames)
    spectrogram in [-1, 1] and the stage's ``timings`` in ms."""

    spec: np.ndarray
    timings: dict = field(default_factory=dict)


def seed_latent(generator, seed: int, truncation: float = 1.0) -> torch.Tensor:
    """The W+ latent of a seed: z ~ N(0, I) from ``torch.Generator().manual_seed(seed)``, mapped, truncated."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    z = torch.randn((1, generator.cfg.z_dim), generator=torch.Generator().manual_seed(int(seed)))
    device = generator.w_avg.device
    with torch.no_grad():
        w = generator.map(z.to(device), truncation=float(truncation))
    return w.unsqueeze(1).expand(-1, generator.num_ws, -1)
