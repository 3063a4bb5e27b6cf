"""n-gram language models: interpolated modified Kneser-Ney estimation, ARPA writing and checking.

No external binaries: `build_ngram_lm` counts in Python and `write_arpa` writes a file that KenLM
(bundled with flashlight-text, used by torchaudio's `ctc_decoder`) loads. `check_arpa` validates a
file in Python first, so a malformed one is a clear error rather than a crash inside C++.

The estimate follows Chen & Goodman (1998) as KenLM's lmplz does: highest-order n-grams keep
their counts, lower orders use continuation counts (how many distinct words precede them), except
n-grams that start with <s>; three discounts per order come from the counts of counts, and every
order interpolates with the one below, the unigrams with the uniform distribution.
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.errors import AsrError, InputError
from asr.manifest import atomic_write_text

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz's --discount_fallback, for counts too sparse to estimate
KENLM_MAX_ORDER = 6  # flashlight-text's KenLM is compiled for at most 6-grams


class ArpaError(AsrError):
    """A malformed ARPA file; the message names the file, the line and what is wrong."""


@dataclass
class NgramLM:
    """log10 probabilities and back-off weights by n-gram (tuples of words), orders 1..order."""

    order: int
    logprob: list[dict[tuple[str, ...], float]]
    backoff: list[dict[tuple[str, ...], float]]

    def word_logprob(self, word: str, context: Sequence[str]) -> float:
        """log10 p(word | context) with ARPA back-off (unknown words score as <unk>)."""
        if (word,) not in self.logprob[0]:
            word = UNK
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        while True:
            ngram = context + (word,)
            found = self.logprob[len(ngram) - 1].get(ngram)
            if found is not None:
                return penalty + found
            penalty += self.backoff[len(context) - 1].get(context, 0.0)
            context = context[1:]

    def sentence_logprob(self, words: Sequence[str]) -> float:
        """log10 p(words </s> | <s>)."""
        history, total = [BOS], 0.0
        for word in [*words, EOS]:
            total += self.word_logprob(word, history)
            history.append(word)
        return total


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of every n-gram, n = 1..order, over sentences padded with <s> and </s>."""
    counts = [Counter() for _ in range(order)]
    for words in sentences:
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                counts[n - 1][tuple(padded[i : i + n])] += 1
    return counts


def adjusted_counts(raw: list[Counter]) -> list[Counter]:
    """Highest order and n-grams starting with <s>: raw counts; others: distinct left extensions."""
    order = len(raw)
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = Counter(raw[-1])
    for n in range(order - 1, 0, -1):  # continuation counts of order n from order n+1
        for ngram in raw[n]:
            adjusted[n - 1][ngram[1:]] += 1
        for ngram, count in raw[n - 1].items():
            if ngram[0] == BOS or ngram not in adjusted[n - 1]:
                adjusted[n - 1][ngram] = count
    return adjusted


def estimate_discounts(counts: Counter, order: int = 0) -> tuple[float, float, float]:
    """(D1, D2, D3+) of Chen & Goodman (1998) from n1..n4, the numbers of n-grams seen *exactly*
    1..4 times (as KenLM's lmplz); the fallback, logged with the reason, where they are out of range."""
    n = Counter(c for c in counts.values() if c <= 4)
    n1, n2, n3, n4 = (n[k] for k in (1, 2, 3, 4))
    what = f"order {order}" if order else "n-grams"
    if not (n1 and n2 and n3):
        log.warning("%s: discounts fall back to %s: no n-gram seen exactly %s time(s)", what, FALLBACK_DISCOUNTS,
                    " or ".join(str(k) for k, c in ((1, n1), (2, n2), (3, n3)) if not c))
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < d < k + 1 for k, d in enumerate(discounts)):
        log.warning("%s: discounts fall back to %s: the estimate %s is out of range (n1..n4 = %d, %d, %d, %d)",
                    what, FALLBACK_DISCOUNTS, tuple(round(d, 4) for d in discounts), n1, n2, n3, n4)
        return FALLBACK_DISCOUNTS
    return discounts


def build_ngram_lm(
    sentences: Iterable[Sequence[str]],
    order: int = 3,
    discounts: Sequence[tuple[float, float, float]] | None = None,
) -> NgramLM:
    """Interpolated modified Kneser-Ney; `discounts` per order (1..order) overrides the estimate."""
    if not 1 <= order <= KENLM_MAX_ORDER:
        raise InputError(f"order {order}: must be 1 to {KENLM_MAX_ORDER}, the most the decoder's KenLM loads")
    raw = count_ngrams(sentences, order)
    if not raw[0]:
        raise InputError("no text to estimate a language model from")
    adjusted = adjusted_counts(raw)
    discounts = list(discounts) if discounts else [estimate_discounts(c, n) for n, c in enumerate(adjusted, 1)]
    vocab = sorted({w for (w,) in raw[0]} | {UNK})
    n_uniform = len(vocab) - 1  # <s> is never predicted

    # For each order: the discounted share of every n-gram, and per context the mass set aside.
    interpolated: list[dict[tuple[str, ...], float]] = []  # probabilities, not logs
    gammas: list[dict[tuple[str, ...], float]] = []
    for n in range(1, order + 1):
        d1, d2, d3 = discounts[n - 1]
        totals, left = defaultdict(float), defaultdict(float)
        for ngram, count in adjusted[n - 1].items():
            if ngram[-1] == BOS:
                continue
            context = ngram[:-1]
            totals[context] += count
            left[context] += (d1, d2, d3)[min(count, 3) - 1]
        gamma = {context: left[context] / totals[context] for context in totals}
        probs = {}
        for ngram, count in adjusted[n - 1].items():
            if ngram[-1] == BOS:
                continue
            context = ngram[:-1]
            discounted = max(count - (d1, d2, d3)[min(count, 3) - 1], 0.0) / totals[context]
            lower = interpolated[-1][ngram[1:]] if n > 1 else 1.0 / n_uniform
            probs[ngram] = discounted + gamma[context] * lower
        if n == 1:
            probs[(UNK,)] = probs.get((UNK,), 0.0) + gamma[()] / n_uniform
        interpolated.append(probs)
        gammas.append(gamma)

    logprob = [{k: math.log10(p) for k, p in probs.items()} for probs in interpolated]
    logprob[0][(BOS,)] = -99.0
    backoff = [dict() for _ in range(order)]
    for n in range(1, order):  # a back-off weight for every n-gram that is also a context
        for context, gamma in gammas[n].items():
            if context in logprob[n - 1] or context == (BOS,):
                backoff[n - 1][context] = math.log10(gamma) if gamma > 0 else -99.0
    return NgramLM(order, logprob, backoff)


def write_arpa(lm: NgramLM, path: str | Path) -> Path:
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(lm.logprob[n - 1])}" for n in range(1, lm.order + 1)]
    for n in range(1, lm.order + 1):
        lines += ["", f"\\{n}-grams:"]
        for ngram in sorted(lm.logprob[n - 1]):
            row = f"{lm.logprob[n - 1][ngram]:.6f}\t{' '.join(ngram)}"
            if n < lm.order and ngram in lm.backoff[n - 1]:
                row += f"\t{lm.backoff[n - 1][ngram]:.6f}"
            lines.append(row)
    lines += ["", "\\end\\", ""]
    return atomic_write_text(path, "\n".join(lines))


def read_arpa(path: str | Path) -> NgramLM:
    """Parse and check an ARPA file; raises `ArpaError` naming the line on any malformation."""
    path = Path(path)
    if not path.is_file():
        raise ArpaError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ArpaError(f"{path}: not a text ARPA file (binary KenLM files are checked by KenLM itself)") from None
    lines = text.splitlines()
    i = 0

    def fail(n_line: int, what: str):
        raise ArpaError(f"{path}:{n_line}: {what}")

    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        fail(1, "no \\data\\ header (not an ARPA file?)")
    declared: dict[int, int] = {}
    i += 1
    while i < len(lines) and lines[i].strip():
        match = re.fullmatch(r"ngram (\d+)\s*=\s*(\d+)", lines[i].strip())
        if not match:
            fail(i + 1, f"expected 'ngram N=COUNT', found {lines[i].strip()!r}")
        declared[int(match.group(1))] = int(match.group(2))
        i += 1
    if not declared or sorted(declared) != list(range(1, max(declared) + 1)):
        fail(i + 1, "the \\data\\ section must declare ngram 1..N counts")
    order = max(declared)
    logprob = [dict() for _ in range(order)]
    backoff = [dict() for _ in range(order)]
    n = 0
    for i in range(i, len(lines)):
        line = lines[i].strip()
        if not line:
            continue
        header = re.fullmatch(r"\\(\d+)-grams:", line)
        if header:
            n = int(header.group(1))
            if n not in declared:
                fail(i + 1, f"section {line} was not declared in \\data\\")
            continue
        if line == "\\end\\":
            break
        if n == 0:
            fail(i + 1, f"unexpected line before the first n-gram section: {line!r}")
        fields = line.split()
        if len(fields) not in (n + 1, n + 2):
            fail(i + 1, f"a {n}-gram line needs a log-probability, {n} word(s) and an optional back-off")
        try:
            prob = float(fields[0])
            weight = float(fields[n + 1]) if len(fields) == n + 2 else None
        except ValueError:
            fail(i + 1, f"not a number in {line!r}")
        if prob > 0 or math.isnan(prob):
            fail(i + 1, f"log10 probability {prob} is not <= 0")
        ngram = tuple(fields[1 : n + 1])
        logprob[n - 1][ngram] = prob
        if weight is not None:
            backoff[n - 1][ngram] = weight
    else:
        fail(len(lines), "no \\end\\ marker (truncated file?)")
    for k, count in declared.items():
        if len(logprob[k - 1]) != count:
            fail(1, f"\\data\\ declares {count} {k}-grams but the file holds {len(logprob[k - 1])}")
    for k in range(2, order + 1):
        for ngram in logprob[k - 1]:
            if ngram[:-1] not in logprob[k - 2]:
                fail(1, f"{k}-gram {' '.join(ngram)!r} has no {k - 1}-gram prefix {' '.join(ngram[:-1])!r}")
    return NgramLM(order, logprob, backoff)


# Text ARPA files up to this size are parsed in full before KenLM sees them, so that a malformation
# is named by its line; larger ones (a LibriSpeech 4-gram is 1.3 GB) get the header check only and
# KenLM's own error, which names the byte.
FULL_CHECK_BYTES = 20_000_000


def check_arpa(path: str | Path, full_check_bytes: int | None = None) -> Path:
    """What KenLM would reject, as an `ArpaError`: the header's orders (2..6), and the whole file
    (`read_arpa`) when it is at most `full_check_bytes`. Binary KenLM files pass through."""
    path = Path(path)
    if not path.is_file():
        raise ArpaError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(64)
    if head.startswith(b"mmap lm "):  # KenLM's binary format
        return path
    limit = FULL_CHECK_BYTES if full_check_bytes is None else full_check_bytes
    order = read_arpa(path).order if path.stat().st_size <= limit else arpa_header(path)[0]
    if order < 2:
        raise ArpaError(f"{path}: a {order}-gram LM; KenLM loads orders 2 to {KENLM_MAX_ORDER} (build one with --order 2 or more)")
    if order > KENLM_MAX_ORDER:
        raise ArpaError(f"{path}: order {order} is above {KENLM_MAX_ORDER}, the most the bundled KenLM loads")
    return path


def arpa_header(path: str | Path) -> tuple[int, dict[int, int]]:
    """The order and the declared n-gram counts of an ARPA file, from its `\\data\\` section alone."""
    declared: dict[int, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for n_line, line in enumerate(f, 1):
            if line.strip() == "\\data\\":
                break
            if n_line > 1000:
                raise ArpaError(f"{path}: no \\data\\ header (not an ARPA file?)")
        else:
            raise ArpaError(f"{path}: no \\data\\ header (not an ARPA file?)")
        for line in f:
            match = re.fullmatch(r"ngram (\d+)\s*=\s*(\d+)", line.strip())
            if not match:
                break
            declared[int(match.group(1))] = int(match.group(2))
    if not declared or sorted(declared) != list(range(1, max(declared) + 1)):
        raise ArpaError(f"{path}: the \\data\\ section must declare ngram 1..N counts")
    return max(declared), declared


def text_sentences(texts: Iterable[str], unit: str = "word") -> Iterable[list[str]]:
    """Words, or characters with `|` between words (the units of a lexicon-free decoder)."""
    for text in texts:
        words = text.split()
        if not words:
            continue
        yield words if unit == "word" else list("|".join(words))
