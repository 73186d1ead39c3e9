"""Reading and writing audio files, with errors a person can act on.

:func:`load_audio` reads anything soundfile (libsndfile: wav, flac, ogg, aiff, mp3 with libsndfile >= 1.1, ...) or,
failing that, librosa/audioread can decode; mixes to mono and resamples to the representation's 16 kHz. Every
failure is an :class:`AudioError` whose message names the file and the problem: missing, a directory, not audio,
empty, NaN/inf samples (how many). :func:`read_audio` returns the same plus what was done to get there (channels
mixed, rate converted), for a CLI to report.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylesynth.spectrogram import SAMPLE_RATE

__all__ = ["AudioError", "LoadedAudio", "read_audio", "load_audio", "write_wav", "resample"]


class AudioError(Exception):
    """An audio file that cannot be used; the message says which file and why."""


@dataclass
class LoadedAudio:
    """What :func:`read_audio` returns: ``audio`` mono float32 at ``sample_rate``, plus what the file was."""

    audio: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int
    source_frames: int
    reader: str

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    def notes(self) -> list[str]:
        """One line per conversion made (for a CLI to print)."""
        out = []
        if self.source_channels > 1:
            out.append(f"{self.source_channels} channels mixed to mono (mean)")
        if self.source_rate != self.sample_rate:
            out.append(f"resampled {self.source_rate} Hz -> {self.sample_rate} Hz")
        return out


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of a mono float signal."""
    if int(source_rate) == int(target_rate):
        return np.asarray(audio, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(audio, dtype=np.float32), int(source_rate), int(target_rate),
                         quality="HQ").astype(np.float32)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data, int(rate)


def _read_librosa(path: Path) -> tuple[np.ndarray, int]:
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, rate = librosa.load(str(path), sr=None, mono=False)
    data = np.asarray(data, dtype=np.float32)
    data = data[:, None] if data.ndim == 1 else data.T
    return data, int(rate)


def read_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> LoadedAudio:
    """Read an audio file as mono float32 at ``sample_rate``; see :func:`load_audio`."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: not readable (permission denied)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    errors = []
    data = rate = None
    for reader, fn in (("soundfile", _read_soundfile), ("librosa", _read_librosa)):
        try:
            data, rate = fn(path)
            break
        except Exception as exc:  # noqa: BLE001 - each reader fails in its own way; we report them all
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if type(exc).__name__ == "NoBackendError":
                text = "no installed decoder recognises it"
            errors.append(f"{reader}: {text}")
    if data is None:
        raise AudioError(f"{path}: not an audio file that can be read ({'; '.join(errors)})")
    frames, channels = data.shape
    if frames == 0:
        raise AudioError(f"{path}: contains no audio (0 samples)")
    if rate is None or rate <= 0:
        raise AudioError(f"{path}: invalid sample rate {rate}")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        n_nan = int(np.count_nonzero(np.isnan(data)))
        raise AudioError(f"{path}: {bad} of {data.size} samples are not finite ({n_nan} NaN, {bad - n_nan} "
                         "infinite); refusing to process it")
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    mono = resample(mono, rate, sample_rate)
    return LoadedAudio(audio=np.ascontiguousarray(mono, dtype=np.float32), sample_rate=int(sample_rate),
                       source_rate=rate, source_channels=channels, source_frames=frames, reader=reader)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any audio file as mono float32 at ``sample_rate`` (16 kHz by default).

    Parameters
    ----------
    path : str or PathLike
        A file soundfile can read (wav, flac, ogg, aiff, ...) or, failing that, librosa/audioread.
    sample_rate : int
        Output rate; other rates are resampled (soxr, high quality).

    Returns
    -------
    np.ndarray, float32, 1-D
        Channels are averaged to mono.

    Raises
    ------
    AudioError
        Missing file, a directory, not audio, no samples, or NaN/inf samples (the message says how many).
    """
    return read_audio(path, sample_rate).audio


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE,
              subtype: str = "PCM_16") -> Path:
    """Write mono (or (frames, channels)) float audio to a wav file, creating parent folders.

    ``subtype`` ``"PCM_16"`` (default) clips to [-1, 1] and writes 16-bit; ``"FLOAT"`` writes 32-bit float
    unchanged. NaN/inf samples raise ``ValueError`` rather than being written as noise. Returns the path.
    """
    import soundfile

    path = Path(path)
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"audio must be 1-D (mono) or 2-D (frames, channels), got shape {x.shape}")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(f"audio has {bad} NaN or infinite samples; not writing {path}")
    subtype = subtype.upper()
    if subtype not in ("PCM_16", "PCM_24", "FLOAT"):
        raise ValueError(f"subtype must be PCM_16, PCM_24 or FLOAT, got {subtype!r}")
    if subtype != "FLOAT":
        x = np.clip(x, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), x, int(sample_rate), subtype=subtype, format="WAV")
    return path
