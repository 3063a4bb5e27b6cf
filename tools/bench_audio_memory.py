"""Peak memory and time of reading a long recording (`asr.audio.load_audio`), as a user's
30-minute 48 kHz stereo file would be read for transcription.

    python tools/bench_audio_memory.py [--minutes 30] [--rate 48000] [--channels 2] [--keep FILE]

Writes the test file (16-bit WAV: a tone on one channel, noise on the other), reads it in a fresh
process at 16 kHz with one torch thread, and prints the seconds and the process's peak RSS, beside
the RSS of a process that only imports the package (the baseline).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

READ = """
import resource, sys, time, torch
from asr.audio import load_audio
torch.set_num_threads(1)
if sys.argv[1] == "read":
    t = time.perf_counter(); audio = load_audio(sys.argv[2], 16000); seconds = time.perf_counter() - t
    print(f"read {audio.shape[0]} samples at 16 kHz in {seconds:.1f} s", end="; ")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--keep", help="write the test file here and keep it (default: a temporary file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / "long.wav")
        rng = np.random.default_rng(0)
        with sf.SoundFile(str(path), "w", args.rate, args.channels, subtype="PCM_16") as f:
            for _ in range(int(np.ceil(args.minutes))):
                t = np.arange(args.rate * 60) / args.rate
                block = [0.2 * np.sin(2 * np.pi * 440 * t)] + [rng.normal(0, 0.05, t.shape)] * (args.channels - 1)
                f.write(np.stack(block, axis=1).astype(np.float32))
        print(f"{path}: {args.minutes:g} min, {args.rate} Hz, {args.channels} channel(s)")
        for what in ("baseline", "read"):
            run = subprocess.run([sys.executable, "-c", READ, what, str(path)], capture_output=True, text=True)
            print(f"{what}: {run.stdout.strip() or run.stderr.strip()}")


if __name__ == "__main__":
    main()
