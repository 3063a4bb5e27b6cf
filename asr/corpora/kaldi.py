"""Kaldi-style data directories (`wav.scp`, `text`, optional `utt2spk`, `segments`) -> manifest.

Files are read as Kaldi reads them: the key ends at the first run of whitespace (spaces or tabs),
CRLF line endings and a UTF-8 byte-order mark are accepted, and a key given twice is an error.
"""
from __future__ import annotations

from pathlib import Path

from asr.errors import AsrError
from asr.manifest import Candidate, Utterance, check_candidates, report_left_out


class KaldiDataError(AsrError):
    """A Kaldi data directory we refuse to read; the message names the file and line."""


def prepare_kaldi(data_dir: str | Path, audio_root: str | Path = ".") -> list[Utterance]:
    """Read a Kaldi data directory into utterances.

    Relative paths in `wav.scp` resolve against `audio_root` (Kaldi's convention is the
    current directory). Entries that are shell pipes (`... |`) are refused: commands found in
    data files are never run. Utterances with no `text` line, empty text, missing or unreadable
    audio, or a segment outside their recording are reported by reason and left out; an import
    that keeps no utterance at all is an error.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "wav.scp").is_file() or not (data_dir / "text").is_file():
        raise KaldiDataError(f"{data_dir}: a Kaldi data directory needs wav.scp and text")
    recordings = read_table(data_dir / "wav.scp")
    for rec_id, (location, n_line) in recordings.items():
        if location.endswith("|") or location.startswith("|"):
            raise KaldiDataError(
                f"{data_dir / 'wav.scp'}:{n_line}: '{rec_id}' is a shell pipe ({location!r}); "
                "commands in data files are never run: write the audio to files and list their paths"
            )
    root = Path(audio_root)
    paths = {rec: str(_resolve(loc, root)) for rec, (loc, _) in recordings.items()}
    texts = {utt: text for utt, (text, _) in read_table(data_dir / "text").items()}
    speakers = {}
    if (data_dir / "utt2spk").is_file():
        speakers = {utt: spk for utt, (spk, _) in read_table(data_dir / "utt2spk").items()}

    candidates, problems = [], {}
    if (data_dir / "segments").is_file():
        for utt, (rest, n_line) in read_table(data_dir / "segments").items():
            fields = rest.split()
            try:
                rec, start, end = fields[0], float(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                raise KaldiDataError(f"{data_dir / 'segments'}:{n_line}: expected 'utt rec start end'") from None
            if rec not in paths:
                problems.setdefault("recording not in wav.scp", []).append(utt)
                continue
            duration = end - start if end > 0 else None  # Kaldi: an end of -1 means the end of the file
            candidates.append(Candidate(utt, paths[rec], texts.get(utt), speakers.get(utt, ""), start, duration))
        listed = {c.id for c in candidates} | {u for ids in problems.values() for u in ids}
        where = "segments"
    else:
        for utt, audio in paths.items():
            candidates.append(Candidate(utt, audio, texts.get(utt), speakers.get(utt, "")))
        listed = set(paths)
        where = "wav.scp"
    orphans = [utt for utt in texts if utt not in listed]
    if orphans:
        problems.setdefault(f"a text line but no entry in {where}", []).extend(orphans)
    report_left_out(problems, str(data_dir))
    utterances = check_candidates(candidates, str(data_dir))
    if not utterances:
        raise KaldiDataError(f"{data_dir}: no utterance could be imported (see the warnings above for why)")
    return utterances


def _resolve(location: str, root: Path) -> Path:
    path = Path(location)
    return (path if path.is_absolute() else root / path).resolve()


def read_table(path: Path) -> dict[str, tuple[str, int]]:
    """`key<whitespace>rest-of-line` per line -> {key: (rest, line number)}.

    As Kaldi: any run of spaces or tabs ends the key; CRLF endings and a byte-order mark are
    accepted; a key given twice is a `KaldiDataError` naming both lines.
    """
    table = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise KaldiDataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    for n_line, line in enumerate(lines, 1):
        fields = line.strip().split(maxsplit=1)
        if not fields:
            continue
        key, rest = fields[0], fields[1] if len(fields) > 1 else ""
        if key in table:
            raise KaldiDataError(f"{path}:{n_line}: duplicate key {key!r} (first on line {table[key][1]})")
        table[key] = (rest.strip(), n_line)
    return table
