"""The ``stylesynth`` command line: one subcommand per module in :mod:`stylesynth.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a function taking
the parsed arguments and returning an exit code. Command modules keep heavy imports (torch, numba) inside ``func`` so
that ``stylesynth --help`` answers at once.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stylesynth import __version__

# Order is the order shown in --help: the everyday commands first.
COMMANDS = ["serve", "render", "reconstruct", "data", "train", "controls", "transfer", "query", "doctor"]

EPILOG = """\
The data flow: control (OSC, MIDI) -> state -> latent w -> spectrogram (StyleGAN2) -> waveform (PGHI, loudness)
-> output (sound card, JACK, OSC clients).

Examples:
  stylesynth serve --model hits                       run the server on the shipped impacts model
  stylesynth render --model hits --seed 7 -o hit.wav --png hit.png
  stylesynth reconstruct voice.wav -o back.wav         hear what the representation keeps
  stylesynth data make --model hits --n 2000 --out data/hits
  stylesynth train --model hits --kimg 200             train on 2 CPU cores (resumes its run folder)
Run 'stylesynth COMMAND --help' for each command's options.
"""


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylesynth",
        description="Real-time neural audio-texture synthesis: a StyleGAN2 spectrogram model steered by "
                    "semantic controls over OSC and MIDI.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"stylesynth {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="how much to log (default: info)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"stylesynth.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"stylesynth.commands.{name}":
                raise
            continue  # command not built yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"stylesynth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
