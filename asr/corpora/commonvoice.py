"""Mozilla Common Voice, any language release: `<lang>/{validated,train,dev,test}.tsv` with MP3 clips.

The TSV files have a header row; the columns used are `path` (the clip's name under `clips/`),
`sentence` and `client_id` (the speaker). Common Voice is downloaded by hand after accepting its
terms (https://commonvoice.mozilla.org/datasets): pass the unpacked language folder, or the archive.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from asr.corpora.download import find_corpus_root, local_source
from asr.errors import InputError, MissingFileError
from asr.manifest import Candidate, Utterance, check_candidates, write_split

SPLITS = ("validated", "train", "dev", "test")


def prepare_commonvoice(src: str | Path, out_dir: str | Path,
                        splits: Sequence[str] = ("train", "dev", "test")) -> dict[str, list[Utterance]]:
    """Write `<out_dir>/<split>.jsonl` for each split and return the utterances by split.

    `src`: the language folder (holding `clips/` and the TSV files), a folder above it with one
    language, or the release archive. MP3 clips are read by libsndfile (1.1 or newer).
    """
    out_dir = Path(out_dir)
    root = _language_folder(local_source(src, out_dir, "Common Voice"))
    prepared = {}
    for split in splits:
        if split not in SPLITS:
            raise InputError(f"unknown Common Voice split {split!r}; the splits: {', '.join(SPLITS)}")
        prepared[split] = read_commonvoice_split(root, split)
        write_split(prepared[split], out_dir, split)
    return prepared


def _language_folder(folder: Path) -> Path:
    return find_corpus_root(folder, lambda c: (c / "clips").is_dir() and any(c.glob("*.tsv")),
                            "Common Voice language folder (clips/ beside validated.tsv, dev.tsv, ...)", depth=2)


def read_commonvoice_split(root: Path, split: str) -> list[Utterance]:
    tsv = root / f"{split}.tsv"
    if not tsv.is_file():
        raise MissingFileError(f"{tsv}: no such file")
    with tsv.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows and not {"path", "sentence"} <= set(rows[0]):
        raise InputError(f"{tsv}: expected the columns path and sentence (found {', '.join(rows[0])})")
    candidates = [
        Candidate(Path(row["path"]).stem, str((root / "clips" / row["path"]).resolve()), row["sentence"] or "",
                  row.get("client_id") or "")
        for row in rows
    ]
    return check_candidates(candidates, f"Common Voice {split}")
