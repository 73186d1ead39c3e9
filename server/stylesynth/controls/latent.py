"""State -> latent: :func:`state_to_w`, the one place a :class:`~stylesynth.state.ControlState` becomes W+.

Order of operations (pure and deterministic: the same state, generator and bundle give the same tensor, bit for
bit):

1. **Base latent.** ``query/run`` on: the encoder's inversion of the query reference
   (:mod:`stylesynth.controls.query`). Else a named ``start`` point: its stored ``w``. Else the seed: Gaussian
   ``z ~ N(0, I)`` drawn from ``seed`` (what the mapping network was trained on; the research system drew uniform
   ``z``), mapped, and truncated towards ``w_avg`` by ``truncation``. Truncation acts on seed latents only: start
   points and queries are already chosen latents (inversions of real examples), and pulling them to the mean
   would blur exactly what made them worth choosing.
2. **Soft prior.** ``prototype`` other than ``none``: ``w <- (1 - strength) w + strength p`` (the paper's 0.3 /
   0.7 at the default strength).
3. **Edits.** ``w += sum_k s_k * scale_k * d_k`` over the semantic sliders (brightness, rate, impact) and the
   SeFa sliders, on every style layer. Edits come last so a slider moves the sound by the same amount whatever the
   prototype pull; ``scale_k`` (from the bundle) makes +-5 span +-2 standard deviations of the generator's own
   latents along ``d_k`` (:data:`stylesynth.controls.bundle.SLIDER_SPAN_SIGMAS`).
4. **W+.** The same ``w`` for all ``num_ws`` style inputs: shape (1, num_ws, w_dim).

Values are checked again here (a ``ControlState`` built directly skips :meth:`~ControlState.with_value`):
non-finite or out-of-range numbers, unknown prototypes and start points, and sliders the model has no direction
for are refused with a :class:`~stylesynth.state.ControlError` whose message says which and why.
"""
from __future__ import annotations

import math
import threading
import weakref

import torch

from stylesynth import params as P
from stylesynth.state import ControlError, field_name

# Parameters state_to_w reads, checked for finiteness and range before use.
_USED = ("brightness", "rate", "impact", *[f"sefa/{k}" for k in range(1, P.SEFA_DIMENSIONS + 1)], "seed",
         "truncation", "strength")
_QUERY = [name for name in P.PARAMS if name.startswith("query/") and name != "query/run"]


def z_from_seed(seed: int, z_dim: int) -> torch.Tensor:
    """The Gaussian latent (1, z_dim) of a seed: ``torch.randn`` from a generator seeded with ``seed`` (the same on
    every machine and run)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(1, int(z_dim), generator=g)


def _check_number(state, name: str) -> float:
    value = getattr(state, field_name(name))
    param = P.PARAMS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ControlError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ControlError(f"{name} refuses {value}: values must be finite numbers")
    if not param.minimum <= value <= param.maximum:
        raise ControlError(f"{name} {value:g} is outside [{param.minimum:g}, {param.maximum:g}]")
    return value


def check_state(state, bundle) -> None:
    """Every value :func:`state_to_w` uses is finite, in range and known to the model, or :class:`ControlError`."""
    for name in _USED:
        _check_number(state, name)
    if state.query_run:
        for name in _QUERY:
            if P.PARAMS[name].is_number:
                _check_number(state, name)
    elif state.start and state.start not in bundle.start_points:
        known = ", ".join(repr(s) for s in bundle.start_points) or "none"
        raise ControlError(f"start point {state.start!r} is not one of model {bundle.model!r}'s: '' (seed), {known}")
    if state.prototype != "none" and state.prototype not in bundle.prototypes:
        raise ControlError(f"prototype {state.prototype!r} is not one of model {bundle.model!r}'s: "
                           f"{', '.join(['none', *bundle.prototypes])}")
    for name in ("brightness", "rate", "impact"):
        if getattr(state, name) != 0 and name not in bundle.directions:
            raise ControlError(f"model {bundle.model!r} has no {name} direction (it has: "
                               f"{', '.join(bundle.directions) or 'none'}); set {name} to 0")
    for k, value in enumerate(state.sefa, start=1):
        if value != 0 and k > len(bundle.sefa_vectors):
            raise ControlError(f"model {bundle.model!r} has {len(bundle.sefa_vectors)} SeFa directions; "
                               f"sefa/{k} must be 0")


def base_latent(state, generator, bundle) -> torch.Tensor:
    """Step 1 of :func:`state_to_w`: the query inversion, a start point, or the truncated seed latent (w_dim,)."""
    device = generator.w_avg.device
    if state.query_run:
        from stylesynth.controls.query import query_latent
        return query_latent(state, bundle).to(device)
    if state.start:
        return bundle.start_points[state.start].to(device, copy=True)
    return _seed_latents.get(generator, int(state.seed), float(state.truncation))


def _truncated_seed_latent(generator, seed: int, truncation: float) -> torch.Tensor:
    w = generator.map(z_from_seed(seed, generator.cfg.z_dim).to(generator.w_avg.device))[0]
    return generator.w_avg + truncation * (w - generator.w_avg)


class _SeedLatents:
    """The last few truncated seed latents of each generator, so a slider storm maps its seed once.

    Why: the server resolves a state on the thread that then runs the generator, and the mapping network is
    ~130 small torch calls that each let the GIL go and must take it back beside the audio callback, the OSC thread
    and the other render stage (the generator pass itself is one traced call). Moving a slider keeps the seed, so
    the seed's latent is looked up instead. An entry holds for the same generator object (weakly: it goes with the
    generator) with the same mapping weights and tracked mean (tensor versions and storage) and the same autocast
    state; anything else computes afresh, so a cached latent has the bits a computed one would."""

    SIZE = 8

    def __init__(self):
        self._lock = threading.Lock()
        self._cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @staticmethod
    def _weights_key(generator) -> tuple:
        tensors = (*generator.mapping.parameters(), *generator.mapping.buffers(), generator.w_avg)
        return (torch.is_autocast_enabled("cpu"),) + tuple((t._version, t.data_ptr(), t.device) for t in tensors)

    def get(self, generator, seed: int, truncation: float) -> torch.Tensor:
        key = (self._weights_key(generator), seed, truncation)
        with self._lock:
            entries = self._cache.get(generator)
            hit = entries.get(key) if entries is not None else None
        if hit is not None:
            return hit.clone()            # callers own what they get, as a computed latent
        w = _truncated_seed_latent(generator, seed, truncation)
        with self._lock:
            entries = self._cache.setdefault(generator, {})
            entries[key] = w.clone()
            while len(entries) > self.SIZE:
                del entries[next(iter(entries))]
        return w


_seed_latents = _SeedLatents()


def state_to_w(state, generator, bundle) -> torch.Tensor:
    """The W+ latent of a control state.

    Parameters
    ----------
    state : stylesynth.state.ControlState
        Sliders, SeFa, start/seed/truncation, prototype/strength and the query controls.
    generator : stylesynth.model.Generator
        The model (its mapping network, ``w_avg`` and ``num_ws``).
    bundle : stylesynth.controls.ControlsBundle
        The model's directions, SeFa vectors, prototypes, start points and encoder.

    Returns
    -------
    torch.Tensor, shape (1, num_ws, w_dim), float32
        On the generator's device, ready for ``generator.synthesize(w, noise="const")``.

    Raises
    ------
    ControlError
        A non-finite or out-of-range value, an unknown prototype or start point, or a slider the model lacks.
    ControlsError
        The bundle does not fit the generator (latent size), or a query without an encoder.
    """
    from stylesynth.controls.bundle import ControlsError

    if generator.cfg.w_dim != bundle.w_dim:
        raise ControlsError(f"controls of model {bundle.model!r} have w_dim {bundle.w_dim}, the generator "
                            f"{generator.cfg.w_dim}")
    check_state(state, bundle)
    with torch.no_grad():
        w = base_latent(state, generator, bundle).float()
        device = w.device            # the generator's; the bundle's vectors live on the CPU
        if state.prototype != "none":
            a = float(state.strength)
            w = (1.0 - a) * w + a * bundle.prototypes[state.prototype].to(device)
        for name, unit in bundle.directions.items():
            s = float(getattr(state, name))
            if s:
                w = w + s * bundle.direction_scales[name] * unit.to(device)
        for k, s in enumerate(state.sefa[: len(bundle.sefa_vectors)]):
            if s:
                w = w + float(s) * float(bundle.sefa_scales[k]) * bundle.sefa_vectors[k].to(device)
        return w.reshape(1, 1, -1).expand(1, generator.num_ws, bundle.w_dim).contiguous()
