"""A run's `metrics.csv`: a row per epoch, read by `asr train` (to resume) and `asr average` (to
rank epochs by dev WER)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from asr.manifest import atomic_write_text

METRICS = ["epoch", "step", "lr", "train_loss", "dev_loss", "dev_cer", "dev_wer", "epoch_seconds",
           "audio_seconds_per_second", "data_wait", "skipped", "nonfinite", "infeasible"]


def read_metrics(out_dir: Path) -> list[dict]:
    path = Path(out_dir) / "metrics.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_metrics(out_dir: Path, rows: list[dict]) -> None:
    """Rewritten whole and atomically (a few hundred rows at most), so that a kill leaves a whole
    file and a file from an older version gets today's columns."""
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=METRICS, extrasaction="ignore")
    w.writeheader()
    w.writerows({k: row.get(k, "") for k in METRICS} for row in rows)
    atomic_write_text(Path(out_dir) / "metrics.csv", text.getvalue())


def trim_metrics(out_dir: Path, epochs: int) -> None:
    """Drop the rows of epochs after `epochs` (they run again after a resume)."""
    rows = read_metrics(out_dir)
    kept = [row for row in rows if int(row["epoch"]) <= epochs]
    if len(kept) < len(rows):
        write_metrics(out_dir, kept)
