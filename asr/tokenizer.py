"""Tokenizers with the CTC blank at index 0: characters, sentencepiece subwords (BPE/unigram), or
phones from a pronunciation dictionary.

All map text to ids and back, spell words for a decoding lexicon and say where words begin, so
that decoding, lexicons and word times work the same way with any of them. Character and phone
tokenizers have a space token between words; a subword tokenizer marks the first piece of each word
with `▁`. Each one saves itself into the checkpoint (`to_dict`): the sentencepiece model's bytes, or
the pronunciation dictionary.
"""
from __future__ import annotations

import gzip
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from asr.errors import InputError, MissingFileError

log = logging.getLogger(__name__)

BLANK = "<blank>"
WORD_START = "\u2581"  # sentencepiece's "▁"
KINDS = ("char", "bpe", "unigram", "phone")
SUBWORD_KINDS = ("bpe", "unigram")
CMUDICT = Path(__file__).parent / "assets" / "cmudict" / "cmudict.dict.gz"  # BSD-style licence, beside it


class _Vocabulary:
    """What every tokenizer has: `vocab`, the tokens by id, the CTC blank first."""

    vocab: list[str]

    @property
    def blank(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.vocab)

    def spellings(self, word: str) -> list[list[str]]:
        """Every spelling of `word` for a decoding lexicon (one, or none if it cannot be spelt)."""
        spelling = self.spell(word)
        return [spelling] if spelling else []


class CharTokenizer(_Vocabulary):
    """Maps text to token ids and back; id 0 is the CTC blank, a space is a token of its own."""

    kind = "char"

    def __init__(self, vocab: Sequence[str]):
        if not vocab or vocab[0] != BLANK:
            raise ValueError(f"the vocabulary must start with {BLANK!r}")
        self.vocab = list(vocab)
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        self._space = self._ids.get(" ")

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharTokenizer:
        """The characters seen in `texts`, in sorted order, after the blank."""
        chars = set()
        for text in texts:
            chars.update(text)
        chars.discard("\n")
        return cls([BLANK, *sorted(chars)])

    def encode(self, text: str) -> list[int]:
        """Characters outside the vocabulary are dropped."""
        return [self._ids[c] for c in text if c in self._ids and c != BLANK]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[i] for i in ids if i != 0)

    def is_separator(self, token: int) -> bool:
        """A token that stands between words and belongs to none (the space)."""
        return token == self._space

    def starts_word(self, token: int) -> bool:
        """A token that begins a new word (characters never do: the space separates)."""
        return False

    def spell(self, word: str) -> list[str] | None:
        """The tokens of `word` for a decoding lexicon, `|` (word end) last; None if it cannot be spelt."""
        return [*word, "|"] if word and set(word) <= self._ids.keys() else None

    def to_dict(self) -> dict:
        return {"kind": self.kind}


class SentencePieceTokenizer(_Vocabulary):
    """Sentencepiece subwords; our id = sentencepiece id + 1, so that the blank is 0.

    The sentencepiece model has no BOS/EOS/pad pieces; its unknown piece is kept (id 1 here), and
    text it cannot cover maps to it.
    """

    def __init__(self, model: bytes, kind: str = "bpe"):
        import sentencepiece

        self.model = bytes(model)
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=self.model)
        self.kind = kind  # how the pieces were learnt: bpe or unigram
        self.vocab = [BLANK, *(self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size()))]
        self._starts = [False, *(p.startswith(WORD_START) for p in self.vocab[1:])]
        self._unknown = self._sp.unk_id() + 1

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, model_type: str = "bpe", seed: int = 1) -> SentencePieceTokenizer:
        """Learn `vocab_size` pieces (the blank comes on top) from `texts`, in memory.

        Sentencepiece cannot make more pieces than the text has room for; `vocab_size` is then an
        upper bound (`hard_vocab_limit=False`) rather than an error."""
        import sentencepiece

        if model_type not in ("bpe", "unigram"):
            raise InputError(f"tokenizer.model_type={model_type!r}: expected bpe or unigram")
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise InputError("no training text to learn subword units from")
        model = io.BytesIO()
        sentencepiece.set_random_generator_seed(seed)
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, hard_vocab_limit=False,
            num_threads=1, minloglevel=2, max_sentence_length=1 << 16,
        )
        return cls(model.getvalue(), model_type)

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self._sp.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text with single spaces between words; blanks and unknown pieces are left out."""
        return self._sp.decode([i - 1 for i in ids if i != 0 and i != self._unknown])

    def is_separator(self, token: int) -> bool:
        return False

    def starts_word(self, token: int) -> bool:
        return self._starts[token]

    def spell(self, word: str) -> list[str] | None:
        ids = self.encode(word)
        if not word or self._unknown in ids:
            return None
        return [self.vocab[i] for i in ids]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model": self.model}


def read_pronunciations(lines: Iterable[str], source: str, normalise: bool = True) -> dict[str, list[tuple[str, ...]]]:
    """A pronunciation dictionary in CMUdict's format, `WORD PH ON ES` a line: `word(2)` marks a
    second pronunciation, `#` starts a comment, stress digits are dropped (`AH0` is `AH`), and words
    are normalised as training text is (a word that normalises to several words is left out). A
    checkpoint's dictionary, written by `PhoneTokenizer.to_dict` with normalised words and no
    `(2)` marks, is read as it is with `normalise=False`.
    Returns each word's pronunciations in the order given, without repeats."""
    from asr.metrics import normalize_text

    words: dict[str, list[tuple[str, ...]]] = {}
    for n_line, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError(f"{source}:{n_line}: {fields[0]!r} has no pronunciation")
        word = normalize_text(re.sub(r"\(\d+\)$", "", fields[0])) if normalise else fields[0]
        if not word or " " in word:
            continue
        phones = tuple(p.rstrip("012").upper() for p in fields[1:])
        variants = words.setdefault(word, [])
        if phones not in variants:
            variants.append(phones)
    return words


def load_pronunciations(path: str | Path | None = None) -> dict[str, list[tuple[str, ...]]]:
    """The pronunciation dictionary at `path` (plain or .gz), or the shipped CMUdict."""
    path = Path(path) if path else CMUDICT
    if not path.is_file():
        raise MissingFileError(f"{path}: no such pronunciation dictionary (tokenizer.lexicon)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return read_pronunciations(lines, str(path))


class PhoneTokenizer(_Vocabulary):
    """Phones of a pronunciation dictionary (CMUdict's 39, stress dropped), a space token between
    words. Text is spelt with each word's first pronunciation, and words without one are left out;
    a phone sequence reads back as the first word that has it (the training words come first, the
    most frequent first), or as its phones joined by `_` (`HH_AH_L_OW`) where no word has it. The
    dictionary goes into the checkpoint, so a model decodes without the file it was built from."""

    kind = "phone"

    def __init__(self, pronunciations: dict[str, list[tuple[str, ...]]]):
        phones = sorted({p for variants in pronunciations.values() for v in variants for p in v})
        self.vocab = [BLANK, " ", *phones]
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        self._space = 1
        self.pronunciations = pronunciations
        self._words: dict[tuple[str, ...], str] = {}
        for word, variants in pronunciations.items():
            for phones_of_word in variants:
                self._words.setdefault(phones_of_word, word)

    @classmethod
    def build(cls, texts: Iterable[str], lexicon: str | Path | None = None) -> PhoneTokenizer:
        """The dictionary at `lexicon` (default: CMUdict), the words of `texts` first, the most
        frequent first; training words it lacks are logged with their count."""
        pronunciations = load_pronunciations(lexicon)
        counts = Counter(word for text in texts for word in text.split())
        ranked = [w for w, _ in counts.most_common()]
        missing = [w for w in ranked if w not in pronunciations]
        if counts and len(missing) == len(counts):
            raise InputError(f"{lexicon or CMUDICT}: no training word has a pronunciation there")
        if missing:
            log.warning("%d of %d training word types (%d of %d words) have no pronunciation in %s and are left "
                        "out of the targets: %s", len(missing), len(counts), sum(counts[w] for w in missing),
                        sum(counts.values()), lexicon or CMUDICT, ", ".join(missing[:10]))
        ordered = {w: pronunciations[w] for w in ranked if w in pronunciations}
        ordered.update(pronunciations)
        return cls(ordered)

    def _pronunciation(self, word: str) -> tuple[str, ...] | None:
        variants = self.pronunciations.get(word)
        if variants:
            return variants[0]
        phones = tuple(word.split("_"))  # a phone word of decode()'s
        return phones if all(p in self._ids and p not in (BLANK, " ") for p in phones) else None

    def encode(self, text: str) -> list[int]:
        """Words without a pronunciation are left out."""
        ids: list[int] = []
        for word in text.split():
            phones = self._pronunciation(word)
            if phones:
                ids.extend([self._space] if ids else [])
                ids.extend(self._ids[p] for p in phones)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        words, current = [], []
        for i in [*ids, self._space]:
            if i == self._space and current:
                words.append(self._words.get(tuple(current)) or "_".join(current))
                current = []
            elif i not in (0, self._space):
                current.append(self.vocab[i])
        return " ".join(words)

    def is_separator(self, token: int) -> bool:
        return token == self._space

    def starts_word(self, token: int) -> bool:
        return False

    def spell(self, word: str) -> list[str] | None:
        spellings = self.spellings(word)
        return spellings[0] if spellings else None

    def spellings(self, word: str) -> list[list[str]]:
        """Each pronunciation of `word`, `|` (word end) last."""
        return [[*v, "|"] for v in self.pronunciations.get(word, [])]

    def to_dict(self) -> dict:
        text = "".join(f"{w} {' '.join(v)}\n" for w, variants in self.pronunciations.items() for v in variants)
        return {"kind": self.kind, "model": gzip.compress(text.encode("utf-8"), mtime=0)}


Tokenizer = CharTokenizer | SentencePieceTokenizer | PhoneTokenizer


def build_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 0, seed: int = 1,
                    lexicon: str | Path | None = None) -> Tokenizer:
    """`char`, `bpe`/`unigram` subwords learnt from `texts` (normalised as training targets are), or
    `phone`s of the pronunciation dictionary `lexicon` (default: the shipped CMUdict)."""
    if kind == "char":
        return CharTokenizer.build(texts)
    if kind in SUBWORD_KINDS:
        if vocab_size < 2:
            raise InputError(f"tokenizer.vocab_size={vocab_size}: a {kind} tokenizer needs 2 or more pieces")
        return SentencePieceTokenizer.train(texts, vocab_size, kind, seed)
    if kind == "phone":
        return PhoneTokenizer.build(texts, lexicon)
    raise InputError(f"tokenizer.kind={kind!r}: expected one of {', '.join(KINDS)}")


def tokenizer_from_checkpoint(checkpoint: dict) -> Tokenizer:
    """The tokenizer a checkpoint describes; checkpoints from before subwords hold characters."""
    saved = checkpoint.get("tokenizer") or {"kind": "char"}
    if saved["kind"] == "char":
        return CharTokenizer(checkpoint["vocab"])
    if saved["kind"] == "phone":
        text = gzip.decompress(bytes(saved["model"])).decode("utf-8")
        tokenizer = PhoneTokenizer(read_pronunciations(text.splitlines(), "the checkpoint's dictionary", False))
    else:
        tokenizer = SentencePieceTokenizer(saved["model"], saved["kind"])
    if tokenizer.vocab != list(checkpoint["vocab"]):
        raise ValueError(f"the checkpoint's {saved['kind']} tokenizer does not match its vocabulary")
    return tokenizer
