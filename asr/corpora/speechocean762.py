"""speechocean762 (OpenSLR 101): non-native (Mandarin-accented) read English, Kaldi data directories.

Layout: `train/` and `test/`, each a Kaldi data directory (TAB-separated `wav.scp`, `text`,
`utt2spk`) whose `wav.scp` paths (`WAVE/SPEAKERnnnn/<id>.wav`) are relative to the corpus root.
The corpus has no dev set: a fraction of the training speakers is held out as one.
"""
from __future__ import annotations

from pathlib import Path

from asr.corpora.an4 import split_by_speaker
from asr.corpora.download import find_corpus_root, local_source
from asr.corpora.kaldi import prepare_kaldi
from asr.manifest import Utterance, write_split

URL = "https://www.openslr.org/resources/101/speechocean762.tar.gz"


def prepare_speechocean762(src: str | Path | None, out_dir: str | Path, dev_speakers: float = 0.1,
                           seed: int = 0) -> dict[str, list[Utterance]]:
    """Write `train.jsonl`, `dev.jsonl` and, where the corpus has `test/`, `test.jsonl`.

    `src`: the corpus folder (holding `train/`), a folder above it, the archive, or None to
    download it from OpenSLR into `out_dir`.
    """
    out_dir = Path(out_dir)
    root = _corpus_folder(local_source(src or URL, out_dir, "speechocean762"))
    train = prepare_kaldi(root / "train", audio_root=root)
    splits = dict(zip(("train", "dev"), split_by_speaker(train, dev_speakers, seed)))
    if (root / "test" / "wav.scp").is_file():
        splits["test"] = prepare_kaldi(root / "test", audio_root=root)
    for name, utterances in splits.items():
        write_split(utterances, out_dir, name)
    return splits


def _corpus_folder(folder: Path) -> Path:
    return find_corpus_root(folder, lambda c: (c / "train" / "wav.scp").is_file(), "speechocean762 train/wav.scp",
                            prefer=("speechocean762",))
