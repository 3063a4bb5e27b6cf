"""Audio input: the one place where audio files are read.

Everything libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3, NIST SPHERE, ...) comes back as a
mono float32 array at the requested sample rate.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import AsrError

SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".sph", ".nist", ".aiff", ".aif", ".au", ".w64"}
)


class AudioError(AsrError):
    """An audio file could not be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def audio_info(path: str | Path) -> tuple[float, int]:
    """Return `(duration_seconds, sample_rate)` of a file without decoding it."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(path, f"unreadable audio ({_reason(error)})") from None
    if info.frames <= 0:
        raise AudioError(path, "no audio samples (empty file)")
    return info.frames / info.samplerate, info.samplerate


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    start: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Read `path` as mono float32 samples in [-1, 1] at `sample_rate` Hz.

    `start` and `duration` (seconds) select a segment of the file; channels are averaged and
    the signal is resampled when the file's rate differs. Raises `AudioError` naming the file
    and the reason when it is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    try:
        with sf.SoundFile(str(path)) as f:
            file_rate = f.samplerate
            first = int(round(start * file_rate))
            if first:
                f.seek(min(first, f.frames))
            n_frames = -1 if duration is None else int(round(duration * file_rate))
            samples = f.read(frames=n_frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(path, f"unreadable audio ({_reason(error)})") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty file or segment)")
    if not np.isfinite(samples).all():  # float files can hold NaN or inf; one poisons a whole model
        raise AudioError(path, f"samples that are not finite (NaN or inf), first at sample {_first_bad(samples)}")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if file_rate != sample_rate:
        mono = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), file_rate, sample_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def _first_bad(samples: np.ndarray) -> int:
    return int(np.argwhere(~np.isfinite(samples))[0, 0])


def _reason(error: Exception) -> str:
    text = str(error)
    # libsndfile messages repeat the path; keep only the reason after it.
    return text.split(": ", 1)[-1] if ": " in text else text
