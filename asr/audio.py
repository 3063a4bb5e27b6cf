"""Audio input: the one place where audio files are read.

Everything libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3, NIST SPHERE, ...) comes back as a
mono float32 array at the requested sample rate.
"""
from __future__ import annotations

import math
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


def find_audio(folder: str | Path) -> list[Path]:
    """The audio files below `folder`, recursively, sorted (by their extension: `AUDIO_EXTENSIONS`)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


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
            first = min(int(round(start * file_rate)), f.frames)
            available = f.frames - first
            n_frames = available if duration is None else min(available, int(round(duration * file_rate)))
            if n_frames <= 0:
                raise AudioError(path, "no audio samples (empty file or segment)")
            f.seek(first)
            mono = _read_mono(f, path, n_frames, file_rate, sample_rate)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(path, f"unreadable audio ({_reason(error)})") from None
    return mono


def load_audio_bytes(data: bytes, name: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Like `load_audio`, for the bytes of an uploaded file held in memory (`name` is only shown in
    errors): no file is written or opened."""
    import io

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.frames <= 0:
                raise AudioError(name, "no audio samples (empty file)")
            return _read_mono(f, Path(name), f.frames, f.samplerate, sample_rate)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(name, f"unreadable audio ({_reason(error)})") from None


BLOCK_SECONDS = 30.0  # audio read, down-mixed and resampled at a time: memory stays at the output's size


def _read_mono(f: sf.SoundFile, path: Path, n_frames: int, file_rate: int, sample_rate: int) -> np.ndarray:
    """`n_frames` from the file's current position, down-mixed and resampled block by block.

    Blocks start on multiples of the rates' common period and are resampled with a margin of
    input on both sides that is then cut away, so the result is the whole-file resampling's
    (torchaudio's windowed sinc) to float precision, without the whole file in memory.
    """
    g = math.gcd(file_rate, sample_rate)
    period_in, period_out = file_rate // g, sample_rate // g
    block = max(1, int(BLOCK_SECONDS * file_rate) // period_in) * period_in
    margin = -(-256 // period_in) * period_in if file_rate != sample_rate else 0  # > the sinc filter's reach
    n_out = -(-n_frames * period_out // period_in)
    out = np.empty(n_out, dtype=np.float32)
    origin = f.tell()
    for begin in range(0, n_frames, block):
        left = min(margin, begin)
        f.seek(origin + begin - left)
        chunk = f.read(frames=min(n_frames, begin + block + margin) - (begin - left), dtype="float32", always_2d=True)
        if not np.isfinite(chunk).all():  # float files can hold NaN or inf; one poisons a whole model
            bad = begin - left + int(np.argwhere(~np.isfinite(chunk))[0, 0])
            raise AudioError(path, f"samples that are not finite (NaN or inf), first at sample {bad}")
        mono = chunk.mean(axis=1) if chunk.shape[1] > 1 else chunk[:, 0]
        if file_rate != sample_rate:
            mono = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), file_rate, sample_rate).numpy()
        skip = left // period_in * period_out
        first_out = begin // period_in * period_out
        take = min(n_out, (begin + block) // period_in * period_out) - first_out
        out[first_out : first_out + take] = mono[skip : skip + take]
    return out


def _reason(error: Exception) -> str:
    text = str(error)
    # libsndfile messages repeat the path; keep only the reason after it.
    return text.split(": ", 1)[-1] if ": " in text else text
