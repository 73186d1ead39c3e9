"""``stylesynth controls``: build a checkpoint's semantic controls, show them, list the control space."""
from __future__ import annotations

import argparse
import json

from stylesynth.cli import CliError

HELP = """\
Semantic controls of a trained generator (stylesynth.controls): an encoder that inverts spectrograms to the
latent w, example-based directions (brightness, rate, impact), class prototypes, named start points and SeFa
directions, written beside the generator as encoder.safetensors, controls.safetensors and controls.json.

Examples:
  stylesynth controls build --model hits                       checkpoints/hits (~4 CPU minutes)
  stylesynth controls build --model hits --checkpoint /work/runs/hits/best --examples 30
  stylesynth controls show --model hits
  stylesynth controls show --model hits --png sliders.png --seed 7   what each slider does, as a picture
  stylesynth controls params                                   every OSC parameter and command
"""


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def register(subparsers) -> None:
    parser = subparsers.add_parser("controls", help="build and inspect a model's semantic controls",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="controls_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    build = sub.add_parser("build", help="train the encoder and build directions, prototypes, start points, SeFa",
                           description="Train (or reuse) the encoder for a checkpoint's generator, invert the "
                                       "procedural example sets, and write encoder.safetensors, "
                                       "controls.safetensors and controls.json into the checkpoint folder. Run it "
                                       "again whenever the generator changes (the controls refuse another "
                                       "generator).")
    build.add_argument("--model", required=True, metavar="NAME",
                       help="model name: picks the recipe (hits, env) and, without --checkpoint, the folder "
                            "checkpoints/NAME")
    build.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder to build for (and write into)")
    build.add_argument("--examples", type=_count(2), default=20,
                       help="clips per direction pole and per prototype (default 20; the paper needs > 10; env's "
                            "class-balanced poles take at least 90, 10 per class)")
    build.add_argument("--check-examples", type=_count(2), default=10,
                       help="held-out clips per pole for the direction checks (default 10; env at least 27)")
    build.add_argument("--candidates", type=_count(1), default=6,
                       help="clips tried per start point, the best regenerated kept (default 6)")
    build.add_argument("--refine-steps", type=_count(0),
                       help="latent-optimisation steps after the encoder for each example (default 100, "
                            "controls.build.BuildSettings; 0: the encoder's guess only)")
    build.add_argument("--encoder-pool", type=_count(16), default=4096,
                       help="generator samples the encoder trains on (default 4096)")
    build.add_argument("--encoder-steps", type=_count(1), default=2500, help="encoder steps on w loss (default 2500)")
    build.add_argument("--regen-steps", type=_count(0), default=100,
                       help="final encoder steps adding the regenerated-spectrogram loss (default 100)")
    build.add_argument("--retrain-encoder", action="store_true",
                       help="train a new encoder even if the folder has one for this generator")
    build.add_argument("--seed", type=_count(0), default=0, help="seed of every draw (default 0)")
    build.add_argument("--threads", type=_count(1), default=1,
                       help="torch CPU threads (default 1: on a busy 2-core machine a second thread waits on the "
                            "other's core and made each step ~30x slower, measured)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)

    show = sub.add_parser("show", help="summarise a checkpoint's controls and their figures")
    show.add_argument("--model", required=True, metavar="NAME", help="model name or checkpoint folder")
    show.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder (instead of checkpoints/NAME)")
    show.add_argument("--json", action="store_true", help="print controls.json's figures as JSON")
    show.add_argument("--png", metavar="PATH",
                      help="also draw every slider's sweep (-5 .. +5) as a grid of spectrograms: a row per "
                           "semantic direction and the first 4 SeFa dimensions, from --seed or --start")
    show.add_argument("--seed", type=_count(0), default=0, help="seed the sweeps start from (default 0)")
    show.add_argument("--start", metavar="NAME", help="named start point the sweeps start from (instead of --seed)")
    show.set_defaults(func=run_show)

    params = sub.add_parser("params", help="every OSC parameter and command of the server, as a table")
    params.set_defaults(func=run_params)


def _folder(args):
    from stylesynth.checkpoint import ModelError, resolve

    try:
        return resolve(args.checkpoint or args.model)
    except ModelError as exc:
        raise CliError(str(exc)) from None


def run_build(args) -> int:
    import torch

    from stylesynth.checkpoint import ModelError
    from stylesynth.controls.build import BuildSettings, build
    from stylesynth.controls.encoder import EncoderTraining

    torch.set_num_threads(args.threads)
    folder = _folder(args)
    refine = {} if args.refine_steps is None else {"refine_steps": args.refine_steps}
    settings = BuildSettings(
        examples=args.examples, check_examples=args.check_examples, candidates=args.candidates,
        seed=args.seed, retrain_encoder=args.retrain_encoder, **refine,
        encoder=EncoderTraining(pool=args.encoder_pool, steps=args.encoder_steps, regen_steps=args.regen_steps,
                                seed=args.seed))
    bar = _ProgressBar(enabled=not args.no_progress)
    try:
        bundle, figures = build(folder, args.model, settings, progress=bar)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:       # a recipe that does not fit (unknown model kind, too strict a predicate)
        raise CliError(str(exc)) from None
    finally:
        bar.close()
    print(f"wrote {folder}/encoder.safetensors, controls.safetensors, controls.json "
          f"({figures.get('seconds', 0):.0f} s)")
    print(summary(bundle))
    return 0


def run_show(args) -> int:
    from stylesynth.controls.bundle import ControlsError, file_sha256, load_bundle

    folder = _folder(args)
    try:
        bundle = load_bundle(folder)
    except ControlsError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(bundle.info, indent=2))
    else:
        print(summary(bundle))
    if args.png:
        print(f"wrote {sweep_png(folder, args.png, args.seed, args.start)}")
    generator_file = folder / "generator.safetensors"
    if generator_file.is_file() and bundle.generator_sha256 and file_sha256(generator_file) != bundle.generator_sha256:
        print(f"warning: these controls were built for another generator than {generator_file}; the server will "
              f"refuse them: run 'stylesynth controls build --model {bundle.model} --checkpoint {folder}'")
        return 1
    return 0


SWEEP_STEPS = (-5.0, -2.5, 0.0, 2.5, 5.0)


def sweep_png(folder, path, seed: int = 0, start: str | None = None):
    """Spectrograms of each slider at :data:`SWEEP_STEPS`, every other control at its default, through the same
    state -> w path as the server and ``render``."""
    import torch

    from stylesynth.checkpoint import ModelError, load_generator
    from stylesynth.controls import load_bundle, state_to_w
    from stylesynth.plots import spectrogram_grid
    from stylesynth.state import DEFAULT, ControlError

    try:
        generator, meta = load_generator(folder)
        bundle = load_bundle(folder, generator, with_encoder=False)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    sliders = [*bundle.directions, *[f"sefa/{k + 1}" for k in range(min(4, len(bundle.sefa_vectors)))]]
    base = {"start": start} if start else {"seed": seed}
    specs, titles = [], []
    try:
        for name in sliders:
            for value in SWEEP_STEPS:
                state, _ = DEFAULT.with_values({**base, name: value})
                with torch.no_grad():
                    spec = generator.synthesize(state_to_w(state, generator, bundle), noise="const")
                specs.append(spec[0].clamp(-1, 1).numpy())
                titles.append(f"{name} {value:+g}")
    except ControlError as exc:
        raise CliError(str(exc)) from None
    origin = f"start point {start!r}" if start else f"seed {seed}"
    kimg = meta.get("training", {}).get("kimg")
    return spectrogram_grid(specs, meta["representation_obj"], path, titles, cols=len(SWEEP_STEPS),
                            suptitle=f"{bundle.model} ({kimg} kimg): each row one slider from -5 to +5, from {origin}")


def run_params(args) -> int:
    from stylesynth import params

    print(params.describe())
    return 0


def summary(bundle) -> str:
    """A few lines per part of a bundle: directions with their checks, SeFa, prototypes, start points, encoder."""
    fig = bundle.info.get("figures", {})
    lines = [f"model {bundle.model}: w_dim {bundle.w_dim}, generator sha256 {bundle.generator_sha256[:12] or '?'}, "
             f"encoder {'yes' if bundle.encoder is not None else 'no'}"]
    slider = bundle.info.get("slider", {})
    if slider:
        lines.append(f"sliders: +-5 spans +-{slider.get('span_sigmas')} std of the generator's latents")
    lines.append(f"{'direction':12} {'+ / -':28} {'scale':>7} {'held-out AUC':>13} {'effect':>7}")
    for name in bundle.directions:
        d = fig.get("directions", {}).get(name, {})
        check = d.get("heldout_check", {})
        poles = f"{d.get('plus', '?')} / {d.get('minus', '?')}"
        auc, effect = check.get("auc", float("nan")), check.get("effect", float("nan"))
        lines.append(f"{name:12} {poles:28} {bundle.direction_scales[name]:7.3f} {auc:13.2f} {effect:7.2f}")
    eig = ", ".join(f"{float(e):.2f}" for e in bundle.sefa_eigenvalues)
    lines.append(f"SeFa: {len(bundle.sefa_vectors)} directions, eigenvalues {eig}")
    lines.append(f"prototypes: {', '.join(bundle.prototypes) or 'none'}")
    starts = fig.get("start_points", {})
    lines.append("start points: " + (", ".join(
        f"{n} ({starts[n]['error_db']:.1f} dB)" if n in starts else n for n in bundle.start_points) or "none"))
    enc = fig.get("encoder", {})
    if enc:
        g, v = enc.get("generator_error_db", {}), enc.get("gaver_error_db", {})
        lines.append(f"encoder: G(E(x)) error median {g.get('median', float('nan')):.2f} dB on generator samples "
                     f"(w R^2 {enc.get('w_r2', float('nan')):.2f}), {v.get('median', float('nan')):.2f} dB on "
                     f"Gaver examples")
    return "\n".join(lines)


class _ProgressBar:
    """One tqdm bar per build stage (pool, train, regen, figures, examples)."""

    def __init__(self, enabled: bool):
        self.enabled, self.stage, self.bar = enabled, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            from tqdm import tqdm
            names = {"pool": "generator samples", "train": "encoder", "regen": "encoder (regen)",
                     "figures": "encoder figures", "examples": "examples inverted"}
            self.bar = tqdm(total=total, desc=names.get(stage, stage), leave=False)
            self.stage = stage
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.stage = None
