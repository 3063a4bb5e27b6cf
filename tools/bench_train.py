"""Time full training steps (features, forward, CTC loss, backward, AdamW) of a model config.

    python tools/bench_train.py --model compact --batch 32 --seconds 3 --device cpu [--steps 5]
    python tools/bench_train.py --model bigru --batch 32 --seconds 15 --device cuda --dtype bf16

Prints audio-seconds processed per second of wall time and, on CUDA, the peak GPU memory.
Utterance lengths in a batch spread uniformly over [0.7, 1.0] x `--seconds`, as after bucketing.
"""
from __future__ import annotations

import argparse
import time

import torch
from asr.config import compose_config, feature_config, model_dims
from asr.evaluate import ctc_loss
from asr.features import SpecAugmentConfig
from asr.recognizer import Recognizer
from asr.tokenizer import CharTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="compact", help="a conf/model option")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0, help="longest utterance in the batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.hidden=384")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = compose_config([f"model={args.model}", *args.overrides])
    features = feature_config(cfg)
    tokenizer = CharTokenizer.build(["ABCDEFGHIJKLMNOPQRSTUVWXYZ' "])
    dims = model_dims(cfg, len(tokenizer))
    mean, std = torch.zeros(features.n_features), torch.ones(features.n_features)
    device = torch.device(args.device)
    recognizer = Recognizer(features, dims, tokenizer, mean, std, SpecAugmentConfig()).to(device).train()
    optimizer = torch.optim.AdamW(recognizer.model.parameters(), lr=1e-4, fused=device.type == "cuda")

    n_samples = (torch.linspace(0.7, 1.0, args.batch) * args.seconds * features.sample_rate).long()
    waveforms = torch.randn(args.batch, int(n_samples.max())) * 0.1
    chars_per_second = 12  # AN4 speech runs at about 12 characters a second
    n_targets = (n_samples.float() / features.sample_rate * chars_per_second).long().clamp(min=1)
    targets = torch.randint(1, len(tokenizer), (int(n_targets.sum()),))
    waveforms, n_samples = waveforms.to(device), n_samples.to(device)
    targets, n_targets = targets.to(device), n_targets.to(device)
    use_autocast = device.type == "cuda" and args.dtype != "fp32"
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=use_autocast):
            log_probs, n_frames = recognizer(waveforms, n_samples)
        loss = ctc_loss(log_probs.float(), n_frames, targets, n_targets) / args.batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    audio_seconds = float(n_samples.sum()) / features.sample_rate * args.steps
    print(f"model {args.model} ({recognizer.model.n_parameters() / 1e6:.2f} M parameters), batch {args.batch} x "
          f"{args.seconds:g} s, {args.device} {args.dtype if use_autocast else 'fp32'}")
    print(f"audio-seconds per second: {audio_seconds / elapsed:.1f}  ({elapsed / args.steps * 1000:.0f} ms per step)")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
