"""Tokenizers with the CTC blank at index 0: characters, or sentencepiece subwords (BPE/unigram).

Both map text to ids and back, spell words for a decoding lexicon and say where words begin, so
that decoding, lexicons and word times work the same way with either. A character tokenizer has a
space token between words; a subword tokenizer marks the first piece of each word with `▁`.
Each one saves itself into the checkpoint (`to_dict`), the sentencepiece model's bytes included.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from asr.errors import InputError

BLANK = "<blank>"
WORD_START = "\u2581"  # sentencepiece's "▁"
KINDS = ("char", "bpe", "unigram")


class _Vocabulary:
    """What every tokenizer has: `vocab`, the tokens by id, the CTC blank first."""

    vocab: list[str]

    @property
    def blank(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.vocab)


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


Tokenizer = CharTokenizer | SentencePieceTokenizer


def build_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 0, seed: int = 1) -> Tokenizer:
    """`char`, or `bpe`/`unigram` subwords learnt from `texts` (normalised as training targets are)."""
    if kind == "char":
        return CharTokenizer.build(texts)
    if kind in ("bpe", "unigram"):
        if vocab_size < 2:
            raise InputError(f"tokenizer.vocab_size={vocab_size}: a {kind} tokenizer needs 2 or more pieces")
        return SentencePieceTokenizer.train(texts, vocab_size, kind, seed)
    raise InputError(f"tokenizer.kind={kind!r}: expected one of {', '.join(KINDS)}")


def tokenizer_from_checkpoint(checkpoint: dict) -> Tokenizer:
    """The tokenizer a checkpoint describes; checkpoints from before subwords hold characters."""
    saved = checkpoint.get("tokenizer") or {"kind": "char"}
    if saved["kind"] == "char":
        return CharTokenizer(checkpoint["vocab"])
    tokenizer = SentencePieceTokenizer(saved["model"], saved["kind"])
    if tokenizer.vocab != list(checkpoint["vocab"]):
        raise ValueError("the checkpoint's sentencepiece model does not match its vocabulary")
    return tokenizer
