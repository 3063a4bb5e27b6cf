"""Text normalisation and error rates (WER, CER) with jiwer."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jiwer

_KEEP = re.compile(r"[^\w' ]+")


def normalize_text(text: str) -> str:
    """The one text normalisation, for training targets and scoring alike: Unicode NFC (an accented
    letter is one character, however it was typed), upper case, every character other than letters,
    digits, underscores and apostrophes replaced by a space, whitespace collapsed."""
    return " ".join(_KEEP.sub(" ", unicodedata.normalize("NFC", text).upper()).split())


@dataclass(frozen=True)
class ErrorCounts:
    """Word and character error rates in percent, with the word-level edit counts."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    n_ref_words: int
    n_ref_chars: int


def error_rates(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Corpus-level rates after `normalize_text` on both sides; empty references are not scored."""
    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(refs, hyps)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        raise ValueError("no non-empty reference to score")
    refs_n, hyps_n = [r for r, _ in pairs], [h for _, h in pairs]
    words = jiwer.process_words(refs_n, hyps_n)
    chars = jiwer.process_characters(refs_n, hyps_n)
    n_words = words.hits + words.substitutions + words.deletions
    n_chars = chars.hits + chars.substitutions + chars.deletions
    return ErrorCounts(
        wer=100.0 * words.wer,
        cer=100.0 * chars.cer,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        n_ref_words=n_words,
        n_ref_chars=n_chars,
    )


def utterance_wer(ref: str, hyp: str) -> float:
    ref, hyp = normalize_text(ref), normalize_text(hyp)
    if not ref:
        return 0.0 if not hyp else 100.0
    return 100.0 * jiwer.wer(ref, hyp)
