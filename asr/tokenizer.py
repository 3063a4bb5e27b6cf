"""Character tokenizer with the CTC blank at index 0."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

BLANK = "<blank>"


class CharTokenizer:
    """Maps text to token ids and back; id 0 is the CTC blank, a space is a token of its own."""

    def __init__(self, vocab: Sequence[str]):
        if not vocab or vocab[0] != BLANK:
            raise ValueError(f"the vocabulary must start with {BLANK!r}")
        self.vocab = list(vocab)
        self._ids = {token: i for i, token in enumerate(self.vocab)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharTokenizer:
        """The characters seen in `texts`, in sorted order, after the blank."""
        chars = set()
        for text in texts:
            chars.update(text)
        chars.discard("\n")
        return cls([BLANK, *sorted(chars)])

    @property
    def blank(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Characters outside the vocabulary are dropped."""
        return [self._ids[c] for c in text if c in self._ids and c != BLANK]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[i] for i in ids if i != 0)
