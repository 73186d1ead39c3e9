"""Benchmark: how fast a clip is made, generator to loudness-normalised audio, against the research pipeline.

Measured in one run, on the CPU, with an explicit torch thread count (default 1):

* **ours, one clip**: ``Synthesizer.render`` of the shipped model (``--model``, default ``hits``) for N control
  states with different seeds: p50 and p99 of the whole chain (latent -> generator -> PGHI -> loudness) and of each
  stage (the synthesizer's own per-stage timings);
* **ours, a batch of 32**: the batched generator, then ``waveform.spectrogram_to_audio_batch`` (decode, PGHI,
  synthesis) and loudness per clip: clips per second;
* **research pipeline** (the baseline): the research system's 2-D generator (``model.paper_config()``, widths 512
  down to 64, **random weights**: the time of a forward pass does not depend on what the weights are) + tifresi's
  PGHI (``GaussTruncTF.invert_spectrogram``, in its own venv ``benchmarks/.venv-tifresi``, run on our generated
  clips so it inverts realistic spectrograms; wall-time medians, like ours) + pyloudnorm to -14 LUFS, as the
  research system does. Its one-clip time is the sum of the stage medians. If tifresi cannot run, the benchmark
  says exactly why and uses our PGHI for that column, labelled as such.

Goals printed: generator + PGHI + loudness <= 20 ms median for a 2 s clip, and >= 15x faster than the research
pipeline. Everything is warmed up first (numba's JIT via ``pghi.warmup``, torch's first calls, tifresi's first call).

Why one torch thread by default: the server renders on one core and leaves the other to the audio callback, and on
a loaded 2-core machine two OpenMP threads that wait for each other measured 30x slower, not faster
(``--threads 2`` to see it).

Usage::

    python benchmarks/generate.py --quick                    # under a minute
    python benchmarks/generate.py --model /work/runs/hits/best --json out/generate.json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

GOAL_MS = 20.0
GOAL_SPEEDUP = 15.0
SEED0 = 1000            # first seed of the timed renders (warm-up renders use seeds below it)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hits", help="shipped model name or checkpoint folder (default: hits)")
    ap.add_argument("--quick", action="store_true", help="fewer renders and a smaller baseline batch (< 1 min)")
    ap.add_argument("--json", metavar="PATH", help="write all figures (and machine info) as JSON")
    ap.add_argument("--threads", type=int, default=1, help="torch / numba threads (default 1, see above)")
    ap.add_argument("--renders", type=int, help="timed one-clip renders of ours (default 200, quick 40)")
    ap.add_argument("--batch", type=int, default=32, help="batch size for the throughput figure (default 32)")
    ap.add_argument("--batch-repeats", type=int, help="timed batches (default 3, quick 1)")
    ap.add_argument("--baseline-renders", type=int, help="timed one-clip runs of the 2-D generator (default 10, "
                                                         "quick 3)")
    ap.add_argument("--baseline-batch", type=int, help="batch of the 2-D generator (default 32, quick 4)")
    ap.add_argument("--tifresi-clips", type=int, help="generated clips tifresi inverts (default 8, quick 3)")
    ap.add_argument("--no-tifresi", action="store_true", help="skip tifresi (our PGHI stands in, labelled)")
    ap.add_argument("--smoke", action="store_true",
                    help="for tests: the 2-D baseline at 1/16 of the paper widths and a handful of runs; the "
                         "figures mean nothing")
    args = ap.parse_args(argv)
    quick = args.quick or args.smoke
    args.renders = args.renders or (5 if args.smoke else 40 if quick else 200)
    args.batch_repeats = args.batch_repeats or (1 if quick else 3)
    args.baseline_renders = args.baseline_renders or (2 if args.smoke else 3 if quick else 10)
    args.baseline_batch = args.baseline_batch or (4 if quick else 32)
    args.tifresi_clips = args.tifresi_clips or (2 if args.smoke else 3 if quick else 8)
    for name in ("renders", "batch", "batch_repeats", "baseline_renders", "baseline_batch", "tifresi_clips"):
        if getattr(args, name) < 1:
            raise common.BenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def baseline_config(smoke: bool):
    """The research system's generator (``paper_config``); for ``--smoke`` the same shape at 1/16 of the widths."""
    from stylesynth.model import paper_config

    cfg = paper_config()
    if smoke:
        cfg.channels = {k: max(4, v // 16) for k, v in cfg.channels.items()}
        cfg.d_channels = dict(cfg.channels)
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------------------------------------------

def ours_latency(synth, renders: int) -> tuple[dict, list]:
    """Render ``renders`` states (seeds SEED0...) one by one; per-stage and total p50/p99 (ms), and the clips."""
    from stylesynth.state import ControlState

    per_stage: dict[str, list] = {}
    clips = []
    for i in range(renders):
        clip = synth.render(ControlState(seed=SEED0 + i))
        for stage, ms in clip.timings.items():
            per_stage.setdefault(stage, []).append(ms)
        clips.append(clip)
    return {stage: common.summary(v) for stage, v in per_stage.items()}, clips


def ours_batch(synth, batch: int, repeats: int, threads: int, truncation: float) -> dict:
    """One batch: latents -> batched generator -> batched decode + PGHI + synthesis -> loudness per clip."""
    import numpy as np
    import torch

    from stylesynth import loudness, waveform
    from stylesynth.synthesizer import seed_latent

    G, rep = synth.generator, synth.rep
    times: dict[str, list] = {"latent": [], "generator": [], "pghi": [], "loudness": [], "total": []}
    for r in range(repeats + 1):                     # the first batch warms up allocations at this size
        seeds = range(SEED0 + 100_000 + r * batch, SEED0 + 100_000 + (r + 1) * batch)
        t0 = time.perf_counter()
        ws = torch.cat([seed_latent(G, s, truncation) for s in seeds])
        t1 = time.perf_counter()
        with torch.no_grad():
            specs = G.synthesize(ws, noise="const").float().cpu().numpy()
        t2 = time.perf_counter()
        audio = waveform.spectrogram_to_audio_batch(specs, rep, lufs=None, workers=threads)
        t3 = time.perf_counter()
        audio = np.stack([loudness.normalize(a, rep.sample_rate, synth.lufs) for a in audio])
        t4 = time.perf_counter()
        if r == 0:
            continue
        for key, ms in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            times[key].append(ms * 1e3)
    out = {k: float(np.median(v)) for k, v in times.items()}
    out["clips_per_s"] = batch / (out["total"] / 1e3)
    out["batch"] = batch
    out["repeats"] = repeats
    return out


# ---------------------------------------------------------------------------------------------------------------
# The research pipeline
# ---------------------------------------------------------------------------------------------------------------

def research_generator(smoke: bool):
    import torch

    from stylesynth.model import Generator, count_parameters

    torch.manual_seed(0)          # random weights: timing only
    G = Generator(baseline_config(smoke)).eval().requires_grad_(False)
    return G, count_parameters(G)


def research_generator_times(G, renders: int, batch: int, repeats: int) -> dict:
    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        G(torch.randn((1, G.cfg.z_dim), generator=gen))                 # warm-up
        one = []
        for _ in range(renders):
            z = torch.randn((1, G.cfg.z_dim), generator=gen)
            t0 = time.perf_counter()
            G(z, noise="const")
            one.append((time.perf_counter() - t0) * 1e3)
        many = []
        for _ in range(repeats):
            z = torch.randn((batch, G.cfg.z_dim), generator=gen)
            t0 = time.perf_counter()
            G(z, noise="const")
            many.append((time.perf_counter() - t0) * 1e3)
    return {"one": common.summary(one), "batch_ms": float(np.median(many)), "batch": batch}


def research_loudness_ms(clips, sample_rate: int) -> tuple[float, int]:
    """pyloudnorm to -14 LUFS, as the research system does it (meter + gain, no peak guard): median ms per clip,
    and how many clips came out with samples beyond full scale (the defect our true-peak ceiling fixes)."""
    import warnings

    import numpy as np
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    times, clipped = [], 0
    for audio in clips:
        x = audio.astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # pyloudnorm warns "Possible clipped samples": counted below
            t0 = time.perf_counter()
            y = pyloudnorm.normalize.loudness(x, meter.integrated_loudness(x), -14.0)
            times.append((time.perf_counter() - t0) * 1e3)
        clipped += int(np.max(np.abs(y)) > 1.0)
    return float(np.median(times)), clipped


def research_decode_ms(specs, rep) -> float:
    """dB image -> linear magnitude with the Nyquist row appended, in float64 as the research code does."""
    from stylesynth import spectrogram

    return common.median_ms(lambda: [spectrogram.decode(s, rep) for s in specs], 3)[0] / len(specs)


def research_pghi(clips, rep, repeats: int, use_tifresi: bool) -> tuple[float, str, dict]:
    """Median ms of tifresi's PGHI per clip (its venv), or of ours when tifresi cannot run (labelled)."""
    import numpy as np

    note = "skipped (--no-tifresi)"
    if use_tifresi:
        ok, why = common.tifresi_status()
        if ok:
            signals = {f"clip{i}": (c.audio.astype(np.float64), rep.hop) for i, c in enumerate(clips)}
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    worker = common.TifresiWorker(signals, Path(tmp))
                    try:
                        times = {key: worker.time(key, repeats) for key in signals}
                    finally:
                        worker.close()
                # wall-time medians, as our own p50 is
                per_clip = [float(np.median(t["wall"])) for t in times.values()]
                cpu = [float(np.median(t["cpu"])) for t in times.values()]
                return float(np.median(per_clip)), "tifresi PGHI", {
                    "status": "ok", "first_call_ms": worker.first_call_ms, "per_clip_wall_ms": per_clip,
                    "per_clip_cpu_ms": cpu}
            except (RuntimeError, OSError, ValueError) as exc:
                note = f"tifresi failed while running: {exc}"
        else:
            note = f"tifresi unavailable: {why}"
    from stylesynth import spectrogram, waveform

    mags = [spectrogram.decode(c.spec, rep) for c in clips]      # decoding is timed as its own stage

    def ours():
        for m in mags:
            waveform.magnitude_to_audio(m, rep)

    ms = common.median_ms(ours, repeats)[0] / len(clips)
    return ms, "OUR PGHI standing in (tifresi not run)", {"status": note}


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    threads = common.set_threads(args.threads)
    folder = common.resolve_model(args.model)

    from stylesynth import checkpoint, pghi
    from stylesynth.model import count_parameters
    from stylesynth.synthesizer import Synthesizer

    machine = common.machine_info(threads)
    try:
        synth = Synthesizer.load(str(folder))
    except checkpoint.ModelError as exc:
        raise common.BenchError(f"--model {args.model}: {exc}") from None
    rep, G = synth.rep, synth.generator

    # ---- warm-up: numba kernels (JIT or cache load), then torch's first calls at this size
    from stylesynth.state import ControlState

    t0 = time.perf_counter()
    pghi.warmup()
    jit_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    synth.render(ControlState(seed=0))
    first_render_ms = (time.perf_counter() - t0) * 1e3
    for s in range(1, 4):
        synth.render(ControlState(seed=s))
    truncation = ControlState().truncation

    print(f"ours: {args.renders} one-clip renders ...", flush=True)
    latency, clips = ours_latency(synth, args.renders)
    print(f"ours: batch of {args.batch} x {args.batch_repeats} ...", flush=True)
    batch = ours_batch(synth, args.batch, args.batch_repeats, threads, truncation)

    print("research pipeline: 2-D generator (random weights) ...", flush=True)
    G_paper, paper_params = research_generator(args.smoke)
    paper = research_generator_times(G_paper, args.baseline_renders, args.baseline_batch, args.batch_repeats)
    tif_clips = clips[: args.tifresi_clips]
    print(f"research pipeline: PGHI on {len(tif_clips)} generated clips ...", flush=True)
    pghi_ms, pghi_label, tif_info = research_pghi(tif_clips, rep, 3 if args.quick or args.smoke else 7,
                                                  not args.no_tifresi)
    decode_ms = research_decode_ms([c.spec for c in tif_clips], rep)
    loud_ms, research_clipped = research_loudness_ms([c.audio for c in tif_clips], rep.sample_rate)
    research_one = paper["one"]["p50"] + decode_ms + pghi_ms + loud_ms
    research_per_clip_after_gen = decode_ms + pghi_ms + loud_ms
    research_batch_ms = paper["batch_ms"] + paper["batch"] * research_per_clip_after_gen
    research_clips_per_s = paper["batch"] / (research_batch_ms / 1e3)

    ours_p50 = latency["total"]["p50"]
    speedup = research_one / ours_p50
    batch_ratio = batch["clips_per_s"] / research_clips_per_s

    # ---- report
    seconds = rep.seconds
    ours_params = count_parameters(G)
    print(f"\nGeneration benchmark: {rep.seconds:.3f} s clips (hop {rep.hop}), CPU, torch threads {threads}, "
          f"model {folder}")
    print(f"warm-up: numba kernels {jit_ms:.0f} ms, first render after load {first_render_ms:.0f} ms")
    stages = ["latent", "generator", "pghi", "loudness", "total"]
    family = {"cpu": "1-D", "paper": "2-D"}.get(G.cfg.family, G.cfg.family)
    print(f"\n{'one clip (ms)':52s}" + "".join(f"{s:>10s}" for s in stages))
    print(f"{f'ours p50 ({family}, {ours_params / 1e6:.1f} M params)':52s}"
          + "".join(f"{latency[s]['p50']:10.2f}" for s in stages))
    print(f"{'ours p99':52s}" + "".join(f"{latency[s]['p99']:10.2f}" for s in stages))
    r_cells = [0.0, paper["one"]["p50"], decode_ms + pghi_ms, loud_ms, research_one]
    label = f"research p50 (2-D, {paper_params / 1e6:.1f} M, random w)"
    print(f"{label:52s}" + "".join(f"{c:10.2f}" for c in r_cells))
    print(f"  research PGHI column: {pghi_label} ({tif_info['status']}); its latent is inside 'generator'; "
          f"'pghi' includes decode {decode_ms:.2f} ms")
    print(f"{'speed-up (research / ours), p50':52s}" + "".join(
        f"{r / latency[s]['p50']:9.1f}x" if latency[s]['p50'] > 0 and r > 0 else f"{'-':>10s}"
        for s, r in zip(stages, r_cells)))
    print(f"  research loudness (pyloudnorm, no peak guard): {research_clipped} of {len(tif_clips)} clips went past "
          "full scale; ours keeps a -1 dBTP ceiling, hence its slower loudness stage")
    print(f"real-time factor, ours p50: {seconds * 1e3 / ours_p50:.0f}x (a {seconds:.3f} s clip in "
          f"{ours_p50:.1f} ms)")

    print(f"\n{'batch throughput':52s} clips/s   batch  gen ms  pghi ms  loud ms")
    print(f"{'ours':52s}{batch['clips_per_s']:8.1f}{batch['batch']:8d}{batch['generator'] + batch['latent']:8.0f}"
          f"{batch['pghi']:9.0f}{batch['loudness']:9.0f}")
    print(f"{'research (2-D gen batched; PGHI, loudness per clip)':52s}{research_clips_per_s:8.2f}"
          f"{paper['batch']:8d}{paper['batch_ms']:8.0f}{paper['batch'] * (decode_ms + pghi_ms):9.0f}"
          f"{paper['batch'] * loud_ms:9.0f}")
    print(f"{'ratio (ours / research)':52s}{batch_ratio:7.1f}x")

    goals = [
        common.goal(f"generator + PGHI + loudness <= {GOAL_MS:.0f} ms median for a {seconds:.1f} s clip",
                    ours_p50 <= GOAL_MS, f"p50 {ours_p50:.1f} ms, p99 {latency['total']['p99']:.1f} ms"),
        common.goal(f">= {GOAL_SPEEDUP:.0f}x faster than the research pipeline (one clip, p50)",
                    speedup >= GOAL_SPEEDUP, f"{speedup:.1f}x; PGHI column: {pghi_label}"),
    ]
    common.print_goals(goals)
    if args.smoke:
        print("\n--smoke: the baseline is a 1/16-width toy and runs are few; these figures mean nothing")

    doc = {
        "benchmark": "generate", "machine": machine, "quick": bool(args.quick), "smoke": bool(args.smoke),
        "model": {"path": str(folder), "family": G.cfg.family, "params": ours_params,
                  "representation": rep.to_json(), "truncation": truncation},
        "warmup": {"numba_ms": jit_ms, "first_render_ms": first_render_ms},
        "ours": {"latency_ms": latency, "batch": batch},
        "research": {"generator": {"config": "paper_config" + (" / 16 (smoke)" if args.smoke else ""),
                                   "params": paper_params, "weights": "random (timing only)", **paper},
                     "pghi": {"label": pghi_label, "ms_per_clip": pghi_ms, **tif_info},
                     "decode_ms_per_clip": decode_ms, "loudness_ms_per_clip": loud_ms,
                     "loudness_clipped_clips": research_clipped, "loudness_clips": len(tif_clips),
                     "one_clip_ms": research_one, "batch_clips_per_s": research_clips_per_s},
        "ratios": {"latency_speedup_p50": speedup, "batch_throughput_ratio": batch_ratio},
        "goals": goals,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
    }
    common.finish(doc, args.json, started)
    return 0


if __name__ == "__main__":
    common.run(main)
