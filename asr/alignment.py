"""Word and token timestamps from a CTC forced alignment of the decoded text, with confidences."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.tokenizer import Tokenizer


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
    log_probs: torch.Tensor, text: str, tokenizer: Tokenizer, frame_seconds: float
) -> list[Word]:
    """Times of the words of `text` in one utterance's `log_probs: (frames, n_tokens)`.

    Each token (character or subword) is placed by `forced_align`; a word spans from its first
    token's first frame to its last token's last frame. Its confidence is the mean over its tokens
    of the average posterior probability on their frames. When the text cannot be aligned (more
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
    result = []
    spans = _word_spans(AF.merge_tokens(labels[0], scores[0].exp()), tokenizer)
    for i, current in enumerate(spans):
        # the text's own word: a phone model's tokens read back as the first word they spell, a homophone maybe
        word = words[i] if len(spans) == len(words) else tokenizer.decode(s.token for s in current).strip()
        confidence = sum(s.score for s in current) / len(current)
        result.append(Word(word, round(current[0].start * frame_seconds, 3), round(current[-1].end * frame_seconds, 3),
                           round(float(confidence), 3)))
    return result


def _word_spans(spans, tokenizer: Tokenizer) -> list[list]:
    """Token spans grouped into words: a separator (the space of characters) ends a word and
    belongs to none; a word-start token (a subword's `▁`) begins the next word."""
    words, current = [], []
    for span in spans:
        if tokenizer.is_separator(span.token) or (tokenizer.starts_word(span.token) and current):
            if current:
                words.append(current)
            current = []
        if not tokenizer.is_separator(span.token):
            current.append(span)
    return words + [current] if current else words
