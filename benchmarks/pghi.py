"""Benchmark: phase reconstruction from STFT magnitude, time per clip and spectral convergence.

Compares, on one core, on a chirp, clicks, white noise and Gaver impacts, at hop 128 (2.048 s clips) and hop 256
(4.096 s clips), all in one run:

* ours: :func:`stylesynth.pghi.pghi` (bucket-queue PGHI + DC/Nyquist fix) + dual-window synthesis, refine 0 and 10;
* tifresi (the reference PGHI implementation), ``GaussTruncTF.invert_spectrogram``, run in its own venv
  ``benchmarks/.venv-tifresi`` (built by ``benchmarks/tifresi_env.sh``; never a stylesynth dependency). If it
  cannot be built the benchmark says exactly why and runs the rest;
* librosa Griffin-Lim, 32 and 100 iterations (momentum 0.99, random init).

Time is from magnitude to waveform (phase + synthesis) for both, like with like: ours is
``waveform.magnitude_to_audio`` (log-magnitude derivatives, PGHI, polar, inverse transform), tifresi's is
``invert_spectrogram`` (``modgabphasegrad``, its PGHI, ``idgtreal``). Both processes run with the same glibc malloc
setting (:func:`stylesynth.pghi.keep_freed_memory`, which ``warmup`` applies: freed blocks are reused instead of
page-faulted in again; it makes tifresi 1-2 ms faster); ``--tifresi-default-malloc`` leaves tifresi on glibc's
defaults. Thread CPU time, best over repeats after a warm-up call. Spectral
convergence ``20 log10(|| |STFT(y)| - |STFT(x)| || / || |STFT(x)| ||)`` is measured in each method's own transform
(ours and tifresi's are the same truncated Gaussian lattice; librosa's is a Hann STFT with the same hop and 512
bins). Lower is better for both.

Usage::

    python benchmarks/pghi.py              # full run (~30-60 s)
    python benchmarks/pghi.py --quick      # < 1 min: fewer repeats
    python benchmarks/pghi.py --json out.json
"""
from __future__ import annotations

import os

# One core, one thread everywhere: set before numpy/scipy/numba are imported (children inherit both).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))

from common import TifresiWorker, tifresi_status  # noqa: E402  (benchmarks/common.py: shared with generate.py)
from stylesynth import pghi as P  # noqa: E402
from stylesynth.spectrogram import ENV, HITS  # noqa: E402

SIGNALS = ["chirp", "clicks", "noise", "impacts"]
GOAL_SPEEDUP = 10.0
GOAL_MS_PER_2S = 3.0
ROUNDS = 3            # ours and tifresi are timed in alternation, this many rounds per signal
TIE_DB = 0.1          # PGHI's quality on noise is the algorithm's, not the implementation's: both land within 0.1 dB


# ---------------------------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------------------------

def _impacts_inline(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Band-passed noise impacts with exponential decays (used when stylesynth.procedural.gaver is absent)."""
    from scipy.signal import butter, sosfilt

    x = np.zeros(n)
    for onset in np.sort(rng.uniform(0.02, 0.9, 5)) * n:
        lf = float(np.exp(rng.uniform(np.log(80), np.log(3000))))
        hf = min(lf * float(np.exp(rng.uniform(np.log(1.5), np.log(12)))), 7800.0)
        length = int(rng.uniform(0.05, 0.4) * sr)
        burst = sosfilt(butter(4, [lf, hf], btype="band", fs=sr, output="sos"), rng.standard_normal(length))
        burst *= np.exp(-np.arange(length) / (length / 5)) * rng.uniform(0.5, 1.0)
        start = int(onset)
        stop = min(n, start + length)
        x[start:stop] += burst[: stop - start]
    x += 1e-3 * rng.standard_normal(n)
    return x / np.abs(x).max() * 0.9


def make_signal(name: str, rep, seed: int = 0) -> tuple[np.ndarray, str]:
    """One clip of ``rep.n_samples`` samples; returns (signal, how it was made)."""
    sr, n = rep.sample_rate, rep.n_samples
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    if name == "chirp":
        f0, f1 = 100.0, 7000.0
        return 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * t[-1]) * t ** 2)), "linear sweep 100 Hz-7 kHz"
    if name == "clicks":
        x = np.zeros(n)
        pos = rng.choice(np.arange(600, n - 600), 16, replace=False)
        x[pos] = rng.uniform(0.2, 1.0, 16) * rng.choice([-1.0, 1.0], 16)
        x[pos[:5] + rng.integers(20, 200, 5)] += rng.uniform(0.2, 1.0, 5)   # some close pairs
        return x, "16 impulses, random amplitude and sign, 5 close pairs"
    if name == "noise":
        return 0.1 * rng.standard_normal(n), "white Gaussian noise"
    if name == "impacts":
        try:
            from stylesynth.procedural import gaver

            params = gaver.sample_params(rng, "hit", n_events=5, duration=rep.seconds)
            return gaver.render(params, rng, n_samples=n).astype(np.float64), "stylesynth.procedural.gaver, 5 hits"
        except ImportError:
            return _impacts_inline(rng, n, sr), "inline band-passed noise impacts (5)"
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------------------------

def _timed(fn, repeats: int) -> tuple[dict, object]:
    """Per-call thread CPU time (primary) and wall time, in ms, best and median over ``repeats`` calls after one
    warm-up call (JIT, caches, plans). CPU time does not count the slices other processes take from the pinned core,
    which on a busy machine otherwise inflate long calls (tifresi, Griffin-Lim) more than short ones (ours)."""
    fn()
    cpu, wall, out = [], [], None
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        out = fn()
        cpu.append((time.thread_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return {"ms": float(np.min(cpu)), "ms_median": float(np.median(cpu)),
            "wall_ms": float(np.min(wall)), "wall_ms_median": float(np.median(wall))}, out


def _times(fn, repeats: int) -> tuple[list, list]:
    """Thread CPU and wall times (ms) of ``repeats`` calls, no warm-up."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        cpu.append((time.thread_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return cpu, wall


def run_ours(x: np.ndarray, rep, refine: int, repeats: int) -> dict:
    """The product path: waveform.magnitude_to_audio (PGHI, complex64 coefficients, float32 synthesis)."""
    from stylesynth.waveform import magnitude_to_audio

    mag = np.abs(P.fast_stft(x, rep))
    t, y = _timed(lambda: magnitude_to_audio(mag, rep, refine=refine), repeats)
    return {**t, "sc_db": P.spectral_convergence(mag, y.astype(np.float64), rep)}


def run_librosa(x: np.ndarray, rep, n_iter: int, repeats: int) -> dict:
    import librosa

    kw = dict(n_fft=rep.channels, hop_length=rep.hop, window="hann")
    mag = np.abs(librosa.stft(x, **kw))
    t, y = _timed(lambda: librosa.griffinlim(mag, n_iter=n_iter, momentum=0.99, init="random",
                                             random_state=0, length=len(x), **kw), repeats)
    got = np.abs(librosa.stft(y, **kw))
    return {**t, "sc_db": float(20 * np.log10(np.linalg.norm(got - mag) / np.linalg.norm(mag)))}


def _summary(cpu: list, wall: list) -> dict:
    return {"ms": float(np.min(cpu)), "ms_median": float(np.median(cpu)),
            "wall_ms": float(np.min(wall)), "wall_ms_median": float(np.median(wall))}


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------

def pin_core(core: int | None) -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if core is None else core
    os.sched_setaffinity(0, {chosen})
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (< 1 min)")
    ap.add_argument("--json", metavar="PATH", help="write all figures as JSON")
    ap.add_argument("--repeats", type=int, help="timed calls per method and signal (default 15, quick 4)")
    ap.add_argument("--hops", type=int, nargs="+", default=[128, 256], choices=[128, 256])
    ap.add_argument("--core", type=int, help="CPU to pin to (default: the last one allowed)")
    ap.add_argument("--no-tifresi", action="store_true", help="skip tifresi")
    ap.add_argument("--tifresi-default-malloc", action="store_true",
                    help="run tifresi with glibc's default malloc thresholds instead of the setting ours runs with")
    args = ap.parse_args(argv)
    repeats = args.repeats or (4 if args.quick else 15)
    if args.tifresi_default_malloc:
        os.environ["STYLESYNTH_BENCH_MALLOC"] = "0"                 # read by _tifresi_worker.py
    malloc_note = ("tifresi on glibc's default malloc, ours with keep_freed_memory" if args.tifresi_default_malloc
                   else "both with keep_freed_memory (glibc reuses freed blocks up to 8 MB)")
    gl_repeats = 1 if args.quick else 3
    core = pin_core(args.core)

    t_start = time.perf_counter()
    t0 = time.perf_counter()
    P.warmup()
    warm_ms = (time.perf_counter() - t0) * 1e3
    reps = {128: HITS, 256: ENV}

    signals, described = {}, {}
    for hop in args.hops:
        for name in SIGNALS:
            x, how = make_signal(name, reps[hop], seed=1)
            signals[f"{name}@{hop}"] = (x, reps[hop])
            described[name] = how

    results = {}
    for key, (x, rep) in signals.items():
        print(f"  {key} ...", end="\r", flush=True)
        results[key] = {
            "ours_refine10": run_ours(x, rep, 10, max(1, repeats // 3)),
            "librosa_gl32": run_librosa(x, rep, 32, gl_repeats),
            "librosa_gl100": run_librosa(x, rep, 100, gl_repeats),
        }

    # ours and tifresi, interleaved: in each round every signal is timed by ours then by tifresi, on the same core,
    # so a busy moment on the machine hits both; best (and median) over all rounds
    from stylesynth.waveform import magnitude_to_audio

    tifresi_note = "skipped (--no-tifresi)"
    tifresi_info = {}
    worker = None
    tmp = tempfile.TemporaryDirectory()
    if not args.no_tifresi:
        ok, why = tifresi_status()
        if ok:
            try:
                worker = TifresiWorker({k: (x, rep.hop) for k, (x, rep) in signals.items()}, Path(tmp.name))
                tifresi_info = {"first_call_ms": worker.first_call_ms}
                tifresi_note = "ok"
            except Exception as exc:  # noqa: BLE001 - report and go on without the column
                tifresi_note = f"tifresi failed to start: {exc}"
        else:
            tifresi_note = f"tifresi unavailable: {why}"
    mags = {key: np.abs(P.fast_stft(x, rep)) for key, (x, rep) in signals.items()}
    per_round = max(1, repeats // ROUNDS)
    ours_t = {key: ([], []) for key in signals}
    tif_t = {key: ([], []) for key in signals}
    for key, (x, rep) in signals.items():
        magnitude_to_audio(mags[key], rep)                       # warm-up call
    try:
        for rnd in range(ROUNDS):
            for key, (x, rep) in signals.items():
                print(f"  round {rnd + 1}/{ROUNDS} {key} ...", end="\r", flush=True)
                cpu, wall = _times(lambda: magnitude_to_audio(mags[key], rep), per_round)
                ours_t[key][0].extend(cpu)
                ours_t[key][1].extend(wall)
                if worker is not None:
                    reply = worker.time(key, per_round)
                    tif_t[key][0].extend(reply["cpu"])
                    tif_t[key][1].extend(reply["wall"])
        for key, (x, rep) in signals.items():
            y = magnitude_to_audio(mags[key], rep)
            results[key]["ours"] = {**_summary(*ours_t[key]),
                                    "sc_db": P.spectral_convergence(mags[key], y.astype(np.float64), rep)}
            if worker is not None:
                sc, y_tif = worker.result(key)
                results[key]["tifresi"] = {**_summary(*tif_t[key]), "sc_db": sc,
                                           # cross-check: the same output measured in our transform
                                           "sc_db_our_transform": P.spectral_convergence(mags[key], y_tif, rep)}
    except Exception as exc:  # noqa: BLE001 - a worker failing mid-run: report it, keep our figures
        tifresi_note = f"tifresi failed while running: {exc}"
        for key in signals:
            results[key].pop("tifresi", None)
            if "ours" not in results[key]:
                results[key]["ours"] = run_ours(*signals[key], 0, repeats)
    finally:
        if worker is not None:
            worker.close()
        tmp.cleanup()

    # ---- report
    methods = [("ours", "ours: PGHI"), ("ours_refine10", "ours: PGHI + 10 fast GL"), ("tifresi", "tifresi PGHI"),
               ("librosa_gl32", "librosa GL 32"), ("librosa_gl100", "librosa GL 100")]
    print(f"PGHI benchmark: {platform.processor() or platform.machine()}, pinned to cpu {core}, one thread; "
          f"time = magnitude -> waveform, thread CPU time per call, best of {per_round * ROUNDS} calls in {ROUNDS} "
          f"rounds alternating ours and tifresi (refine 10: {max(1, repeats // 3)}, GL: {gl_repeats}) after a warm-up "
          f"call; medians and wall times in --json")
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"(on {os.cpu_count()} cores; CPU time is not inflated by other processes' slices, cache contention still "
          "slows every column)")
    print(f"ours: JIT load at start {warm_ms:.0f} ms"
          + (f"; tifresi first call (JIT) {tifresi_info['first_call_ms']:.0f} ms" if tifresi_info else ""))
    print(f"tifresi: {tifresi_note}; malloc: {malloc_note}")
    print("signals: " + "; ".join(f"{k}: {v}" for k, v in described.items()))
    goals = []
    for hop in args.hops:
        rep = reps[hop]
        print(f"\nhop {hop}: {rep.seconds:.3f} s clips, {rep.frames} frames x {rep.rows + 1} bins. "
              "Cells: spectral convergence dB / ms per clip")
        print(f"{'method':26s}" + "".join(f"{s:>18s}" for s in SIGNALS))
        for mkey, label in methods:
            cells = []
            for s in SIGNALS:
                r = results[f"{s}@{hop}"].get(mkey)
                cells.append(f"{r['sc_db']:7.1f} / {r['ms']:7.2f}" if r else f"{'n/a':>16s}")
            print(f"{label:26s}" + "".join(f"{c:>18s}" for c in cells))
        for ref, label in (("tifresi", "tifresi"), ("librosa_gl32", "GL 32"), ("librosa_gl100", "GL 100")):
            cells = []
            for s in SIGNALS:
                r = results[f"{s}@{hop}"]
                if ref in r:
                    r["ours"][f"speedup_vs_{ref}"] = r[ref]["ms"] / r["ours"]["ms"]
                    cells.append(f"{r[ref]['ms'] / r['ours']['ms']:.1f}x")
                else:
                    cells.append("n/a")
            print(f"{'ours speed-up vs ' + label:26s}" + "".join(f"{c:>18s}" for c in cells))
        # goals
        per_2s = [results[f"{s}@{hop}"]["ours"]["ms"] * (2.048 / rep.seconds) for s in SIGNALS]
        goals.append((f"hop {hop}: <= {GOAL_MS_PER_2S} ms of PGHI + synthesis per 2 s of audio on every signal",
                      max(per_2s) <= GOAL_MS_PER_2S, f"worst {max(per_2s):.2f} ms per 2 s"))
        if all("tifresi" in results[f"{s}@{hop}"] for s in SIGNALS):
            speed = [results[f"{s}@{hop}"]["ours"]["speedup_vs_tifresi"] for s in SIGNALS]
            diffs = [results[f"{s}@{hop}"]["ours"]["sc_db"] - results[f"{s}@{hop}"]["tifresi"]["sc_db"]
                     for s in SIGNALS]
            goals.append((f"hop {hop}: >= {GOAL_SPEEDUP:.0f}x faster than tifresi on every signal",
                          min(speed) >= GOAL_SPEEDUP, "ratios " + ", ".join(f"{s} {v:.1f}x" for s, v in
                                                                           zip(SIGNALS, speed))))
            goals.append((f"hop {hop}: spectral convergence <= tifresi's on every signal (a tie within "
                          f"{TIE_DB} dB counts)", max(diffs) <= TIE_DB,
                          "ours minus tifresi: " + ", ".join(f"{s} {d:+.2f} dB" for s, d in zip(SIGNALS, diffs))))
    print("\ngoals:")
    for text, ok, detail in goals:
        print(f"  [{'PASS' if ok else 'FAIL'}] {text} ({detail})")
    total = time.perf_counter() - t_start
    print(f"\nbenchmark took {total:.0f} s")

    if args.json:
        doc = {"machine": {"processor": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                           "pinned_cpu": core, "threads": 1},
               "repeats": repeats, "gl_repeats": gl_repeats, "warmup_ms": warm_ms,
               "tifresi": {"status": tifresi_note, "malloc": malloc_note, **tifresi_info}, "signals": described,
               "results": results, "goals": [{"goal": g, "pass": ok, "detail": d} for g, ok, d in goals],
               "seconds": total}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
