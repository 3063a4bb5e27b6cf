"""Kaldi-style data directories (`wav.scp`, `text`, optional `utt2spk`, `segments`) -> manifest."""
from __future__ import annotations

from pathlib import Path

from asr.manifest import Candidate, Utterance, check_candidates


class KaldiDataError(Exception):
    """A Kaldi data directory we refuse to read; the message names the file and line."""


def prepare_kaldi(data_dir: str | Path, audio_root: str | Path = ".") -> list[Utterance]:
    """Read a Kaldi data directory into utterances.

    Relative paths in `wav.scp` resolve against `audio_root` (Kaldi's convention is the
    current directory). Entries that are shell pipes (`... |`) are refused: commands found in
    data files are never run. Utterances with missing audio or empty text are reported and
    left out.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "wav.scp").is_file() or not (data_dir / "text").is_file():
        raise KaldiDataError(f"{data_dir}: a Kaldi data directory needs wav.scp and text")
    recordings = _read_table(data_dir / "wav.scp")
    for rec_id, (location, n_line) in recordings.items():
        if location.endswith("|") or location.startswith("|"):
            raise KaldiDataError(
                f"{data_dir / 'wav.scp'}:{n_line}: '{rec_id}' is a shell pipe ({location!r}); "
                "commands in data files are never run: write the audio to files and list their paths"
            )
    root = Path(audio_root)
    paths = {rec: str(_resolve(loc, root)) for rec, (loc, _) in recordings.items()}
    texts = {utt: text for utt, (text, _) in _read_table(data_dir / "text").items()}
    speakers = {}
    if (data_dir / "utt2spk").is_file():
        speakers = {utt: spk for utt, (spk, _) in _read_table(data_dir / "utt2spk").items()}

    candidates = []
    if (data_dir / "segments").is_file():
        for utt, (rest, n_line) in _read_table(data_dir / "segments").items():
            fields = rest.split()
            try:
                rec, start, end = fields[0], float(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                raise KaldiDataError(f"{data_dir / 'segments'}:{n_line}: expected 'utt rec start end'") from None
            audio = paths.get(rec, str(root / f"<no wav.scp entry for {rec}>"))
            duration = end - start if end > 0 else None
            candidates.append(Candidate(utt, audio, texts.get(utt, ""), speakers.get(utt, ""), start, duration))
    else:
        for utt, audio in paths.items():
            candidates.append(Candidate(utt, audio, texts.get(utt, ""), speakers.get(utt, "")))
    return check_candidates(candidates, str(data_dir))


def _resolve(location: str, root: Path) -> Path:
    path = Path(location)
    return (path if path.is_absolute() else root / path).resolve()


def _read_table(path: Path) -> dict[str, tuple[str, int]]:
    """`key rest-of-line` per line -> {key: (rest, line number)}."""
    table = {}
    for n_line, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, rest = line.strip().partition(" ")
        table[key] = (rest.strip(), n_line)
    return table
