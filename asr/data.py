"""Datasets of utterances, a length-bucketing batch sampler with a frame budget, and collation."""
from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF
from torch.utils.data import Dataset, Sampler

from asr.audio import AudioError, load_audio
from asr.augment import AugmentConfig, add_noise, augment, babble, join_with_pause
from asr.manifest import Utterance
from asr.metrics import normalize_text
from asr.progress import progress_bar
from asr.tokenizer import Tokenizer

log = logging.getLogger(__name__)


def cache_key(utt: Utterance) -> tuple[str, float, float]:
    """What identifies an utterance's samples: its file and the stretch of it (not its id, which
    two manifests may give to different audio)."""
    return utt.audio, utt.start, utt.duration


class UtteranceDataset(Dataset):
    """Item i: `(utterance, waveform (samples,), token ids)`, or `(utterance, None, None)` when
    its audio cannot be read (logged; the batch drops it and counts it).

    Item `(epoch, i)`, as `EpochStream` asks for them, draws its speed perturbation from a random
    generator seeded by `(seed, epoch, i)`: the same draw in a resumed run as in an uninterrupted
    one, in any loader worker.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        tokenizer: Tokenizer | None,
        sample_rate: int,
        speeds: Sequence[float] = (1.0,),
        cache: Mapping[tuple, np.ndarray | None] | None = None,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        keep_clean: bool = False,
    ):
        self.augment = augment  # waveform augmentation, drawn from (seed, epoch, i) as the speed is
        self.keep_clean = keep_clean  # items also carry the waveform before babble and `augment`
        self.utterances = utterances  # any sequence: a lazy `Manifest` stays lazy
        self.seed = seed
        self.tokenizer = tokenizer
        self.sample_rate = sample_rate
        self.speeds = tuple(speeds)  # speed perturbation: each item plays at a random one of these
        self.cache = cache  # from `cache_audio`: samples by `cache_key` (None: unreadable, logged)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, key: int | tuple[int, ...]):
        epoch, index, *partner = key if isinstance(key, tuple) else (0, key)
        utt = self.utterances[index]
        audio = self._samples(utt)
        if audio is None:
            return utt, None, None
        waveform, text = torch.from_numpy(audio), utt.text
        if partner:
            waveform, text = self._join(waveform, text, epoch, index, partner[0])
        dry = waveform
        if self.augment is not None and self.augment.babble_prob > 0:
            waveform = self._babble(waveform, epoch, index)
        # Targets are the text as scoring sees it (asr.metrics.normalize_text): case and punctuation
        # never become output symbols.
        tokens = torch.tensor(self.tokenizer.encode(normalize_text(text)), dtype=torch.long) if self.tokenizer else None
        speed = self.speeds[0] if len(self.speeds) == 1 else random.Random(f"{self.seed}/{epoch}/{index}").choice(self.speeds)
        babbled = waveform is not dry
        waveform = speed_perturb(waveform, self.sample_rate, speed)
        if self.keep_clean:  # a second speed perturbation only where babble made the two differ
            clean = speed_perturb(dry, self.sample_rate, speed) if babbled else waveform
        if self.augment is not None:
            seed = random.Random(f"{self.seed}/{epoch}/{index}/augment").getrandbits(63)
            waveform = augment(waveform, self.sample_rate, self.augment, torch.Generator().manual_seed(seed))
        return (utt, waveform, tokens, clean) if self.keep_clean else (utt, waveform, tokens)

    def _samples(self, utt: Utterance) -> np.ndarray | None:
        if self.cache is not None and cache_key(utt) in self.cache:
            return self.cache[cache_key(utt)]
        return _load_or_log(utt, self.sample_rate)

    def _babble(self, waveform: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        """With probability `augment.babble_prob`: other training utterances, talking at once
        under this one at an SNR from `augment.babble_snr_db`."""
        rng = random.Random(f"{self.seed}/{epoch}/{index}/babble")
        config = self.augment
        if len(self) < 2 or rng.random() >= config.babble_prob:
            return waveform
        talkers = rng.randint(*config.babble_talkers)
        others = [rng.randrange(len(self)) for _ in range(talkers)]
        voices = [torch.from_numpy(a) for i in others if i != index and (a := self._samples(self.utterances[i])) is not None]
        if not voices:
            return waveform
        return add_noise(waveform, babble(voices, waveform.shape[0]), rng.uniform(*config.babble_snr_db))

    def _join(self, waveform: torch.Tensor, text: str, epoch: int, index: int, other: int) -> tuple[torch.Tensor, str]:
        """Item `(epoch, index, other)`: this utterance, a pause drawn from `(seed, epoch, index,
        other)` and `augment.concat_*`, then utterance `other`, with their texts joined."""
        other_utt = self.utterances[other]
        other_audio = self._samples(other_utt)
        if other_audio is None:
            return waveform, text
        rng = random.Random(f"{self.seed}/{epoch}/{index}/{other}/join")
        config = self.augment or AugmentConfig()
        pause = int(rng.uniform(*config.concat_pause_seconds) * self.sample_rate)
        joined = join_with_pause(waveform, torch.from_numpy(other_audio), pause, rng.choice(config.concat_pause_kinds),
                                 torch.Generator().manual_seed(rng.getrandbits(63)))
        return joined, f"{text} {other_utt.text}"


def _load_or_log(utt: Utterance, sample_rate: int) -> np.ndarray | None:
    try:
        return load_audio(utt.audio, sample_rate, utt.start, utt.duration)
    except AudioError as error:
        log.warning("skipping utterance %s: %s", utt.id, error)
        return None


def cache_audio(
    utterances: Sequence[Utterance], sample_rate: int, threads: int = 8, progress: bool = True
) -> dict[str, np.ndarray | None]:
    """Every utterance's samples, read once (in `threads` threads) for a corpus small enough to
    keep in memory: AN4's training set takes 146 MB. Unreadable audio is logged and kept as None."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        loaded = pool.map(lambda utt: _load_or_log(utt, sample_rate), utterances)
        samples = list(progress_bar(loaded, progress, total=len(utterances), desc="reading audio", unit="utt"))
    return {cache_key(utt): audio for utt, audio in zip(utterances, samples)}


def speed_perturb(audio: torch.Tensor, sample_rate: int, speed: float) -> torch.Tensor:
    """Play `audio` `speed` times faster (tempo and pitch together, as Kaldi's speed perturbation)."""
    if speed == 1.0:
        return audio
    return AF.resample(audio, int(round(sample_rate * speed)), sample_rate)


@dataclass
class Batch:
    """Padded waveforms `(batch, samples)` with `n_samples`; targets concatenated with `n_targets`."""

    utterances: list[Utterance]
    waveforms: torch.Tensor
    n_samples: torch.Tensor
    targets: torch.Tensor | None
    n_targets: torch.Tensor | None
    n_skipped: int
    clean: torch.Tensor | None = None  # the same audio before babble and waveform augmentation, where kept

    def pin_memory(self) -> Batch:
        self.waveforms = self.waveforms.pin_memory()
        if self.clean is not None:
            self.clean = self.clean.pin_memory()
        if self.targets is not None:
            self.targets = self.targets.pin_memory()
        return self


def pad_waveforms(waveforms: Sequence[torch.Tensor | np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mono waveforms -> one zero-padded batch `(n, longest)` and `n_samples` (on the host)."""
    n_samples = torch.tensor([w.shape[0] for w in waveforms], dtype=torch.long)
    batch = torch.zeros(len(waveforms), max(n_samples.tolist(), default=0))
    for row, wave in enumerate(waveforms):
        batch[row, : wave.shape[0]] = torch.as_tensor(wave)
    return batch, n_samples


def collate(items) -> Batch:
    good = [item for item in items if item[1] is not None]
    n_skipped = len(items) - len(good)
    waveforms, n_samples = pad_waveforms([item[1] for item in good])
    targets = n_targets = None
    if good and good[0][2] is not None:
        targets = torch.cat([item[2] for item in good])
        n_targets = torch.tensor([item[2].shape[0] for item in good], dtype=torch.long)
    clean = pad_waveforms([item[3] for item in good])[0] if good and len(good[0]) > 3 else None
    return Batch([item[0] for item in good], waveforms, n_samples, targets, n_targets, n_skipped, clean)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length utterances whose padded size stays within `max_seconds`.

    Utterances are sorted by duration and cut into batches where `batch * longest <= max_seconds`
    (and `batch <= max_batch`); with `shuffle` the order of the batches (and of equal-length
    neighbours) changes every epoch, driven by `seed + epoch`.

    With `world` > 1 processes, every rank builds the same global batches of `world` times the
    budget and takes its own slice of each: the ranks get disjoint batches of similar lengths and
    the same number of steps (a global batch with fewer utterances than ranks is left out).
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_seconds: float,
        max_batch: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        self.durations = list(durations)
        self.max_seconds = max_seconds * world
        self.max_batch = max_batch * world
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0
        self._memo: tuple[int, list[list[int]]] | None = None  # the last epoch's batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches for `epoch` (default: the one `set_epoch` chose); the last epoch's
        are kept, as the training loop asks for an epoch's length and then for its batches."""
        epoch = self.epoch if epoch is None else epoch
        if self._memo is None or self._memo[0] != epoch:
            self._memo = epoch, self._batches(epoch)
        return self._memo[1]

    def _batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed + epoch)
        # A small random jitter mixes utterances of nearly equal length between epochs.
        keys = [d * (1 + 0.05 * rng.random()) if self.shuffle else d for d in self.durations]
        order = sorted(range(len(self.durations)), key=keys.__getitem__)
        batches, current, longest = [], [], 0.0
        for index in order:
            longest_with = max(longest, self.durations[index])
            if current and (len(current) >= self.max_batch or longest_with * (len(current) + 1) > self.max_seconds):
                batches.append(current)
                current, longest_with = [], self.durations[index]
            current.append(index)
            longest = longest_with
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        if self.world == 1:
            return batches
        return [b[self.rank * len(b) // self.world : (self.rank + 1) * len(b) // self.world]
                for b in batches if len(b) >= self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class EpochStream(Sampler[list[tuple[int, ...]]]):
    """The batches of epochs `start` to `stop - 1` as one stream, each item as `(epoch, index)`.

    A DataLoader over it keeps its workers busy across epoch ends (and while the main process
    scores the dev set), where a fresh iterator per epoch would leave the GPU waiting for the
    first batches of every epoch. `epoch_length(e)` says how many batches of the stream are
    epoch e's.

    With `join_prob` > 0 a batch is, with that probability (drawn from `(seed, epoch, batch)`),
    made of joined neighbours `(epoch, i, j)`: half as many items, each two utterances of similar
    length with a pause between them, so that the padded batch stays near the sampler's budget.
    """

    def __init__(self, sampler: BucketBatchSampler, start: int, stop: int, join_prob: float = 0.0, seed: int = 0):
        self.sampler = sampler
        self.start = start
        self.stop = stop
        self.join_prob = join_prob
        self.seed = seed

    def epoch_length(self, epoch: int) -> int:
        return len(self.sampler.batches(epoch))

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        for epoch in range(self.start, self.stop):
            for number, batch in enumerate(self.sampler.batches(epoch)):
                if self.join_prob > 0 and random.Random(f"{self.seed}/{epoch}/{number}/join").random() < self.join_prob:
                    yield [(epoch, *batch[k : k + 2]) for k in range(0, len(batch), 2)]
                else:
                    yield [(epoch, index) for index in batch]

    def __len__(self) -> int:
        return sum(self.epoch_length(epoch) for epoch in range(self.start, self.stop))
