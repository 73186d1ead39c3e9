"""A checkpoint's semantic controls on disk: ``controls.safetensors`` + ``controls.json`` (+ ``encoder.safetensors``).

``controls.safetensors`` holds stacked float32 tensors, one row per name listed in ``controls.json``:

* ``directions`` (D, w_dim): unit vectors of the semantic sliders (``brightness``, ``rate``, ``impact``);
* ``direction_scales`` (D,): latent distance per slider unit (see :data:`SLIDER_SPAN_SIGMAS`);
* ``sefa_vectors`` (K, w_dim), ``sefa_eigenvalues`` (K,), ``sefa_scales`` (K,): the SeFa directions;
* ``prototypes`` (P, w_dim), ``start_points`` (S, w_dim): latents by name.

``controls.json`` holds the format, the model name, ``w_dim``, the sha256 of the ``generator.safetensors`` the
controls were built for, the names in row order, the representation (for the query reference), the build settings
and the figures (encoder errors, direction checks). Loading checks everything against the generator: a wrong
``w_dim``, a different generator file, a truncated or garbled file, non-finite values, directions that are not unit
length or SeFa vectors that are not orthonormal are refused with a :class:`ControlsError` naming the file and the
problem. No pickles: safetensors and JSON only.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stylesynth import params as P
from stylesynth.checkpoint import GENERATOR_FILE, ModelError, read_tensors, resolve
from stylesynth.dataset import file_sha256
from stylesynth.spectrogram import Representation

FORMAT = "stylesynth-controls"
FORMAT_VERSION = 1
TENSORS_FILE = "controls.safetensors"
META_FILE = "controls.json"
ENCODER_FILE = "encoder.safetensors"

#: Slider scale: a slider at +-5 moves the latent by +-SLIDER_SPAN_SIGMAS standard deviations of the generator's
#: own latents along that direction (measured at build time), so the full travel spans the data whatever the
#: direction's raw length. ``benchmarks/controls.py`` compares this with the paper's unit steps.
SLIDER_SPAN_SIGMAS = 2.0

TENSOR_NAMES = ("directions", "direction_scales", "sefa_vectors", "sefa_eigenvalues", "sefa_scales", "prototypes",
                "start_points")


class ControlsError(ModelError):
    """Semantic controls that cannot be used with a generator: missing, corrupt, or built for another one."""


@dataclass(eq=False)
class ControlsBundle:
    """Everything :func:`stylesynth.controls.state_to_w` needs besides the generator.

    Attributes
    ----------
    model : str
        Model name the controls were built for.
    w_dim : int
        Latent size; every vector has this length.
    generator_sha256 : str
        sha256 of the generator file they were built for ("" for an in-memory generator).
    rep : Representation
        The model's representation (clip length of the query reference).
    directions : dict of str -> torch.Tensor (w_dim,)
        Unit vectors, keyed by slider name.
    direction_scales : dict of str -> float
        Latent distance per slider unit.
    sefa_vectors, sefa_eigenvalues, sefa_scales : torch.Tensor
        (K, w_dim) orthonormal rows, (K,) eigenvalues, (K,) latent distance per slider unit.
    prototypes, start_points : dict of str -> torch.Tensor (w_dim,)
        Named latents.
    info : dict
        The rest of ``controls.json`` (figures, build settings, descriptions).
    encoder : stylesynth.controls.encoder.Encoder or None
        The inversion network, needed by the soft-prior query and attribute transfer.
    """

    model: str
    w_dim: int
    generator_sha256: str
    rep: Representation
    directions: dict
    direction_scales: dict
    sefa_vectors: torch.Tensor
    sefa_eigenvalues: torch.Tensor
    sefa_scales: torch.Tensor
    prototypes: dict
    start_points: dict
    info: dict = field(default_factory=dict)
    encoder: object = None
    _cache: dict = field(default_factory=dict, repr=False)   # query inversions, see stylesynth.controls.query

    @property
    def prototype_names(self) -> list[str]:
        return list(self.prototypes)

    @property
    def start_point_names(self) -> list[str]:
        return list(self.start_points)

    def validate(self, source: str = "controls") -> None:
        """Check shapes, finiteness, unit directions, orthonormal SeFa and the names; :class:`ControlsError`."""
        d = self.w_dim
        for group in ("directions", "prototypes", "start_points"):
            for name, vec in getattr(self, group).items():
                _check_name(name, group, source)
                if tuple(vec.shape) != (d,):
                    raise ControlsError(f"{source}: {group} {name!r} has shape {tuple(vec.shape)}, expected ({d},)")
                if not torch.isfinite(vec).all():
                    raise ControlsError(f"{source}: {group} {name!r} holds non-finite values")
        for name, vec in self.directions.items():
            if abs(float(vec.norm()) - 1.0) > 1e-3:
                raise ControlsError(f"{source}: direction {name!r} has length {float(vec.norm()):.4f}, not 1")
            if name not in P.PARAMS or P.PARAMS[name].group != "semantic":
                raise ControlsError(f"{source}: direction {name!r} is not a semantic slider "
                                    f"({', '.join(n for n, p in P.PARAMS.items() if p.group == 'semantic')})")
        for name, scale in self.direction_scales.items():
            if not (math.isfinite(scale) and scale > 0):
                raise ControlsError(f"{source}: direction {name!r} has scale {scale}; must be finite and > 0")
        if set(self.direction_scales) != set(self.directions):
            raise ControlsError(f"{source}: direction scales do not match the directions")
        k = len(self.sefa_vectors)
        if self.sefa_vectors.dim() != 2 or (k and self.sefa_vectors.shape[1] != d):
            raise ControlsError(f"{source}: sefa_vectors has shape {tuple(self.sefa_vectors.shape)}, expected "
                                f"(K, {d})")
        if k > P.SEFA_DIMENSIONS:
            raise ControlsError(f"{source}: {k} SeFa vectors, at most {P.SEFA_DIMENSIONS} are used")
        if tuple(self.sefa_eigenvalues.shape) != (k,) or tuple(self.sefa_scales.shape) != (k,):
            raise ControlsError(f"{source}: sefa_eigenvalues/sefa_scales must have {k} entries")
        for name in ("sefa_vectors", "sefa_eigenvalues", "sefa_scales"):
            if not torch.isfinite(getattr(self, name)).all():
                raise ControlsError(f"{source}: {name} holds non-finite values")
        if k and not bool((self.sefa_scales > 0).all()):
            raise ControlsError(f"{source}: sefa_scales must be > 0")
        if k:
            from stylesynth.controls.directions import orthonormal
            if not orthonormal(self.sefa_vectors, tol=1e-3):
                raise ControlsError(f"{source}: SeFa vectors are not orthonormal")

    def check_generator(self, generator, sha256: str | None = None, source: str = "controls") -> None:
        """Refuse use with a generator of another latent size, or another generator file (``sha256``)."""
        if generator.cfg.w_dim != self.w_dim:
            raise ControlsError(f"{source}: built for w_dim {self.w_dim}, but the generator's w_dim is "
                                f"{generator.cfg.w_dim}: rebuild with 'stylesynth controls build'")
        if self.encoder is not None:
            ecfg = self.encoder.cfg
            if (ecfg.w_dim, ecfg.rows, ecfg.frames) != (generator.cfg.w_dim, generator.cfg.rows,
                                                        generator.cfg.frames):
                raise ControlsError(f"{source}: encoder reads ({ecfg.rows}, {ecfg.frames}) -> w_dim {ecfg.w_dim}, "
                                    f"the generator makes ({generator.cfg.rows}, {generator.cfg.frames}) from "
                                    f"w_dim {generator.cfg.w_dim}")
        if sha256 and self.generator_sha256 and sha256 != self.generator_sha256:
            raise ControlsError(f"{source}: built for another generator (sha256 {self.generator_sha256[:12]}..., "
                                f"this one is {sha256[:12]}...): the directions would be meaningless; rebuild "
                                f"with 'stylesynth controls build --model {self.model}'")


def _check_name(name, group: str, source: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ControlsError(f"{source}: {group} has an empty or non-string name {name!r}")
    if len(name) > P.STRING_MAX_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ControlsError(f"{source}: {group} name {name[:40]!r} is too long or has control characters")
    if group != "directions" and name in ("none", ""):
        raise ControlsError(f"{source}: {group} name {name!r} is reserved")


# ---------------------------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------------------------

def _stack(vectors: dict, w_dim: int) -> torch.Tensor:
    if not vectors:
        return torch.zeros(0, w_dim)
    return torch.stack([v.detach().float().reshape(-1) for v in vectors.values()]).contiguous()


def save_bundle(bundle: ControlsBundle, folder: str | os.PathLike) -> Path:
    """Write ``controls.safetensors`` then ``controls.json`` into ``folder`` (each atomically; the JSON last, so a
    reader that finds a new JSON finds its tensors). The bundle is validated first."""
    from safetensors.torch import save_file

    bundle.validate("bundle to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    d = bundle.w_dim
    tensors = {
        "directions": _stack(bundle.directions, d),
        "direction_scales": torch.tensor([float(bundle.direction_scales[n]) for n in bundle.directions],
                                         dtype=torch.float32),
        "sefa_vectors": bundle.sefa_vectors.detach().float().contiguous(),
        "sefa_eigenvalues": bundle.sefa_eigenvalues.detach().float().contiguous(),
        "sefa_scales": bundle.sefa_scales.detach().float().contiguous(),
        "prototypes": _stack(bundle.prototypes, d),
        "start_points": _stack(bundle.start_points, d),
    }
    tmp = folder / (TENSORS_FILE + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / TENSORS_FILE)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": bundle.model, "w_dim": d,
            "generator_sha256": bundle.generator_sha256, "representation": bundle.rep.to_json(),
            "directions": list(bundle.directions), "sefa_count": len(bundle.sefa_vectors),
            "prototypes": list(bundle.prototypes), "start_points": list(bundle.start_points),
            **{k: v for k, v in bundle.info.items() if k not in _RESERVED}}
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / META_FILE)
    return folder


_RESERVED = {"format", "format_version", "model", "w_dim", "generator_sha256", "representation", "directions",
             "sefa_count", "prototypes", "start_points"}


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise ControlsError(f"{path}: file missing")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ControlsError(f"{path}: not a stylesynth controls description (format should be {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ControlsError(f"{path}: format_version must be a positive whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise ControlsError(f"{path}: format version {version} is newer than this stylesynth understands "
                            f"({FORMAT_VERSION}); upgrade stylesynth")
    w_dim = meta.get("w_dim")
    if not isinstance(w_dim, int) or isinstance(w_dim, bool) or w_dim < 1:
        raise ControlsError(f"{path}: w_dim must be a positive whole number, got {w_dim!r}")
    for key in ("directions", "prototypes", "start_points"):
        names = meta.get(key)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ControlsError(f"{path}: {key!r} must be a list of names")
        if len(set(names)) != len(names):
            raise ControlsError(f"{path}: {key!r} lists a name twice")
    if not isinstance(meta.get("representation"), dict):
        raise ControlsError(f"{path}: missing 'representation'")
    if not isinstance(meta.get("generator_sha256", ""), str):
        raise ControlsError(f"{path}: generator_sha256 must be a string")
    return meta


def load_bundle(name_or_path, generator=None, with_encoder: bool = True) -> ControlsBundle:
    """Load and validate a checkpoint's controls.

    Parameters
    ----------
    name_or_path : str or path
        A model name (``"hits"``) or a checkpoint folder holding ``controls.json`` + ``controls.safetensors``.
    generator : stylesynth.model.Generator, optional
        If given, the controls must match it: same ``w_dim``, and built for the folder's
        ``generator.safetensors`` (same sha256).
    with_encoder : bool
        Also load ``encoder.safetensors`` if present (needed by the query and transfer).

    Raises
    ------
    ControlsError
        Missing, corrupt, truncated or mismatched files, with the file and the problem named.
    """
    try:
        folder = resolve(name_or_path)
    except ModelError as exc:
        raise ControlsError(str(exc)) from None
    meta_path, tensors_path = folder / META_FILE, folder / TENSORS_FILE
    if not meta_path.is_file() and not tensors_path.is_file():
        raise ControlsError(f"{folder}: no semantic controls ({META_FILE}, {TENSORS_FILE}); make them with "
                            f"'stylesynth controls build --model {folder.name}'")
    meta = _read_meta(meta_path)
    try:
        tensors = read_tensors(tensors_path)
    except ControlsError:
        raise
    except ModelError as exc:
        raise ControlsError(str(exc)) from None
    source = str(tensors_path)
    if set(tensors) != set(TENSOR_NAMES):
        missing, extra = sorted(set(TENSOR_NAMES) - set(tensors)), sorted(set(tensors) - set(TENSOR_NAMES))
        raise ControlsError(f"{source}: tensors do not match {META_FILE}: missing {missing}, unexpected {extra}")
    for name, t in tensors.items():
        if not t.dtype.is_floating_point:
            raise ControlsError(f"{source}: tensor {name!r} has dtype {t.dtype}, expected float")
        if not torch.isfinite(t).all():
            raise ControlsError(f"{source}: tensor {name!r} holds non-finite values (NaN or inf)")
    w_dim = meta["w_dim"]
    for key, rows in (("directions", "directions"), ("prototypes", "prototypes"), ("start_points", "start_points")):
        t = tensors[rows]
        if t.dim() != 2 or t.shape[0] != len(meta[key]) or (len(meta[key]) and t.shape[1] != w_dim):
            raise ControlsError(f"{source}: tensor {rows!r} has shape {tuple(t.shape)}, {META_FILE} needs "
                                f"({len(meta[key])}, {w_dim})")
    k = meta.get("sefa_count")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= P.SEFA_DIMENSIONS:
        raise ControlsError(f"{meta_path}: sefa_count must be a whole number in 0..{P.SEFA_DIMENSIONS}, got {k!r}")
    if tuple(tensors["sefa_vectors"].shape) != (k, w_dim):
        raise ControlsError(f"{source}: sefa_vectors has shape {tuple(tensors['sefa_vectors'].shape)}, "
                            f"{META_FILE} needs ({k}, {w_dim})")
    if tuple(tensors["direction_scales"].shape) != (len(meta["directions"]),):
        raise ControlsError(f"{source}: direction_scales must have {len(meta['directions'])} entries")
    try:
        rep = Representation.from_json(meta["representation"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ControlsError(f"{meta_path}: bad representation ({exc})") from None
    f32 = {k: v.float() for k, v in tensors.items()}
    bundle = ControlsBundle(
        model=str(meta.get("model", folder.name)), w_dim=w_dim, generator_sha256=meta.get("generator_sha256", ""),
        rep=rep,
        directions={n: f32["directions"][i] for i, n in enumerate(meta["directions"])},
        direction_scales={n: float(f32["direction_scales"][i]) for i, n in enumerate(meta["directions"])},
        sefa_vectors=f32["sefa_vectors"], sefa_eigenvalues=f32["sefa_eigenvalues"], sefa_scales=f32["sefa_scales"],
        prototypes={n: f32["prototypes"][i] for i, n in enumerate(meta["prototypes"])},
        start_points={n: f32["start_points"][i] for i, n in enumerate(meta["start_points"])},
        info={k: v for k, v in meta.items() if k not in _RESERVED})
    bundle.validate(source)
    if with_encoder and (folder / ENCODER_FILE).is_file():
        bundle.encoder = _load_matching_encoder(folder / ENCODER_FILE, bundle)
    if generator is not None:
        sha = file_sha256(folder / GENERATOR_FILE) if (folder / GENERATOR_FILE).is_file() else None
        bundle.check_generator(generator, sha, source=str(meta_path))
    return bundle


def load_controls(folder, generator=None) -> ControlsBundle | None:
    """A checkpoint's controls if it ships any, else ``None`` (a bare generator: only seed and truncation act).

    Files that exist but do not load or do not match ``generator`` raise :class:`ControlsError` (a
    :class:`~stylesynth.checkpoint.ModelError`), as :func:`load_bundle`.
    """
    folder = Path(folder)
    if not (folder / META_FILE).is_file() and not (folder / TENSORS_FILE).is_file():
        return None
    return load_bundle(folder, generator)


def _load_matching_encoder(path: Path, bundle: ControlsBundle):
    from stylesynth.controls.encoder import load_encoder

    try:
        encoder, meta = load_encoder(path)
    except ControlsError:
        raise
    except ModelError as exc:
        raise ControlsError(str(exc)) from None
    if encoder.cfg.w_dim != bundle.w_dim:
        raise ControlsError(f"{path}: encoder gives w_dim {encoder.cfg.w_dim}, the controls have {bundle.w_dim}")
    sha = meta.get("generator_sha256", "")
    if sha and bundle.generator_sha256 and sha != bundle.generator_sha256:
        raise ControlsError(f"{path}: encoder was trained for another generator (sha256 {sha[:12]}...) than the "
                            f"controls ({bundle.generator_sha256[:12]}...): rebuild with 'stylesynth controls build'")
    return encoder
