"""WER of models on the robustness variants of a test set (tools/make_robustness_sets.py).

    python tools/bench_robustness.py --sets data/an4_robust \
        --model old=asr/assets/an4/model.pt --model new=exp/an4_robust/best.pt [--decoders greedy lm]

For each model and decoder: WER on every variant, and its ratio to the same model's clean WER
(the issue's bar: at most 1.5). The LM decoder's settings are `decoder.json` beside the model
(the built-in model's, or a recipe's stage 5). The joined file is transcribed as a whole (long-audio
path, `--segmenter`) and scored against the references joined; its median first-word start error
is in the last column. Prints a Markdown table; `--json` also writes the figures.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from eval_timestamps import first_word_errors  # tools/, beside this script

from asr.audio import load_audio
from asr.decoding import make_decoder, read_beam_options
from asr.evaluate import decode_utterances, score
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.recognizer import load_recognizer
from asr.segment import DEFAULT_SEGMENTER

VARIANTS = ("clean", "8k", "white10", "white5", "babble10", "babble5", "reverb03", "reverb07", "joined")


def joined_figures(recognizer, decoder, folder: Path, segmenter: str) -> tuple[float, float]:
    """WER of the joined file and the median first-word start error (ms)."""
    rows = [json.loads(line) for line in (folder / "segments.jsonl").read_text().splitlines() if line.strip()]
    audio = load_audio(folder / "joined.flac", recognizer.features.sample_rate)
    result = recognizer.transcribe(audio, decoder, 20.0, segmenter)
    wer = error_rates([" ".join(r["text"] for r in rows)], [result.text]).wer
    errors = first_word_errors(result.words, [r["start"] + r["onset"] for r in rows], [r["end"] for r in rows], 0.25)
    return wer, float(np.median(errors) * 1000) if errors else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="data/an4_robust")
    parser.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT, repeatable")
    parser.add_argument("--decoders", nargs="+", default=["greedy", "lm"], choices=["greedy", "lm"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--segmenter", choices=["vad", "energy"], default=DEFAULT_SEGMENTER)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = Path(args.sets)
    figures = []
    for spec in args.model:
        name, _, path = spec.partition("=")
        recognizer = load_recognizer(path)
        saved = Path(path).parent / "decoder.json"
        for kind in args.decoders:
            decoder = make_decoder(kind, recognizer.tokenizer, read_beam_options(saved) if saved.is_file() else None)
            row = {"model": name, "decoder": kind}
            began = time.perf_counter()
            for variant in args.variants:
                if variant == "joined":
                    row["joined"], row["joined_start_ms"] = joined_figures(recognizer, decoder, sets / "joined",
                                                                           args.segmenter)
                else:
                    utts = read_manifest(sets / variant / f"{variant}.jsonl")
                    row[variant] = score(utts, decode_utterances(recognizer, utts, decoder))["wer"]
            row["seconds"] = round(time.perf_counter() - began, 1)
            figures.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.threads} thread(s); joined file segmented by {args.segmenter}; WER % (ratio to clean)\n")
    print("| model | decoder | " + " | ".join(args.variants) + " | worst ratio | joined: median start error |")
    print("|---|---|" + "---|" * (len(args.variants) + 2))
    for row in figures:
        clean = row.get("clean")
        cells = [f"{row[v]:.2f}" + (f" ({row[v] / clean:.2f}x)" if clean and v != "clean" else "") for v in args.variants]
        worst = max((row[v] / clean for v in args.variants if v != "clean"), default=float("nan")) if clean else float("nan")
        start = f"{row['joined_start_ms']:.0f} ms" if "joined_start_ms" in row else "-"
        print(f"| {row['model']} | {row['decoder']} | " + " | ".join(cells) + f" | {worst:.2f} | {start} |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
