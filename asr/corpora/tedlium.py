"""TED-LIUM release 3 (OpenSLR 51): TED talks, NIST SPHERE audio with STM segment transcripts.

Layout: `TEDLIUM_release-3/legacy/{train,dev,test}/{sph,stm}/<talk>.{sph,stm}`; an STM line is
`<talk> <channel> <speaker> <start> <end> <label> <transcript>`, times in seconds. Segments marked
`ignore_time_segment_in_scoring` are left out; `<unk>` tokens are dropped and the tokenised
contractions (`it 's`) joined again (`it's`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from asr.corpora.download import find_corpus_root, local_source
from asr.errors import InputError, MissingFileError
from asr.manifest import (
    Candidate,
    Utterance,
    check_candidates,
    report_left_out,
    write_split,
)

URL = "https://www.openslr.org/resources/51/TEDLIUM_release-3.tgz"
SPLITS = ("train", "dev", "test")
_CONTRACTION = re.compile(r" '(?=\w)")


def prepare_tedlium(src: str | Path | None, out_dir: str | Path,
                    splits: Sequence[str] = SPLITS) -> dict[str, list[Utterance]]:
    """Write `<out_dir>/<split>.jsonl` for each split (the `legacy` distribution's) and return them.

    `src`: the unpacked `TEDLIUM_release-3` folder (or a folder above it), the archive, or None to
    download it from OpenSLR (54 GB) into `out_dir`.
    """
    out_dir = Path(out_dir)
    root = _legacy_folder(local_source(src or URL, out_dir, "TED-LIUM 3"))
    prepared = {}
    for split in splits:
        if split not in SPLITS:
            raise InputError(f"unknown TED-LIUM split {split!r}; the splits: {', '.join(SPLITS)}")
        prepared[split] = read_tedlium_split(root / split, split)
        write_split(prepared[split], out_dir, split)
    return prepared


def _legacy_folder(folder: Path) -> Path:
    return find_corpus_root(folder, lambda c: (c / "legacy").is_dir(), "TEDLIUM_release-3/legacy folder",
                            prefer=("TEDLIUM_release-3",)) / "legacy"


def clean_tedlium_text(text: str) -> str:
    """`it 's <unk> fine` -> `it's fine`."""
    words = [w for w in text.split() if w != "<unk>"]
    return _CONTRACTION.sub("'", " ".join(words))


def read_tedlium_split(folder: Path, split: str) -> list[Utterance]:
    stms = sorted((folder / "stm").glob("*.stm"))
    if not stms:
        raise MissingFileError(f"{folder / 'stm'}: no .stm files")
    candidates, ignored = [], []
    for stm in stms:
        audio = str((folder / "sph" / f"{stm.stem}.sph").resolve())
        for n_line, line in enumerate(stm.read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split(maxsplit=6)
            if not fields or line.startswith(";;"):
                continue
            if len(fields) < 6:
                raise InputError(f"{stm}:{n_line}: expected 'talk channel speaker start end label text'")
            talk, _, speaker, start, end = fields[:5]
            text = fields[6] if len(fields) > 6 else ""
            utt_id = f"{talk}-{float(start):08.2f}-{float(end):08.2f}"
            if text.strip() == "ignore_time_segment_in_scoring":
                ignored.append(utt_id)
                continue
            candidates.append(Candidate(utt_id, audio, clean_tedlium_text(text), speaker, float(start),
                                        float(end) - float(start)))
    report_left_out({"ignore_time_segment_in_scoring": ignored} if ignored else {}, f"TED-LIUM {split}")
    return check_candidates(candidates, f"TED-LIUM {split}")
