"""How fast ``stylesynth data make`` produces clips: clips/s for the hits and env models on 1 and 2 workers.

Rates are given overall (a small run, start-up included) and steady (start-up subtracted: what a big run sees).
Also times the two halves of one clip in-process (procedural rendering; spectrogram encoding) so a slow run can be
blamed on the right part. Ratios are against the baseline measured in this same run: hits, 1 worker.

    python benchmarks/data.py --quick              # under a minute
    python benchmarks/data.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one core per worker, as data make itself arranges

import numpy as np  # noqa: E402

from stylesynth import dataset, procedural, spectrogram  # noqa: E402


def time_make(model: str, n: int, workers: int) -> float:
    """Seconds for a whole ``dataset.make`` of ``n`` clips (worker start-up, rendering, encoding, writing)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        dataset.make(model, n, Path(tmp) / "d", seed=0, workers=workers, shard_size=max(n // 2, 1),
                     progress=False)
        return time.perf_counter() - start


def time_parts(model: str, n: int) -> tuple[float, float]:
    """Milliseconds per clip for rendering and for encoding, in-process, one thread."""
    rep = procedural.REPRESENTATIONS[model]
    clips = []
    start = time.perf_counter()
    for i in range(n):
        clips.append(procedural.make_clip(model, np.random.default_rng([0, i]))[0])
    render_ms = 1000 * (time.perf_counter() - start) / n
    start = time.perf_counter()
    for audio in clips:
        spectrogram.encode(audio, rep)
    encode_ms = 1000 * (time.perf_counter() - start) / n
    return render_ms, encode_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs (under a minute)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    sizes = {"hits": 300, "env": 150} if args.quick else {"hits": 2000, "env": 1000}

    rows = []
    for model in ("hits", "env"):
        render_ms, encode_ms = time_parts(model, max(sizes[model] // 3, 5))
        for workers in (1, 2):
            n = sizes[model]
            # A run of `workers` clips is (almost) all start-up: subtracting it gives the steady rate that a
            # 20k-clip run sees; the overall rate includes start-up, as a small run sees it.
            startup = time_make(model, workers, workers)
            total = time_make(model, n, workers)
            rows.append({"model": model, "workers": workers, "n": n, "clips_per_s": n / total,
                         "steady_clips_per_s": (n - workers) / max(total - startup, 1e-9), "startup_s": startup,
                         "render_ms": render_ms, "encode_ms": encode_ms})
    base = rows[0]["steady_clips_per_s"]
    print(f"{'model':6} {'workers':>7} {'n':>5} {'clips/s':>8} {'steady/s':>9} {'x base':>7} {'start s':>8} "
          f"{'render ms':>10} {'encode ms':>10}")
    for r in rows:
        r["ratio_vs_hits_1_worker"] = r["steady_clips_per_s"] / base
        print(f"{r['model']:6} {r['workers']:7d} {r['n']:5d} {r['clips_per_s']:8.1f} {r['steady_clips_per_s']:9.1f} "
              f"{r['ratio_vs_hits_1_worker']:7.2f} {r['startup_s']:8.2f} {r['render_ms']:10.1f} "
              f"{r['encode_ms']:10.1f}")
    print(f"baseline: hits, 1 worker, steady = {base:.1f} clips/s; cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every row)")
    if args.json:
        Path(args.json).write_text(json.dumps({"quick": args.quick, "load_average": os.getloadavg()[0],
                                               "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
