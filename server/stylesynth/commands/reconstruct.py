"""``stylesynth reconstruct``: any audio file through the model's representation (magnitude only) and back.

It answers "what does the representation keep?": the file is cut into clip-length tiles (hop x 256 samples),
each tile becomes exactly the image the generator is trained on ([-1, 1] dB, floored at -50 dB, Nyquist row
dropped), the phase is rebuilt by PGHI and the tiles are overlap-added back into one file.

Tiles overlap by 1/8 of a clip and are crossfaded (raised cosine) over the middle half of each overlap, away from
the tile edges where the circular transform wraps. Two independently phased reconstructions would partly cancel
inside a crossfade, so each tile's PGHI is anchored on the previous tile's phase over the crossfade frames (the
phase is time-invariant, so the same instant has the same phase in both tiles): the tiles join without clicks or
dips.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stylesynth.cli import CliError

HELP = """\
Send an audio file through the model's representation (16 kHz, 256-row dB spectrogram floored at -50 dB, phase
discarded) and back with PGHI, and write what comes out: what a generator trained on this representation could
produce at best. Prints the spectral convergence (lower is better): PGHI's, against the magnitude it was given, and
end to end, output against input.

Any format soundfile or librosa reads; stereo is mixed to mono and other rates are resampled to 16 kHz (both
reported). The output is 16 kHz mono 16-bit wav at the input's level (turned down only if it would clip).

Examples:
  stylesynth reconstruct voice.wav -o back.wav
  stylesynth reconstruct rain.flac -o back.wav --hop 256 --refine 10 --png rain.png
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("reconstruct", help="audio file -> magnitude-only representation -> audio (PGHI)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="audio file to reconstruct")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="wav file to write (folders are created)")
    p.add_argument("--hop", type=int, choices=[128, 256], default=128,
                   help="128: the impacts model's representation (2.048 s tiles); 256: the environmental model's "
                        "(4.096 s tiles). Default 128")
    p.add_argument("--refine", type=int, default=0, metavar="N",
                   help="fast Griffin-Lim iterations after PGHI (default 0; 10 is a good value for noisy sounds)")
    p.add_argument("--png", metavar="PATH", help="also draw the input and output spectrograms to this PNG")
    p.add_argument("--raw", action="store_true",
                   help="skip the dB image (no -50 dB floor): reconstruct from the exact linear magnitude")
    p.add_argument("--seed", type=int, default=0, help="seed for the phase of sub-floor coefficients (default 0)")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------------------------
# The reconstruction (importable, used by tests)
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Reconstruction:
    """Result of :func:`reconstruct`: the audio and the figures printed by the command."""

    audio: np.ndarray
    tiles: int
    pghi_sc_db: float
    end_to_end_sc_db: float
    seconds: float
    frames_in: list = field(default_factory=list, repr=False)    # per tile: input magnitude, owned frames
    frames_out: list = field(default_factory=list, repr=False)   # per tile: output magnitude, owned frames


def _ratio_db(num2: float, den2: float) -> float:
    if den2 <= 0:
        return float("nan")
    if num2 <= 0:
        return -math.inf
    return float(10.0 * math.log10(num2 / den2))


def reconstruct(audio: np.ndarray, rep, refine: int = 0, seed: int = 0, raw: bool = False,
                keep_frames: bool = False) -> Reconstruction:
    """Reconstruct mono ``audio`` (at ``rep.sample_rate``) tile by tile; see the module docstring.

    Returns the output (float32, same length as the input, not clipped or normalised) and the spectral
    convergences: PGHI's (each tile's output magnitude against the magnitude it was given) and end to end
    (output against input, tile by tile).
    """
    from stylesynth import pghi as P
    from stylesynth.spectrogram import db_to_unit, magnitude_to_db
    from stylesynth.spectrogram import decode
    from stylesynth.waveform import floor_tolerance

    t0 = time.perf_counter()
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n = len(x)
    Lc, a = rep.n_samples, rep.hop
    overlap = Lc // 8                      # 32 frames
    step = Lc - overlap
    pad = overlap // 2                     # the signal starts where tile 0's owned region starts
    n_tiles = max(1, math.ceil(n / step))
    padded = np.zeros((n_tiles - 1) * step + Lc)
    padded[pad: pad + n] = x
    out = np.zeros_like(padded)

    q = overlap // 4                       # crossfade over [q, 3q) from each tile's start (and before its end)
    ramp = np.sin(0.5 * np.pi * (np.arange(2 * q) + 0.5) / (2 * q)) ** 2
    rise = np.concatenate([np.zeros(q), ramp, np.ones(Lc - 3 * q)])
    fall = np.concatenate([np.ones(Lc - 3 * q), ramp[::-1], np.zeros(q)])
    anchor = slice(q // a, 3 * q // a)                                  # crossfade frames, in the new tile
    anchor_prev = slice((step + q) // a, (step + 3 * q) // a)           # the same instants, in the previous tile
    owned = slice(pad // a, (pad + step) // a)

    pghi_num = pghi_den = e2e_num = e2e_den = 0.0
    known = None
    tiles_in, tiles_out = [], []
    for k in range(n_tiles):
        seg = padded[k * step: k * step + Lc]
        mag_in = np.abs(P.fast_stft(seg, rep))
        if raw:
            target, tol = mag_in, P.DEFAULT_TOL
        else:
            # exactly the generator's image (spectrogram.encode), back to linear magnitude at the tile's level
            peak = float(mag_in[: rep.rows].max())
            image = db_to_unit(magnitude_to_db(mag_in[: rep.rows], rep), rep).astype(np.float32)
            target = decode(image, rep) * peak
            tol = floor_tolerance(target, rep)
        coef = P.pghi(target, rep, tol=tol, refine=refine, seed=seed + k, known_phase=known)
        y = P.fast_istft(coef, rep)
        mag_y = np.abs(P.fast_stft(y, rep))
        pghi_num += float(np.sum((mag_y - target) ** 2))
        pghi_den += float(np.sum(target ** 2))
        weight = np.ones(Lc)
        if k > 0:
            weight *= rise
        if k < n_tiles - 1:
            weight *= fall
        out[k * step: k * step + Lc] += weight * y
        known = np.full(coef.shape, np.nan)
        known[:, anchor] = np.angle(coef[:, anchor_prev])
        if keep_frames:
            tiles_in.append(mag_in[:, owned])
    result = out[pad: pad + n].astype(np.float32)

    # end to end: the output's magnitude against the input's, on the same tiles
    out_padded = np.zeros_like(padded)
    out_padded[pad: pad + n] = result
    for k in range(n_tiles):
        m_in = np.abs(P.fast_stft(padded[k * step: k * step + Lc], rep))
        m_out = np.abs(P.fast_stft(out_padded[k * step: k * step + Lc], rep))
        e2e_num += float(np.sum((m_out - m_in) ** 2))
        e2e_den += float(np.sum(m_in ** 2))
        if keep_frames:
            tiles_out.append(m_out[:, owned])
    return Reconstruction(audio=result, tiles=n_tiles, pghi_sc_db=_ratio_db(pghi_num, pghi_den),
                          end_to_end_sc_db=_ratio_db(e2e_num, e2e_den), seconds=time.perf_counter() - t0,
                          frames_in=tiles_in, frames_out=tiles_out)


def draw_png(path: Path, result: Reconstruction, rep, n_samples: int, title: str) -> None:
    """Input and output spectrograms in the representation's dB scale, with time (s), frequency (Hz) and a dB
    colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = n_samples / rep.sample_rate
    n_frames = max(1, int(math.ceil(n_samples / rep.hop)))
    images = []
    for frames in (result.frames_in, result.frames_out):
        mag = np.concatenate(frames, axis=1)[:, :n_frames]
        images.append(mag)
    peak = max(float(m.max()) for m in images)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True, constrained_layout=True)
    for ax, mag, label in zip(axes, images, ("input", "reconstruction (magnitude only -> PGHI)")):
        with np.errstate(divide="ignore"):
            db = 10.0 * np.log10(mag / peak) if peak > 0 else np.full(mag.shape, rep.db_floor)
        db = np.maximum(db, rep.db_floor)
        im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=rep.db_floor, vmax=0.0,
                       extent=(0.0, seconds, 0.0, rep.sample_rate / 2.0), interpolation="nearest")
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(label, fontsize=10, loc="left")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    bar = fig.colorbar(im, ax=axes, shrink=0.9)
    bar.set_label("dB: 10 log10(|X| / max), floored")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------

def run(args) -> int:
    from stylesynth.audio_io import AudioError, read_audio, write_wav
    from stylesynth.spectrogram import ENV, HITS

    rep = HITS if args.hop == 128 else ENV
    if args.refine < 0:
        raise CliError(f"--refine must be >= 0, got {args.refine}")
    try:
        loaded = read_audio(args.input, rep.sample_rate)
    except AudioError as exc:
        raise CliError(str(exc)) from None
    print(f"read {args.input}: {loaded.source_frames / loaded.source_rate:.2f} s, {loaded.source_rate} Hz, "
          f"{loaded.source_channels} channel{'s' if loaded.source_channels != 1 else ''} ({loaded.reader})")
    for note in loaded.notes():
        print(f"note: {note}")
    if not np.any(loaded.audio):
        print("note: the input is silent; the output will be silent too")

    from stylesynth import pghi

    t_load = time.perf_counter()
    pghi.warmup()                                  # load the compiled kernels (compiles them on a first run)
    t_load = time.perf_counter() - t_load
    result = reconstruct(loaded.audio, rep, refine=args.refine, seed=args.seed, raw=args.raw,
                         keep_frames=bool(args.png))
    audio = result.audio
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio * (0.999 / peak)
        print(f"note: the reconstruction peaked at {20 * math.log10(peak):+.1f} dBFS; turned down to fit 16-bit")

    tile_s = rep.seconds
    what = "exact linear magnitude" if args.raw else "the model's dB image (-50 dB floor)"
    print(f"reconstructed {result.tiles} tile{'s' if result.tiles != 1 else ''} of {tile_s:.3f} s (hop {rep.hop}) "
          f"from {what} with PGHI{f' + {args.refine} fast Griffin-Lim iterations' if args.refine else ''} "
          f"in {result.seconds * 1e3:.0f} ms ({result.seconds * 1e3 / result.tiles:.1f} ms per tile, including the "
          f"spectral convergence measurements; {t_load:.1f} s to load the compiled kernels first)")
    print(f"spectral convergence: {_fmt_db(result.pghi_sc_db)} PGHI (each tile against the magnitude it was "
          f"given), {_fmt_db(result.end_to_end_sc_db)} end to end (output against input)")
    try:
        path = write_wav(args.output, audio, rep.sample_rate)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot write {args.output}: {exc}") from None
    print(f"wrote {path} ({len(audio) / rep.sample_rate:.2f} s, {rep.sample_rate} Hz mono, 16-bit)")
    if args.png:
        try:
            draw_png(Path(args.png), result, rep, len(audio),
                     f"{Path(args.input).name}: hop {rep.hop}, spectral convergence "
                     f"{_fmt_db(result.end_to_end_sc_db)} end to end")
        except OSError as exc:
            raise CliError(f"cannot write {args.png}: {exc}") from None
        print(f"wrote {args.png}")
    return 0


def _fmt_db(value: float) -> str:
    if math.isnan(value):
        return "n/a (silent input)"
    if math.isinf(value):
        return "-inf dB"
    return f"{value:.1f} dB"
