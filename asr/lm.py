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
import os
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from asr.errors import AsrError, InputError
from asr.manifest import temporary_beside

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz's --discount_fallback, for counts too sparse to estimate
KENLM_MAX_ORDER = 6  # flashlight-text's KenLM is compiled for at most 6-grams


class ArpaError(AsrError):
    """A malformed ARPA file; the message names the file, the line and what is wrong."""


class NgramLM:
    """log10 probabilities and back-off weights by n-gram (tuples of words), orders 1..order."""

    def __init__(self, order: int, logprob: list[dict], backoff: list[dict]):
        self.order, self._logprob, self._backoff = order, logprob, backoff

    @property
    def logprob(self) -> list[dict[tuple[str, ...], float]]:
        return self._logprob

    @property
    def backoff(self) -> list[dict[tuple[str, ...], float]]:
        return self._backoff

    def sizes(self) -> list[int]:
        return [len(g) for g in self.logprob]

    def rows(self, n: int) -> Iterable[tuple[float, str, float | None]]:
        """(log10 p, the words joined by spaces, back-off or None) of every n-gram, for `write_arpa`."""
        for ngram, prob in self.logprob[n - 1].items():
            yield prob, " ".join(ngram), self.backoff[n - 1].get(ngram)

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


class TableLM(NgramLM):
    """An estimated LM as arrays: per order, the n-grams as rows of word ids, their log10
    probabilities and back-off weights (NaN: none). The dictionaries of `NgramLM` are made only
    when asked for (small LMs, tests); `write_arpa` writes from the arrays."""

    def __init__(self, vocab: list[str], grams: list[np.ndarray], logprobs: list[np.ndarray],
                 backoffs: list[np.ndarray]):
        self.order, self.vocab, self.grams, self.logprobs, self.backoffs = len(grams), vocab, grams, logprobs, backoffs
        self._dicts = None

    def _as_dicts(self):
        if self._dicts is None:
            logprob, backoff = [], []
            for grams, probs, weights in zip(self.grams, self.logprobs, self.backoffs):
                keys = [tuple(self.vocab[i] for i in row) for row in grams.tolist()]
                logprob.append(dict(zip(keys, probs.tolist())))
                backoff.append({k: w for k, w in zip(keys, weights.tolist()) if not math.isnan(w)})
            self._dicts = logprob, backoff
        return self._dicts

    @property
    def logprob(self):
        return self._as_dicts()[0]

    @property
    def backoff(self):
        return self._as_dicts()[1]

    def sizes(self) -> list[int]:
        return [len(g) for g in self.grams]

    def rows(self, n: int):
        words, weights = self.vocab, self.backoffs[n - 1]
        for row, prob, weight in zip(self.grams[n - 1].tolist(), self.logprobs[n - 1].tolist(), weights.tolist()):
            yield prob, " ".join(words[i] for i in row), None if math.isnan(weight) else weight


# The counting works on arrays of word ids: an n-gram is a row of n int32 ids, and a table of them
# is kept unique and sorted as byte strings (`_unique_rows`), so rows sharing a prefix are
# contiguous and a table is searched with `np.searchsorted`. 10 M words of text take about
# 16 bytes a word a order in the arrays, where dictionaries of tuples took about 150.

def _rows_view(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    return rows.view(np.dtype((np.void, 4 * rows.shape[1]))).ravel()


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows (sorted as byte strings) and how often each occurs."""
    unique, counts = np.unique(_rows_view(rows), return_counts=True)
    return unique.view(np.int32).reshape(-1, rows.shape[1]), counts


def _find_rows(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query row in `table` (unique, sorted by `_unique_rows`), -1 where absent."""
    if len(table) == 0:
        return np.full(len(queries), -1)
    view, query = _rows_view(table), _rows_view(queries)
    at = np.minimum(np.searchsorted(view, query), len(view) - 1)
    return np.where(view[at] == query, at, -1)


def _encode(sentences: Iterable[Sequence[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Word ids of the sentences padded with <s> and </s>, one array, and each token's sentence."""
    ids = {BOS: 0, EOS: 1}
    tokens, sentence = array("i"), array("i")
    for k, words in enumerate(sentences):
        padded = [0, *(ids.setdefault(w, len(ids)) for w in words), 1]
        tokens.extend(padded)
        sentence.extend([k] * len(padded))
    return list(ids), np.frombuffer(tokens, dtype=np.int32), np.frombuffer(sentence, dtype=np.int32)


def _count_tables(tokens: np.ndarray, sentence: np.ndarray, order: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(distinct n-grams, raw counts) for n = 1..order; no n-gram spans two sentences."""
    tables = []
    for n in range(1, order + 1):
        length = len(tokens) - n + 1
        if length <= 0:
            tables.append((np.zeros((0, n), np.int32), np.zeros(0, np.int64)))
            continue
        starts = np.nonzero(sentence[:length] == sentence[n - 1 :])[0]
        rows = np.stack([tokens[starts + k] for k in range(n)], axis=1)
        tables.append(_unique_rows(rows))
        del rows, starts
    return tables


def _adjust(tables: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Adjusted counts per order: the highest order and n-grams starting with <s> keep their raw
    counts; the others get continuation counts (distinct words seen before them)."""
    adjusted = [None] * len(tables)
    adjusted[-1] = tables[-1][1]
    for n in range(len(tables) - 1, 0, -1):  # order n (index n - 1) from order n + 1
        grams, counts = tables[n - 1]
        suffixes, continuation = _unique_rows(tables[n][0][:, 1:])
        at = _find_rows(suffixes, grams)
        keep_raw = (at < 0) | (grams[:, 0] == 0)
        adjusted[n - 1] = np.where(keep_raw, counts, continuation[np.maximum(at, 0)])
    return adjusted


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of every n-gram, n = 1..order, over sentences padded with <s> and </s>."""
    vocab, tokens, sentence = _encode(sentences)
    return [_as_counter(vocab, grams, counts) for grams, counts in _count_tables(tokens, sentence, order)]


def adjusted_counts(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """The counts modified Kneser-Ney discounts, order by order (see `_adjust`)."""
    vocab, tokens, sentence = _encode(sentences)
    tables = _count_tables(tokens, sentence, order)
    return [_as_counter(vocab, grams, counts) for (grams, _), counts in zip(tables, _adjust(tables))]


def _as_counter(vocab: list[str], grams: np.ndarray, counts: np.ndarray) -> Counter:
    return Counter({tuple(vocab[i] for i in row): int(c) for row, c in zip(grams.tolist(), counts.tolist())})


def estimate_discounts(counts, order: int = 0) -> tuple[float, float, float]:
    """(D1, D2, D3+) of Chen & Goodman (1998) from n1..n4, the numbers of n-grams seen *exactly*
    1..4 times (as KenLM's lmplz); the fallback, logged with the reason, where they are out of range.
    `counts`: the counts (an array), or a mapping to them."""
    values = np.fromiter(counts.values(), dtype=np.int64) if hasattr(counts, "values") else np.asarray(counts)
    n1, n2, n3, n4 = (int(np.count_nonzero(values == k)) for k in (1, 2, 3, 4))
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
) -> TableLM:
    """Interpolated modified Kneser-Ney; `discounts` per order (1..order) overrides the estimate."""
    if not 1 <= order <= KENLM_MAX_ORDER:
        raise InputError(f"order {order}: must be 1 to {KENLM_MAX_ORDER}, the most the decoder's KenLM loads")
    vocab, tokens, sentence = _encode(sentences)
    if len(vocab) == 2 and not len(tokens):
        raise InputError("no text to estimate a language model from")
    tables = _count_tables(tokens, sentence, order)
    del tokens, sentence
    adjusted = _adjust(tables)
    discounts = list(discounts) if discounts else [estimate_discounts(c, n) for n, c in enumerate(adjusted, 1)]
    if UNK not in vocab:
        vocab.append(UNK)
    unk = vocab.index(UNK)
    n_uniform = len(vocab) - 1  # <s> is never predicted

    grams_by_order, probs_by_order, contexts_by_order, gammas_by_order = [], [], [], []
    for n in range(1, order + 1):
        grams, counts = tables[n - 1][0], adjusted[n - 1]
        keep = grams[:, -1] != 0  # nothing predicts <s>
        grams, counts = grams[keep], counts[keep].astype(np.float64)
        d = np.asarray((0.0, *discounts[n - 1]))[np.minimum(counts, 3).astype(np.int64)]
        if n == 1:  # one context, the empty history; below it, the uniform distribution
            contexts, inverse = None, np.zeros(len(grams), np.int64)
            lower = np.full(len(grams), 1.0 / n_uniform)
        else:
            unique_contexts, inverse = np.unique(_rows_view(grams[:, :-1]), return_inverse=True)
            contexts = unique_contexts.view(np.int32).reshape(-1, n - 1)
            lower = probs_by_order[-1][_find_rows(grams_by_order[-1], grams[:, 1:])]
        totals = np.bincount(inverse, weights=counts)
        gamma = np.bincount(inverse, weights=d) / totals
        probs = np.maximum(counts - d, 0.0) / totals[inverse] + gamma[inverse] * lower
        if n == 1:  # an unseen <unk> gets the uniform share alone (a seen one has it in `probs`
            # already); <s> is listed, with the conventional -99
            extra = [g for g in (unk, 0) if not (grams[:, 0] == g).any()]
            grams = np.concatenate([grams, np.asarray(extra, np.int32).reshape(-1, 1)])
            probs = np.concatenate([probs, np.where(np.asarray(extra) == unk, gamma[0] / n_uniform, 0.0)])
            grams, order_rows = _sorted(grams)
            probs = probs[order_rows]
        grams_by_order.append(grams)
        probs_by_order.append(probs)
        contexts_by_order.append(contexts)
        gammas_by_order.append(gamma)

    logprobs = []
    for n, probs in enumerate(probs_by_order, 1):
        with np.errstate(divide="ignore"):
            logprob = np.log10(probs)
        if n == 1:
            logprob[grams_by_order[0][:, 0] == 0] = -99.0
        logprobs.append(logprob)
    backoffs = []
    for n in range(1, order + 1):  # a back-off weight for every n-gram that is also a context
        weights = np.full(len(grams_by_order[n - 1]), np.nan)
        if n < order:
            at = _find_rows(contexts_by_order[n], grams_by_order[n - 1])
            found = at >= 0
            gamma = gammas_by_order[n][at[found]]
            with np.errstate(divide="ignore"):
                weights[found] = np.where(gamma > 0, np.log10(np.maximum(gamma, 1e-300)), -99.0)
        backoffs.append(weights)
    return TableLM(vocab, grams_by_order, logprobs, backoffs)


def _sorted(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order_rows = np.argsort(_rows_view(rows), kind="stable")
    return rows[order_rows], order_rows


def write_arpa(lm: NgramLM, path: str | Path) -> Path:
    """Write `lm` as an ARPA file, line by line (a temporary file renamed at the end)."""
    path = Path(path)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n\\data\\\n")
            f.writelines(f"ngram {n}={size}\n" for n, size in enumerate(lm.sizes(), 1))
            for n in range(1, lm.order + 1):
                f.write(f"\n\\{n}-grams:\n")
                for prob, words, weight in lm.rows(n):
                    if n < lm.order and weight is not None:
                        f.write(f"{prob:.6f}\t{words}\t{weight:.6f}\n")
                    else:
                        f.write(f"{prob:.6f}\t{words}\n")
            f.write("\n\\end\\\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
