"""Training datasets of procedural clips: make them (``make``) and read them back, validated (``load``).

A dataset folder holds

* ``shard-00000.safetensors``, ... : key ``"spec"``, float16, shape ``(k, 256, 256)``: ``spectrogram.encode`` of each
  clip (rows frequency, columns time, values in [-1, 1]); every shard but the last has ``shard_size`` clips;
* ``labels.jsonl`` : one JSON label per clip, in the same order (``"class"``, every parameter, measured summaries);
* ``dataset.json`` : model, n, seed, the representation, the class mix, the generator version, and each shard's
  clip count and SHA-256, written last, so a folder without it is an unfinished run.

Clip ``i`` is drawn from ``numpy.random.default_rng([seed, i])``: a dataset depends only on (model, n, seed,
generator version), never on the number of workers. A held-out split is simply another seed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stylesynth import procedural, spectrogram

META_FILE = "dataset.json"
LABELS_FILE = "labels.jsonl"
SHARD_PATTERN = "shard-{:05d}.safetensors"
SPEC_KEY = "spec"
FORMAT_VERSION = 1


#: Generator versions whose datasets must not be used, and why.
BROKEN_VERSIONS = {"1": "which stored every spectrogram transposed (time and frequency swapped)"}


class DatasetError(ValueError):
    """A dataset folder that cannot be used as it is: missing, unfinished, corrupt or inconsistent."""


def render_spec(model: str, seed: int, index: int) -> tuple[np.ndarray, dict]:
    """Clip ``index`` of the dataset ``(model, seed)``: its float16 spectrogram (256, 256) and its label.

    Parameters
    ----------
    model : {"hits", "env"}
        Which model's clips (length and class mix).
    seed : int
        Dataset seed; ``(seed, index)`` seeds the clip's own generator.
    index : int
        Position of the clip in the dataset.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    audio, label = procedural.make_clip(model, rng)
    rep = procedural.REPRESENTATIONS[model]
    spec = np.ascontiguousarray(spectrogram.encode(audio, rep), dtype=np.float16)
    return spec, label


def _render_task(task: tuple[str, int, int]) -> tuple[np.ndarray, dict]:
    return render_spec(*task)


def _limit_threads() -> None:
    """Each worker is one core's worth of work: a multi-threaded BLAS in every worker would only fight over cores.

    Limits the worker process for good: it lives only for one ``make``."""
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(1)
    except ImportError:  # spawned workers already got OMP/OPENBLAS/MKL_NUM_THREADS=1 from the parent
        pass


def _single_thread_blas():
    """Context limiting BLAS/OpenMP to one thread while rendering in-process, restored afterwards."""
    try:
        import threadpoolctl
        return threadpoolctl.threadpool_limits(1)
    except ImportError:
        return contextlib.nullcontext()


def _check_args(model: str, n: int, seed: int, shard_size: int, workers: int) -> None:
    if model not in procedural.MIXES:
        raise ValueError(f"model must be one of {', '.join(sorted(procedural.MIXES))}, got {model!r}")
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    if int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")


def _prepare_out_dir(out_dir: Path) -> None:
    """Refuse to write over an existing dataset (nothing is lost); create the folder if needed."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir():
        clash = [p.name for p in out_dir.iterdir()
                 if p.name in (META_FILE, LABELS_FILE) or p.name.startswith("shard-")]
        if clash:
            what = "a dataset" if META_FILE in clash else "an unfinished dataset (no dataset.json)"
            raise FileExistsError(f"{out_dir} already holds {what}: {', '.join(sorted(clash)[:3])}; "
                                  f"choose another folder or delete it first")
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_shard(path: Path, specs: list[np.ndarray]) -> dict:
    from safetensors.numpy import save_file

    # ascontiguousarray: safetensors.numpy writes an array's raw buffer as if it were C-ordered, and encode()'s
    # output is a transposed (Fortran-ordered) view, so without it every spectrogram lands transposed on disk.
    save_file({SPEC_KEY: np.ascontiguousarray(np.stack(specs))}, str(path))
    return {"file": path.name, "count": len(specs), "sha256": file_sha256(path)}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 4 MB blocks (datasets record it per shard; controls per generator)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def make(model: str, n: int, out_dir: str | os.PathLike, seed: int = 0, workers: int = 2, shard_size: int = 1000,
         progress: bool = True) -> Path:
    """Generate ``n`` labelled procedural clips for ``model`` and write them as a dataset folder.

    Parameters
    ----------
    model : {"hits", "env"}
        ``"hits"``: 2.048 s impacts/scratches (+ modal and water variants); ``"env"``: 4.096 s environmental sounds.
    n : int
        Number of clips.
    out_dir : path
        Folder to write; created if missing. A folder already holding a dataset is refused (``FileExistsError``).
    seed : int
        Dataset seed. Another seed gives a disjoint draw (e.g. ``seed=1`` for a held-out split).
    workers : int
        Processes rendering clips. The output is byte-identical for any number of workers.
    shard_size : int
        Clips per safetensors shard.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    Path of the dataset folder.
    """
    from tqdm import tqdm

    _check_args(model, n, seed, shard_size, workers)
    n, seed, workers, shard_size = int(n), int(seed), int(workers), int(shard_size)
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    tasks = ((model, seed, i) for i in range(n))
    shards: list[dict] = []
    buffer: list[np.ndarray] = []
    class_counts: dict[str, int] = {}
    bar = tqdm(total=n, desc=f"data make {model}", unit="clip", disable=not progress, smoothing=0.1)
    pool = None
    stack = contextlib.ExitStack()
    try:
        if workers > 1:
            # spawn, not fork: the parent may hold threads (tqdm's monitor, torch) that fork would copy mid-lock.
            saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            os.environ.update({k: "1" for k in saved})
            try:
                pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_limit_threads)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            results = pool.imap(_render_task, tasks, chunksize=4)
        else:
            # One core's work; a 2-thread BLAS measured slower here (17 -> 60 ms per encode on a busy machine).
            stack.enter_context(_single_thread_blas())
            results = map(_render_task, tasks)
        with open(out_dir / LABELS_FILE, "w", encoding="utf-8") as labels:
            for spec, label in results:
                buffer.append(spec)
                labels.write(json.dumps(label, sort_keys=True) + "\n")
                class_counts[label["class"]] = class_counts.get(label["class"], 0) + 1
                if len(buffer) == shard_size:
                    shards.append(_write_shard(out_dir / SHARD_PATTERN.format(len(shards)), buffer))
                    buffer = []
                bar.update(1)
            if buffer:
                shards.append(_write_shard(out_dir / SHARD_PATTERN.format(len(shards)), buffer))
    finally:
        stack.close()
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    rep = procedural.REPRESENTATIONS[model]
    meta = {
        "format": FORMAT_VERSION, "model": model, "n": n, "seed": seed,
        "representation": rep.to_json(), "shape": [rep.rows, rep.frames], "dtype": "float16",
        "class_mix": procedural.MIXES[model], "class_counts": dict(sorted(class_counts.items())),
        "generator_version": procedural.GENERATOR_VERSION, "shard_size": shard_size, "shards": shards,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out_dir


@dataclass
class SpecDataset:
    """A loaded dataset: ``specs`` is a float16 torch tensor (N, 256, 256); ``labels[i]`` describes ``specs[i]``."""

    specs: "object"                       # torch.Tensor, kept untyped so importing this module needs no torch
    labels: list[dict]
    meta: dict
    path: Path
    rep: spectrogram.Representation = field(default=spectrogram.HITS)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.specs[i], self.labels[i]

    def class_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for label in self.labels:
            counts[label["class"]] = counts.get(label["class"], 0) + 1
        return dict(sorted(counts.items()))


def read_meta(path: str | os.PathLike) -> dict:
    """``dataset.json`` of a dataset folder, checked for the fields :func:`load` relies on."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset folder")
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise DatasetError(f"{path}: no {META_FILE} (not a dataset, or its 'data make' did not finish)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{meta_path}: unreadable ({exc})") from None
    missing = [k for k in ("model", "n", "representation", "shape", "shards") if k not in meta]
    if missing:
        raise DatasetError(f"{meta_path}: missing field(s) {', '.join(missing)}")
    if str(meta.get("generator_version")) in BROKEN_VERSIONS:
        raise DatasetError(f"{path}: made by generator v{meta['generator_version']}, "
                           f"{BROKEN_VERSIONS[str(meta['generator_version'])]}; remake it with 'stylesynth data make'")
    return meta


def read_labels(path: str | os.PathLike) -> list[dict]:
    """All labels of a dataset folder, in clip order."""
    labels_path = Path(path) / LABELS_FILE
    if not labels_path.is_file():
        raise DatasetError(f"{Path(path)}: no {LABELS_FILE}")
    labels = []
    with open(labels_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                labels.append(json.loads(line))
            except ValueError:
                raise DatasetError(f"{labels_path}: line {number} is not JSON") from None
    return labels


def load(path: str | os.PathLike, verify: bool = True) -> SpecDataset:
    """Read a dataset folder made by :func:`make`, refusing anything missing, corrupt or inconsistent.

    Parameters
    ----------
    path : path
        The dataset folder.
    verify : bool
        Check every shard's SHA-256 against ``dataset.json`` (about 1 s per GB); catches silent corruption that a
        well-formed but altered file would otherwise slip through.

    Returns
    -------
    SpecDataset
        ``specs``: ``torch.float16`` tensor (N, 256, 256); ``labels``: N dicts.

    Raises
    ------
    DatasetError
        With a message naming the file and what is wrong with it.
    """
    import torch
    from safetensors import safe_open

    path = Path(path)
    meta = read_meta(path)
    labels = read_labels(path)
    n = int(meta["n"])
    shape = tuple(int(s) for s in meta["shape"])
    if len(labels) != n:
        raise DatasetError(f"{path / LABELS_FILE}: {len(labels)} labels for {n} clips")
    counted = sum(int(s["count"]) for s in meta["shards"])
    if counted != n:
        raise DatasetError(f"{path / META_FILE}: shards hold {counted} clips, expected {n}")
    specs = torch.empty((n,) + shape, dtype=torch.float16)
    start = 0
    for shard in meta["shards"]:
        shard_path = path / shard["file"]
        if not shard_path.is_file():
            raise DatasetError(f"{shard_path}: shard missing")
        if verify and "sha256" in shard and file_sha256(shard_path) != shard["sha256"]:
            raise DatasetError(f"{shard_path}: corrupt (SHA-256 differs from {META_FILE})")
        try:
            with safe_open(str(shard_path), framework="pt") as f:
                if SPEC_KEY not in f.keys():
                    raise DatasetError(f"{shard_path}: no '{SPEC_KEY}' tensor")
                tensor = f.get_tensor(SPEC_KEY)
        except DatasetError:
            raise
        except Exception as exc:  # safetensors raises its own error types for truncated or garbled files
            raise DatasetError(f"{shard_path}: corrupt shard ({exc})") from None
        expected = (int(shard["count"]),) + shape
        if tuple(tensor.shape) != expected or tensor.dtype != torch.float16:
            raise DatasetError(f"{shard_path}: holds {tuple(tensor.shape)} {tensor.dtype}, "
                               f"expected {expected} torch.float16")
        specs[start:start + expected[0]] = tensor
        start += expected[0]
    rep = spectrogram.Representation.from_json(meta["representation"])
    return SpecDataset(specs=specs, labels=labels, meta=meta, path=path, rep=rep)
