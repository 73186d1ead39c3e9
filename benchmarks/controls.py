"""Do the semantic sliders move their own attribute, monotonically, and leave the others alone?

For each seed (50; 6 with ``--quick``) each slider is swept from -5 to 5 and its attribute measured on the rendered
audio (generator -> PGHI -> waveform, analysed again into a spectrogram and :mod:`stylesynth.features`; ``--on
spectrogram`` measures the generator's image directly, faster): spectral centroid for brightness, onsets per second
for rate, mean event length for impact (expected to *fall* as the slider goes towards sharp hits, so its sign is
flipped). Per slider:

* the median over seeds of the Spearman correlation between slider and its attribute (goal >= 0.9);
* how far the other two attributes moved between -5 and +5, as a fraction of their 5-95 % range across the
  generator's clips (goal < 20 %).

Measured twice: with the shipped slider scale (+-5 spans +-2 standard deviations of the generator's latents along
the direction) and with the paper's unit steps (``w + s d``, ``|d| = 1``); and against a baseline in the same run:
random unit directions at the spread scale, whose |Spearman| with each attribute is what chance looks like. Also
for the top 4 SeFa directions: which attribute each moves most.

    python benchmarks/controls.py --model hits --quick
    python benchmarks/controls.py --model /work/runs/hits/best --json controls.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ATTRIBUTES = {"brightness": ("centroid_hz", +1), "rate": ("onsets_per_s", +1), "impact": ("event_length_s", -1)}
FEATURES = ["centroid_hz", "onsets_per_s", "event_length_s"]


def measure(generator, rep, ws, on_audio: bool, chunk: int = 33):
    """Features (N, 3) of latents ws (N, num_ws, w_dim): centroid, onsets per second, mean event length; of the
    rendered audio (``on_audio``) or of the generator's spectrogram."""
    import numpy as np
    import torch

    from stylesynth import features as F
    from stylesynth.spectrogram import encode
    from stylesynth.waveform import spectrogram_to_audio

    idx = [F.FEATURE_NAMES.index(f) for f in FEATURES]
    out = []
    with torch.no_grad():
        for i in range(0, len(ws), chunk):
            specs = generator.synthesize(ws[i:i + chunk], noise="const").clamp(-1, 1).numpy()
            if on_audio:   # what a listener gets: PGHI's waveform, heard (analysed) again
                specs = [encode(spectrogram_to_audio(s, rep, lufs=None), rep) for s in specs]
            out += [F.clip_features(s, rep)[idx] for s in specs]
    return np.asarray(out)


def sweep(generator, rep, base, unit, scale, steps, on_audio: bool):
    """Attributes (seeds, steps, 3) of each base latent (seeds, w_dim) moved by s * scale * unit, s in steps."""
    import torch

    n, d = base.shape
    w = base[:, None, :] + torch.as_tensor(steps, dtype=torch.float32)[None, :, None] * scale * unit
    ws = w.reshape(-1, 1, d).expand(-1, generator.num_ws, d)
    return measure(generator, rep, ws, on_audio).reshape(n, len(steps), len(FEATURES))


def spearman_rows(values, steps):
    """Spearman rho of each row (seed) of ``values`` (seeds, steps) against ``steps``; a constant row gives 0."""
    import numpy as np
    from scipy.stats import spearmanr

    out = []
    for row in values:
        if np.ptp(row) == 0:
            out.append(0.0)
        else:
            out.append(float(spearmanr(steps, row).statistic))
    return np.asarray(out)


def analyse(attrs, steps, ranges, own: str | None):
    """Median rho per attribute (sign-corrected for ``own``), and median movement (+5 vs -5) per attribute as a
    fraction of its range."""
    import numpy as np

    rho = {f: float(np.median(spearman_rows(attrs[:, :, j], steps))) for j, f in enumerate(FEATURES)}
    moved = {f: float(np.median(np.abs(attrs[:, -1, j] - attrs[:, 0, j])) / ranges[f]) for j, f in enumerate(FEATURES)}
    if own is not None:
        feature, sign = ATTRIBUTES[own]
        rho[feature] *= sign
    return rho, moved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hits", help="model name or checkpoint folder (default hits)")
    parser.add_argument("--seeds", type=int, help="seeds per slider (default 50; --quick 6)")
    parser.add_argument("--quick", action="store_true", help="6 seeds, 5 slider positions (under a minute)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: a second thread on a busy 2-core machine only waits)")
    parser.add_argument("--on", choices=("audio", "spectrogram"), default="audio",
                        help="measure the attributes on the rendered audio (default) or the generator's image")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    on_audio = args.on == "audio"
    started = time.perf_counter()
    threads = common.set_threads(args.threads)

    import numpy as np
    import torch

    from stylesynth.checkpoint import ModelError, load_generator
    from stylesynth.controls import load_bundle, z_from_seed

    folder = common.resolve_model(args.model)
    try:
        generator, meta = load_generator(folder)
        bundle = load_bundle(folder, generator, with_encoder=False)
    except ModelError as exc:
        raise common.BenchError(str(exc)) from None
    rep = meta["representation_obj"]
    if generator.cfg.rows != rep.rows:
        raise common.BenchError(f"{folder}: a {generator.cfg.rows}-row test generator; features need {rep.rows} rows")
    n_seeds = args.seeds or (6 if args.quick else 50)
    if n_seeds < 2:
        raise common.BenchError(f"--seeds must be at least 2, got {n_seeds}")
    steps = np.linspace(-5, 5, 5 if args.quick else 11)
    doc = {"benchmark": "controls", "model": str(folder), "kimg": meta.get("training", {}).get("kimg"),
           "seeds": n_seeds, "steps": steps.tolist(), "measured_on": args.on, "machine": common.machine_info(threads), "rows": []}

    # Base latents: the server's default (seed, truncation 0.7). Attribute ranges from 4x as many clips.
    with torch.no_grad():
        def base_w(seeds):
            z = torch.cat([z_from_seed(s, generator.cfg.z_dim) for s in seeds])
            w = generator.map(z)
            return generator.w_avg + 0.7 * (w - generator.w_avg)
        base = base_w(range(n_seeds))
        t0 = time.perf_counter()
        pool = measure(generator, rep, base_w(range(1000, 1000 + 4 * n_seeds))[:, None].expand(
            -1, generator.num_ws, -1), on_audio)
        ms_per_clip = 1000 * (time.perf_counter() - t0) / (4 * n_seeds)
    ranges = {f: max(float(np.percentile(pool[:, j], 95) - np.percentile(pool[:, j], 5)), 1e-9)
              for j, f in enumerate(FEATURES)}
    doc["attribute_ranges_5_95"] = ranges
    doc["ms_per_clip"] = round(ms_per_clip, 2)

    # Spread of the data along a unit vector (for the random baseline's scale), from many mapped latents.
    with torch.no_grad():
        data_w = generator.map(torch.randn(4096, generator.cfg.z_dim, generator=torch.Generator().manual_seed(7)))
    span = float(bundle.info.get("slider", {}).get("span_sigmas", 2.0))

    rows = []
    for name, unit in bundle.directions.items():
        for scale_name, scale in (("spread", bundle.direction_scales[name]), ("unit", 1.0)):
            rho, moved = analyse(sweep(generator, rep, base, unit, scale, steps, on_audio), steps, ranges, own=name)
            own = ATTRIBUTES[name][0]
            others = {f: moved[f] for f in FEATURES if f != own}
            rows.append({"kind": "semantic", "slider": name, "scale": scale_name, "scale_per_unit": scale,
                         "attribute": own, "rho": rho[own], "others_moved": others, "rho_all": rho,
                         "moved_all": moved})
    g = torch.Generator().manual_seed(123)
    for k in range(3):
        unit = torch.nn.functional.normalize(torch.randn(bundle.w_dim, generator=g), dim=0)
        scale = span / 5.0 * float((data_w @ unit).std())
        rho, moved = analyse(sweep(generator, rep, base, unit, scale, steps, on_audio), steps, ranges, own=None)
        rows.append({"kind": "random", "slider": f"random-{k + 1}", "scale": "spread", "scale_per_unit": scale,
                     "rho_all": rho, "moved_all": moved})
    for k in range(min(4, len(bundle.sefa_vectors))):
        rho, moved = analyse(sweep(generator, rep, base, bundle.sefa_vectors[k], float(bundle.sefa_scales[k]),
                                   steps, on_audio), steps, ranges, own=None)
        top = max(FEATURES, key=lambda f: abs(rho[f]))
        rows.append({"kind": "sefa", "slider": f"sefa/{k + 1}", "scale": "spread",
                     "scale_per_unit": float(bundle.sefa_scales[k]), "moves_most": top, "rho_all": rho,
                     "moved_all": moved})
    doc["rows"] = rows

    # Chance level per attribute: the largest median |rho| of the random directions, and their mean movement.
    chance = {f: max(abs(r["rho_all"][f]) for r in rows if r["kind"] == "random") for f in FEATURES}
    chance_moved = {f: float(np.mean([r["moved_all"][f] for r in rows if r["kind"] == "random"])) for f in FEATURES}
    doc["random_abs_rho_max"] = chance
    doc["random_moved_mean"] = chance_moved

    print(f"controls of {folder} (kimg {doc['kimg']}), {n_seeds} seeds x {len(steps)} slider positions, "
          f"measured on the {args.on}, {ms_per_clip:.1f} ms per clip")
    print(f"attribute ranges (5-95 %): centroid {ranges['centroid_hz']:.0f} Hz, onsets "
          f"{ranges['onsets_per_s']:.2f}/s, event length {ranges['event_length_s']:.3f} s\n")
    print(f"{'slider':11} {'scale':6} {'attribute':15} {'rho':>5} {'moved':>6} {'vs random':>9}  "
          f"others moved (of range)")
    for r in rows:
        if r["kind"] == "semantic":
            own = r["attribute"]
            r["own_moved"] = r["moved_all"][own]
            r["moved_vs_random"] = r["own_moved"] / chance_moved[own] if chance_moved[own] > 0 else None
            ratio = f"{r['moved_vs_random']:8.1f}x" if r["moved_vs_random"] is not None else f"{'n/a':>9}"
            others = ", ".join(f"{f.split('_')[0]} {v:.0%}" for f, v in r["others_moved"].items())
            print(f"{r['slider']:11} {r['scale']:6} {own:15} {r['rho']:5.2f} {r['own_moved']:6.0%} {ratio}  {others}")
    print("(rho: median Spearman of slider vs attribute, sign-corrected; moved: median change -5 -> +5 as a share "
          "of the attribute's range;\n vs random: that movement over the mean of 3 random unit directions' at the "
          "spread scale)")
    for r in rows:
        if r["kind"] == "random":
            rhos = ", ".join(f"{f.split('_')[0]} {v:+.2f}" for f, v in r["rho_all"].items())
            moved = ", ".join(f"{f.split('_')[0]} {v:.0%}" for f, v in r["moved_all"].items())
            print(f"{r['slider']:12} {r['scale']:7} {'(baseline)':15} rho {rhos}; moved {moved}")
    print()
    for r in rows:
        if r["kind"] == "sefa":
            rhos = ", ".join(f"{f.split('_')[0]} {v:+.2f}" for f, v in r["rho_all"].items())
            print(f"{r['slider']:12} moves {r['moves_most']:15} most: rho {rhos}")

    goals = []
    for r in rows:
        if r["kind"] == "semantic" and r["scale"] == "spread":
            worst = max(r["others_moved"].values())
            goals.append(common.goal(f"{r['slider']}: median Spearman >= 0.9", r["rho"] >= 0.9, f"{r['rho']:.2f}"))
            goals.append(common.goal(f"{r['slider']}: other attributes move < 20 % of their range", worst < 0.2,
                                     f"worst {worst:.0%}"))
    doc["goals"] = goals
    common.print_goals(goals)
    for r in rows:         # JSON has no NaN
        r["rho_all"] = {k: common.finite_or_none(v) for k, v in r["rho_all"].items()}
        if "rho" in r:
            r["rho"] = common.finite_or_none(r["rho"])
    common.finish(doc, args.json, started)
    return 0


if __name__ == "__main__":
    common.run(main)
