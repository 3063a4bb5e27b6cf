"""CTC decoding strategies behind one interface: greedy, beam search, beam search with an n-gram LM.

Beam search runs through torchaudio's `ctc_decoder` (flashlight-text, KenLM). Without a lexicon
it is lexicon-free: the LM, if any, is over the model's characters with `|` between words (build
it with `asr lm build --unit char`). With a lexicon (`WORD W O R D |` a line, see `write_lexicon`)
only its words come out and the LM is over words. A subword model spells the lexicon's words
with its own pieces (`WORD ▁WO RD`), and a phone model with their pronunciations (`WORD W ER D |`),
whatever spelling the file gives; a subword model takes an LM only with a lexicon.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asr.errors import InputError, MissingFileError
from asr.lm import ArpaError, check_arpa
from asr.manifest import atomic_write_text
from asr.tokenizer import BLANK, SUBWORD_KINDS, Tokenizer

log = logging.getLogger(__name__)

WORD_SEPARATOR = "|"
DECODERS = ("greedy", "beam", "lm")


class Decoder:
    """Turns log-probabilities `(batch, frames, n_tokens)` and `n_frames` into texts."""

    def decode(self, log_probs: torch.Tensor, n_frames: torch.Tensor) -> list[str]:
        raise NotImplementedError


class GreedyDecoder(Decoder):
    """Best token per frame, repeats merged, blanks removed."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def decode_ids(self, log_probs: torch.Tensor, n_frames: torch.Tensor) -> list[list[int]]:
        best = log_probs.argmax(-1)  # (batch, frames)
        keep = torch.ones_like(best, dtype=torch.bool)
        keep[:, 1:] = best[:, 1:] != best[:, :-1]
        keep &= best != self.tokenizer.blank
        keep &= torch.arange(best.shape[1], device=best.device)[None, :] < n_frames[:, None].to(best.device)
        best, keep = best.cpu(), keep.cpu()
        return [row[mask].tolist() for row, mask in zip(best, keep)]

    def decode(self, log_probs: torch.Tensor, n_frames: torch.Tensor) -> list[str]:
        return [" ".join(self.tokenizer.decode(ids).split()) for ids in self.decode_ids(log_probs, n_frames)]


@dataclass(frozen=True)
class BeamOptions:
    """Beam search settings; `lm_weight`, `word_score` and `sil_score` are what `tune_decoder`
    searches. `word_score` is added per word; `sil_score` (torchaudio's silence score) for every frame
    in which the search emits the word separator, a word's closing separator and repeats included."""

    beam_size: int = 50
    beam_threshold: float = 25.0
    lm_weight: float = 0.5
    word_score: float = 0.0
    sil_score: float = 0.0
    lm: str | None = None  # ARPA or KenLM binary file
    lexicon: str | None = None  # lexicon file; None: lexicon-free


class BeamDecoder(Decoder):
    """Beam search with an optional n-gram LM and optional lexicon (torchaudio `ctc_decoder`).

    Everything KenLM and flashlight would reject is checked first and raised as one-line errors;
    the LM is loaded once per process (decoders that differ only in their weights share it) and
    KenLM's loading banner is kept off the terminal.
    """

    def __init__(self, tokenizer: Tokenizer, options: BeamOptions):
        from torchaudio.models.decoder import ctc_decoder

        check_beam_options(options)
        self.tokenizer = tokenizer
        self.options = options
        self._subwords = tokenizer.kind in SUBWORD_KINDS
        if self._subwords:
            # flashlight needs a word-separator token: a subword model gets one it never emits
            tokens = [*tokenizer.vocab, WORD_SEPARATOR]
            if options.lm and not options.lexicon:
                raise InputError("a subword model takes an LM only with a lexicon (--lexicon): "
                                 "the LM is over words, spelt with the model's pieces")
        else:
            tokens = [WORD_SEPARATOR if t == " " else t for t in tokenizer.vocab]
        lexicon = str(options.lexicon) if options.lexicon else None
        if lexicon and tokenizer.kind == "char":  # spelt with characters already: used as it is
            check_lexicon(lexicon, tuple(tokens))
        elif lexicon:  # respelt with the model's pieces or pronunciations
            lexicon = spell_lexicon(lexicon, tokenizer)
        lm = load_kenlm(str(options.lm), lexicon, tuple(tokens)) if options.lm else None
        self._decoder = ctc_decoder(
            lexicon=lexicon,
            tokens=tokens,
            lm=lm,
            beam_size=options.beam_size,
            beam_threshold=options.beam_threshold,
            lm_weight=options.lm_weight if options.lm else 0.0,
            word_score=options.word_score,
            sil_score=options.sil_score,
            blank_token=BLANK,
            sil_token=WORD_SEPARATOR,
        )

    def _close_last_word(self, emissions: torch.Tensor, n_frames: torch.Tensor):
        """Append one certain word-separator frame to each utterance.

        Lexicon entries end with `|`, but our models emit `|` only between words, so without it
        the lexicon search could never finish an utterance's last word and would drop it.
        """
        separator = self.tokenizer.vocab.index(" ")
        batch, _, n_tokens = emissions.shape
        extended = torch.cat([emissions, torch.full((batch, 1, n_tokens), -1e4)], dim=1)
        rows = torch.arange(batch)
        extended[rows, n_frames] = -1e4
        extended[rows, n_frames, separator] = 0.0
        return extended, n_frames + 1

    def decode(self, log_probs: torch.Tensor, n_frames: torch.Tensor) -> list[str]:
        emissions = log_probs.detach().float().cpu()
        n_frames = n_frames.detach().cpu().long()
        if self._subwords:  # the separator column: never emitted
            emissions = torch.cat([emissions, torch.full((*emissions.shape[:2], 1), -1e4)], dim=2)
        elif self.options.lexicon:
            emissions, n_frames = self._close_last_word(emissions, n_frames)
        hypotheses = self._decoder(emissions.contiguous(), n_frames.to(torch.int32))
        texts = []
        for nbest in hypotheses:
            if not nbest:
                texts.append("")
            elif self.options.lexicon:
                texts.append(" ".join(nbest[0].words))
            else:
                ids = [i for i in nbest[0].tokens.tolist() if i < len(self.tokenizer)]
                texts.append(" ".join(self.tokenizer.decode(ids).replace("|", " ").split()))
        return texts


def check_beam_options(options: BeamOptions) -> None:
    if options.beam_size < 1:
        raise InputError(f"beam size {options.beam_size}: must be 1 or more")
    if options.beam_threshold <= 0:
        raise InputError(f"beam threshold {options.beam_threshold}: must be above 0")


@functools.lru_cache(maxsize=8)
def check_lexicon(path: str, tokens: tuple[str, ...]) -> None:
    """Every word of the lexicon must be spelt with the model's tokens (`|` ends a word); the
    first one that is not is a `InputError` naming the file, the line and the word. Checked once
    per process and file (tune-decoder builds a decoder per setting)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such lexicon")
    known = set(tokens)
    for n_line, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError(f"{path}:{n_line}: {fields[0]!r} has no spelling (expected 'WORD W O R D |')")
        unknown = [t for t in fields[1:] if t not in known]
        if unknown:
            raise InputError(f"{path}:{n_line}: the model cannot spell {fields[0]!r}: "
                             f"{', '.join(repr(t) for t in unknown)} not among its tokens")


def spell_lexicon(path: str, tokenizer: Tokenizer) -> str:
    """The words of the lexicon at `path` (its first column) spelt with a subword tokenizer's
    pieces or a phone tokenizer's pronunciations, in a temporary file that lives as long as the
    process. A word a subword tokenizer cannot spell is an `InputError` naming the file, the line
    and the word; words without a pronunciation are left out, with a warning that counts them.

    Spelt once per process for a file and tokenizer (until the file changes): decoders that differ
    only in their weights, as `tune-decoder` builds them, get the same file, so `load_kenlm` loads
    the LM once for them all."""
    source = Path(path)
    if not source.is_file():
        raise MissingFileError(f"{source}: no such lexicon")
    stat = source.stat()
    return _spelled_lexicon(source, stat.st_mtime_ns, stat.st_size, tokenizer)


@functools.lru_cache(maxsize=8)
def _spelled_lexicon(source: Path, mtime_ns: int, size: int, tokenizer: Tokenizer) -> str:
    import atexit
    import tempfile

    words, unspelt = [], []
    for n_line, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.split():
            continue
        words.append(line.split()[0])
        if tokenizer.spell(words[-1]) is not None:
            continue
        if tokenizer.kind in SUBWORD_KINDS:
            raise InputError(f"{source}:{n_line}: the model cannot spell {words[-1]!r} with its subword units")
        unspelt.append(words.pop())
    if unspelt:
        log.warning("%s: %d of %d words have no pronunciation in the model's dictionary and cannot come out: %s",
                    source, len(unspelt), len(words) + len(unspelt), ", ".join(unspelt[:10]))
    fd, spelled = tempfile.mkstemp(prefix="lexicon-", suffix=".txt")
    os.close(fd)
    atexit.register(os.unlink, spelled)
    return str(write_lexicon(words, spelled, tokenizer))


@functools.lru_cache(maxsize=2)
def load_kenlm(lm: str, lexicon: str | None, tokens: tuple[str, ...]):
    """KenLM over the words (lexicon) or the tokens (lexicon-free) that torchaudio's `ctc_decoder`
    indexes them by; checked (`check_arpa`) and loaded once per process, with KenLM's banner kept
    off the terminal."""
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import create_word_dict, load_words

    check_arpa(lm)
    if lexicon:
        word_dict = create_word_dict(load_words(lexicon))
    else:  # as torchaudio builds it for a lexicon-free decoder with an LM
        word_dict = create_word_dict({t: [[t]] for t in tokens} | {"<unk>": [["<unk>"]]})
    try:
        with quiet_stderr():
            return KenLM(lm, word_dict)
    except Exception as error:  # KenLM raises plain RuntimeErrors (e.g. for a damaged binary file)
        raise ArpaError(f"{lm}: KenLM could not load it ({str(error).strip().splitlines()[-1]})") from None


@contextlib.contextmanager
def quiet_stderr():
    """Silence the process's stderr (file descriptor 2) for C++ code that prints on it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def decode_config(name: str) -> BeamOptions:
    """The defaults of `conf/decode/<name>.yaml`."""
    from omegaconf import OmegaConf

    from asr.config import config_dir

    path = config_dir() / "decode" / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")
    values = OmegaConf.to_container(OmegaConf.load(path))
    values.pop("name")
    return BeamOptions(**values)


def make_decoder(name: str, tokenizer: Tokenizer, options: BeamOptions | None = None) -> Decoder:
    """`greedy`, `beam` (no LM) or `lm` (needs `options.lm`)."""
    if name == "greedy":
        return GreedyDecoder(tokenizer)
    options = options or BeamOptions()
    if name == "beam":
        return BeamDecoder(tokenizer, BeamOptions(**{**asdict(options), "lm": None}))
    if name == "lm":
        if not options.lm:
            raise InputError("the lm decoder needs an LM file (--lm, or a decoder.json beside the model)")
        return BeamDecoder(tokenizer, options)
    raise InputError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")


def write_lexicon(words: Iterable[str], path: str | Path, tokenizer: Tokenizer | None = None) -> Path:
    """One line a spelling: `WORD W O R D |` (characters), or the tokenizer's spellings (`WORD ▁WO RD`
    for subwords, a line for each pronunciation for phones); with a tokenizer, words it cannot spell
    are left out."""
    lines = []
    for word in sorted(w for w in set(words) if w):
        spellings = tokenizer.spellings(word) if tokenizer else [[*word, WORD_SEPARATOR]]
        lines.extend(f"{word} {' '.join(spelling)}\n" for spelling in spellings)
    return atomic_write_text(path, "".join(lines))


def write_beam_options(options: BeamOptions, path: str | Path) -> Path:
    """Save as JSON; LM and lexicon paths inside the file's folder are stored relative to it."""
    path = Path(path)
    values = asdict(options)
    for key in ("lm", "lexicon"):
        if values[key]:
            file = Path(values[key]).resolve()
            folder = path.parent.resolve()
            values[key] = str(file.relative_to(folder)) if file.is_relative_to(folder) else str(file)
    return atomic_write_text(path, json.dumps(values, indent=1) + "\n")


def read_beam_options(path: str | Path) -> BeamOptions:
    """Options saved by `tune_decoder`; relative file paths resolve against the file's folder."""
    path = Path(path)
    values = json.loads(path.read_text())
    for key in ("lm", "lexicon"):
        if values.get(key) and not Path(values[key]).is_absolute():
            values[key] = str(path.parent / values[key])
    return BeamOptions(**values)
