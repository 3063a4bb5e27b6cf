"""Tar shards, for corpora on network storage: each process reads whole shards, one after another.

`write_shards` packs a manifest's audio (each utterance's segment, mono 16-bit FLAC at the model's
rate) into `shard-NNNNNN.tar` files of `shard_size` utterances, and writes `shards.jsonl` beside
them: a manifest whose `audio` is `<shard>#<member>` and whose durations are the packed audio's.
Training reads a shard folder given as `data.train=DIR`.

`ShardStream` is the training stream over them. Every epoch the shards are shuffled (seeded by
seed and epoch) and dealt out to the processes in turn; a process reads its shards sequentially,
a whole shard at a time, and cuts each into length-bucketed batches under the same budget as
`BucketBatchSampler`. The processes take the same number of steps (the smallest plan's; the
others' last batches of the epoch are left out), and the plan depends only on (seed, epoch), so a
resumed run reads what an uninterrupted one would.
"""
from __future__ import annotations

import io
import logging
import random
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from torch.utils.data import IterableDataset

from asr.audio import AudioError, load_audio
from asr.augment import AugmentConfig
from asr.data import BucketBatchSampler, UtteranceDataset, cache_key, collate
from asr.errors import InputError
from asr.manifest import (
    Manifest,
    Utterance,
    atomic_write_text,
    report_left_out,
    temporary_beside,
)
from asr.progress import progress_bar
from asr.tokenizer import Tokenizer

log = logging.getLogger(__name__)

INDEX = "shards.jsonl"


def shard_index(path: str | Path) -> Path | None:
    """`path/shards.jsonl` when `path` is a shard folder, else None."""
    index = Path(path) / INDEX
    return index if Path(path).is_dir() and index.is_file() else None


def write_shards(utterances: Sequence[Utterance], out_dir: str | Path, shard_size: int = 1000,
                 sample_rate: int = 16000, progress: bool = True) -> Path:
    """Pack `utterances` into tar shards in `out_dir`; returns the index. Unreadable audio is
    reported (one warning per reason) and left out. Each shard, and the index last, is written
    to a temporary file and renamed: an interrupted run leaves no torn file behind."""
    import json

    if shard_size < 1:
        raise InputError(f"shard size {shard_size}: must be 1 or more")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, problems = [], {}
    bar = progress_bar(None, progress, total=len(utterances), desc="writing shards", unit="utt")
    for first in range(0, len(utterances), shard_size):
        name = f"shard-{first // shard_size:06d}.tar"
        fd, tmp = temporary_beside(out_dir / name)
        with open(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            for position, utt in enumerate(utterances[first : first + shard_size], first):
                bar.update(1)
                try:
                    audio = load_audio(utt.audio, sample_rate, utt.start, utt.duration)
                except AudioError as error:
                    problems.setdefault(error.reason.split(" (")[0], []).append(utt.id)
                    continue
                flac = io.BytesIO()
                sf.write(flac, audio, sample_rate, format="FLAC", subtype="PCM_16")
                data = flac.getvalue()
                member = tarfile.TarInfo(f"{position:09d}.flac")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
                rows.append({"id": utt.id, "audio": f"{name}#{member.name}", "duration": round(len(audio) / sample_rate, 4),
                             "text": utt.text, "speaker": utt.speaker})
        Path(tmp).replace(out_dir / name)
    bar.close()
    report_left_out(problems, str(out_dir))
    index = atomic_write_text(out_dir / INDEX, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    log.info("%s: %d utterances in %d shard(s) of up to %d", index, len(rows),
             (len(utterances) + shard_size - 1) // shard_size, shard_size)
    return index


def read_shard(path: Path) -> dict[str, np.ndarray]:
    """Every member of one shard, read in one sequential pass: member name -> float32 samples."""
    audio = {}
    try:
        with tarfile.open(path, mode="r|") as tar:  # a stream: no seeking, as on network storage
            for member in tar:
                if member.isfile():
                    audio[member.name] = sf.read(io.BytesIO(tar.extractfile(member).read()), dtype="float32")[0]
    except (OSError, tarfile.TarError, sf.LibsndfileError) as error:
        raise AudioError(path, f"unreadable shard ({error})") from None
    return audio


def _split(utt: Utterance) -> tuple[str, str]:
    shard, _, member = utt.audio.partition("#")
    return shard, member


def rows_by_shard(index: Manifest, rows: Iterable[int] | None = None) -> dict[str, list[int]]:
    """The index rows `rows` (default: all) grouped by the shard that holds them, in order."""
    by_shard: dict[str, list[int]] = {}
    for i in range(len(index)) if rows is None else rows:
        by_shard.setdefault(_split(index[i])[0], []).append(i)
    return by_shard


def sample_rows(index: Manifest, n: int, seed: int) -> list[int]:
    """About `n` rows for the feature statistics, taken whole shard by whole shard in a seeded
    order, so that the sample reads a few shards rather than every one."""
    by_shard = rows_by_shard(index)
    shards = sorted(by_shard)
    random.Random(seed).shuffle(shards)
    rows: list[int] = []
    for shard in shards:
        if len(rows) >= n:
            break
        rows += by_shard[shard][: n - len(rows)]
    return rows


def shard_audio(index: Manifest, rows: Sequence[int]) -> Iterator[tuple[Utterance, np.ndarray | None]]:
    """`(utterance, samples)` of the index rows `rows`, reading each shard they fall in once and
    in order (an unreadable shard is logged, and its utterances come with None)."""
    for shard, members in rows_by_shard(index, rows).items():
        try:
            audio = read_shard(index.path.parent / shard)
        except AudioError as error:
            log.warning("skipping %d utterance(s): %s", len(members), error)
            audio = {}
        for i in members:
            utt = index[i]
            yield utt, audio.get(_split(utt)[1])


class ShardStream(IterableDataset):
    """Batches of epochs `start` to `stop - 1` from the shards of `index`, for process `rank` of
    `world`; `epoch_length(e)` says how many batches of the stream are epoch e's."""

    def __init__(self, index: Manifest, tokenizer: Tokenizer, sample_rate: int, speeds: Sequence[float],
                 max_seconds: float, max_batch: int, seed: int, rank: int = 0, world: int = 1,
                 start: int = 0, stop: int = 1, augment: AugmentConfig | None = None, keep_clean: bool = False):
        self.index, self.tokenizer, self.sample_rate, self.speeds = index, tokenizer, sample_rate, tuple(speeds)
        self.max_seconds, self.max_batch, self.seed = max_seconds, max_batch, seed
        self.rank, self.world, self.start, self.stop, self.augment = rank, world, start, stop, augment
        self.keep_clean = keep_clean
        self.rows = rows_by_shard(index)
        if len(self.rows) < world:
            raise InputError(f"{index.path.parent}: {len(self.rows)} shard(s) for {world} processes; "
                             "write at least one a process (asr shard --shard-size)")
        self._memo: tuple[int, list, int] | None = None

    def plan(self, epoch: int) -> tuple[list[tuple[str, list[int]]], int]:
        """This rank's `(shard, index rows)` batches of `epoch`, and the steps every rank takes."""
        if self._memo is None or self._memo[0] != epoch:
            shards = sorted(self.rows)
            random.Random(f"{self.seed}/{epoch}").shuffle(shards)
            plans = []
            for rank in range(self.world):
                batches = []
                for shard in shards[rank :: self.world]:
                    rows = self.rows[shard]
                    sampler = BucketBatchSampler([self.index.durations[i] for i in rows], self.max_seconds,
                                                 self.max_batch, True, self.seed)
                    batches += [(shard, [rows[j] for j in b]) for b in sampler.batches(epoch)]
                plans.append(batches)
            steps = min(len(p) for p in plans)
            self._memo = epoch, plans[self.rank][:steps], steps
        return self._memo[1], self._memo[2]

    def epoch_length(self, epoch: int) -> int:
        return self.plan(epoch)[1]

    def __len__(self) -> int:
        return sum(self.epoch_length(e) for e in range(self.start, self.stop))

    def __iter__(self):
        for epoch in range(self.start, self.stop):
            batches, _ = self.plan(epoch)
            current, dataset = None, None
            for shard, rows in batches:
                if shard != current:  # the next shard, read whole, in the order of the plan
                    shard_rows = self.rows[shard]
                    cache = {cache_key(u): a for u, a in shard_audio(self.index, shard_rows)}
                    dataset = UtteranceDataset(self.index, self.tokenizer, self.sample_rate, self.speeds, cache,
                                               self.seed, self.augment, self.keep_clean)
                    current = shard
                yield collate([dataset[(epoch, i)] for i in rows])
