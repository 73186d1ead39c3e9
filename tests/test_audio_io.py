"""Audio files (stylesynth.audio_io): formats, mono mix, resampling, and a precise AudioError for every bad file."""
import numpy as np
import pytest
import soundfile as sf

from stylesynth.audio_io import AudioError, load_audio, read_audio, resample, write_wav


def _tone(sr, seconds=0.5, f=440.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * f * t)
    return x if channels == 1 else np.stack([x * (c + 1) / channels for c in range(channels)], axis=1)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"),
                                         ("OGG", "VORBIS"), ("AIFF", "PCM_24")])
def test_reads_common_formats(tmp_path, fmt, subtype):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, _tone(16000), 16000, format=fmt, subtype=subtype)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) == 8000
    assert np.max(np.abs(x)) == pytest.approx(0.5, abs=0.05)


def test_stereo_is_mixed_to_mono(tmp_path):
    path = tmp_path / "st.wav"
    sf.write(path, _tone(16000, channels=2), 16000, subtype="FLOAT")
    loaded = read_audio(path)
    assert loaded.source_channels == 2 and loaded.audio.ndim == 1
    np.testing.assert_allclose(loaded.audio, _tone(16000) * 0.75, atol=1e-6)      # mean of 0.5x and 1.0x
    assert any("mixed to mono" in n for n in loaded.notes())


def test_other_rates_are_resampled(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, _tone(44100, seconds=1.0, f=1000.0), 44100, subtype="FLOAT")
    loaded = read_audio(path, 16000)
    assert loaded.source_rate == 44100 and loaded.sample_rate == 16000
    assert abs(len(loaded.audio) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(loaded.audio))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=2)                    # 1 Hz bins: still 1 kHz
    assert any("44100 Hz -> 16000 Hz" in n for n in loaded.notes())
    assert read_audio(path, 44100).notes() == []


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)


def test_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not a wav file\n" * 20)
    with pytest.raises(AudioError, match="not an audio file"):
        load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        load_audio(path)


def test_no_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0), 16000)
    with pytest.raises(AudioError, match="no audio"):
        load_audio(path)


def test_nan_samples_are_counted(tmp_path):
    x = _tone(16000).astype(np.float32)
    x[[10, 20, 30]] = np.nan
    x[40] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"4 of 8000 samples are not finite \(3 NaN, 1 infinite\)"):
        load_audio(path)


def test_write_wav_creates_folders_and_clips(tmp_path):
    path = tmp_path / "deep" / "er" / "out.wav"
    x = np.array([0.0, 0.5, 1.5, -2.0], dtype=np.float32)
    assert write_wav(path, x, 16000) == path
    y, sr = sf.read(path)
    assert sr == 16000 and sf.info(path).subtype == "PCM_16"
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0, -1.0], atol=1e-4)
    write_wav(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    np.testing.assert_allclose(sf.read(tmp_path / "f.wav")[0], x)


def test_write_wav_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        write_wav(tmp_path / "x.wav", np.array([0.0, np.nan]), 16000)
    assert not (tmp_path / "x.wav").exists()


def test_resample_identity_and_length():
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert resample(x, 16000, 16000) is not None
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)
    assert len(resample(x, 16000, 8000)) == 8000
