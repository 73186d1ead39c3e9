"""``stylesynth transfer``: selective attribute transfer from a reference sound to a generated one."""
from __future__ import annotations

import argparse

from stylesynth.cli import CliError

HELP = """\
Selective attribute transfer (the research system's): generate a clip from --seed (or --start), invert the
--reference sound with the model's encoder, and replace the clip's latent coordinate along one direction with
the reference's, leaving every other coordinate alone. --amount 0.5 goes half way.

Examples:
  stylesynth transfer --model hits --seed 3 --reference ref.wav --attribute brightness -o out.wav
  stylesynth transfer --model hits --start "Hit - Wood" --reference scrape.wav --attribute impact -o out.wav
  stylesynth transfer --model hits --seed 3 --reference ref.wav --attribute sefa/2 --amount 0.5 -o out.wav
"""


def _float(lo: float, hi: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not lo <= value <= hi:     # also refuses nan
            raise argparse.ArgumentTypeError(f"must be in [{lo:g}, {hi:g}], got {text}")
        return value
    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be in 0..2147483647, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("transfer", help="copy one attribute of a reference sound onto a generated clip",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="NAME", help="model name or checkpoint folder")
    p.add_argument("--reference", required=True, metavar="WAV", help="the sound whose attribute is copied")
    p.add_argument("--attribute", required=True,
                   help="a direction of the model (brightness, rate, impact) or a SeFa direction (sefa/1..)")
    p.add_argument("-o", "--output", required=True, metavar="WAV", help="output wav (32-bit float)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the generated clip (default 0)")
    p.add_argument("--start", default="", metavar="NAME", help="named start point instead of --seed")
    p.add_argument("--truncation", type=_float(0.0, 1.0), default=0.7, help="truncation psi (default 0.7)")
    p.add_argument("--amount", type=_float(0.0, 1.0), default=1.0,
                   help="1 takes the reference's coordinate, 0 keeps the clip's (default 1)")
    p.add_argument("--original", metavar="WAV", help="also write the clip before the transfer")
    p.set_defaults(func=run)


def load_model(name: str):
    """(generator, bundle, representation) of a model, with every file problem as a :class:`CliError`."""
    from stylesynth.checkpoint import ModelError, load_generator
    from stylesynth.controls import load_bundle

    try:
        generator, meta = load_generator(name)
        bundle = load_bundle(meta["path"], generator)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    return generator, bundle, meta["representation_obj"]


def render(generator, ws, rep):
    import torch

    from stylesynth.waveform import spectrogram_to_audio

    with torch.no_grad():
        spec = generator.synthesize(ws, noise="const")[0].clamp(-1, 1).numpy()
    if generator.cfg.rows != rep.rows:
        raise CliError(f"the generator makes {generator.cfg.rows} rows; audio needs {rep.rows} (a test model?)")
    return spectrogram_to_audio(spec, rep)


def direction_vector(bundle, attribute: str):
    """(unit vector, slider scale per step) of a semantic direction or ``sefa/K``."""
    if attribute in bundle.directions:
        return bundle.directions[attribute], float(bundle.direction_scales[attribute])
    if attribute.startswith("sefa/"):
        try:
            k = int(attribute.split("/", 1)[1])
        except ValueError:
            k = 0
        if 1 <= k <= len(bundle.sefa_vectors):
            return bundle.sefa_vectors[k - 1], float(bundle.sefa_scales[k - 1])
    choices = [*bundle.directions, *[f"sefa/{k}" for k in range(1, len(bundle.sefa_vectors) + 1)]]
    raise CliError(f"model {bundle.model!r} has no direction {attribute!r} (choices: {', '.join(choices)})")


def run(args) -> int:
    from stylesynth.controls import state_to_w
    from stylesynth.controls.audio import read_clip, write_wav
    from stylesynth.controls.directions import transfer
    from stylesynth.controls.encoder import clips_to_specs, invert
    from stylesynth.state import DEFAULT, ControlError

    generator, bundle, rep = load_model(args.model)
    if bundle.encoder is None:
        raise CliError(f"model {bundle.model!r} has no encoder.safetensors; run 'stylesynth controls build "
                       f"--model {bundle.model}'")
    from stylesynth.params import SLIDER

    unit, scale = direction_vector(bundle, args.attribute)
    try:
        state, _ = DEFAULT.with_values({"seed": args.seed, "start": args.start, "truncation": args.truncation})
        ws = state_to_w(state, generator, bundle)
        clip = read_clip(args.reference, rep)
    except (ControlError, ValueError) as exc:
        raise CliError(str(exc)) from None
    enc = bundle.encoder
    w_ref = invert(enc, clips_to_specs([clip], rep, enc.cfg.rows, enc.cfg.frames))[0]
    w = ws[0, 0]
    # The new coordinate stays where a slider can reach: the mean latent's coordinate +- the slider's full range.
    centre = float(generator.w_avg @ unit)
    limits = (centre - SLIDER * scale, centre + SLIDER * scale)
    w_new = transfer(w, w_ref, unit, args.amount, limits)
    before, after, ref = float(w @ unit), float(w_new @ unit), float(w_ref @ unit)
    ws_new = w_new.reshape(1, 1, -1).expand_as(ws).contiguous()
    try:
        if args.original:
            write_wav(args.original, render(generator, ws, rep), rep.sample_rate)
        out = write_wav(args.output, render(generator, ws_new, rep), rep.sample_rate)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    clamped = "" if limits[0] < after < limits[1] else (
        f"; clamped to the slider's reach [{limits[0]:+.3f}, {limits[1]:+.3f}]")
    print(f"{args.attribute}: coordinate {before:+.3f} -> {after:+.3f} (reference {ref:+.3f}{clamped}); "
          f"wrote {out}")
    return 0
