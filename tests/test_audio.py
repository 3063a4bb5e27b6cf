import numpy as np
import pytest
import soundfile as sf
from conftest import tone, write_corrupt, write_empty, write_tone

from asr.audio import AudioError, audio_info, load_audio


@pytest.mark.parametrize(
    "name, fmt",
    [("a.wav", {}), ("a.flac", {}), ("a.ogg", {"format": "OGG", "subtype": "VORBIS"}),
     ("a.sph", {"format": "NIST", "subtype": "PCM_16"}), ("a.mp3", {"format": "MP3"})],
)
def test_reads_every_libsndfile_format_as_mono_float32(tmp_path, name, fmt):
    path = write_tone(tmp_path / name, 0.5, **fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - 8000) < 1200  # lossy codecs may pad a little
    assert 0.1 < np.abs(audio).max() <= 1.0


def test_downmixes_and_resamples(tmp_path):
    left = tone(1.0, 44100, 440.0)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    sf.write(str(tmp_path / "s.wav"), stereo, 44100)
    audio = load_audio(tmp_path / "s.wav", 16000)
    assert audio.shape == (16000,)
    assert 0.12 < np.abs(audio).max() < 0.2  # the mean of a 0.3 tone and silence
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 5


def test_segment_selection(tmp_path):
    path = write_tone(tmp_path / "t.wav", 2.0)
    assert load_audio(path, start=0.5, duration=1.0).shape == (16000,)
    assert load_audio(path, start=1.5).shape == (8000,)


@pytest.mark.parametrize("make, reason", [
    (lambda p: p, "no such file"),
    (write_corrupt, "unreadable audio"),
    (write_empty, "no audio samples"),
])
def test_bad_files_raise_naming_file_and_reason(tmp_path, make, reason):
    path = make(tmp_path / "bad.wav")
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(path) in str(info.value) and reason in str(info.value)
    with pytest.raises(AudioError, match=reason):
        audio_info(path)


def test_info_gives_duration(tmp_path):
    assert audio_info(write_tone(tmp_path / "t.flac", 1.25)) == (1.25, 16000)


@pytest.mark.parametrize("file_rate, start, duration", [(48000, 0.0, None), (44100, 0.3, 1.1), (8000, 0.0, None),
                                                        (16000, 0.25, 0.5)])
def test_block_by_block_reading_equals_reading_the_whole_file(tmp_path, monkeypatch, file_rate, start, duration):
    """Reference: the whole stretch down-mixed by numpy and resampled by torchaudio in one call."""
    import torch
    import torchaudio.functional as AF

    import asr.audio

    rng = np.random.default_rng(0)
    stereo = (rng.normal(0, 0.1, (int(2.0 * file_rate), 2))).astype(np.float32)
    sf.write(str(tmp_path / "s.wav"), stereo, file_rate, subtype="FLOAT")
    first = int(round(start * file_rate))
    last = len(stereo) if duration is None else first + int(round(duration * file_rate))
    expected = AF.resample(torch.from_numpy(stereo[first:last].mean(axis=1)), file_rate, 16000).numpy()
    monkeypatch.setattr(asr.audio, "BLOCK_SECONDS", 0.1)  # many blocks
    audio = load_audio(tmp_path / "s.wav", 16000, start, duration)
    assert audio.shape == expected.shape
    np.testing.assert_allclose(audio, expected, atol=2e-6)


def test_non_finite_samples_are_refused_naming_the_file(tmp_path):
    samples = np.zeros(16000, dtype=np.float32)
    samples[12345] = np.inf
    sf.write(str(tmp_path / "inf.wav"), samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"inf.wav: samples that are not finite \(NaN or inf\), first at sample 12345"):
        load_audio(tmp_path / "inf.wav")


def test_a_long_file_is_never_read_whole(tmp_path, monkeypatch):
    """A 30-minute 48 kHz stereo file peaked at 3.8 GB when read whole (tools/bench_audio_memory.py)."""
    import asr.audio

    sf.write(str(tmp_path / "long.wav"), np.zeros((48000 * 3, 2), dtype=np.float32), 48000)
    monkeypatch.setattr(asr.audio, "BLOCK_SECONDS", 0.5)
    reads, original = [], sf.SoundFile.read

    def counted(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counted)
    assert load_audio(tmp_path / "long.wav", 16000).shape == (48000,)
    assert len(reads) == 6 and all(0 < n <= 24000 + 2 * 258 for n in reads)
