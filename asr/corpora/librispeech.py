"""LibriSpeech (OpenSLR 12): read English audiobooks, 16 kHz FLAC -> one manifest per part.

Layout: `LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`, a line
`<utterance id> <TEXT>` per utterance, beside `<utterance id>.flac`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asr.corpora.download import is_url, local_source
from asr.errors import MissingFileError
from asr.manifest import Candidate, Utterance, check_candidates, write_split

URL = "https://www.openslr.org/resources/12/{part}.tar.gz"
TRAIN_PARTS = ("train-clean-100", "train-clean-360", "train-other-500")
EVAL_PARTS = ("dev-clean", "dev-other", "test-clean", "test-other")
PARTS = TRAIN_PARTS + EVAL_PARTS


def prepare_librispeech(
    src: str | Path | None, out_dir: str | Path, parts: Sequence[str] = ("train-clean-100", *EVAL_PARTS)
) -> dict[str, list[Utterance]]:
    """Write `<out_dir>/<part>.jsonl` for each part and return the utterances by part.

    `src`: a folder holding `LibriSpeech/<part>/` (or the `LibriSpeech` folder itself), a folder of
    the parts' archives, or None to download each part's archive from OpenSLR into `out_dir`.
    """
    out_dir = Path(out_dir)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise MissingFileError(f"unknown LibriSpeech part(s) {', '.join(unknown)}; the parts: {', '.join(PARTS)}")
    prepared = {}
    for part in parts:
        folder = _part_folder(src, part, out_dir)
        prepared[part] = read_librispeech_part(folder, part)
        write_split(prepared[part], out_dir, part)
    return prepared


def _part_folder(src: str | Path | None, part: str, out_dir: Path) -> Path:
    if src is None or is_url(str(src)):
        root = local_source(str(src or URL).format(part=part), out_dir, f"LibriSpeech {part}")
    else:
        root = Path(src)
        archive = root / f"{part}.tar.gz"
        if archive.is_file():
            root = local_source(archive, out_dir, f"LibriSpeech {part}")
    for candidate in (root / "LibriSpeech" / part, root / part):
        if candidate.is_dir():
            return candidate
    raise MissingFileError(f"{root}: no LibriSpeech/{part} folder (nor {part}.tar.gz)")


def read_librispeech_part(folder: Path, part: str) -> list[Utterance]:
    candidates = []
    for transcript in sorted(folder.glob("*/*/*.trans.txt")):
        speaker = transcript.parent.parent.name
        for line in transcript.read_text(encoding="utf-8").splitlines():
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            utt_id = fields[0]
            text = fields[1] if len(fields) > 1 else ""
            candidates.append(Candidate(utt_id, str((transcript.parent / f"{utt_id}.flac").resolve()), text, speaker))
    if not candidates:
        raise MissingFileError(f"{folder}: no <speaker>/<chapter>/*.trans.txt transcripts")
    return check_candidates(candidates, f"LibriSpeech {part}")
