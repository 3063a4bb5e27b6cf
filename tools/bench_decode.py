"""Real-time factor of decoding a manifest, and peak memory of transcribing a one-hour recording.

    python tools/bench_decode.py --manifest data/an4/test.jsonl [--model CKPT] [--threads 2] [--segmenter vad|energy]

RTF = wall time / audio duration, for the whole `decode_utterances` path (reading audio, features,
model, decoder) with greedy and with the LM decoder of the model's decoder.json. The one-hour
file is AN4 utterances of the manifest repeated with 1 s silences, written as FLAC; `asr
transcribe` runs on it in a child process whose peak resident memory is reported.
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
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.decoding import make_decoder, read_beam_options
from asr.evaluate import decode_utterances, score
from asr.manifest import read_manifest
from asr.recognizer import BUILTIN_MODEL, load_recognizer
from asr.segment import DEFAULT_SEGMENTER, SEGMENTERS


def one_hour_file(utterances, path: Path, seconds: float = 3600.0, rate: int = 16000) -> Path:
    clips = [load_audio(u.audio, rate) for u in utterances]
    gap = np.random.default_rng(0).normal(0, 1e-3, rate).astype(np.float32)
    with sf.SoundFile(str(path), "w", rate, 1, format="FLAC") as f:
        written, i = 0, 0
        while written < seconds * rate:
            for piece in (clips[i % len(clips)], gap):
                f.write(piece)
                written += len(piece)
            i += 1
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--model", default=str(BUILTIN_MODEL))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hour", action=argparse.BooleanOptionalAction, default=True, help="run the one-hour test")
    parser.add_argument("--segmenter", choices=sorted(SEGMENTERS), default=DEFAULT_SEGMENTER,
                        help="how asr transcribe cuts the one-hour file (default: asr transcribe's, %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    utterances = read_manifest(args.manifest)
    audio_seconds = sum(u.duration for u in utterances)
    recognizer = load_recognizer(args.model)
    options = read_beam_options(Path(args.model).parent / "decoder.json")
    print(f"model {args.model}, {len(utterances)} utterances, {audio_seconds:.1f} s of audio, {args.threads} threads")
    for name in ("greedy", "lm"):
        decoder = make_decoder(name, recognizer.tokenizer, options)
        decode_utterances(recognizer, utterances[:8], decoder)  # warm-up
        started = time.perf_counter()
        report = score(utterances, decode_utterances(recognizer, utterances, decoder))
        elapsed = time.perf_counter() - started
        print(f"{name:6s} RTF {elapsed / audio_seconds:.4f}  ({elapsed:.1f} s)  WER {report['wer']:.2f}%  CER {report['cer']:.2f}%")
    if not args.hour:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = one_hour_file(utterances, Path(tmp) / "hour.flac")
        duration = sf.info(str(path)).duration
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "asr", "transcribe", "--model", args.model, "--device", "cpu",
                        "--format", "json", "--output-dir", tmp, "--threads", str(args.threads),
                        "--segmenter", args.segmenter, str(path)], check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
        body = __import__("json").loads((Path(tmp) / "hour.json").read_text())
        n_words = sum(len(s["words"]) for s in body["segments"])
        print(f"one-hour file ({duration / 60:.1f} min): transcribed (greedy, with word times, "
              f"--segmenter {args.segmenter}) in {elapsed:.0f} s, "
              f"RTF {elapsed / duration:.4f}, peak memory {peak:.2f} GiB, {len(body['segments'])} segments, {n_words} words")


if __name__ == "__main__":
    main()
