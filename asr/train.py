"""train(cfg): the training loop, checkpoints, resume and logging."""
from __future__ import annotations

import csv
import io
import itertools
import logging
import random
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.config import feature_config, model_dims, specaugment_config
from asr.data import (
    Batch,
    BucketBatchSampler,
    EpochStream,
    UtteranceDataset,
    cache_audio,
    collate,
)
from asr.devices import pick_device, to_device
from asr.distributed import barrier, init_distributed, shutdown
from asr.evaluate import ctc_loss, decode_utterances, evaluate, format_report, score
from asr.features import FeatureConfig, FeatureExtractor, StatsAccumulator
from asr.manifest import Utterance, atomic_write_text, read_manifest
from asr.optim import AdamW, lr_factor, set_lr
from asr.recognizer import Recognizer, load_recognizer, read_checkpoint
from asr.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

METRICS = ["epoch", "step", "lr", "train_loss", "dev_loss", "dev_cer", "dev_wer", "epoch_seconds",
           "audio_seconds_per_second", "data_wait", "skipped"]


def estimate_stats(features: FeatureConfig, utterances: list[Utterance], max_utterances: int, seed: int,
                   progress: bool = True, cache=None):
    """Per-bin mean and standard deviation of the features over (a sample of) the training set."""
    sample = random.Random(seed).sample(utterances, min(max_utterances, len(utterances)))
    extractor = FeatureExtractor(features)
    accumulator = StatsAccumulator(features.n_features)
    dataset = UtteranceDataset(sample, None, features.sample_rate, cache=cache)
    for utt, audio, _ in tqdm(dataset, desc="feature statistics", unit="utt", leave=False, disable=not progress):
        if audio is not None:
            feats, n_frames = extractor(audio[None], torch.tensor([audio.shape[0]]))
            accumulator.add(feats, n_frames)
    return accumulator.result()


def build_recognizer(cfg: DictConfig, train_utts: list[Utterance], resume: dict | None, progress: bool = True,
                     cache=None) -> Recognizer:
    specaugment = specaugment_config(cfg)
    if resume is not None:
        return Recognizer.from_checkpoint(resume, specaugment)
    features = feature_config(cfg)
    tokenizer = CharTokenizer.build(u.text for u in train_utts)
    mean, std = estimate_stats(features, train_utts, cfg.train.stats_utterances, cfg.seed, progress, cache)
    return Recognizer(features, model_dims(cfg, len(tokenizer)), tokenizer, mean, std, specaugment)


def batch_loss(model, batch: Batch, device: torch.device, autocast) -> torch.Tensor:
    """Summed CTC loss of `batch` (`model` is the recogniser, or its DistributedDataParallel wrapper).

    Lengths stay on the host and the rest is copied without blocking, so queuing the step never
    waits for the GPU (the CUDA CTC loss itself still syncs once, as any PyTorch CTC loss does).
    """
    recognizer = getattr(model, "module", model)
    with autocast:
        log_probs, _ = model(to_device(batch.waveforms, device), batch.n_samples)
    n_frames = recognizer.output_lengths(batch.n_samples)
    return ctc_loss(log_probs.float(), n_frames, to_device(batch.targets, device), batch.n_targets)


def placeholder_batch(recognizer: Recognizer) -> Batch:
    """One window of silence with a one-token target, for a rank whose batch was all unreadable."""
    n = recognizer.features.win_samples
    one = torch.ones(1, dtype=torch.long)
    return Batch([], torch.zeros(1, n), torch.tensor([n]), one, one, 0)


def train(cfg: DictConfig) -> Path:
    """Train as `cfg` says; returns the path of the best checkpoint (by dev WER).

    Under torchrun each process trains on its share of every global batch; rank 0 evaluates,
    logs and writes checkpoints.
    """
    rank, device = init_distributed(pick_device(cfg.device))
    out_dir = Path(cfg.out_dir)
    if rank.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".*.pt.*.tmp"):  # left by a kill during a save
            stale.unlink()
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed + rank.rank)  # speed perturbation differs between ranks
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    train_utts = read_manifest(cfg.data.train)
    dev_utts = read_manifest(cfg.data.dev) if cfg.data.get("dev") else []
    if cfg.train.test_best and not cfg.data.get("test"):
        raise ValueError("train.test_best=true needs a test manifest: data.test=PATH")
    # Read now, so that a bad test manifest stops the run before training rather than after it.
    test_utts = read_manifest(cfg.data.test) if cfg.train.test_best else []
    resume = read_checkpoint(cfg.train.resume) if cfg.train.resume else None
    if resume is not None and "optimizer" not in resume:
        raise ValueError(f"{cfg.train.resume}: holds no training state to resume from")
    # A resumed run keeps its checkpoint's features, whatever the configuration says now.
    sample_rate = resume["features"]["sample_rate"] if resume is not None else feature_config(cfg).sample_rate
    cache = cache_audio(train_utts + dev_utts, sample_rate, progress=rank.is_main) if cfg.train.cache_audio else None
    recognizer = build_recognizer(cfg, train_utts, resume, rank.is_main, cache).to(device)
    model = recognizer
    if rank.distributed:
        # No device_ids: DDP would then copy every input to the GPU, and the lengths must stay on the host.
        model = DistributedDataParallel(recognizer)
    if rank.is_main:
        log.info("model: %s, %.2f M parameters, %d process(es)", cfg.model.name,
                 recognizer.model.n_parameters() / 1e6, rank.world)

    o = cfg.optim
    optimizer = AdamW(recognizer.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    sampler = BucketBatchSampler([u.duration for u in train_utts], cfg.train.max_batch_seconds,
                                 cfg.train.max_batch, True, cfg.seed, rank.rank, rank.world)
    total_steps = cfg.train.epochs * len(sampler)

    def schedule(step: int) -> float:
        return o.lr * lr_factor(step, total_steps, o.warmup_fraction, o.final_lr_ratio)

    start_epoch, step, best_wer = 0, 0, float("inf")
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        start_epoch, step, best_wer = resume["epoch"] + 1, resume["step"], resume["best_wer"]
        if rank.is_main:
            log.info("resuming from %s after epoch %d", cfg.train.resume, resume["epoch"] + 1)
            _trim_metrics(out_dir, resume["epoch"] + 1)
        if resume.get("world", rank.world) != rank.world:
            # Another number of processes takes another number of steps per epoch: the schedule
            # goes on from the same share of the training, in this run's steps.
            step = start_epoch * len(sampler)
            if rank.is_main:
                log.info("the checkpoint was written by %d process(es), this run has %d: the learning-rate "
                         "schedule continues from step %d of %d", resume["world"], rank.world, step, total_steps)

    dataset = UtteranceDataset(train_utts, recognizer.tokenizer, sample_rate, cfg.train.speeds, cache)
    dev_data = UtteranceDataset(dev_utts, recognizer.tokenizer, sample_rate, cache=cache)
    stream = EpochStream(sampler, start_epoch, cfg.train.epochs)
    loader = iter(DataLoader(dataset, batch_sampler=stream, collate_fn=collate, num_workers=cfg.train.num_workers,
                             pin_memory=device.type == "cuda"))
    autocast = _autocast(device, cfg.train.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.train.precision == "fp16")
    writer = _tensorboard(out_dir) if rank.is_main and cfg.train.tensorboard else None
    config_dict = OmegaConf.to_container(cfg, resolve=True)

    for epoch in range(start_epoch, cfg.train.epochs):
        recognizer.train()
        started, audio_seconds, n_utts, n_skipped = time.time(), 0.0, 0, 0
        loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per step
        n_batches = stream.epoch_length(epoch)  # sorts the corpus: once per epoch
        batches = WaitClock(itertools.islice(loader, n_batches), n_batches)
        progress = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="batch", leave=False,
                        disable=not rank.is_main)
        for batch in progress:
            n_skipped += batch.n_skipped
            optimizer.zero_grad(set_to_none=True)
            if batch.utterances:
                loss = batch_loss(model, batch, device, autocast)
                scaler.scale(loss / len(batch.utterances)).backward()
            elif rank.distributed:  # nothing readable here, but the other ranks wait for our gradients
                (batch_loss(model, placeholder_batch(recognizer), device, autocast) * 0.0).backward()
                continue
            else:
                continue
            set_lr(optimizer, schedule(step))
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(recognizer.model.parameters(), cfg.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            loss_sum += loss.detach()
            n_utts += len(batch.utterances)
            audio_seconds += sum(u.duration for u in batch.utterances)
            if rank.is_main and step % 50 == 0:  # reading the loss waits for the GPU: now and then only
                progress.set_postfix(loss=f"{float(loss_sum) / n_utts:.3f}",
                                     audio_s_per_s=f"{audio_seconds / (time.time() - started):.0f}")
        last_epoch = epoch + 1 == cfg.train.epochs
        checked = last_epoch or (epoch + 1) % cfg.train.check_every == 0
        if not rank.is_main:
            if checked:
                barrier(rank)  # rank 0 evaluates and saves meanwhile
            continue
        train_loss = float(loss_sum) / max(1, n_utts)
        epoch_seconds = time.time() - started
        row = {
            "epoch": epoch + 1, "step": step, "lr": schedule(step),
            "train_loss": train_loss, "epoch_seconds": round(epoch_seconds, 2),
            "audio_seconds_per_second": round(audio_seconds * rank.world / epoch_seconds, 1),
            "data_wait": round(batches.waited / epoch_seconds, 4), "skipped": n_skipped,
        }
        if n_skipped:
            log.warning("epoch %d: skipped %d utterance(s) whose audio could not be read", epoch + 1, n_skipped)
        if not checked:
            log.info("epoch %d: %s", epoch + 1, _format_row(row))
            _log_metrics(out_dir, row, writer)
            continue
        if dev_utts:
            dev = score(dev_utts, decode_utterances(recognizer, dev_data, max_batch_seconds=cfg.train.max_batch_seconds))
            row.update(dev_loss=dev["loss"], dev_cer=dev["cer"], dev_wer=dev["wer"])
        log.info("epoch %d: %s", epoch + 1, _format_row(row))
        # Without a dev set the latest model is the best one we know of.
        is_best = not dev_utts or row["dev_wer"] <= best_wer
        if dev_utts:
            best_wer = min(best_wer, row["dev_wer"])
        state = dict(
            epoch=epoch, step=step, world=rank.world, best_wer=best_wer, metrics=row, config=config_dict,
            optimizer=optimizer.state_dict(),
        )
        # Before the checkpoint: a resumed run drops the rows of epochs after its checkpoint.
        _log_metrics(out_dir, row, writer)
        recognizer.save(out_dir / "last.pt", **state)
        if is_best:
            recognizer.save(out_dir / "best.pt", epoch=epoch, metrics=row, config=config_dict)
        barrier(rank)
    if writer is not None:
        writer.close()
    shutdown(rank)
    best = out_dir / "best.pt"
    best = best if best.exists() else out_dir / "last.pt"
    if rank.is_main and cfg.train.test_best:
        test_checkpoint(best, test_utts, cfg.data.test, out_dir / "test.json", device, cfg.train.max_batch_seconds)
    return best


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


def _read_metrics(out_dir: Path) -> list[dict]:
    path = out_dir / "metrics.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_metrics(out_dir: Path, rows: list[dict]) -> None:
    """Rewritten whole and atomically (a few hundred rows at most), so that a kill leaves a whole
    file and a file from an older version gets today's columns."""
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=METRICS, extrasaction="ignore")
    w.writeheader()
    w.writerows({k: row.get(k, "") for k in METRICS} for row in rows)
    atomic_write_text(out_dir / "metrics.csv", text.getvalue())


def _trim_metrics(out_dir: Path, epochs: int) -> None:
    """Drop the metrics.csv rows of epochs after `epochs` (they run again after a resume)."""
    rows = _read_metrics(out_dir)
    kept = [row for row in rows if int(row["epoch"]) <= epochs]
    if len(kept) < len(rows):
        _write_metrics(out_dir, kept)


def _log_metrics(out_dir: Path, row: dict, writer) -> None:
    _write_metrics(out_dir, [*_read_metrics(out_dir), row])
    if writer is not None:
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                writer.add_scalar(key, value, row["epoch"])
        writer.flush()
