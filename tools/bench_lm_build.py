"""Time and peak memory of `asr lm build` on a large synthetic text, and of loading its ARPA for
decoding (KenLM through the beam decoder, as `asr evaluate --decoder lm` does).

    python tools/bench_lm_build.py [--words 10000000] [--order 3] [--vocab 50000] [--keep DIR]

The text is synthetic: sentences of 5-25 words drawn from a Zipf-distributed vocabulary whose
next word depends on the previous one through a random bigram preference, so the number of
distinct n-grams grows as in real text rather than as in repeated sentences. Each step runs in its
own process: the build's peak memory is its process's ru_maxrss, the load's is measured inside
the loading process; torch runs on one thread.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LOAD = r"""
import resource, sys, time
import torch
torch.set_num_threads(1)
from asr.decoding import BeamDecoder, BeamOptions
from asr.tokenizer import BLANK, CharTokenizer
started = time.perf_counter()
tokenizer = CharTokenizer([BLANK, " ", *"0123456789W"])
BeamDecoder(tokenizer, BeamOptions(lm=sys.argv[1], lexicon=sys.argv[2]))
print(f"load for decoding: {time.perf_counter() - started:.1f} s, "
      f"peak memory of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
"""


def write_text(path: Path, n_words: int, vocab: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = [f"W{i}" for i in range(vocab)]
    # each word prefers a few successors; otherwise a Zipf draw over the whole vocabulary
    successors = rng.integers(0, vocab, size=(vocab, 4))
    written = 0
    with path.open("w") as f:
        while written < n_words:
            lengths = rng.integers(5, 26, size=10_000)
            zipf = np.minimum(rng.zipf(1.1, size=int(lengths.sum())) - 1, vocab - 1)
            follow = rng.random(zipf.shape[0]) < 0.5
            pick = rng.integers(0, 4, size=zipf.shape[0])
            ids = zipf.copy()
            for i in range(1, ids.shape[0]):
                if follow[i]:
                    ids[i] = successors[ids[i - 1], pick[i]]
            lines, start = [], 0
            for length in lengths:
                lines.append(" ".join(words[j] for j in ids[start : start + length]))
                start += length
            f.write("\n".join(lines) + "\n")
            written += int(lengths.sum())


def timed(command: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024 / 1024, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=10_000_000)
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--keep", help="write the text and the LM here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        text = folder / "text.txt"
        started = time.perf_counter()
        write_text(text, args.words, args.vocab)
        print(f"text: {args.words} words, vocabulary {args.vocab}, {text.stat().st_size / 1e6:.0f} MB "
              f"(written in {time.perf_counter() - started:.0f} s)")
        arpa, lexicon = folder / "lm.arpa", folder / "lexicon.txt"
        seconds, peak, out = timed([sys.executable, "-m", "asr", "lm", "build", "--order", str(args.order),
                                    "--text", str(text), "--out", str(arpa), "--lexicon", str(lexicon)])
        print(out.strip().splitlines()[-1])
        print(f"asr lm build --order {args.order}: {seconds:.0f} s, peak memory {peak:.2f} GiB, "
              f"ARPA {arpa.stat().st_size / 1e6:.0f} MB")
        seconds, peak, out = timed([sys.executable, "-c", LOAD, str(arpa), str(lexicon)])
        print(f"{out.strip()} (process {seconds:.1f} s with imports)")


if __name__ == "__main__":
    main()
