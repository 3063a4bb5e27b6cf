"""Utterance records and JSON-lines manifests (one utterance a line)."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.audio import AudioError, audio_info

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


class ManifestError(Exception):
    """A manifest line that cannot be parsed; the message names the file and line."""


def read_manifest(path: str | Path) -> list[Utterance]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    utterances = []
    with path.open(encoding="utf-8") as f:
        for n_line, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                utterances.append(
                    Utterance(
                        id=str(record["id"]),
                        audio=str(record["audio"]),
                        duration=float(record["duration"]),
                        text=str(record.get("text", "")),
                        speaker=str(record.get("speaker", "")),
                        start=float(record.get("start", 0.0)),
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise ManifestError(f"{path}:{n_line}: bad manifest line ({error!r})") from None
    return utterances


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> Path:
    """Write atomically: a crash never leaves a half-written manifest behind."""
    lines = []
    for utt in utterances:
        record = asdict(utt)
        if record["start"] == 0.0:
            del record["start"]
        lines.append(json.dumps(record, ensure_ascii=False))
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


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
    """An utterance before its audio has been checked: `duration` None means the whole file."""

    id: str
    audio: str
    text: str
    speaker: str = ""
    start: float = 0.0
    duration: float | None = None


def check_candidates(candidates: Iterable[Candidate], source: str) -> list[Utterance]:
    """Keep the candidates with readable, non-empty audio and non-empty text.

    The others are reported in one warning per reason (count and first few ids) and left out.
    """
    kept: list[Utterance] = []
    problems: dict[str, list[str]] = {}
    for c in candidates:
        if not c.text.strip():
            problems.setdefault("empty text", []).append(c.id)
            continue
        try:
            file_duration, _ = audio_info(c.audio)
        except AudioError as error:
            problems.setdefault(error.reason.split(" (")[0], []).append(c.id)
            continue
        duration = file_duration - c.start if c.duration is None else c.duration
        if duration <= 0 or c.start >= file_duration:
            problems.setdefault("segment outside the audio", []).append(c.id)
            continue
        kept.append(Utterance(c.id, c.audio, round(duration, 4), c.text.strip(), c.speaker, c.start))
    for reason, ids in problems.items():
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        log.warning("%s: left out %d utterance(s) with %s: %s", source, len(ids), reason, shown)
    return kept
