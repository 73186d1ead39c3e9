"""Pictures of spectrograms with real axes: time in seconds, frequency in Hz, level in dB (matplotlib, no display).

People would rather look than read: ``render``, ``reconstruct``, ``data examples`` and training all draw with these.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stylesynth.spectrogram import Representation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _extent(rep: Representation, rows: int) -> tuple[float, float, float, float]:
    return (0.0, rep.seconds, 0.0, rows * rep.sample_rate / rep.channels)


def spectrogram_png(spec: np.ndarray, rep: Representation, path: str | Path, title: str = "") -> Path:
    """One spectrogram in the model's scale ([-1, 1], rows x frames) drawn in dB with a colour bar."""
    plt = _pyplot()
    spec = np.asarray(spec, dtype=np.float64)
    db = (np.clip(spec, -1, 1) - 1.0) * (-rep.db_floor / 2.0)
    fig, ax = plt.subplots(figsize=(7, 4))
    image = ax.imshow(db, origin="lower", aspect="auto", extent=_extent(rep, spec.shape[0]), cmap="magma",
                      vmin=rep.db_floor, vmax=0.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="dB re max (10 log10 |X|)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def spectrogram_grid(specs, rep: Representation, path: str | Path, titles=None, suptitle: str = "",
                     cols: int = 4) -> Path:
    """Several spectrograms ([-1, 1] scale) side by side; axes in seconds and kHz."""
    plt = _pyplot()
    specs = [np.asarray(s, dtype=np.float32) for s in specs]
    titles = list(titles) if titles is not None else [""] * len(specs)
    cols = max(1, min(cols, len(specs)))
    rows = math.ceil(len(specs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, spec, title in zip(axes.flat, specs, titles):
        left, right, low, high = _extent(rep, spec.shape[0])
        ax.set_visible(True)
        ax.imshow(np.clip(spec, -1, 1), origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1,
                  extent=(left, right, low / 1000, high / 1000))
        ax.set_title(title, fontsize=7)
        ax.set_xlabel("time (s)", fontsize=6)
        ax.set_ylabel("kHz", fontsize=6)
        ax.tick_params(labelsize=5)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
