"""Sound files in and out for the ``transfer`` and ``query`` commands: a reference file as the model's clip, and
float wav output. (Spectrogram -> audio is :func:`stylesynth.waveform.spectrogram_to_audio`, as the server's.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stylesynth.spectrogram import Representation


def read_clip(path: str | Path, rep: Representation) -> np.ndarray:
    """A sound file as the model's clip: mono (channels averaged), resampled to ``rep.sample_rate``, cut or
    zero-padded to ``rep.n_samples``.

    Raises
    ------
    ValueError
        Missing, unreadable, empty or non-finite files, with the path and the reason.
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        audio, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:       # soundfile raises LibsndfileError / RuntimeError for unreadable files
        raise ValueError(f"{path}: not a readable sound file ({exc})") from None
    if audio.size == 0:
        raise ValueError(f"{path}: the file holds no samples")
    audio = audio.mean(axis=1)
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"{path}: the file holds non-finite samples (NaN or inf)")
    if rate != rep.sample_rate:
        from math import gcd

        from scipy.signal import resample_poly
        g = gcd(int(rate), rep.sample_rate)
        audio = resample_poly(audio, rep.sample_rate // g, int(rate) // g)
    if len(audio) >= rep.n_samples:
        return audio[: rep.n_samples]
    return np.pad(audio, (0, rep.n_samples - len(audio)))


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """32-bit float wav (no clipping, no dither)."""
    import soundfile

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ValueError(f"{path}: folder {path.parent} does not exist")
    soundfile.write(str(path), np.asarray(audio, dtype=np.float32), sample_rate, subtype="FLOAT")
    return path
