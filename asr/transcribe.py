"""Files and folders -> text."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

from asr.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from asr.decoding import Decoder
from asr.recognizer import Recognizer


@dataclass(frozen=True)
class Transcript:
    """The text of one input file, or the reason it has none."""

    path: str
    text: str | None = None
    error: str | None = None


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for files with audio extensions."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            found.append(path)
    return found


def transcribe_files(
    recognizer: Recognizer,
    paths: Sequence[str | Path],
    decoder: Decoder | None = None,
    batch_size: int = 8,
) -> Iterator[Transcript]:
    """Transcribe each file in order; a file that cannot be read yields a Transcript with `error`."""
    pending: list[tuple[Path, torch.Tensor]] = []
    for path in expand_inputs(paths):
        try:
            pending.append((path, torch.from_numpy(load_audio(path, recognizer.features.sample_rate))))
        except AudioError as error:
            yield from _flush(recognizer, pending, decoder)
            pending = []
            yield Transcript(str(path), error=error.reason)
            continue
        if len(pending) == batch_size:
            yield from _flush(recognizer, pending, decoder)
            pending = []
    yield from _flush(recognizer, pending, decoder)


def _flush(recognizer: Recognizer, pending, decoder) -> Iterator[Transcript]:
    if not pending:
        return
    texts = recognizer.transcribe_waveforms([wave for _, wave in pending], decoder)
    for (path, _), text in zip(pending, texts):
        yield Transcript(str(path), text=text)
