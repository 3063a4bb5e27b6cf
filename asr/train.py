"""train(cfg): the training loop, checkpoints, resume and logging."""
from __future__ import annotations

import hashlib
import itertools
import logging
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from asr.augment import AugmentConfig
from asr.average import prune_epochs
from asr.config import augment_config, feature_config, model_dims, specaugment_config
from asr.data import (
    Batch,
    BucketBatchSampler,
    EpochStream,
    UtteranceDataset,
    cache_audio,
    collate,
)
from asr.devices import pick_device, to_device
from asr.distill import Teacher, needs_clean_audio
from asr.distributed import Rank, barrier, check_replicas, init_distributed, shutdown
from asr.errors import AsrError
from asr.evaluate import ctc_loss, decode_utterances, evaluate, format_report, score
from asr.features import FeatureConfig, FeatureExtractor, StatsAccumulator
from asr.manifest import Manifest, Utterance, atomic_write_text, read_manifest
from asr.metrics import normalize_text
from asr.optim import AdamW, lr_factor, set_lr
from asr.progress import progress_bar
from asr.recognizer import (
    Recognizer,
    checkpoint_source,
    load_recognizer,
    read_checkpoint,
)
from asr.run_metrics import read_metrics, trim_metrics, write_metrics
from asr.shards import ShardStream, sample_rows, shard_audio, shard_index
from asr.tokenizer import build_tokenizer
from asr.transfer import init_weights

log = logging.getLogger(__name__)


def estimate_stats(features: FeatureConfig, utterances: Sequence[Utterance], max_utterances: int, seed: int,
                   progress: bool = True, cache=None, shards: bool = False):
    """Per-bin mean and standard deviation of the features over (a sample of) the training set
    (`utterances` a shard index when `shards`: the sample is then read shard by shard)."""
    extractor = FeatureExtractor(features)
    accumulator = StatsAccumulator(features.n_features)
    if shards:  # whole shards, a few: not one utterance from every shard of the corpus
        sample = sample_rows(utterances, max_utterances, seed)
        items = ((utt, None if a is None else torch.from_numpy(a)) for utt, a in shard_audio(utterances, sample))
    else:
        sample = random.Random(seed).sample(range(len(utterances)), min(max_utterances, len(utterances)))
        dataset = UtteranceDataset([utterances[i] for i in sample], None, features.sample_rate, cache=cache)
        items = ((utt, audio) for utt, audio, _ in dataset)
    for utt, audio in progress_bar(items, progress, desc="feature statistics", unit="utt", total=len(sample)):
        if audio is not None:
            feats, n_frames = extractor(audio[None], torch.tensor([audio.shape[0]]))
            accumulator.add(feats, n_frames)
    return accumulator.result()


def build_recognizer(cfg: DictConfig, train_utts: Sequence[Utterance], resume: dict | None, progress: bool = True,
                     cache=None, shards: bool = False) -> Recognizer:
    specaugment = specaugment_config(cfg)
    if resume is not None:
        return Recognizer.from_checkpoint(resume, specaugment)
    features = feature_config(cfg)
    tokenizer = build_tokenizer(cfg.tokenizer.kind, (normalize_text(u.text) for u in train_utts),
                                cfg.tokenizer.vocab_size, cfg.seed, cfg.tokenizer.get("lexicon"))
    mean, std = estimate_stats(features, train_utts, cfg.train.stats_utterances, cfg.seed, progress, cache, shards)
    return Recognizer(features, model_dims(cfg, len(tokenizer)), tokenizer, mean, std, specaugment)


class TrainingError(AsrError):
    """A run that cannot start or go on; the message names the setting or the file, and the reason."""


@dataclass
class TrainingState:
    """Where a run is: what a checkpoint holds beside the weights, so that a resumed run is the
    same run as an uninterrupted one (its random streams are reseeded from (seed, epoch, rank))."""

    epoch: int = 0  # epochs completed
    step: int = 0
    best_wer: float = float("inf")
    nonfinite_in_a_row: int = 0  # batches, across epoch ends (not saved: a resumed run starts afresh)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch - 1, "step": self.step, "best_wer": self.best_wer}

    def load_state_dict(self, saved: dict) -> None:
        self.epoch, self.step, self.best_wer = saved["epoch"] + 1, saved["step"], saved["best_wer"]


@dataclass
class EpochCounts:
    """What one epoch did and left out."""

    loss_sum: torch.Tensor
    n_utts: int = 0
    audio_seconds: float = 0.0  # as trained on: after speed perturbation, joined utterances whole
    n_skipped: int = 0  # utterances whose audio could not be read
    n_nonfinite: int = 0  # batches whose loss or gradient was not finite: no step taken
    n_infeasible: int = 0  # utterances whose target is longer than the model's output can hold


def batch_loss(model, batch: Batch, device: torch.device, autocast, teacher: Teacher | None = None) -> torch.Tensor:
    """Summed CTC loss of `batch` (`model` is the recogniser, or its DistributedDataParallel wrapper),
    plus the teacher's distillation term where there is one.

    Lengths stay on the host and the rest is copied without blocking, so queuing the step never
    waits for the GPU (the CUDA CTC loss itself still syncs once, as any PyTorch CTC loss does).
    """
    recognizer = getattr(model, "module", model)
    waveforms = to_device(batch.waveforms, device)
    with autocast:
        log_probs, _ = model(waveforms, batch.n_samples)
    n_frames = recognizer.output_lengths(batch.n_samples)
    loss = ctc_loss(log_probs.float(), n_frames, to_device(batch.targets, device), batch.n_targets)
    if teacher is None:
        return loss
    with autocast:
        heard = waveforms if batch.clean is None else to_device(batch.clean, device)
        return loss + teacher.loss(log_probs, heard, batch.n_samples, n_frames)


def n_infeasible(targets: torch.Tensor, n_targets: torch.Tensor, n_frames: torch.Tensor) -> int:
    """Utterances whose CTC path cannot fit: it needs one frame a token, plus a blank between two
    equal tokens in a row (on host tensors; the loss of such an utterance is zeroed)."""
    count = 0
    for tokens, n_out in zip(torch.split(targets, n_targets.tolist()), n_frames.tolist()):
        repeats = int((tokens[1:] == tokens[:-1]).sum()) if len(tokens) > 1 else 0
        count += len(tokens) + repeats > n_out
    return count


def placeholder_batch(recognizer: Recognizer) -> Batch:
    """One window of silence with a one-token target, for a rank whose batch was all unreadable."""
    n = recognizer.features.win_samples
    one = torch.ones(1, dtype=torch.long)
    return Batch([], torch.zeros(1, n), torch.tensor([n]), one, one, 0)


def seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Reseed Python's and torch's generators from (seed, epoch, rank) at the start of every epoch:
    SpecAugment and dropout draw the same in a resumed run, and differently in each process."""
    mixed = int.from_bytes(hashlib.sha256(f"{seed}/{epoch}/{rank}".encode()).digest()[:8], "little") >> 1
    random.seed(mixed)
    torch.manual_seed(mixed)


def check_out_dir(out_dir: Path, resuming: bool, overwrite: bool) -> None:
    """Refuse to start a new run over an earlier one, unless told to resume or to overwrite."""
    held = [name for name in RUN_FILES if (out_dir / name).exists()]
    if held and not resuming and not overwrite:
        raise TrainingError(
            f"{out_dir}: holds a run already ({', '.join(held)}); continue it with train.resume={out_dir / 'last.pt'}, "
            "start over with train.overwrite=true, or choose another out_dir")


def start_out_dir(out_dir: Path, cfg: DictConfig, resuming: bool) -> None:
    """Called once start-up has succeeded: before it, a failing run has written nothing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.pt.*.tmp"):  # left by a kill during a save
        stale.unlink()
    if not resuming:  # train.overwrite=true: the earlier run's files go
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
        for kept in (out_dir / "epochs").glob("epoch-*.pt"):
            kept.unlink()
    atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "test.json")


@dataclass
class Run:
    """What a run is built from: made by `start_run`, before anything is written."""

    cfg: DictConfig
    rank: Rank
    device: torch.device
    recognizer: Recognizer
    model: torch.nn.Module  # the recogniser, or its DistributedDataParallel wrapper
    optimizer: AdamW
    scaler: torch.amp.GradScaler
    sampler: BucketBatchSampler | ShardStream
    state: TrainingState
    train_utts: Manifest
    dev_utts: list[Utterance]
    test_utts: list[Utterance]
    sample_rate: int
    cache: dict | None
    augment: AugmentConfig | None
    teacher: Teacher | None  # train.distill_from
    total_steps: int  # of the whole run, in this run's steps (an epoch's batches: a sort of the corpus)

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.out_dir)

    def lr(self) -> float:
        """The learning rate of the next step: warm-up, then cosine decay over the whole run."""
        o = self.cfg.optim
        return o.lr * lr_factor(self.state.step, self.total_steps, o.warmup_fraction, o.final_lr_ratio)


def train(cfg: DictConfig) -> Path:
    """Train as `cfg` says; returns the path of the best checkpoint (by dev WER).

    Under torchrun each process trains on its share of every global batch; rank 0 evaluates,
    logs and writes checkpoints.
    """
    rank, device = init_distributed(pick_device(cfg.device))
    run = start_run(cfg, rank, device)
    if isinstance(run.sampler, ShardStream):  # batches come whole, shard by shard
        stream = run.sampler
        stream.start, stream.stop = run.state.epoch, cfg.train.epochs
        loader = iter(DataLoader(stream, batch_size=None, num_workers=cfg.train.num_workers,
                                 pin_memory=device.type == "cuda"))
    else:
        augment = run.augment
        stream = EpochStream(run.sampler, run.state.epoch, cfg.train.epochs, augment.concat_prob if augment else 0.0,
                             cfg.seed)
        dataset = UtteranceDataset(run.train_utts, run.recognizer.tokenizer, run.sample_rate, cfg.train.speeds,
                                   run.cache, seed=cfg.seed, augment=augment,
                                   keep_clean=needs_clean_audio(run.teacher))
        loader = iter(DataLoader(dataset, batch_sampler=stream, collate_fn=collate, num_workers=cfg.train.num_workers,
                                 pin_memory=device.type == "cuda"))
    writer = _tensorboard(run.out_dir) if rank.is_main and cfg.train.tensorboard else None
    step_fn = partial(train_step, model=run.model, optimizer=run.optimizer, scaler=run.scaler, device=device,
                      autocast=_autocast(device, cfg.train.precision), grad_clip=cfg.train.grad_clip,
                      distributed=rank.distributed, teacher=run.teacher)
    for epoch in range(run.state.epoch, cfg.train.epochs):
        seed_everything(cfg.seed, epoch, rank.rank)
        run.recognizer.train()
        started = time.time()
        n_batches = stream.epoch_length(epoch)  # sorts the corpus: once per epoch
        batches = WaitClock(itertools.islice(loader, n_batches), n_batches)
        bar = progress_bar(None, rank.is_main, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", total=n_batches,
                           unit="batch")
        counts = run_epoch(batches, step_fn, run.recognizer.output_lengths, run.state, run.lr,
                           cfg.train.max_nonfinite_batches, bar, device, run.sample_rate)
        run.state.epoch = epoch + 1
        if rank.distributed:
            check_replicas(run.recognizer, rank)
        row = epoch_row(run.state, run.lr(), counts, time.time() - started, batches.waited, rank.world)
        end_epoch(run, row, writer)
    if writer is not None:
        writer.close()
    shutdown(rank)
    best = run.out_dir / "best.pt"
    best = best if best.exists() else run.out_dir / "last.pt"
    if rank.is_main and cfg.train.test_best:
        test_checkpoint(best, run.test_utts, cfg.data.test, run.out_dir / "test.json", device,
                        cfg.train.max_batch_seconds)
    return best


def start_run(cfg: DictConfig, rank: Rank, device: torch.device) -> Run:
    """Read the manifests (and the checkpoint to resume from), build the model and the optimizer:
    everything that can fail at start-up fails here, before the output folder is touched."""
    out_dir, resuming = Path(cfg.out_dir), bool(cfg.train.resume)
    check_out_dir(out_dir, resuming, cfg.train.overwrite)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.seed, -1, 0)  # the model's initial weights: the same in every process
    shards = shard_index(cfg.data.train)  # data.train: a manifest, or a folder of tar shards
    train_utts = Manifest(shards or cfg.data.train)  # read lazily: 16 bytes an utterance
    if shards and cfg.train.cache_audio:
        raise TrainingError(f"train.cache_audio=true: not with the shard folder {cfg.data.train} (shards are read "
                            "as the epoch comes to them)")
    if shards and cfg.augment.get("concat_prob", 0) > 0:
        raise TrainingError(f"augment.concat_prob={cfg.augment.concat_prob}: joined utterances need a manifest, "
                            f"not the shard folder {cfg.data.train}")
    if shards and cfg.train.num_workers > 1:
        raise TrainingError(f"train.num_workers={cfg.train.num_workers}: a shard folder is read by at most 1 "
                            "loader worker a process")
    dev_utts = read_manifest(cfg.data.dev) if cfg.data.get("dev") else []
    if cfg.train.test_best and not cfg.data.get("test"):
        raise TrainingError("train.test_best=true needs a test manifest: data.test=PATH")
    # Read now, so that a bad test manifest stops the run before training rather than after it.
    test_utts = read_manifest(cfg.data.test) if cfg.train.test_best else []
    resume = read_checkpoint(cfg.train.resume) if resuming else None
    if resume is not None and "optimizer" not in resume:
        raise TrainingError(f"{cfg.train.resume}: holds no training state to resume from")
    # Read before the normalisation statistics, which may take minutes: a missing checkpoint stops the run first.
    init_source = checkpoint_source(cfg.train.init_from) if cfg.train.init_from else None
    init = read_checkpoint(init_source) if init_source and resume is None else None
    teacher = Teacher.load(cfg.train.distill_from, cfg.train.distill_weight, cfg.train.distill_shift,
                           cfg.train.distill_clean, device) if cfg.train.distill_from else None
    # A resumed run keeps its checkpoint's features, whatever the configuration says now.
    sample_rate = resume["features"]["sample_rate"] if resume is not None else feature_config(cfg).sample_rate
    cache = cache_audio([*train_utts, *dev_utts], sample_rate, progress=rank.is_main) if cfg.train.cache_audio else None
    recognizer = build_recognizer(cfg, train_utts, resume, rank.is_main, cache, bool(shards))
    if init is not None:
        copied, left = init_weights(recognizer, init)
        if rank.is_main:
            log.info("weights from %s: %d tensors, %d left as initialised", init_source, copied, left)
    recognizer = recognizer.to(device)
    if teacher is not None:
        teacher.check(recognizer)
    # No device_ids: DDP would then copy every input to the GPU, and the lengths must stay on the host.
    model = DistributedDataParallel(recognizer) if rank.distributed else recognizer
    o = cfg.optim
    optimizer = AdamW(recognizer.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay,
                      decay_vectors=o.decay_vectors)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.train.precision == "fp16")
    augment = augment_config(cfg)
    if shards:
        sampler = ShardStream(train_utts, recognizer.tokenizer, sample_rate, cfg.train.speeds,
                              cfg.train.max_batch_seconds, cfg.train.max_batch, cfg.seed, rank.rank, rank.world,
                              augment=augment, keep_clean=needs_clean_audio(teacher))
        steps = sampler.epoch_length(0)
    else:
        sampler = BucketBatchSampler(train_utts.durations, cfg.train.max_batch_seconds,
                                     cfg.train.max_batch, True, cfg.seed, rank.rank, rank.world)
        steps = len(sampler)
    run = Run(cfg, rank, device, recognizer, model, optimizer, scaler, sampler, TrainingState(), train_utts, dev_utts,
              test_utts, sample_rate, cache, augment, teacher, total_steps=cfg.train.epochs * steps)
    if resume is not None:
        resume_from(run, resume)
    if rank.is_main:
        start_out_dir(out_dir, cfg, resuming)
        if resume is not None:
            log.info("resuming from %s after epoch %d", cfg.train.resume, run.state.epoch)
            trim_metrics(out_dir, run.state.epoch)
        log.info("model: %s, %.2f M parameters, %d process(es)", cfg.model.name,
                 recognizer.model.n_parameters() / 1e6, rank.world)
    return run


def resume_from(run: Run, checkpoint: dict) -> None:
    """The training state, the optimizer's and the GradScaler's, as `end_epoch` saved them."""
    run.state.load_state_dict(checkpoint)
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint.get("scaler"):
        run.scaler.load_state_dict(checkpoint["scaler"])
    if checkpoint.get("world", run.rank.world) != run.rank.world:
        # Another number of processes takes another number of steps per epoch: the schedule
        # goes on from the same share of the training, in this run's steps.
        run.state.step = run.state.epoch * run.total_steps // run.cfg.train.epochs
        if run.rank.is_main:
            log.info("the checkpoint was written by %d process(es), this run has %d: the learning-rate schedule "
                     "continues from step %d of %d", checkpoint["world"], run.rank.world, run.state.step,
                     run.total_steps)


def end_epoch(run: Run, row: dict, writer) -> None:
    """Log the epoch; every `check_every` epochs and at the end, score dev and write checkpoints
    (process 0; the others wait)."""
    cfg, state = run.cfg, run.state
    checked = state.epoch == cfg.train.epochs or state.epoch % cfg.train.check_every == 0
    if not run.rank.is_main:
        if checked:
            barrier(run.rank)  # process 0 evaluates and saves meanwhile
        return
    if checked and run.dev_utts:
        dev_data = UtteranceDataset(run.dev_utts, run.recognizer.tokenizer, run.sample_rate, cache=run.cache)
        dev = score(run.dev_utts, decode_utterances(run.recognizer, dev_data,
                                                    max_batch_seconds=cfg.train.max_batch_seconds))
        row.update(dev_loss=dev["loss"], dev_cer=dev["cer"], dev_wer=dev["wer"])
    log.info("epoch %d: %s", state.epoch, _format_row(row))
    # Before the checkpoints: a resumed run drops the rows of epochs after its checkpoint.
    _log_metrics(run.out_dir, row, writer)
    if not checked:
        return
    # Without a dev set the latest model is the best one we know of.
    is_best = not run.dev_utts or row["dev_wer"] <= state.best_wer
    if run.dev_utts:
        state.best_wer = min(state.best_wer, row["dev_wer"])
    config = OmegaConf.to_container(cfg, resolve=True)
    # best.pt before last.pt: a kill between the two leaves last.pt one epoch behind (that epoch
    # runs again on resume), never a last.pt that counts on a best.pt that was not written.
    if is_best:
        run.recognizer.save(run.out_dir / "best.pt", epoch=state.epoch - 1, metrics=row, config=config)
    if cfg.train.keep_epochs > 0:  # for `asr average`
        (run.out_dir / "epochs").mkdir(exist_ok=True)
        run.recognizer.save(run.out_dir / "epochs" / f"epoch-{state.epoch:03d}.pt", epoch=state.epoch - 1,
                            metrics=row, config=config)
        prune_epochs(run.out_dir, cfg.train.keep_epochs)
    run.recognizer.save(run.out_dir / "last.pt", **state.state_dict(), world=run.rank.world, metrics=row,
                        config=config, optimizer=run.optimizer.state_dict(), scaler=run.scaler.state_dict())
    barrier(run.rank)


def train_step(batch: Batch, lr: float, *, model, optimizer, scaler, device, autocast, grad_clip: float,
               distributed: bool, teacher: Teacher | None = None) -> torch.Tensor | None:
    """Forward, backward and an update; the summed loss, or None where no update was made: the
    batch was empty (in one process), or its loss or gradient was not finite.

    A process whose batch was all unreadable still takes part, with a zero-weighted placeholder:
    the others wait for its gradients, and every process must take the same steps.
    """
    recognizer = getattr(model, "module", model)
    optimizer.zero_grad(set_to_none=True)
    if batch.utterances:
        loss = batch_loss(model, batch, device, autocast, teacher)
        scaler.scale(loss / len(batch.utterances)).backward()
    elif distributed:
        loss = None
        (batch_loss(model, placeholder_batch(recognizer), device, autocast, teacher) * 0.0).backward()
    else:
        return None
    set_lr(optimizer, lr)
    scaler.unscale_(optimizer)
    # After DDP's all-reduce every process holds the same gradients, so they all take the same decision.
    norm = torch.nn.utils.clip_grad_norm_(recognizer.model.parameters(), grad_clip)
    finite = torch.isfinite(norm) if loss is None else torch.isfinite(norm) & torch.isfinite(loss)
    if not bool(finite):  # the step's one wait for the GPU besides the CTC loss's own
        optimizer.zero_grad(set_to_none=True)
        if scaler.is_enabled():
            scaler.update()  # fp16: lowers the scale, as a skipped step does
        raise NonFiniteStep
    scaler.step(optimizer)
    scaler.update()
    return loss.detach() if loss is not None else torch.zeros((), device=device)


class NonFiniteStep(Exception):
    """A batch whose loss or gradient was NaN or infinite: no update was made."""


def run_epoch(batches, step_fn, output_lengths, state: TrainingState, lr, max_nonfinite: int, progress,
              device, sample_rate: int) -> EpochCounts:
    """One pass over `batches`: updates `state.step` (`lr()` gives the next step's learning rate),
    counts what was skipped."""
    counts = EpochCounts(loss_sum=torch.zeros((), device=device))  # summed on the device: no sync per step
    for batch in batches:
        progress.update()
        counts.n_skipped += batch.n_skipped
        if batch.utterances:
            counts.n_infeasible += n_infeasible(batch.targets, batch.n_targets, output_lengths(batch.n_samples))
        try:
            loss = step_fn(batch, lr())
        except NonFiniteStep:
            counts.n_nonfinite += 1
            state.nonfinite_in_a_row += 1
            log.warning("epoch %d, step %d: non-finite loss or gradient; batch skipped (%s)", state.epoch + 1,
                        state.step, ", ".join(u.id for u in batch.utterances[:5]) or "placeholder")
            if state.nonfinite_in_a_row >= max_nonfinite:
                raise TrainingError(
                    f"{state.nonfinite_in_a_row} batches in a row had a non-finite loss or gradient (epoch {state.epoch + 1}, "
                    f"step {state.step}); the weights are as they were before them. Lower optim.lr or "
                    "train.grad_clip, or check the audio (train.max_nonfinite_batches sets this limit)") from None
            continue
        state.nonfinite_in_a_row = 0
        if loss is None:
            continue
        state.step += 1
        counts.loss_sum += loss
        counts.n_utts += len(batch.utterances)
        counts.audio_seconds += int(batch.n_samples.sum()) / sample_rate
        if not progress.disable and state.step % 50 == 0:  # reading the loss waits for the GPU: now and then only
            progress.set_postfix(loss=f"{float(counts.loss_sum) / counts.n_utts:.3f}")
    progress.close()
    return counts


def epoch_row(state: TrainingState, lr: float, counts: EpochCounts, epoch_seconds: float, waited: float,
              world: int) -> dict:
    """The epoch's metrics.csv row, logging what was left out."""
    for n, what in ((counts.n_skipped, "utterance(s) whose audio could not be read"),
                    (counts.n_nonfinite, "batch(es) with a non-finite loss or gradient (no update made)"),
                    (counts.n_infeasible, "utterance(s) whose text is longer than the model's output can "
                                          "hold (CTC loss zeroed)")):
        if n:
            log.warning("epoch %d: skipped %d %s", state.epoch, n, what)
    return {
        "epoch": state.epoch, "step": state.step, "lr": lr,
        "train_loss": float(counts.loss_sum) / max(1, counts.n_utts), "epoch_seconds": round(epoch_seconds, 2),
        "audio_seconds_per_second": round(counts.audio_seconds * world / epoch_seconds, 1),
        "data_wait": round(waited / epoch_seconds, 4), "skipped": counts.n_skipped,
        "nonfinite": counts.n_nonfinite, "infeasible": counts.n_infeasible,
    }


def test_checkpoint(checkpoint: Path, utterances: list[Utterance], manifest: str, report: Path,
                    device: torch.device, max_batch_seconds: float) -> dict:
    """Score `checkpoint` on the `utterances` of `manifest` with greedy decoding, as `asr evaluate
    --report` does, in this process: a recipe saves starting another one (and setting up the GPU again)."""
    recognizer = load_recognizer(checkpoint, device)
    result = evaluate(recognizer, utterances, report_path=report, max_batch_seconds=max_batch_seconds)
    log.info("%s on %s: %s (report: %s)", checkpoint, manifest, format_report(result).splitlines()[0], report)
    return result


class WaitClock:
    """Iterates over `iterable` and adds up the seconds spent waiting for its next item."""

    def __init__(self, iterable, length: int):
        self.iterable = iterable
        self.length = length
        self.waited = 0.0

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        items = iter(self.iterable)
        while True:
            asked = time.perf_counter()
            item = next(items, _END)
            self.waited += time.perf_counter() - asked
            if item is _END:
                return
            yield item


_END = object()


def _format_row(row: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


def _autocast(device: torch.device, precision: str):
    if device.type != "cuda" or precision == "fp32":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _log_metrics(out_dir: Path, row: dict, writer) -> None:
    write_metrics(out_dir, [*read_metrics(out_dir), row])
    if writer is not None:
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                writer.add_scalar(key, value, row["epoch"])
        writer.flush()
