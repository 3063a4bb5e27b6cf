"""Checkpoint averaging, as icefall and ESPnet do: the element-wise mean of the weights of several
epochs of one run, which usually scores better than any one of them.

A run keeps the weights of its epochs when `train.keep_epochs` > 0 (`OUT/epochs/epoch-NNN.pt`, the
newest N and the N best by dev WER); `average` takes any checkpoints of one model shape.
"""
from __future__ import annotations

import re
from pathlib import Path

from asr.errors import AsrError
from asr.recognizer import read_checkpoint, save_atomic
from asr.run_metrics import read_metrics

EPOCH_FILE = re.compile(r"epoch-(\d+)\.pt$")


class AverageError(AsrError):
    """Checkpoints that cannot be averaged; the message names the file and the reason."""


def epoch_files(out_dir: str | Path) -> dict[int, Path]:
    """The kept epoch checkpoints of a run, by epoch number (1-based)."""
    folder = Path(out_dir) / "epochs"
    found = {int(m.group(1)): p for p in folder.glob("epoch-*.pt") if (m := EPOCH_FILE.search(p.name))}
    if not found:
        raise AverageError(f"{folder}: no epoch checkpoints (train with train.keep_epochs=N to keep them)")
    return found


def dev_wers(out_dir: str | Path) -> dict[int, float]:
    """Dev WER by epoch, from the run's metrics.csv (the kept checkpoints are never opened to rank them)."""
    return {int(row["epoch"]): float(row["dev_wer"]) for row in read_metrics(Path(out_dir)) if row.get("dev_wer")}


def _by_dev_wer(epochs, wers: dict[int, float]) -> list[int]:
    return sorted((e for e in epochs if e in wers), key=lambda e: (wers[e], e))


def pick(out_dir: str | Path, last: int = 0, best: int = 0) -> list[Path]:
    """The newest `last`, or the `best` by dev WER, of a run's kept epochs."""
    files = epoch_files(out_dir)
    n = last or best
    if n < 1 or (last and best):
        raise AverageError("say how many epochs to average: --last N or --best N (N >= 1), not both")
    if n > len(files):
        raise AverageError(f"{out_dir}: {len(files)} epoch checkpoint(s) kept, fewer than the {n} asked for")
    if last:
        return [files[e] for e in sorted(files)[-n:]]
    wers = dev_wers(out_dir)
    unranked = sorted(set(files) - set(wers))
    if unranked:
        raise AverageError(f"{out_dir}: no dev WER for epoch {unranked[0]} in metrics.csv to rank it by "
                           "(trained without a dev set?)")
    return [files[e] for e in _by_dev_wer(files, wers)[:n]]


def average(paths: list[str | Path]) -> dict:
    """The first checkpoint with `model` replaced by the mean of all their float tensors (integer
    tensors, such as batch-norm counters, come from the last one)."""
    if not paths:
        raise AverageError("no checkpoints to average")
    checkpoints = [read_checkpoint(p) for p in paths]
    first = checkpoints[0]
    for path, other in zip(paths[1:], checkpoints[1:]):
        if other["dims"] != first["dims"] or list(other["vocab"]) != list(first["vocab"]):
            raise AverageError(f"{path}: a different model (dimensions or vocabulary) from {paths[0]}")
    model = {}
    for key, value in first["model"].items():
        if value.is_floating_point():
            model[key] = (sum(c["model"][key].double() for c in checkpoints) / len(checkpoints)).to(value.dtype)
        else:
            model[key] = checkpoints[-1]["model"][key]
    keep = ("format_version", "dims", "features", "vocab", "tokenizer", "norm_mean", "norm_std", "config")
    return {**{k: first[k] for k in keep if k in first}, "model": model,
            "averaged": [str(p) for p in paths], "epoch": checkpoints[-1].get("epoch")}


def write_average(paths: list[str | Path], out: str | Path) -> Path:
    return save_atomic(average(paths), out)


def prune_epochs(out_dir: str | Path, keep: int) -> None:
    """Keep the newest `keep` and the `keep` best (by dev WER, where known) epoch checkpoints."""
    files = epoch_files(out_dir)
    newest = sorted(files)[-keep:]
    best = _by_dev_wer(files, dev_wers(out_dir))[:keep]
    for epoch, path in files.items():
        if epoch not in newest and epoch not in best:
            path.unlink()
