"""Utterance records and JSON-lines manifests (one utterance a line)."""
from __future__ import annotations

import codecs
import json
import logging
import os
import tempfile
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.audio import AudioError, audio_info
from asr.errors import AsrError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    """One utterance: `audio` is a file path; `start` and `duration` are in seconds."""

    id: str
    audio: str
    duration: float
    text: str
    speaker: str = ""
    start: float = 0.0


class ManifestError(AsrError):
    """A manifest line that cannot be parsed; the message names the file and line."""


def read_manifest(path: str | Path) -> list[Utterance]:
    """Every utterance of a manifest, in memory (see `Manifest` for large ones)."""
    return list(Manifest(path))


class Manifest(Sequence):
    """A JSON-lines manifest, read lazily: a sequence of `Utterance`s that holds only each line's
    byte offset and duration (16 bytes an utterance), and parses a line when it is asked for.

    Opening it reads the file once and checks every line (fields, types, duplicate ids) as
    `read_manifest` always has, so a bad line stops a run before it starts, naming the line.
    Items are read with `os.pread`, safe in threads and in forked loader workers.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ManifestError(f"{self.path}: no such manifest")
        self._offsets, self._lengths, self.durations = array("q"), array("l"), array("d")
        ids: set[str] = set()
        offset = 0
        with self.path.open("rb") as f:
            for n_line, raw in enumerate(f, 1):
                start, offset = offset, offset + len(raw)
                if n_line == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw, start = raw[3:], start + 3
                if not raw.strip():
                    continue
                utt = _parse_line(raw, self.path, n_line)
                if utt.id in ids:
                    raise ManifestError(f"{self.path}:{n_line}: utterance id {utt.id!r} is used twice "
                                        f"(first on line {self._first_line(utt.id)})")
                ids.add(utt.id)
                self._offsets.append(start)
                self._lengths.append(len(raw))
                self.durations.append(utt.duration)
        self._fd, self._pid = None, None

    def _first_line(self, utt_id: str) -> int:
        with self.path.open("rb") as f:
            return next(n for n, raw in enumerate(f, 1) if raw.strip() and json.loads(raw).get("id") == utt_id)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if self._pid != os.getpid():  # a new process (a forked worker) opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        raw = os.pread(self._fd, self._lengths[index], self._offsets[index])
        return _parse_line(raw, self.path, index + 1)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)


def _parse_line(raw: bytes, path: Path, n_line: int) -> Utterance:
    try:
        record = json.loads(raw)
        if not isinstance(record, dict):
            raise TypeError("not a JSON object")
        missing = [k for k in ("id", "audio", "duration", "text") if k not in record]
        if missing:
            raise ManifestError(f"{path}:{n_line}: no {', '.join(missing)} "
                                "(every line needs id, audio, duration and text; text may be \"\")")
        return Utterance(
            id=str(record["id"]),
            audio=str(record["audio"]),
            duration=float(record["duration"]),
            text=str(record["text"]),
            speaker=str(record.get("speaker", "")),
            start=float(record.get("start", 0.0)),
        )
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as error:
        raise ManifestError(f"{path}:{n_line}: bad manifest line ({error})") from None


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> Path:
    """Write atomically: a crash never leaves a half-written manifest behind."""
    lines = []
    for utt in utterances:
        record = asdict(utt)
        if record["start"] == 0.0:
            del record["start"]
        lines.append(json.dumps(record, ensure_ascii=False))
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def write_split(utterances: list[Utterance], out_dir: str | Path, name: str) -> Path:
    """Write `<out_dir>/<name>.jsonl` and log what it holds (utterances, speakers, hours)."""
    path = write_manifest(utterances, Path(out_dir) / f"{name}.jsonl")
    log.info("%s: %d utterances from %d speakers, %.2f h", path, len(utterances), len({u.speaker for u in utterances}),
             sum(u.duration for u in utterances) / 3600)
    return path


def temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file next to `path` (same file system, so `os.replace` is atomic), with the
    permissions an ordinary new file gets rather than mkstemp's owner-only ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Candidate:
    """An utterance before its audio has been checked: `duration` None means the whole file;
    `text` None means the corpus has no transcript line for it."""

    id: str
    audio: str
    text: str | None
    speaker: str = ""
    start: float = 0.0
    duration: float | None = None


MAX_OVERSHOOT = 0.5  # seconds a segment may run past its file's end and be cut (Kaldi's extract-segments)


def check_candidates(candidates: Iterable[Candidate], source: str) -> list[Utterance]:
    """Keep the candidates with readable, non-empty audio and non-empty text.

    The others are reported in one warning per reason (count and first few ids) and left out. A
    segment that runs past the end of its file by at most `MAX_OVERSHOOT` is cut there (and
    counted); one that runs further, or starts after the end, is left out. An id given twice is
    a `ManifestError`.
    """
    kept: list[Utterance] = []
    problems: dict[str, list[str]] = {}
    seen: set[str] = set()
    n_cut = 0
    for c in candidates:
        if c.id in seen:
            raise ManifestError(f"{source}: utterance id {c.id!r} is used twice")
        seen.add(c.id)
        if c.text is None:
            problems.setdefault("no transcript line", []).append(c.id)
            continue
        if not c.text.strip():
            problems.setdefault("empty text", []).append(c.id)
            continue
        try:
            file_duration, _ = audio_info(c.audio)
        except AudioError as error:
            reason = "missing audio" if error.reason == "no such file" else error.reason.split(" (")[0]
            problems.setdefault(reason, []).append(c.id)
            continue
        duration = file_duration - c.start if c.duration is None else c.duration
        if duration <= 0 or c.start >= file_duration:
            problems.setdefault("segment outside the audio", []).append(c.id)
            continue
        overshoot = c.start + duration - file_duration
        if overshoot > MAX_OVERSHOOT:
            problems.setdefault(f"segment running more than {MAX_OVERSHOOT} s past the end of its audio", []).append(c.id)
            continue
        if overshoot > 0:
            duration, n_cut = file_duration - c.start, n_cut + 1
        kept.append(Utterance(c.id, c.audio, round(duration, 4), c.text.strip(), c.speaker, c.start))
    report_left_out(problems, source)
    if n_cut:
        log.warning("%s: cut %d segment(s) that ran up to %s s past the end of their audio", source, n_cut,
                    MAX_OVERSHOOT)
    return kept


def report_left_out(problems: dict[str, list[str]], source: str) -> None:
    """One warning per reason: how many utterances it left out, and the first few ids."""
    for reason, ids in problems.items():
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        log.warning("%s: left out %d utterance(s) with %s: %s", source, len(ids), reason, shown)
