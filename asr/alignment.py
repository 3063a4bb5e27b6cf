"""Word and token timestamps from a CTC forced alignment of the decoded text, with confidences."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.tokenizer import CharTokenizer


@dataclass(frozen=True)
class Word:
    """A word with `start`/`end` in seconds and `confidence` in [0, 1]."""

    word: str
    start: float
    end: float
    confidence: float

    def shifted(self, seconds: float) -> Word:
        return Word(self.word, round(self.start + seconds, 3), round(self.end + seconds, 3), self.confidence)


def align_words(
    log_probs: torch.Tensor, text: str, tokenizer: CharTokenizer, frame_seconds: float
) -> list[Word]:
    """Times of the words of `text` in one utterance's `log_probs: (frames, n_tokens)`.

    Each character is placed by `forced_align`; a word spans from its first character's first
    frame to its last character's last frame. Its confidence is the mean over its characters of
    the average posterior probability on their frames. When the text cannot be aligned (more
    characters than frames allow), the words share the utterance's time evenly with confidence 0.
    """
    words = text.split()
    if not words:
        return []
    targets = tokenizer.encode(" ".join(words))
    n_frames = log_probs.shape[0]
    try:
        labels, scores = AF.forced_align(
            log_probs[None].float().cpu(), torch.tensor([targets], dtype=torch.int32), blank=tokenizer.blank
        )
    except RuntimeError:
        step = n_frames * frame_seconds / len(words)
        return [Word(w, round(i * step, 3), round((i + 1) * step, 3), 0.0) for i, w in enumerate(words)]
    spans = AF.merge_tokens(labels[0], scores[0].exp())
    space = tokenizer.encode(" ")
    result, current = [], []
    for span in spans + [None]:
        if span is None or (space and span.token == space[0]):
            if current:
                word = tokenizer.decode(s.token for s in current)
                confidence = sum(s.score for s in current) / len(current)
                result.append(
                    Word(word, round(current[0].start * frame_seconds, 3), round(current[-1].end * frame_seconds, 3),
                         round(float(confidence), 3))
                )
            current = []
        else:
            current.append(span)
    return result
