import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DATA = Path(__file__).parent / "data"
AN4_FIXTURE = DATA / "an4"


def tone(seconds: float, sample_rate: int = 16000, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A seeded tone with a little noise, float32 in [-1, 1]."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (0.3 * np.sin(2 * math.pi * freq * t) + noise).astype(np.float32)


def write_tone(path: Path, seconds: float = 0.5, sample_rate: int = 16000, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, sample_rate), sample_rate, **kwargs)
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio at all" * 3)
    return path


def write_empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(0, dtype=np.float32), 16000)
    return path


@pytest.fixture
def an4_fixture() -> list[tuple[str, Path, str]]:
    """(id, FLAC path, text) for the six committed AN4 utterances."""
    rows = []
    for line in (AN4_FIXTURE / "text").read_text().splitlines():
        utt_id, text = line.split(" ", 1)
        rows.append((utt_id, AN4_FIXTURE / f"{utt_id}.flac", text))
    return rows
