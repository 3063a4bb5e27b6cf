"""Streaming latency and real-time factor on a test set.

    python tools/bench_stream.py --model exp/an4_streaming/best.pt --manifest data/an4/test.jsonl \
        [--chunk-ms 40] [--threads 2]

Each utterance is fed in chunks of `--chunk-ms`, as a microphone would deliver them. A word's
latency is the time from its end (its end time in the final event, on the stream's clock) to the
moment its final text is out: the end of the chunk that completed it, plus the compute time of
that `accept` call. Prints the median and 90th percentile latency, the real-time factor (compute
over audio), and the greedy WER of the final texts.

A word's end is where the streaming model itself places it (its final event's word times). With
`--reference-model CKPT` the latency is also measured from the word ends that another model (say
the bidirectional built-in model) finds by forced alignment of the reference transcript, over the
utterances whose final text equals the reference, so that a model that emits late cannot flatter
its own figure.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from asr.alignment import align_words
from asr.audio import load_audio
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.recognizer import load_recognizer
from asr.transcribe import frame_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", default="data/an4/test.jsonl")
    parser.add_argument("--chunk-ms", type=float, default=40.0, help="as asr transcribe --stream reads")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference-model", help="checkpoint whose forced alignment of the reference gives word ends")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = load_recognizer(args.model)
    reference = load_recognizer(args.reference_model) if args.reference_model else None
    against_reference = []
    rate = recognizer.features.sample_rate
    chunk = int(rate * args.chunk_ms / 1000)
    latencies, compute, audio_seconds, refs, hyps = [], 0.0, 0.0, [], []
    for utt in read_manifest(args.manifest):
        audio = load_audio(utt.audio, rate)
        stream = recognizer.stream()
        finals, out_at = [], []  # final texts; when each final word was out
        for start in range(0, len(audio) + chunk, chunk):  # the last piece is empty: finish()
            piece = audio[start:start + chunk]
            began = time.perf_counter()
            events = stream.accept(piece) if len(piece) else stream.finish()
            spent = time.perf_counter() - began
            compute += spent
            for event in events:
                if event.kind == "final":
                    finals.append(event.text)
                    latencies += [event.audio_seconds - w.end + spent for w in event.words]
                    out_at += [event.audio_seconds + spent for _ in event.words]
        if reference is not None and " ".join(finals).split() == utt.text.split():
            log_probs, n = reference.infer([torch.from_numpy(audio)])
            words = align_words(log_probs[0, : n[0]], utt.text, reference.tokenizer, frame_seconds(reference))
            against_reference += [when - w.end for w, when in zip(words, out_at)]
        audio_seconds += len(audio) / rate
        refs.append(utt.text)
        hyps.append(" ".join(finals))
    ms = np.array(latencies) * 1000
    print(f"{len(refs)} utterances, {audio_seconds:.1f} s; chunks of {args.chunk_ms:g} ms; {args.threads} thread(s)")
    print(f"word final latency: median {np.median(ms):.0f} ms, 90th percentile {np.percentile(ms, 90):.0f} ms "
          f"over {len(ms)} words")
    if reference is not None:
        ref_ms = np.array(against_reference) * 1000
        print(f"from the word ends of {args.reference_model}: median {np.median(ref_ms):.0f} ms, 90th percentile "
              f"{np.percentile(ref_ms, 90):.0f} ms over {len(ref_ms)} words of the correctly recognised utterances")
    print(f"real-time factor {compute / audio_seconds:.4f}; greedy WER of the final text {error_rates(refs, hyps).wer:.2f}%")


if __name__ == "__main__":
    main()
