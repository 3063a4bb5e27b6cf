"""CMU AN4 (census) corpus: local copy (WAV or SPHERE layout), archive, or URL -> manifests."""
from __future__ import annotations

import random
import re
from pathlib import Path

from asr.corpora.download import find_corpus_root, local_source
from asr.manifest import Candidate, Utterance, check_candidates, write_split

AN4_URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
_SPLITS = {"train": "an4_train", "test": "an4_test"}
_TAIL = re.compile(r"\s*\(([^()]*)\)\s*$")


def prepare_an4(
    src: str | Path = AN4_URL,
    out_dir: str | Path = "data/an4",
    dev_speakers: float = 0.1,
    seed: int = 0,
) -> dict[str, list[Utterance]]:
    """Write `train.jsonl`, `dev.jsonl` and `test.jsonl` into `out_dir` and return them.

    `src` is a local AN4 folder (the WAV layout of CMU Sphinx or the SPHERE layout of
    `an4_sphere.tar.gz`), that archive, or its URL. AN4 has no dev set: a `dev_speakers`
    fraction of the training speakers (chosen with `seed`) becomes one.
    """
    out_dir = Path(out_dir)
    root = find_an4_root(local_source(src, out_dir, "AN4"))
    splits = {name: read_an4_split(root, stem) for name, stem in _SPLITS.items()}
    splits["train"], splits["dev"] = split_by_speaker(splits["train"], dev_speakers, seed)
    for name in ("train", "dev", "test"):
        write_split(splits[name], out_dir, name)
    return splits


def find_an4_root(folder: Path) -> Path:
    """The folder that holds `etc/an4_train.transcription`, at `folder` or below it."""
    return find_corpus_root(folder, lambda c: (c / "etc" / "an4_train.transcription").is_file(),
                            "etc/an4_train.transcription found (not an AN4 copy?)", prefer=("an4",))


def read_an4_split(root: Path, stem: str) -> list[Utterance]:
    """Pair `etc/<stem>.fileids` with `etc/<stem>.transcription`; audio as .wav or .sph."""
    fileids = (root / "etc" / f"{stem}.fileids").read_text().split()
    texts = {}
    for line in (root / "etc" / f"{stem}.transcription").read_text().splitlines():
        match = _TAIL.search(line)
        if match:
            texts[match.group(1)] = clean_an4_text(line)
    candidates = []
    for fileid in fileids:
        utt_id = Path(fileid).name
        audio = root / "wav" / f"{fileid}.wav"
        if not audio.exists() and (root / "wav" / f"{fileid}.sph").exists():
            audio = root / "wav" / f"{fileid}.sph"
        speaker = Path(fileid).parent.name
        candidates.append(Candidate(utt_id, str(audio.resolve()), texts.get(utt_id), speaker))
    return check_candidates(candidates, f"AN4 {stem}")


def clean_an4_text(line: str) -> str:
    """`<s> YES </s> (an251-fash-b)` -> `YES`."""
    line = _TAIL.sub("", line)
    words = [w for w in line.split() if w not in ("<s>", "</s>", "<sil>")]
    return " ".join(words).upper()


def split_by_speaker(
    utterances: list[Utterance], fraction: float, seed: int
) -> tuple[list[Utterance], list[Utterance]]:
    """Hold out whole speakers: about `fraction` of them (at least one) go to the second list."""
    speakers = sorted({u.speaker for u in utterances})
    n_held = max(1, round(fraction * len(speakers))) if fraction > 0 else 0
    held = set(random.Random(seed).sample(speakers, n_held))
    return [u for u in utterances if u.speaker not in held], [u for u in utterances if u.speaker in held]
