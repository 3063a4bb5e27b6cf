"""Output formats for transcripts: txt, json, srt, vtt, tsv (one file per input, named by its stem)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from asr.errors import InputError
from asr.manifest import atomic_write_text

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _clock(seconds: float, decimal: str) -> str:
    ms = int(round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def render(transcript, fmt: str) -> str:
    """The text of `transcript` (an `asr.transcribe.Transcript`) in format `fmt`."""
    segments = [s for s in transcript.segments if s.text]
    if fmt == "txt":
        return transcript.text + "\n"
    if fmt == "json":
        body = {"text": transcript.text, "segments": [asdict(s) for s in segments]}
        return json.dumps(body, indent=1, ensure_ascii=False) + "\n"
    if fmt == "srt":
        blocks = [f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n" for i, s in enumerate(segments, 1)]
        return "\n".join(blocks)
    if fmt == "vtt":
        blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in segments]
        return "WEBVTT\n\n" + "\n".join(blocks)
    if fmt == "tsv":
        rows = [f"{int(round(s.start * 1000))}\t{int(round(s.end * 1000))}\t{s.text}" for s in segments]
        return "start\tend\ttext\n" + "".join(row + "\n" for row in rows)
    raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)} or all")


def check_output_names(paths: list[Path], formats: list[str], output_dir: str | Path,
                       overwrite: bool = False) -> None:
    """Outputs are named by each input's stem: two inputs with one stem (`a/x.wav`, `b/x.flac`)
    would overwrite each other's files, and an output that is already there may be a file the user
    wrote (a reference transcript `talk.txt` beside `talk.wav`). Both are refused, before any
    decoding; `overwrite` lets existing files be replaced."""
    first: dict[str, Path] = {}
    for path in paths:
        stem = Path(path).stem
        if stem in first and Path(first[stem]) != Path(path):
            raise InputError(f"{first[stem]} and {path} would both write {stem}.*: transcribe them in separate "
                             "runs with different --output-dir, or rename one")
        first.setdefault(stem, path)
        if not overwrite:
            for fmt in formats:
                target = Path(output_dir) / f"{stem}.{fmt}"
                if target.exists():
                    raise InputError(f"{target} exists (the output for {path}): pass --overwrite to replace it, "
                                     "or choose another --output-dir")


def write_outputs(transcript, formats: list[str], output_dir: str | Path) -> list[Path]:
    """Write `<output_dir>/<input stem>.<fmt>` for each format; returns the paths."""
    stem = Path(transcript.path).stem
    return [atomic_write_text(Path(output_dir) / f"{stem}.{fmt}", render(transcript, fmt)) for fmt in formats]
