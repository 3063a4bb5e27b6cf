"""Word-timestamp accuracy on a file made by joining utterances with known silences between them.

    python tools/eval_timestamps.py --manifest data/an4/test.jsonl [--model CKPT] [--gap 1.0]

The silences between utterances are digital silence (zeros). Each utterance's true first-word start is its clip's offset in the joined file plus its speech
onset: the first 10 ms block more than 15 dB above the clip's 10th-percentile block. Hypothesis
words belong to the utterance whose clip (plus half a gap each side) holds their midpoint. Prints the
median and 90th-percentile error of each utterance's first-word start, and WER on the joined file
next to the per-utterance WER of the same model.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from asr.audio import load_audio
from asr.decoding import make_decoder, read_beam_options
from asr.evaluate import decode_utterances, score
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.recognizer import BUILTIN_MODEL, load_recognizer
from asr.segment import block_energy_db


def speech_onset(audio: np.ndarray, rate: int) -> float:
    """Seconds to the first 10 ms block more than 15 dB above the clip's 10th-percentile block."""
    energy = block_energy_db(audio, rate)
    loud = np.flatnonzero(energy > np.percentile(energy, 10) + 15)
    return float(loud[0]) * 0.01 if len(loud) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--model", default=str(BUILTIN_MODEL))
    parser.add_argument("--decoder", default="greedy", choices=["greedy", "beam", "lm"])
    parser.add_argument("--gap", type=float, default=1.0, help="seconds of silence between utterances")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-segment-seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = load_recognizer(args.model)
    saved = Path(args.model).parent / "decoder.json"
    decoder = make_decoder(args.decoder, recognizer.tokenizer, read_beam_options(saved) if saved.is_file() else None)
    rate = recognizer.features.sample_rate
    utterances = read_manifest(args.manifest)

    pieces, starts, ends, position = [], [], [], 0
    gap = int(args.gap * rate)
    for utt in utterances:
        clip = load_audio(utt.audio, rate)
        pieces += [np.zeros(gap, np.float32), clip]
        starts.append((position + gap) / rate + speech_onset(clip, rate))
        position += gap + len(clip)
        ends.append(position / rate)
    joined = np.concatenate(pieces + [np.zeros(gap, np.float32)])
    result = recognizer.transcribe(joined, decoder, args.max_segment_seconds)

    errors, hyps = [], [[] for _ in utterances]
    for word in result.words:
        middle = (word.start + word.end) / 2
        for k, (start, end) in enumerate(zip(starts, ends)):
            if start - args.gap / 2 <= middle < end + args.gap / 2:
                hyps[k].append(word)
                break
    for k, words in enumerate(hyps):
        if words:
            errors.append(abs(words[0].start - starts[k]))
    joined_wer = error_rates([" ".join(u.text for u in utterances)], [result.text]).wer
    single = score(utterances, decode_utterances(recognizer, utterances, decoder))
    errors_ms = np.array(errors) * 1000
    print(f"{len(utterances)} utterances joined with {args.gap:g} s gaps: {len(joined) / rate:.1f} s, "
          f"{len(result.segments)} segments; decoder {args.decoder}")
    print(f"first-word start error: median {np.median(errors_ms):.0f} ms, 90th percentile "
          f"{np.percentile(errors_ms, 90):.0f} ms, over {len(errors)} utterances with a word")
    print(f"WER joined file {joined_wer:.2f}%, per utterance {single['wer']:.2f}% "
          f"(difference {joined_wer - single['wer']:+.2f} points)")


if __name__ == "__main__":
    main()
