"""``stylesynth train``: train (or resume) a model in a run folder, and export its best EMA generator."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from stylesynth.cli import CliError

HELP = """\
Train a StyleGAN2 spectrogram model on procedural data made on the fly (first run) or read from --data.

Everything lives in the run folder (default runs/MODEL): config, state (resumable exactly), log.jsonl,
samples/ (a PNG grid per evaluation), best/ (the EMA generator with the lowest Frechet distance so far).
Run the same command again to resume. With no run folder yet, a run warm-starts from the shipped checkpoint
checkpoints/MODEL when there is one (--warm-start none to start from scratch).

Examples:
  stylesynth train --model hits --kimg 200
  nice -n 10 nohup stylesynth train --model env --run-dir /work/runs/env --kimg 200 &
  stylesynth train --model hits --size tiny --kimg 1 --run-dir /tmp/t    # a quick smoke run
  torchrun --nproc_per_node 2 -m stylesynth train --model hits           # data parallel (gloo on CPU)
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model (resumable, CPU or GPU)", description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["hits", "env"], default="hits",
                   help="hits: 2.048 s impacts and scratches (hop 128); env: 4.096 s environmental sounds (hop 256)")
    p.add_argument("--run-dir", "--resume", dest="run_dir", metavar="RUN",
                   help="run folder to create or resume (default runs/MODEL)")
    p.add_argument("--config", metavar="FILE",
                   help="JSON with optional 'architecture' (model.ModelConfig) and 'train' (TrainConfig) fields")
    p.add_argument("--size", choices=["cpu", "paper", "tiny"], default="cpu",
                   help="architecture family: cpu (1-D over time, default), paper (the research system's 2-D "
                        "widths; needs a GPU to be practical), tiny (tests)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--kimg", type=float, help="train until this many thousand images (default 200)")
    p.add_argument("--batch", type=int, help="images per step per process (default 32)")
    p.add_argument("--data", metavar="DIR", help="dataset folder (made by 'stylesynth data make'; made here if absent)")
    p.add_argument("--data-n", type=int, help="clips to make when the dataset is absent (default 16000)")
    p.add_argument("--warm-start", default="auto", metavar="MODEL",
                   help="checkpoint to start from when the run folder is new: a name or folder, 'auto' (the "
                        "shipped checkpoint of --model if any) or 'none'")
    p.add_argument("--export", metavar="DIR", help="also write each new best EMA generator here (e.g. checkpoints/hits)")
    p.add_argument("--export-last", metavar="DIR",
                   help="do not train: evaluate the run's latest EMA generator and write it to DIR as a checkpoint "
                        "(best/ keeps the lowest training-eval FD, a noisy figure on 256 clips)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (for smoke tests)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the loss passes (2-2.7x faster on CPUs with avx512_bf16; R1 in fp32)")
    p.add_argument("--reanalysis", action="store_true",
                   help="the discriminator judges sounds, not images: fakes and reals alike go image -> PGHI -> "
                        "waveform -> image, so G learns images whose audio is right (onsets survive rendering). On a resume it switches the "
                        "run over for good (best/ is then chosen by fd_audio)")
    p.add_argument("--consistency", type=float, metavar="W",
                   help="with --reanalysis: add W * mean |image of the sound - image| to G's loss (e.g. 5), so G "
                        "draws images PGHI can render as drawn; on a resume, sets the weight from here on")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from stylesynth import checkpoint, train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    tc = train.TrainConfig(model=args.model)
    arch = train.default_architecture(args.model, args.size)
    if args.config:
        try:
            extra = json.loads(Path(args.config).read_text())
            if "architecture" in extra:
                arch = type(arch).from_json({**arch.to_json(), **extra["architecture"]})
            if "train" in extra:
                tc = train.TrainConfig.from_json({**train.asdict(tc), **extra["train"]})
        except (OSError, ValueError, TypeError) as exc:
            raise CliError(f"--config {args.config}: {exc}") from None
    for name, value in (("kimg", args.kimg), ("batch", args.batch), ("data_n", args.data_n)):
        if value is not None:
            if value <= 0:
                raise CliError(f"--{name.replace('_', '-')} must be positive, got {value}")
            setattr(tc, name, value)
    if args.data:
        tc.data_dir = args.data
    tc.amp = "bf16" if args.bf16 else "none"
    tc.reanalysis = tc.reanalysis or args.reanalysis
    if args.consistency is not None:
        if not (args.consistency >= 0):
            raise CliError(f"--consistency must be a non-negative number, got {args.consistency}")
        tc.consistency = args.consistency
    run_dir = Path(args.run_dir or f"runs/{args.model}")
    warm = None
    if args.warm_start == "auto":
        if args.size == "cpu" and args.model in checkpoint.available_models():
            warm = args.model
    elif args.warm_start != "none":
        warm = args.warm_start
    try:
        state = train.run(run_dir, tc, arch, device=args.device, warm_start=warm, max_steps=args.max_steps,
                          progress=not args.no_progress, export_to=args.export,
                          export_last=args.export_last).progress
    except (checkpoint.ModelError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    print(f"stopped at {state['nimg'] / 1000:.1f} kimg, step {state['step']}; run folder {run_dir}")
    return 0
