"""``stylesynth render``: one control state -> a wav (and a spectrogram picture), offline."""
from __future__ import annotations

import argparse
from pathlib import Path

from stylesynth.cli import CliError

HELP = """\
Render one sound from a model and a control state, through the same chain the server plays
(state -> latent -> StyleGAN2 spectrogram -> PGHI -> loudness).

Examples:
  stylesynth render --model hits --seed 7 -o hit.wav --png hit.png
  stylesynth render --model hits --seed 7 --set brightness=2 --set rate=-1 --set sefa/1=3 -o bright.wav
  stylesynth render --model env --start "Dog Bark 1" --prototype Rain --strength 0.7 -o wet.wav
Any parameter of the OSC address space can be given with --set NAME=VALUE (see 'stylesynth serve --help' and
the README's table); out-of-range values are clamped with a note, NaN and unknown names are refused.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="render one sound to a wav (and a spectrogram PNG)", description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="hits", help="model name (checkpoints/NAME) or checkpoint folder (default hits)")
    p.add_argument("--seed", type=int, help="latent seed (default 0)")
    p.add_argument("--truncation", type=float, metavar="PSI", help="truncation psi in [0, 1] (default 0.7)")
    p.add_argument("--start", help="named start point of the model instead of a seed")
    p.add_argument("--prototype", help="class prototype to pull towards (e.g. Hits, Scratches, Rain)")
    p.add_argument("--strength", type=float, help="pull towards the prototype, 0..1 (default 0.7)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any control, e.g. brightness=2, rate=-1, impact=0.5, sefa/1=3 (repeatable)")
    p.add_argument("--refine", type=int, default=0, metavar="N",
                   help="fast Griffin-Lim iterations after PGHI (default 0; 10 is cleaner, ~15 ms slower)")
    p.add_argument("--lufs", type=float, default=-14.0, help="loudness target (default -14 LUFS)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("-o", "--output", required=True, help="output wav")
    p.add_argument("--png", help="also draw the spectrogram of the written audio here (seconds, Hz, dB)")
    p.set_defaults(func=run)


def parse_settings(items: list[str]) -> dict:
    """``["brightness=2", "sefa/1=-3"]`` -> ``{"brightness": "2", "sefa/1": "-3"}``, refusing malformed items."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--set {item!r}: expected NAME=VALUE, e.g. --set brightness=2")
        out[name.strip()] = value.strip()
    return out


def build_state(args):
    """The :class:`ControlState` the command line describes; values are checked by the params table."""
    from stylesynth import params as P
    from stylesynth.state import DEFAULT, ControlError

    settings = parse_settings(args.set)
    for name in ("seed", "truncation", "start", "prototype", "strength"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    state, notes = DEFAULT, []
    for name, value in settings.items():
        try:
            param = P.PARAMS.get(name)
            if param is None:
                raise ControlError(f"unknown control {name!r}; controls: {', '.join(P.PARAMS)}")
            if isinstance(value, str) and param.type in (P.FLOAT, P.INT):
                value = float(value) if param.type == P.FLOAT else int(value)
            elif isinstance(value, str) and param.type == P.BOOL:
                value = value.lower() in ("1", "true", "yes", "on")
            state, note = state.with_value(name, value)
        except (ControlError, ValueError) as exc:
            raise CliError(f"{name}: {exc}") from None
        if note:
            notes.append(note)
    return state, notes


def run(args) -> int:
    from stylesynth import audio_io, checkpoint, plots
    from stylesynth import params as P
    from stylesynth.synthesizer import Synthesizer

    state, notes = build_state(args)
    for note in notes:
        print(f"note: {note}")
    try:
        synth = Synthesizer.load(args.model, device=args.device, refine=args.refine, lufs=args.lufs)
        clip = synth.render(state)
    except (checkpoint.ModelError, ValueError) as exc:
        raise CliError(str(exc)) from None
    out = Path(args.output)
    audio_io.write_wav(out, clip.audio, clip.sample_rate)
    print(f"wrote {out} ({len(clip.audio) / clip.sample_rate:.3f} s, {synth.name}; "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in clip.timings.items()) + ")")
    if args.png:
        label = ", ".join(f"{k}={v}" for k, v in state.as_dict().items() if v != P.PARAMS[k].default)
        # The picture is of the wav written, analysed again: the generator's image can hold what no waveform has
        # (onsets sharper than the window), and the sound is what the user gets.
        from stylesynth.spectrogram import encode
        heard = encode(clip.audio, synth.rep) if clip.sample_rate == synth.rep.sample_rate else clip.spec
        plots.spectrogram_png(heard, synth.rep, args.png, title=f"{synth.name}: {label or 'defaults'}")
        print(f"wrote {args.png}")
    return 0

