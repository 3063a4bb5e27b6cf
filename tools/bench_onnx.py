"""Real-time factor and WER of the PyTorch model against its ONNX export (fp32 and int8).

    python tools/bench_onnx.py --model asr/assets/an4/model.pt --manifest data/an4/test.jsonl \
        [--onnx DIR] [--threads 1 2]

Exports the checkpoint to DIR (default: a temporary folder) with `--int8`, then for each thread
count transcribes every utterance of the manifest with each backend (greedy decoding, batches of
8 as `asr transcribe` makes them, audio read beforehand; the fastest of `--repeats` passes) and
prints seconds of compute per second of audio (RTF), the speed-up over PyTorch fp32 and the WER.
Threads as `asr transcribe --threads N` sets them: PyTorch gets N; with ONNX, onnxruntime gets N and
torch, which only decodes, one. Run it alone: the machine is shared.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from asr.audio import load_audio
from asr.decoding import GreedyDecoder
from asr.export import export_onnx
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.onnx_backend import OnnxRecognizer
from asr.recognizer import load_recognizer
from asr.transcribe import transcribe_audio


def run(recognizer, audios, decoder, repeats: int = 1) -> tuple[float, list[str]]:
    """The fastest of `repeats` passes over the audio (the machine is shared), and the texts."""
    spent = []
    for _ in range(repeats):
        began = time.perf_counter()
        texts = [transcribe_audio(recognizer, audio, decoder).text for audio in audios]
        spent.append(time.perf_counter() - began)
    return min(spent), texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="asr/assets/an4/model.pt")
    parser.add_argument("--manifest", default="data/an4/test.jsonl")
    parser.add_argument("--onnx", help="export folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="passes per backend; the fastest counts")
    args = parser.parse_args()
    folder = args.onnx or tempfile.mkdtemp(prefix="asr-onnx-")
    export_onnx(args.model, folder, int8=True)
    utts = read_manifest(args.manifest)
    audios = [load_audio(u.audio) for u in utts]
    seconds = sum(len(a) for a in audios) / 16000
    refs = [u.text for u in utts]
    print(f"{len(utts)} utterances, {seconds:.1f} s of audio; model {args.model}")
    print("| threads | backend | compute s | RTF | speed-up vs PyTorch fp32 | WER |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        backends = {"PyTorch fp32": load_recognizer(args.model),
                    "ONNX fp32": OnnxRecognizer(folder, threads=threads),
                    "ONNX int8": OnnxRecognizer(folder, int8=True, threads=threads)}
        base = None
        for name, recognizer in backends.items():
            # as asr transcribe runs them: torch gets the threads, or onnxruntime does and torch,
            # which then only decodes, one
            torch.set_num_threads(threads if name.startswith("PyTorch") else 1)
            decoder = GreedyDecoder(recognizer.tokenizer)
            run(recognizer, audios[:5], decoder)  # warm-up
            spent, texts = run(recognizer, audios, decoder, args.repeats)
            base = base or spent
            wer = error_rates(refs, texts).wer
            print(f"| {threads} | {name} | {spent:.2f} | {spent / seconds:.4f} | {base / spent:.2f}x | {wer:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
