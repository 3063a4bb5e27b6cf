"""A folder of recordings, each with its transcript beside it (`talk.wav` and `talk.txt`) -> manifest.

The simplest way to bring one's own test set: no data-directory format to learn. Every audio
file below the folder (searched recursively, as `asr transcribe` searches) is an utterance; its
id is its path below the folder without the extension, its speaker the folder it sits in, and
its text the words of the `.txt` file of the same name (UTF-8, lines joined with spaces).
"""
from __future__ import annotations

from pathlib import Path

from asr.audio import AUDIO_EXTENSIONS, find_audio
from asr.errors import InputError, MissingFileError
from asr.manifest import Candidate, Utterance, check_candidates


def prepare_folder(src: str | Path) -> list[Utterance]:
    """The utterances of the audio files below `src` that have a transcript beside them.

    A recording without its `.txt`, with an empty one, or with unreadable audio is reported by
    reason and left out; two recordings that would share a transcript (`a.wav` and `a.flac`), a
    transcript that is not UTF-8, or a folder that yields no utterance is an `InputError`.
    """
    root = Path(src)
    if not root.is_dir():
        raise MissingFileError(f"{root}: no such folder")
    recordings = find_audio(root)
    if not recordings:
        raise InputError(f"{root}: no audio files below it ({', '.join(sorted(AUDIO_EXTENSIONS))})")
    candidates, seen = [], {}
    for path in recordings:
        name = path.relative_to(root).with_suffix("")
        if name in seen:
            raise InputError(f"{path}: {seen[name].name} has the same name, and {name.name}.txt can transcribe only one")
        seen[name] = path
        transcript = path.with_suffix(".txt")
        text = _read_transcript(transcript) if transcript.is_file() else None
        speaker = "" if name.parent == Path(".") else name.parent.as_posix()
        candidates.append(Candidate(name.as_posix(), str(path.resolve()), text, speaker))
    utterances = check_candidates(candidates, str(root))
    if not utterances:
        raise InputError(f"{root}: no utterance could be imported (see the warnings above for why)")
    return utterances


def _read_transcript(path: Path) -> str:
    try:
        return " ".join(path.read_text(encoding="utf-8-sig").split())
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
