"""Set-up time and memory of the training data path for a large manifest: open the manifest
(lazily, `asr.manifest.Manifest`), build the length-bucketing sampler and cut one epoch's batches,
as `asr train` does before its first step.

    python tools/bench_sampler.py [--hours 1000] [--threads 1]

The manifest is synthetic (durations 1-20 s, uniform; LibriSpeech-like ids, paths and texts), written
to a temporary folder. Each measurement runs in a fresh process, so that its peak resident memory
(ru_maxrss) is its own; the figure printed is the peak above the process's state after imports.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEASURE = r"""
import resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from asr.data import BucketBatchSampler
from asr.manifest import Manifest, read_manifest
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if sys.argv[2] == "lazy":
    utts = Manifest(sys.argv[1]); durations = utts.durations
else:  # everything in memory, as read_manifest gives it
    utts = read_manifest(sys.argv[1]); durations = [u.duration for u in utts]
opened = time.perf_counter()
sampler = BucketBatchSampler(durations, max_seconds=320, max_batch=32, seed=1)
n_batches = len(sampler)  # the first epoch's batches (kept for its iteration)
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{sys.argv[2]}: {len(utts)} utterances, open {opened - started:.2f} s, sampler + first epoch "
      f"{done - opened:.2f} s, total {done - started:.2f} s, {n_batches} batches, "
      f"peak memory +{(peak - base) / 1024:.0f} MiB")
"""


def write_synthetic(path: Path, hours: float, seed: int = 0) -> int:
    rng = random.Random(seed)
    total, n = 0.0, 0
    with path.open("w") as f:
        while total < hours * 3600:
            duration = round(rng.uniform(1.0, 20.0), 2)
            speaker, chapter = rng.randrange(2500), rng.randrange(300)
            utt_id = f"{speaker}-{chapter}-{n:06d}"
            text = " ".join(rng.choice(["THE", "SPEECH", "OF", "A", "READER", "IN", "CHAPTER", "NINE"])
                            for _ in range(int(duration * 2.5)))
            f.write(json.dumps({"id": utt_id, "audio": f"/corpora/LibriSpeech/train/{speaker}/{chapter}/{utt_id}.flac",
                                "duration": duration, "text": text, "speaker": str(speaker)}) + "\n")
            total += duration
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1000.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "train.jsonl"
        started = time.perf_counter()
        n = write_synthetic(manifest, args.hours)
        print(f"synthetic manifest: {args.hours:g} h, {n} utterances, {manifest.stat().st_size / 1e6:.0f} MB "
              f"(written in {time.perf_counter() - started:.1f} s); torch threads {args.threads}")
        for mode in ("lazy", "in-memory"):
            subprocess.run([sys.executable, "-c", MEASURE, str(manifest), mode, str(args.threads)], check=True)


if __name__ == "__main__":
    main()
