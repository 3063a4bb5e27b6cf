"""Text normalisation and error rates (WER, CER, token error rate) with jiwer."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jiwer

from asr.errors import InputError

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
    """Corpus-level rates after `normalize_text` on both sides, counted as NIST sclite counts them:
    errors (substitutions + deletions + insertions) of all utterances over all reference words.

    An utterance with an empty reference adds its hypothesis's words as insertions. Raises
    `ValueError` when there are no reference words at all (the rate is undefined).
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(refs, hyps)]
    scored = [(r, h) for r, h in pairs if r]
    inserted_words = sum(len(h.split()) for r, h in pairs if not r)
    inserted_chars = sum(len(h) for r, h in pairs if not r)
    if not scored:
        raise InputError("no reference words to score against (every reference is empty)")
    refs_n, hyps_n = [r for r, _ in scored], [h for _, h in scored]
    words = jiwer.process_words(refs_n, hyps_n)
    chars = jiwer.process_characters(refs_n, hyps_n)
    n_words = words.hits + words.substitutions + words.deletions
    n_chars = chars.hits + chars.substitutions + chars.deletions
    insertions = words.insertions + inserted_words
    return ErrorCounts(
        wer=100.0 * (words.substitutions + words.deletions + insertions) / n_words,
        cer=100.0 * (chars.substitutions + chars.deletions + chars.insertions + inserted_chars) / n_chars,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=insertions,
        n_ref_words=n_words,
        n_ref_chars=n_chars,
    )


def token_error_rate(refs: list[list[int]], hyps: list[list[int]]) -> tuple[float, int]:
    """Corpus-level error rate in percent over token sequences (a model's own units: phones, subword
    pieces, characters), counted as `error_rates` counts words: the edits of all utterances over all
    reference tokens, a hypothesis against an empty reference counting as insertions. Returns the
    rate and the number of reference tokens; raises `InputError` when there are none."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    as_words = [(" ".join(map(str, r)), " ".join(map(str, h))) for r, h in zip(refs, hyps)]
    scored = [(r, h) for r, h in as_words if r]
    if not scored:
        raise InputError("no reference tokens to score against")
    edits = jiwer.process_words([r for r, _ in scored], [h for _, h in scored])
    n_ref = edits.hits + edits.substitutions + edits.deletions
    errors = edits.substitutions + edits.deletions + edits.insertions + sum(len(h) for r, h in zip(refs, hyps) if not r)
    return 100.0 * errors / n_ref, n_ref


def utterance_wer(ref: str, hyp: str) -> float:
    """One utterance's WER in percent; with an empty reference, 100 per inserted word (as errors
    over one word), 0 for an empty hypothesis."""
    ref, hyp = normalize_text(ref), normalize_text(hyp)
    if not ref:
        return 100.0 * len(hyp.split())
    return 100.0 * jiwer.wer(ref, hyp)
