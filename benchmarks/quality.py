"""Benchmark: how close the generator's clips are to the sounds it was trained to make, against a floor and a ceiling.

The figure is a Fréchet distance (FD) on the project's own spectrogram features (:mod:`stylesynth.features`: band
levels, centroid, flatness, onset rate, envelope) between ``n`` generated clips and ``n`` held-out procedural clips
(a dataset made with a seed the model was not trained on). Measured in one run against

* **the floor**: FD between two disjoint held-out real sets of the same size (what a perfect generator would score
  at this ``n``: finite samples never give 0);
* **the ceiling**: FD of an untrained generator of the same architecture (random weights, seed 0).

Generated clips are measured as they are heard (``--on audio``, the default): each image goes through PGHI to a
waveform and is analysed again (:func:`stylesynth.reanalysis.reanalyse`), since an image need not be the transform of
any sound (the session-2 models' onsets vanished in rendering). ``--on image`` measures the generator's images
themselves, as training used to. A fourth row, real set B through the same PGHI round trip, shows what the renderer
alone costs a perfect generator.

Headline: FD(model) / FD(floor); goal <= 2x. Coverage, because a low FD can hide a collapsed model:

* quantiles of onset count, spectral centroid, event length and event fraction, generated vs real;
* the onset-count histogram;
* class shares: each generated clip takes the class of its nearest real clip in standardised feature space (the
  same rule applied to the second real set gives its accuracy, i.e. how far to trust it);
* precision and recall in feature space (Kynkäänniemi et al., 2019; k = 3 nearest neighbours): precision = share of
  generated clips that fall inside the real clips' neighbourhoods, recall = share of real clips inside the
  generated clips' neighbourhoods (low recall = missing modes).

A PNG of 16 generated and 16 real spectrograms goes next to the JSON (or to ``--png``).

Usage::

    python benchmarks/quality.py --quick                           # n = 128, under a minute
    python benchmarks/quality.py --model /work/runs/hits/best --json out/quality.json
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

GOAL_RATIO = 2.0
GEN_SEED = 12345          # latents of the generated set (train.evaluate uses the same seed)
UNTRAINED_SEED = 0        # weights of the untrained generator
K_NEIGHBOURS = 3
QUANTILES = (0.1, 0.5, 0.9)
ONSET_BINS = 8            # onset-count histogram: 0 .. 6, and 7 or more


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hits", help="shipped model name or checkpoint folder (default: hits)")
    ap.add_argument("--n", type=int, help="clips per set (default 500; quick 128)")
    ap.add_argument("--truncation", type=float, default=1.0, help="psi for the generated set (default 1.0: none)")
    ap.add_argument("--on", choices=["audio", "image"], default="audio",
                    help="measure generated clips on their rendered audio (PGHI, analysed again; default) or on the "
                         "generator's images")
    ap.add_argument("--refine", type=int, default=0, metavar="N",
                    help="fast Griffin-Lim iterations after PGHI when rendering (as 'stylesynth render --refine'; "
                         "default 0, as the server plays)")
    ap.add_argument("--quick", action="store_true", help="n = 128 (under a minute)")
    ap.add_argument("--json", metavar="PATH", help="write all figures (and machine info) as JSON")
    ap.add_argument("--png", metavar="PATH", help="16 generated vs 16 real spectrograms (default: next to --json, "
                                                  "else quality.png in the current folder)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--workers", type=int, default=common.cpu_count(),
                    help="processes rendering the held-out clips (default: all cores)")
    ap.add_argument("--cache", metavar="DIR", help="keep the held-out datasets in DIR and reuse them next time "
                                                   "(default: a temporary folder)")
    args = ap.parse_args(argv)
    args.n = args.n or (128 if args.quick else 500)
    if args.n < 8:
        raise common.BenchError(f"--n must be at least 8 (a Fréchet distance needs a covariance), got {args.n}")
    if not 0.0 <= args.truncation <= 2.0:
        raise common.BenchError(f"--truncation must be in [0, 2], got {args.truncation}")
    if args.workers < 1:
        raise common.BenchError(f"--workers must be at least 1, got {args.workers}")
    return args


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------

def data_kind(rep) -> str:
    """Which procedural dataset matches the model's representation ("hits": hop 128, "env": hop 256)."""
    from stylesynth import procedural

    for kind, r in procedural.REPRESENTATIONS.items():
        if r == rep:
            return kind
    raise common.BenchError(f"no procedural dataset has the model's representation (hop {rep.hop}, "
                            f"{rep.frames} frames)")


def held_out_seeds(meta: dict) -> tuple[int, int]:
    """Two dataset seeds the model was not trained on (its training seed is in model.json)."""
    trained = int(meta.get("training", {}).get("data", {}).get("seed", 0) or 0)
    seeds = [s for s in range(1, 10) if s != trained]
    return seeds[0], seeds[1]


def real_set(kind: str, n: int, seed: int, root: Path, workers: int):
    """``n`` procedural clips of ``kind`` drawn with ``seed``: made once into ``root``, then read back validated."""
    from stylesynth import dataset

    folder = root / f"{kind}-seed{seed}-n{n}"
    if not (folder / dataset.META_FILE).is_file():
        if folder.is_dir():         # an interrupted earlier run's leftovers, in the benchmark's own cache folder
            shutil.rmtree(folder)
        dataset.make(kind, n, folder, seed=seed, workers=workers, shard_size=max(n, 1), progress=False)
    return dataset.load(folder)


# ---------------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------------

def standardise(reference, *others):
    """Scale every feature by the reference set's mean and spread (so Hz and dB weigh alike)."""
    mu, sd = reference.mean(0), reference.std(0) + 1e-8
    return [(x - mu) / sd for x in (reference,) + others]


def nearest_classes(query, reference, labels) -> list[str]:
    """The class of each query clip's nearest reference clip (Euclidean, standardised features)."""
    from scipy.spatial.distance import cdist

    return [labels[i] for i in cdist(query, reference).argmin(axis=1)]


def precision_recall(real, fake, k: int = K_NEIGHBOURS) -> dict:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with ``k``-NN radii, standardised features."""
    import numpy as np
    from scipy.spatial.distance import cdist

    def radii(x):
        return np.sort(cdist(x, x), axis=1)[:, k]        # column 0 is the point itself

    def inside(points, centres, r):
        return float((cdist(points, centres) <= r[None, :]).any(axis=1).mean())

    return {"precision": inside(fake, real, radii(real)), "recall": inside(real, fake, radii(fake)), "k": k}


def attributes(feats, rep) -> dict:
    """Per-clip attributes read off the feature vectors: onset count, centroid (Hz), event length (s), event
    fraction."""
    import numpy as np

    from stylesynth.features import FEATURE_NAMES

    col = FEATURE_NAMES.index
    return {"onsets": np.round(feats[:, col("onsets_per_s")] * rep.seconds),
            "centroid_hz": feats[:, col("centroid_hz")],
            "event_length_s": feats[:, col("event_length_s")],
            "event_fraction": feats[:, col("event_fraction")]}


def coverage(attrs: dict) -> dict:
    import numpy as np

    out = {name: [float(np.quantile(v, q)) for q in QUANTILES] for name, v in attrs.items()}
    counts = np.minimum(attrs["onsets"].astype(int), ONSET_BINS - 1)
    out["onset_histogram"] = (np.bincount(counts, minlength=ONSET_BINS) / len(counts)).tolist()
    return out


def heard(specs, rep, refine: int = 0, batch: int = 32):
    """Images (N, rows, frames) -> the spectrograms of the audio they render to (PGHI and ``refine`` fast
    Griffin-Lim iterations, as ``stylesynth render --refine``; analysed again)."""
    import numpy as np
    import torch

    from stylesynth.reanalysis import analyse
    from stylesynth.waveform import spectrogram_to_audio_batch

    out = []
    for i in range(0, len(specs), batch):
        chunk = np.asarray(specs[i:i + batch], dtype=np.float32)
        audio = spectrogram_to_audio_batch(chunk, rep, refine=refine, lufs=None, seed=i)
        out.append(analyse(torch.from_numpy(audio), rep).numpy())
    return np.concatenate(out)


def shares(labels: list[str], classes: list[str]) -> dict:
    return {c: labels.count(c) / max(len(labels), 1) for c in classes}


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    threads = common.set_threads(args.threads)
    folder = common.resolve_model(args.model)

    import numpy as np
    import torch

    from stylesynth import checkpoint, features, plots
    from stylesynth.model import Generator
    from stylesynth.train import generate

    machine = common.machine_info(threads)
    try:
        G, meta = checkpoint.load_generator(str(folder))
    except checkpoint.ModelError as exc:
        raise common.BenchError(f"--model {args.model}: {exc}") from None
    rep = meta["representation_obj"]
    if (G.cfg.rows, G.cfg.frames) != (rep.rows, rep.frames):
        raise common.BenchError(f"--model {folder}: the generator makes {G.cfg.rows} x {G.cfg.frames} images, "
                                f"the held-out clips are {rep.rows} x {rep.frames}")
    kind = data_kind(rep)
    seed_a, seed_b = held_out_seeds(meta)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.cache) if args.cache else Path(tmp)
        t0 = time.perf_counter()
        print(f"held-out {kind} clips: 2 x {args.n} (seeds {seed_a}, {seed_b}) ...", flush=True)
        real_a = real_set(kind, args.n, seed_a, root, args.workers)
        real_b = real_set(kind, args.n, seed_b, root, args.workers)
        data_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    print(f"generating 2 x {args.n} clips (model, untrained) ...", flush=True)
    fake = generate(G, args.n, GEN_SEED, truncation=args.truncation).numpy()
    torch.manual_seed(UNTRAINED_SEED)
    untrained = generate(Generator(G.cfg).eval(), args.n, GEN_SEED, truncation=args.truncation).numpy()
    gen_s = time.perf_counter() - t0
    if not np.isfinite(fake).all():
        raise common.BenchError(f"--model {folder}: the generator outputs NaN or inf")

    t0 = time.perf_counter()
    real_b_heard = heard(real_b.specs.float().numpy(), rep, args.refine)
    if args.on == "audio":
        print(f"rendering and re-analysing {args.n} clips per set ...", flush=True)
        fake, untrained = heard(fake, rep, args.refine), heard(untrained, rep, args.refine)
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    f_a, f_b = features.batch_features(real_a.specs, rep), features.batch_features(real_b.specs, rep)
    f_fake, f_untrained = features.batch_features(fake, rep), features.batch_features(untrained, rep)
    f_b_heard = features.batch_features(real_b_heard, rep)
    feat_s = time.perf_counter() - t0

    fd = {"model": features.frechet_distance(f_fake, f_a),
          "floor_real_vs_real": features.frechet_distance(f_b, f_a),
          "untrained": features.frechet_distance(f_untrained, f_a),
          "real_b_through_pghi": features.frechet_distance(f_b_heard, f_a)}
    ratios = {"model_over_floor": fd["model"] / fd["floor_real_vs_real"],
              "untrained_over_floor": fd["untrained"] / fd["floor_real_vs_real"]}

    s_a, s_b, s_fake, s_untrained = standardise(f_a, f_b, f_fake, f_untrained)
    labels_a = [lab["class"] for lab in real_a.labels]
    labels_b = [lab["class"] for lab in real_b.labels]
    classes = sorted(set(labels_a) | set(labels_b))
    nn_b = nearest_classes(s_b, s_a, labels_a)
    nn_fake = nearest_classes(s_fake, s_a, labels_a)
    nn_untrained = nearest_classes(s_untrained, s_a, labels_a)
    nn_accuracy = float(np.mean([p == t for p, t in zip(nn_b, labels_b)]))
    class_shares = {"real_labels": shares(labels_a, classes), "real_b_nearest": shares(nn_b, classes),
                    "model_nearest": shares(nn_fake, classes), "untrained_nearest": shares(nn_untrained, classes)}
    (s_b_heard,) = standardise(f_a, f_b_heard)[1:]
    pr = {"model": precision_recall(s_a, s_fake), "floor_real_vs_real": precision_recall(s_a, s_b),
          "untrained": precision_recall(s_a, s_untrained), "real_b_through_pghi": precision_recall(s_a, s_b_heard)}
    cov = {"real": coverage(attributes(f_a, rep)), "model": coverage(attributes(f_fake, rep)),
           "untrained": coverage(attributes(f_untrained, rep))}

    png = Path(args.png) if args.png else (Path(args.json).with_suffix(".png") if args.json else
                                           Path("quality.png"))
    idx = np.linspace(0, args.n - 1, 16).astype(int)
    name = meta.get("name") or folder.name
    plots.spectrogram_grid(list(fake[:16]) + [real_a.specs[i].float().numpy() for i in idx], rep, png,
                           titles=[f"generated #{i}" for i in range(16)] + [f"real: {labels_a[i]}" for i in idx],
                           suptitle=f"{name}: 16 generated (psi {args.truncation:g}, top two rows) vs 16 held-out "
                                    "real clips (bottom two rows)", cols=8)

    # ---- report
    print(f"\nQuality benchmark: model {folder} ({kind}), n = {args.n} per set, truncation {args.truncation:g}, "
          f"features: {len(features.FEATURE_NAMES)} ({features.__name__}), generated clips measured on their "
          f"{'rendered audio' if args.on == 'audio' else 'images'}")
    print(f"{'set vs held-out real A (seed ' + str(seed_a) + ')':48s}{'FD':>9s}{'/ floor':>9s}{'precision':>11s}"
          f"{'recall':>8s}")
    rows = [("floor: held-out real B (seed " + str(seed_b) + ")", "floor_real_vs_real"),
            ("model", "model"), ("untrained generator (same architecture)", "untrained"),
            (f"real B rendered (PGHI{f' + {args.refine} FGLA' if args.refine else ''}: its own cost)",
             "real_b_through_pghi")]
    for label, key in rows:
        print(f"{label:48s}{fd[key]:9.2f}{fd[key] / fd['floor_real_vs_real']:8.2f}x{pr[key]['precision']:11.2f}"
              f"{pr[key]['recall']:8.2f}")

    print(f"\ncoverage: quantiles {'/'.join(f'{q:g}' for q in QUANTILES)}")
    print(f"{'':12s}{'onsets':>16s}{'centroid Hz':>22s}{'event length s':>21s}{'event fraction':>21s}")
    for name in ("real", "model", "untrained"):
        c = cov[name]
        print(f"{name:12s}{'/'.join(f'{v:.0f}' for v in c['onsets']):>16s}"
              f"{'/'.join(f'{v:.0f}' for v in c['centroid_hz']):>22s}"
              f"{'/'.join(f'{v:.2f}' for v in c['event_length_s']):>21s}"
              f"{'/'.join(f'{v:.2f}' for v in c['event_fraction']):>21s}")
    print(f"\nonset count (share of clips){'':2s}" + "".join(f"{str(k) + ('+' if k == ONSET_BINS - 1 else ''):>6s}"
                                                            for k in range(ONSET_BINS)))
    for name in ("real", "model", "untrained"):
        print(f"{name:30s}" + "".join(f"{v:6.2f}" for v in cov[name]["onset_histogram"]))
    print(f"\nclass shares (nearest real clip; its accuracy on real set B: {nn_accuracy:.0%})")
    width = max(11, max(len(c) for c in classes) + 2)        # MovingMotorVehicle ran into its neighbour
    print(f"{'':30s}" + "".join(f"{c:>{width}s}" for c in classes))
    for key, label in (("real_labels", "real A (true labels)"), ("real_b_nearest", "real B (nearest)"),
                       ("model_nearest", "model (nearest)"), ("untrained_nearest", "untrained (nearest)")):
        print(f"{label:30s}" + "".join(f"{class_shares[key][c]:{width}.2f}" for c in classes))
    print(f"\nspectrograms: {png}")
    print(f"time: held-out data {data_s:.0f} s, generation {gen_s:.0f} s, rendering {render_s:.0f} s, "
          f"features {feat_s:.0f} s")

    goals = [common.goal(f"FD(model) <= {GOAL_RATIO:g}x the real-vs-real floor", ratios["model_over_floor"] <=
                         GOAL_RATIO, f"{ratios['model_over_floor']:.2f}x; untrained "
                                     f"{ratios['untrained_over_floor']:.1f}x")]
    common.print_goals(goals)

    doc = {"benchmark": "quality", "machine": machine, "quick": bool(args.quick),
           "model": {"path": str(folder), "family": G.cfg.family, "training": meta.get("training", {})},
           "data": {"kind": kind, "n": args.n, "seeds": [seed_a, seed_b], "generated_seed": GEN_SEED,
                    "truncation": args.truncation, "untrained_weights_seed": UNTRAINED_SEED,
                    "generated_measured_on": args.on, "refine": args.refine},
           "fd": fd, "ratios": ratios, "precision_recall": pr, "coverage": cov,
           "classes": {"shares": class_shares, "nearest_rule_accuracy_on_real_b": nn_accuracy},
           "png": str(png), "timing_s": {"data": data_s, "generate": gen_s, "render": render_s,
                                         "features": feat_s},
           "goals": goals, "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    common.finish(doc, args.json, started)
    return 0


if __name__ == "__main__":
    common.run(main)
