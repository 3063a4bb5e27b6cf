"""Files, folders and globs -> transcripts with segments, word timestamps and confidences.

Long recordings are split at pauses (found by energy or by a voice-activity detector) into segments of at most `max_segment_seconds`; segments of
many files are decoded together in batches of similar length, and their times are stitched back
to each file's clock.
"""
from __future__ import annotations

import glob
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.alignment import Word, align_words
from asr.audio import AudioError, audio_info, find_audio, load_audio
from asr.decoding import Decoder, GreedyDecoder
from asr.progress import progress_bar
from asr.recognizer import Recognizer
from asr.segment import DEFAULT_SEGMENTER, SEGMENTERS

log = logging.getLogger(__name__)
GROUP_SECONDS = 600.0  # audio decoded together before results are handed out


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording: `start`/`end` in seconds, its text and its words."""

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    """The transcript of one input, or the reason it has none (`error`)."""

    path: str
    text: str = ""
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for audio files; glob patterns expanded."""
    found = []
    for item in paths:
        text = str(item)
        if not Path(text).exists() and glob.has_magic(text):
            found += [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
            continue
        path = Path(text)
        if path.is_dir():
            found += find_audio(path)
        else:
            found.append(path)
    return found


def transcribe_audio(
    recognizer: Recognizer,
    audio: np.ndarray,
    decoder: Decoder | None = None,
    max_segment_seconds: float = 20.0,
    batch_size: int = 8,
    path: str = "<audio>",
    segmenter: str = DEFAULT_SEGMENTER,
) -> Transcript:
    """Transcribe mono float32 samples at the recogniser's sample rate."""
    return next(_transcribe_group(recognizer, [(path, audio)], decoder, max_segment_seconds, batch_size, None,
                                  segmenter))


def transcribe_input(recognizer, audio, decoder: Decoder | None = None, max_segment_seconds: float = 20.0,
                     segmenter: str | None = None) -> Transcript:
    """`Recognizer.transcribe` (and the ONNX recogniser's): a file path or mono float32 samples at
    the recogniser's rate. Raises `AudioError` for a file that cannot be read."""
    path = "<audio>"
    if not isinstance(audio, np.ndarray):
        path, audio = str(audio), load_audio(audio, recognizer.features.sample_rate)
    return transcribe_audio(recognizer, audio, decoder, max_segment_seconds, path=path,
                            segmenter=segmenter or DEFAULT_SEGMENTER)


def frame_seconds(recognizer) -> float:
    """Seconds per output frame: the feature hop times the model's time subsampling."""
    return recognizer.features.hop_ms / 1000 * recognizer.dims.subsampling


def transcribe_files(
    recognizer: Recognizer,
    paths: Sequence[str | Path],
    decoder: Decoder | None = None,
    batch_size: int = 8,
    max_segment_seconds: float = 20.0,
    progress: bool = False,
    segmenter: str = DEFAULT_SEGMENTER,
) -> Iterator[Transcript]:
    """Transcribe each input in order; one that cannot be read yields a Transcript with `error`."""
    files = expand_inputs(paths)
    total = 0.0
    rate = recognizer.features.sample_rate
    for path in files:
        try:
            seconds, file_rate = audio_info(path)
        except AudioError:
            continue
        total += seconds
        if file_rate < rate:
            log.warning("%s: recorded at %d Hz, below the %d Hz the model was trained on: it is up-sampled, but "
                        "the model has not heard narrow-band audio and will make more errors", path, file_rate, rate)
    bar = progress_bar(None, progress, total=round(total, 1), unit="audio s", desc="transcribing")
    group: list[tuple[str, np.ndarray | AudioError]] = []
    group_seconds = 0.0
    for path in files:
        try:
            audio = load_audio(path, rate)
            group.append((str(path), audio))
            group_seconds += len(audio) / rate
        except AudioError as error:
            group.append((str(path), error))
        if group_seconds >= GROUP_SECONDS:
            yield from _transcribe_group(recognizer, group, decoder, max_segment_seconds, batch_size, bar, segmenter)
            group, group_seconds = [], 0.0
    yield from _transcribe_group(recognizer, group, decoder, max_segment_seconds, batch_size, bar, segmenter)
    bar.close()


@torch.no_grad()
def _transcribe_group(recognizer, group, decoder, max_segment_seconds, batch_size, bar,
                      segmenter: str = DEFAULT_SEGMENTER) -> Iterator[Transcript]:
    decoder = decoder or GreedyDecoder(recognizer.tokenizer)
    split = SEGMENTERS[segmenter]
    rate = recognizer.features.sample_rate
    seconds_per_frame = frame_seconds(recognizer)
    pieces = []  # (input index, start sample, samples)
    for index, (_, audio) in enumerate(group):
        if isinstance(audio, np.ndarray):
            for start, end in split(audio, rate, max_segment_seconds):
                pieces.append((index, start, audio[start:end]))
    pieces.sort(key=lambda piece: len(piece[2]))
    segments: dict[int, list[Segment]] = {index: [] for index in range(len(group))}
    for first in range(0, len(pieces), batch_size):
        batch = pieces[first : first + batch_size]
        log_probs, n_frames = recognizer.infer([torch.from_numpy(samples) for _, _, samples in batch])
        texts = decoder.decode(log_probs, n_frames)
        log_probs, n_frames = log_probs.float().cpu(), n_frames.cpu()
        for row, ((index, start, samples), text) in enumerate(zip(batch, texts)):
            offset = start / rate
            words = align_words(log_probs[row, : n_frames[row]], text, recognizer.tokenizer, seconds_per_frame)
            words = [w.shifted(offset) for w in words]
            segments[index].append(Segment(round(offset, 3), round(offset + len(samples) / rate, 3), text, words))
        if bar is not None:
            bar.update(round(sum(len(samples) for _, _, samples in batch) / rate, 1))
    for index, (path, audio) in enumerate(group):
        if isinstance(audio, AudioError):
            yield Transcript(path, error=audio.reason)
            continue
        ordered = sorted(segments[index], key=lambda s: s.start)
        yield Transcript(path, " ".join(s.text for s in ordered if s.text), ordered)
