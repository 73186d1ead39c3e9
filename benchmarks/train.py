"""Benchmark: training speed, clips per second of a full StyleGAN2 step, shipped CPU family vs the paper's 2-D family.

A full step is :func:`stylesynth.train.train_step` exactly as ``stylesynth train`` runs it: G step, D step, lazy R1
on reals every ``r1_interval`` (16) steps, EMA of G. The R1 step costs more, so both kinds are timed and the rate
is amortised: ``step = (15 * plain + r1) / 16``, ``clips/s = batch / step``. Measured in one run, after a warm-up
step, with torch using every core (``--threads`` to change):

* **shipped**: the CPU family ``stylesynth train`` trains (``train.default_architecture("hits")``: 1-D convolutions
  over time, frequency rows as channels), or the architecture of ``--model``'s checkpoint, at batch 32;
* **baseline**: the research system's 2-D family (``model.paper_config()``, widths 512 down to 64) at a small batch
  (4, quick 2; the rate per clip barely depends on the batch on a CPU, and batch 32 would take minutes per step);
* with more than one thread, the shipped family again on one thread (how ``stylesynth train --threads 1`` runs on
  this shared machine: on a loaded 2-core box, two OpenMP threads waiting for each other measured 9x slower);
* optionally the shipped family under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (this CPU has avx512_bf16);
  measured only, the training code is not changed (the w_avg tracking is left out of that row: as written it mixes
  bf16 and fp32 under autocast and torch refuses).

The reals are random spectrograms in [-1, 1] of the right shape: the cost of a step does not depend on the data.
Goal printed: >= 25 clips/s for the shipped family.

Usage::

    python benchmarks/train.py --quick              # under a minute on an idle machine
    python benchmarks/train.py --json out/train.json
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

GOAL_CLIPS_PER_S = 25.0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer timed steps (under a minute on an idle machine)")
    ap.add_argument("--json", metavar="PATH", help="write all figures (and machine info) as JSON")
    ap.add_argument("--threads", type=int, default=common.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--model", help="take the shipped family's architecture from this checkpoint (name or folder) "
                                    "instead of train.default_architecture('hits')")
    ap.add_argument("--batch", type=int, default=32, help="batch of the shipped family (default 32)")
    ap.add_argument("--baseline-batch", type=int, help="batch of the 2-D paper family (default 4, quick 2)")
    ap.add_argument("--steps", type=int, help="timed steps without R1 per configuration (default 6, quick 1)")
    ap.add_argument("--r1-steps", type=int, help="timed steps with R1 per configuration (default 2, quick 1)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast measurement")
    ap.add_argument("--no-one-thread", action="store_true",
                    help="with --threads > 1, skip the extra row of the shipped family on one thread")
    ap.add_argument("--smoke", action="store_true",
                    help="for tests: tiny configurations of both families, one step each; the figures mean nothing")
    args = ap.parse_args(argv)
    # quick: one step of each kind; a 2-D step is slow (measured 162 s at batch 4 here with the load average at 10)
    args.steps = args.steps or (1 if args.quick or args.smoke else 6)
    args.baseline_batch = args.baseline_batch or (2 if args.quick or args.smoke else 4)
    args.r1_steps = args.r1_steps or (1 if args.quick or args.smoke else 2)
    for name in ("batch", "baseline_batch", "steps", "r1_steps"):
        if getattr(args, name) < 1:
            raise common.BenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def configurations(args) -> tuple[object, object, str]:
    """(shipped architecture, baseline architecture, where the shipped one came from)."""
    from stylesynth import checkpoint, train
    from stylesynth.model import ModelConfig, paper_config, tiny_config

    if args.smoke:
        shipped = tiny_config()
        baseline = tiny_config()
        baseline.family = "paper"
        baseline.bin_noise = False
        return shipped, baseline, "tiny_config (smoke)"
    if args.model:
        folder = common.resolve_model(args.model)
        try:
            meta = checkpoint.read_meta(folder)
        except checkpoint.ModelError as exc:
            raise common.BenchError(f"--model {args.model}: {exc}") from None
        return ModelConfig.from_json(meta["architecture"]), paper_config(), f"checkpoint {folder}"
    return train.default_architecture("hits"), paper_config(), "train.default_architecture('hits')"


def measure(cfg, batch: int, steps: int, r1_steps: int, bf16: bool = False, threads: int | None = None) -> dict:
    """Time ``train.train_step`` for ``cfg`` at ``batch``: one warm-up step (with R1, so every code path has run
    once), ``steps`` plain steps and ``r1_steps`` R1 steps; medians and the amortised rate. ``threads``: torch
    threads for this measurement only (default: as set for the run)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads or saved)
    try:
        return _measure(cfg, batch, steps, r1_steps, bf16) | {"threads": torch.get_num_threads()}
    finally:
        torch.set_num_threads(saved)


def _measure(cfg, batch: int, steps: int, r1_steps: int, bf16: bool) -> dict:
    import numpy as np
    import torch

    from stylesynth import train
    from stylesynth.model import Discriminator, Generator, count_parameters

    tc = train.TrainConfig(batch=batch)
    if bf16:
        # Generator.map's w_avg update lerps a bf16 w (autocast's output) into the fp32 w_avg, which torch refuses
        # ("expected dtype BFloat16 for `end`"); skipping that one tracking op (negligible cost) is what lets the
        # rest of the step run under autocast without touching the training code.
        tc.w_avg_beta = None
    torch.manual_seed(0)
    G, D, G_ema = Generator(cfg), Discriminator(cfg), Generator(cfg)
    G_ema.load_state_dict(G.state_dict())
    G_ema.requires_grad_(False).eval()
    G.train()
    # The optimizers exactly as train.run builds them (D's lr and betas adjusted for lazy R1).
    c = tc.r1_interval / (tc.r1_interval + 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr, betas=tuple(tc.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr * c, betas=tuple(b ** c for b in tc.betas))
    gen = torch.Generator().manual_seed(0)
    real = torch.rand((batch, cfg.rows, cfg.frames), generator=gen) * 2 - 1
    context = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    interval = tc.r1_interval

    def step(number: int) -> tuple[float, dict]:
        t0 = time.perf_counter()
        with context():
            out = train.train_step(number, real, G, D, G_ema, opt_g, opt_d, tc, gen, nimg=(number + 1) * batch)
        return (time.perf_counter() - t0) * 1e3, out

    warm_ms, out = step(0)                                           # step 0 % interval == 0: an R1 step
    plain = [step(n) for n in range(1, steps + 1)]                   # not multiples of the interval
    r1 = [step(interval * k) for k in range(1, r1_steps + 1)]
    losses = [o for _, o in plain + r1] + [out]
    finite = all(math.isfinite(v) for o in losses for v in o.values())
    plain_ms = float(np.median([ms for ms, _ in plain]))
    r1_ms = float(np.median([ms for ms, _ in r1]))
    step_ms = ((interval - 1) * plain_ms + r1_ms) / interval
    return {"family": cfg.family, "batch": batch, "bf16": bf16, "g_params": count_parameters(G),
            "d_params": count_parameters(D), "warmup_step_ms": warm_ms, "plain_step_ms": plain_ms,
            "r1_step_ms": r1_ms, "amortised_step_ms": step_ms, "clips_per_s": batch / (step_ms / 1e3),
            "kimg_per_hour": batch / (step_ms / 1e3) * 3.6, "timed_steps": {"plain": steps, "r1": r1_steps},
            "r1_interval": interval, "losses_finite": finite,
            "last_losses": {k: common.finite_or_none(v) for k, v in losses[-2].items()}}


def main(argv=None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    threads = common.set_threads(args.threads)
    machine = common.machine_info(threads)
    shipped_cfg, baseline_cfg, source = configurations(args)
    bf16_ok = "avx512_bf16" in machine["cpu_flags"] or "amx_bf16" in machine["cpu_flags"]

    rows = {}
    print(f"shipped family ({shipped_cfg.family}), batch {args.batch} ...", flush=True)
    rows["shipped"] = measure(shipped_cfg, args.batch, args.steps, args.r1_steps)
    if threads > 1 and not args.no_one_thread:
        # `stylesynth train --threads 1` is how the shipped model is being trained on this shared machine: on a
        # loaded 2-core box two OpenMP threads that wait for each other can be several times slower than one.
        print(f"shipped family, 1 thread, batch {args.batch} ...", flush=True)
        rows["shipped_1_thread"] = measure(shipped_cfg, args.batch, args.steps, args.r1_steps, threads=1)
    print(f"baseline: paper 2-D family, batch {args.baseline_batch} ...", flush=True)
    rows["baseline"] = measure(baseline_cfg, args.baseline_batch, args.steps, args.r1_steps)
    bf16_note = "skipped (--no-bf16)" if args.no_bf16 else "measured"
    if not args.no_bf16:
        if not bf16_ok:
            bf16_note = "measured, but this CPU reports no avx512_bf16/amx_bf16 (emulated bf16 is slow)"
        print(f"shipped family, bf16 autocast, batch {args.batch} ...", flush=True)
        try:
            rows["shipped_bf16"] = measure(shipped_cfg, args.batch, args.steps, args.r1_steps, bf16=True)
        except RuntimeError as exc:          # an op without a bf16 CPU kernel: report, do not fail the benchmark
            bf16_note = f"failed: {str(exc).splitlines()[0]}"

    base = rows["baseline"]["clips_per_s"]
    for r in rows.values():
        r["ratio_vs_baseline"] = r["clips_per_s"] / base
    if "shipped_bf16" in rows:
        rows["shipped_bf16"]["ratio_vs_fp32"] = rows["shipped_bf16"]["clips_per_s"] / rows["shipped"]["clips_per_s"]

    labels = {"shipped": f"shipped ({'1-D' if shipped_cfg.family == 'cpu' else shipped_cfg.family})",
              "shipped_1_thread": "shipped, 1 thread", "baseline": "baseline: paper 2-D",
              "shipped_bf16": "shipped, bf16 autocast"}
    print(f"\nTraining-step benchmark: train.train_step (G + D + lazy R1 every {rows['shipped']['r1_interval']} "
          f"+ EMA), torch threads {threads}; shipped architecture from {source}")
    print(f"{'configuration':26s}{'G M':>6s}{'D M':>6s}{'thr':>4s}{'batch':>6s}{'plain ms':>10s}{'R1 ms':>9s}"
          f"{'step ms':>9s}{'clips/s':>9s}{'kimg/h':>8s}{'x base':>8s}")
    for key, r in rows.items():
        print(f"{labels[key]:26s}{r['g_params'] / 1e6:6.1f}{r['d_params'] / 1e6:6.1f}{r['threads']:4d}{r['batch']:6d}"
              f"{r['plain_step_ms']:10.0f}{r['r1_step_ms']:9.0f}{r['amortised_step_ms']:9.0f}{r['clips_per_s']:9.2f}"
              f"{r['kimg_per_hour']:8.1f}{r['ratio_vs_baseline']:7.1f}x")
    print(f"step ms = (15 x plain + R1) / 16; bf16 autocast: {bf16_note}"
          + (f" ({rows['shipped_bf16']['ratio_vs_fp32']:.2f}x fp32)" if "shipped_bf16" in rows else ""))
    bad = [labels[k] for k, r in rows.items() if not r["losses_finite"]]
    if bad:
        print(f"warning: non-finite losses in {', '.join(bad)}")

    goals = [common.goal(f">= {GOAL_CLIPS_PER_S:g} clips/s for the shipped family (full step, batch {args.batch})",
                         rows["shipped"]["clips_per_s"] >= GOAL_CLIPS_PER_S,
                         f"{rows['shipped']['clips_per_s']:.1f} clips/s, {rows['shipped']['ratio_vs_baseline']:.0f}x "
                         f"the paper family")]
    common.print_goals(goals)
    if args.smoke:
        print("\n--smoke: tiny configurations; these figures mean nothing")

    doc = {"benchmark": "train", "machine": machine, "quick": bool(args.quick), "smoke": bool(args.smoke),
           "shipped_architecture": {"source": source, **shipped_cfg.to_json()},
           "data": "random spectrograms in [-1, 1] (a step's cost does not depend on the data)",
           "rows": rows, "bf16": {"cpu_support": bf16_ok, "note": bf16_note}, "goals": goals,
           "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    common.finish(doc, args.json, started)
    return 0


if __name__ == "__main__":
    common.run(main)
