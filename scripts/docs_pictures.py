"""Draw the README's sample pictures: docs/NAME-samples.png for each shipped model.

Eight seeds at truncation 0.7: the generator's images on the top row and, below each, the spectrogram of the audio
it renders to (PGHI, analysed again), because the two can differ (an image may hold onsets no waveform has).

    .venv/bin/python scripts/docs_pictures.py            # both models
    .venv/bin/python scripts/docs_pictures.py hits
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from stylesynth import checkpoint
from stylesynth.controls import z_from_seed
from stylesynth.plots import spectrogram_grid
from stylesynth.reanalysis import reanalyse

DOCS = Path(__file__).resolve().parents[1] / "docs"
SEEDS = range(8)
TRUNCATION = 0.7
WIDTH_PX = 1200         # small enough to keep the repository lean, large enough to read


def draw(name: str) -> Path:
    generator, meta = checkpoint.load_generator(checkpoint.resolve(name))
    rep = meta["representation_obj"]
    with torch.no_grad():
        z = torch.cat([z_from_seed(s, generator.cfg.z_dim) for s in SEEDS])
        w = generator.w_avg + TRUNCATION * (generator.map(z) - generator.w_avg)
        images = generator.synthesize(w[:, None].expand(-1, generator.num_ws, -1), noise="const").clamp(-1, 1)
        sounds = reanalyse(images, rep)
    kimg = meta["training"]["kimg"]
    path = DOCS / f"{name}-samples.png"
    spectrogram_grid(list(images.numpy()) + list(sounds.numpy()), rep, path,
                     [f"seed {s}: image" for s in SEEDS] + [f"seed {s}: its sound" for s in SEEDS], cols=len(SEEDS),
                     suptitle=f"{name} at {kimg:.1f} kimg, truncation {TRUNCATION}: the generator's images (top) and "
                              "the spectrograms of the audio they render to (bottom)")
    from PIL import Image

    picture = Image.open(path).convert("RGB")
    w_px, h_px = picture.size
    picture = picture.resize((WIDTH_PX, int(h_px * WIDTH_PX / w_px)), Image.LANCZOS)
    picture.quantize(colors=128).save(path, optimize=True)
    return path


if __name__ == "__main__":
    torch.set_num_threads(1)
    for model in sys.argv[1:] or ["hits", "env"]:
        print("wrote", draw(model))
