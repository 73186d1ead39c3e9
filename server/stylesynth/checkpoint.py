"""Shipped and trained generators on disk: ``generator.safetensors`` + ``model.json``, loaded only from safe formats.

A checkpoint folder (``checkpoints/<name>/``) holds

* ``generator.safetensors``: the EMA generator's weights and buffers (fp16 is fine; fixed noise buffers included, so
  a latent always gives the same sound);
* ``model.json``: ``format``, ``architecture`` (:class:`stylesynth.model.ModelConfig`), ``representation``
  (:class:`stylesynth.spectrogram.Representation`), ``training`` (data, kimg, time) and ``figures``;
* optionally ``discriminator.safetensors`` (lets a training run warm-restart from what is committed) and the semantic
  controls (``controls.safetensors`` + ``controls.json``, :mod:`stylesynth.controls`).

Nothing here unpickles anything: no ``torch.load``. A file that is a pickle, a zip (torch's format), truncated,
garbled, or whose names, shapes, dtypes or values do not match the architecture is refused with a message that says
which file and what is wrong.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from stylesynth.model import Discriminator, Generator, ModelConfig
from stylesynth.spectrogram import Representation

FORMAT = "stylesynth-generator"
FORMAT_VERSION = 1
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
META_FILE = "model.json"
REPO_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


class ModelError(Exception):
    """A checkpoint that cannot be used: missing, corrupt, unsafe or not matching its architecture."""


def checkpoint_dirs() -> list[Path]:
    """Where named models are looked for: ``$STYLESYNTH_CHECKPOINTS`` (colon-separated), then the repo's folder."""
    env = os.environ.get("STYLESYNTH_CHECKPOINTS", "")
    return [Path(p) for p in env.split(os.pathsep) if p] + [REPO_CHECKPOINTS]


def available_models() -> list[str]:
    names = set()
    for root in checkpoint_dirs():
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if (p / META_FILE).is_file())
    return sorted(names)


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A model name (``hits``) or a folder path -> the checkpoint folder, or :class:`ModelError` listing choices."""
    text = str(name_or_path)
    if not text or any(c in text for c in "\0\n"):
        raise ModelError(f"invalid model name {text!r}")
    path = Path(text)
    if path.is_dir():
        return path
    if os.sep not in text and "/" not in text:
        for root in checkpoint_dirs():
            if (root / text).is_dir():
                return root / text
    known = ", ".join(available_models()) or "none installed"
    raise ModelError(f"no model {text!r} (available: {known})")


def _check_safetensors_file(path: Path) -> None:
    """Refuse pickles and torch zip archives by their first bytes, before any parser sees them."""
    if not path.is_file():
        raise ModelError(f"{path}: file missing")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise ModelError(f"{path}: truncated ({path.stat().st_size} bytes)")
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise ModelError(f"{path}: is a pickle/torch archive, not safetensors; refusing to load it "
                         "(pickles can run code). Convert it with safetensors.torch.save_file.")
    header_len = int.from_bytes(head, "little")
    if header_len <= 0 or header_len > 100_000_000 or 8 + header_len > path.stat().st_size:
        raise ModelError(f"{path}: not a safetensors file or truncated (header claims {header_len} bytes, "
                         f"file has {path.stat().st_size})")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, with format errors turned into :class:`ModelError`."""
    from safetensors.torch import load_file

    _check_safetensors_file(path)
    try:
        return load_file(str(path))
    except Exception as exc:   # safetensors raises SafetensorError / OSError for garbled or truncated files
        raise ModelError(f"{path}: corrupt or truncated safetensors file ({exc})") from None


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy ``tensors`` into ``module``, insisting on the exact same names and shapes and finite values."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s), e.g. {unexpected[:3]}")
        raise ModelError(f"{source}: does not match the architecture in {META_FILE}: " + "; ".join(parts))
    for name, tensor in tensors.items():
        want = expected[name]
        if tuple(tensor.shape) != tuple(want.shape):
            raise ModelError(f"{source}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                             f"the architecture needs {tuple(want.shape)}")
        if not tensor.dtype.is_floating_point:
            raise ModelError(f"{source}: tensor {name!r} has dtype {tensor.dtype}, expected a float type")
        if not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(f"{source}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf)")
    with torch.no_grad():
        for name, tensor in tensors.items():
            expected[name].copy_(tensor.to(expected[name].dtype))


def read_meta(folder: Path) -> dict:
    path = folder / META_FILE
    if not path.is_file():
        raise ModelError(f"{folder}: no {META_FILE}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path}: not a stylesynth model description (format should be {FORMAT!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{path}: format version {meta.get('format_version')} is newer than this stylesynth "
                         f"understands ({FORMAT_VERSION}); upgrade stylesynth")
    for key in ("architecture", "representation"):
        if not isinstance(meta.get(key), dict):
            raise ModelError(f"{path}: missing {key!r}")
    return meta


def load_generator(name_or_path: str | os.PathLike, device: str = "cpu") -> tuple[Generator, dict]:
    """Load a generator for inference.

    Parameters
    ----------
    name_or_path : str or path
        A shipped model name (``"hits"``, ``"env"``) or a checkpoint folder.
    device : str
        ``"cpu"`` or ``"cuda"`` (``"cuda:1"``, ...). Weights are cast to float32.

    Returns
    -------
    (Generator, dict)
        The generator in eval mode, and ``model.json`` with ``"path"`` and ``"representation_obj"`` added.
    """
    folder = resolve(name_or_path)
    meta = read_meta(folder)
    try:
        cfg = ModelConfig.from_json(meta["architecture"])
        rep = Representation.from_json(meta["representation"])
        generator = Generator(cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder / META_FILE}: bad architecture ({exc})") from None
    load_into(generator, read_tensors(folder / GENERATOR_FILE), folder / GENERATOR_FILE)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    meta = dict(meta, path=str(folder), representation_obj=rep)
    return generator.to(device).eval().requires_grad_(False), meta


def load_discriminator(folder: Path, cfg: ModelConfig) -> Discriminator:
    discriminator = Discriminator(cfg)
    load_into(discriminator, read_tensors(folder / DISCRIMINATOR_FILE), folder / DISCRIMINATOR_FILE)
    return discriminator


def _save(module: torch.nn.Module, path: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)     # atomic: a reader never sees half a file


def save_generator(generator: Generator, folder: str | os.PathLike, rep: Representation, info: dict,
                   discriminator: Discriminator | None = None, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``generator.safetensors`` (+ ``discriminator.safetensors``) and ``model.json`` into ``folder``.

    ``info`` goes into ``model.json`` (``name``, ``training``, ``figures``, ...). fp16 halves the size; the
    generator is run in float32 after loading.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save(generator, folder / GENERATOR_FILE, dtype)
    if discriminator is not None:
        _save(discriminator, folder / DISCRIMINATOR_FILE, dtype)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **info,
            "architecture": generator.cfg.to_json(), "representation": rep.to_json(),
            "dtype": str(dtype).replace("torch.", "")}
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / META_FILE)
    return folder
