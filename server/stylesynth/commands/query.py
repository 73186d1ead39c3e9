"""``stylesynth query``: the soft-prior query (describe an impact texture, invert it, pull it to a prototype)."""
from __future__ import annotations

import argparse

from stylesynth.cli import CliError
from stylesynth.commands.transfer import _float, _seed, load_model, render

HELP = """\
Query GAN with soft prior (the research system's): a synthetic Gaver reference is built from the query controls
(impulse width and count, regular or bursty placement, band, filter order, fades), inverted with the model's
encoder, and pulled towards a class prototype: w <- (1 - strength) w + strength p. The same values as the
server's /stylesynth/query/* parameters; values outside their range are clamped with a note.

Examples:
  stylesynth query --model hits --prototype Hits --width 0.08 --density 5 -o knocks.wav
  stylesynth query --model hits --prototype Scratches --width 0.8 --density 2 --band 200 2000 -o scrape.wav \\
      --reference-out scrape-ref.wav
"""


def register(subparsers) -> None:
    from stylesynth import params as P

    d = {name: p.default for name, p in P.PARAMS.items()}
    p = subparsers.add_parser("query", help="generate from a described texture pulled towards a class prototype",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="NAME", help="model name or checkpoint folder")
    p.add_argument("-o", "--output", required=True, metavar="WAV", help="output wav (32-bit float)")
    p.add_argument("--prototype", default=d["prototype"],
                   help="class prototype to pull towards, or none (default none; see 'stylesynth controls show')")
    p.add_argument("--strength", type=_float(0.0, 1.0), default=d["strength"],
                   help=f"pull towards the prototype (default {d['strength']})")
    p.add_argument("--width", type=float, default=d["query/width"], help="impulse length in s (default 0.1)")
    p.add_argument("--density", type=int, default=d["query/density"], help="number of impulses (default 3)")
    p.add_argument("--burst", action="store_true", help="bunch the impulses irregularly")
    p.add_argument("--band", type=float, nargs=2, metavar=("LF", "HF"),
                   default=[d["query/band_lf"], d["query/band_hf"]], help="noise band in Hz (default 500 4000)")
    p.add_argument("--order", type=int, default=d["query/order"], help="band-pass order 1-8 (default 4)")
    p.add_argument("--fade-in", type=float, default=d["query/fade_in"], help="fade-in fraction (default 0.05)")
    p.add_argument("--fade-out", type=float, default=d["query/fade_out"], help="fade-out fraction (default 0.9)")
    p.add_argument("--exponent", type=float, default=d["query/exponent"], help="fade exponent (default 2)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the reference's noise and placement (default 0)")
    p.add_argument("--reference-out", metavar="WAV", help="also write the Gaver reference")
    p.set_defaults(func=run)


def run(args) -> int:
    from stylesynth.checkpoint import ModelError
    from stylesynth.controls import state_to_w
    from stylesynth.controls.audio import write_wav
    from stylesynth.controls.query import reference_audio
    from stylesynth.state import DEFAULT, ControlError

    generator, bundle, rep = load_model(args.model)
    values = {"query/run": True, "prototype": args.prototype, "strength": args.strength, "seed": args.seed,
              "query/width": args.width, "query/density": args.density, "query/burst": args.burst,
              "query/band_lf": args.band[0], "query/band_hf": args.band[1], "query/order": args.order,
              "query/fade_in": args.fade_in, "query/fade_out": args.fade_out, "query/exponent": args.exponent}
    try:
        state, notes = DEFAULT.with_values(values)
        for note in notes:
            print(f"note: {note}")
        ws = state_to_w(state, generator, bundle)
        if args.reference_out:
            write_wav(args.reference_out, reference_audio(state, rep), rep.sample_rate)
        out = write_wav(args.output, render(generator, ws, rep), rep.sample_rate)
    except (ControlError, ModelError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    pulled = f", pulled {state.strength:g} towards {state.prototype}" if state.prototype != "none" else ""
    print(f"query inverted{pulled}; wrote {out}")
    return 0
