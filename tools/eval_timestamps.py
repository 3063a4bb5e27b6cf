"""Word-timestamp accuracy on a file made by joining utterances with known pauses between them.

    python tools/eval_timestamps.py --manifest data/an4/test.jsonl [--model CKPT] [--gap 1.0]
    python tools/eval_timestamps.py --segments data/an4_robust/joined/segments.jsonl [--segmenter vad]

With `--manifest` the utterances are joined here with `--gap` seconds of digital silence (zeros);
with `--segments` the file is `joined.flac` beside it, as `tools/make_robustness_sets.py` made it
(pauses of noise or room tone), and the per-utterance WER is not computed. Each utterance's true
first-word start is its clip's offset in the joined file plus its speech onset: the first 10 ms block more than 15 dB above the clip's 10th-percentile block. Hypothesis
words belong to the utterance whose clip (plus half a gap each side) holds their midpoint. Prints the
median and 90th-percentile error of each utterance's first-word start, and WER on the joined file
next to the per-utterance WER of the same model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from asr.audio import load_audio
from asr.decoding import make_decoder, read_beam_options
from asr.evaluate import decode_utterances, score
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.recognizer import BUILTIN_MODEL, load_recognizer
from asr.segment import DEFAULT_SEGMENTER, block_energy_db


def speech_onset(audio: np.ndarray, rate: int) -> float:
    """Seconds to the first 10 ms block more than 15 dB above the clip's 10th-percentile block."""
    energy = block_energy_db(audio, rate)
    loud = np.flatnonzero(energy > np.percentile(energy, 10) + 15)
    return float(loud[0]) * 0.01 if len(loud) else 0.0


def first_word_errors(words, starts: list[float], ends: list[float], margin: float) -> list[float]:
    """Seconds between each utterance's true first-word start and the first hypothesis word that
    belongs to it: the one whose midpoint lies in its clip, widened by `margin` each side.
    Utterances that got no word are left out."""
    firsts: list = [None] * len(starts)
    for word in words:
        middle = (word.start + word.end) / 2
        for k, (start, end) in enumerate(zip(starts, ends)):
            if start - margin <= middle < end + margin:
                if firsts[k] is None:
                    firsts[k] = word
                break
    return [abs(word.start - starts[k]) for k, word in enumerate(firsts) if word is not None]


def joined_silence(utterances, rate: int, gap_seconds: float) -> tuple[np.ndarray, list[float], list[float]]:
    """The clips with `gap_seconds` of zeros before each and after the last; true first-word
    starts and clip ends."""
    pieces, starts, ends, position = [], [], [], 0
    gap = int(gap_seconds * rate)
    for utt in utterances:
        clip = load_audio(utt.audio, rate)
        pieces += [np.zeros(gap, np.float32), clip]
        starts.append((position + gap) / rate + speech_onset(clip, rate))
        position += gap + len(clip)
        ends.append(position / rate)
    return np.concatenate(pieces + [np.zeros(gap, np.float32)]), starts, ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="utterances to join with digital silence")
    source.add_argument("--segments", help="segments.jsonl of a joined file (tools/make_robustness_sets.py)")
    parser.add_argument("--model", default=str(BUILTIN_MODEL))
    parser.add_argument("--decoder", default="greedy", choices=["greedy", "beam", "lm"])
    parser.add_argument("--gap", type=float, default=1.0, help="seconds of silence between utterances")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-segment-seconds", type=float, default=20.0)
    parser.add_argument("--segmenter", choices=["vad", "energy"], default=DEFAULT_SEGMENTER)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = load_recognizer(args.model)
    saved = Path(args.model).parent / "decoder.json"
    decoder = make_decoder(args.decoder, recognizer.tokenizer, read_beam_options(saved) if saved.is_file() else None)
    rate = recognizer.features.sample_rate
    if args.manifest:
        utterances = read_manifest(args.manifest)
        joined, starts, ends = joined_silence(utterances, rate, args.gap)
        texts, margin = [u.text for u in utterances], args.gap / 2
    else:
        rows = [json.loads(line) for line in Path(args.segments).read_text().splitlines() if line.strip()]
        joined = load_audio(Path(args.segments).parent / "joined.flac", rate)
        starts, ends = [r["start"] + r["onset"] for r in rows], [r["end"] for r in rows]
        texts, margin = [r["text"] for r in rows], 0.25
    result = recognizer.transcribe(joined, decoder, args.max_segment_seconds, args.segmenter)
    errors_ms = np.array(first_word_errors(result.words, starts, ends, margin)) * 1000
    joined_wer = error_rates([" ".join(texts)], [result.text]).wer
    print(f"{len(texts)} utterances joined: {len(joined) / rate:.1f} s, {len(result.segments)} segments "
          f"({args.segmenter}); decoder {args.decoder}")
    print(f"first-word start error: median {np.median(errors_ms):.0f} ms, 90th percentile "
          f"{np.percentile(errors_ms, 90):.0f} ms, over {len(errors_ms)} utterances with a word")
    if args.manifest:
        single = score(utterances, decode_utterances(recognizer, utterances, decoder))
        print(f"WER joined file {joined_wer:.2f}%, per utterance {single['wer']:.2f}% "
              f"(difference {joined_wer - single['wer']:+.2f} points)")
    else:
        print(f"WER joined file {joined_wer:.2f}%")


if __name__ == "__main__":
    main()
