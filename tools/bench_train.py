"""Time full training steps (features, forward, CTC loss, backward, AdamW) of a model config, and
in the same run the same recurrent stack as bare cuDNN layers (`nn.LSTM`/`nn.GRU` over padded
input: no packing, no normalisation, no front end) as the ceiling to compare with.

    python tools/bench_train.py --model compact --batch 32 --seconds 3 --device cpu [--steps 5]
    python tools/bench_train.py --model ds2 --batch 32 --seconds 15 --device cuda --dtype bf16
    python tools/bench_train.py --model compact --device cuda --epoch data/an4/train.jsonl --cache

Prints audio-seconds processed per second of wall time for both, their ratio and, on CUDA, the
peak GPU memory; also the bare stack on input packed by PyTorch's `pack_padded_sequence`. Ours
steps with `asr.optim.AdamW` (as `asr train`), the bare stack with torch.optim's AdamW: on CUDA
both run PyTorch's fused AdamW kernel.
With `--rounds R` the three are timed R times in turn and the medians are reported: steps that
are bound by kernel launches move with the host's speed, and alternating keeps the comparison
fair. Utterance lengths in a batch spread uniformly over [0.7, 1.0] x `--seconds`, as after
bucketing. `--epoch MANIFEST` instead runs real training epochs of the manifest through the
training data pipeline and reports, per epoch, the fraction of wall time spent waiting for data.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from asr.config import compose_config, feature_config, model_dims
from asr.evaluate import ctc_loss
from asr.features import SpecAugmentConfig
from asr.optim import AdamW
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
    parser.add_argument("--rounds", type=int, default=1,
                        help="time ours and bare this many times, alternating; report the medians")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print the costliest operators of our step")
    parser.add_argument("--epoch", metavar="MANIFEST", help="time one real epoch of this manifest instead")
    parser.add_argument("--workers", type=int, default=4, help="data loader workers for --epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to time with --epoch")
    parser.add_argument("--cache", action="store_true", help="with --epoch: read the audio into memory first")
    parser.add_argument("--max-batch-seconds", type=float, default=320.0, help="batch budget for --epoch")
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
    optimizer = AdamW(recognizer.model.parameters(), lr=1e-4)  # as `asr train`

    n_samples = (torch.linspace(0.7, 1.0, args.batch) * args.seconds * features.sample_rate).long()
    waveforms = torch.randn(args.batch, int(n_samples.max())) * 0.1
    chars_per_second = 12  # AN4 speech runs at about 12 characters a second
    n_targets = (n_samples.float() / features.sample_rate * chars_per_second).long().clamp(min=1)
    targets = torch.randint(1, len(tokenizer), (int(n_targets.sum()),))
    # Lengths stay on the host, as the training loop keeps them; the rest lives on the device.
    waveforms, targets = waveforms.to(device), targets.to(device)
    n_out = recognizer.output_lengths(n_samples)
    use_autocast = device.type == "cuda" and args.dtype != "fp32"
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=use_autocast):
            log_probs, _ = recognizer(waveforms, n_samples)
        loss = ctc_loss(log_probs.float(), n_out, targets, n_targets) / args.batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    print(f"model {args.model} ({recognizer.model.n_parameters() / 1e6:.2f} M parameters), batch {args.batch} x "
          f"{args.seconds:g} s, {args.device} {args.dtype if use_autocast else 'fp32'}")
    if args.epoch:
        time_epoch(args, recognizer, optimizer, device, dtype, use_autocast)
        return
    audio_seconds = float(n_samples.sum()) / features.sample_rate * args.steps
    bare_step = bare_cudnn_step(recognizer, n_out, targets, n_targets, device, dtype, use_autocast)
    packed_step = bare_cudnn_step(recognizer, n_out, targets, n_targets, device, dtype, use_autocast, packed=True)
    # Rounds alternate ours and bare, so that a host that speeds up or slows down during the run
    # moves both alike; the figures printed last are the medians over the rounds.
    rounds = []
    for r in range(args.rounds):
        ours, ours_memory = timed(step, args, device)
        bare, bare_memory = timed(bare_step, args, device)
        packed, _ = timed(packed_step, args, device)
        rounds.append((ours, bare, packed))
        if args.rounds > 1:
            print(f"round {r + 1}: ours {audio_seconds / ours:.1f}, bare {audio_seconds / bare:.1f}, "
                  f"bare packed {audio_seconds / packed:.1f} audio-s/s, ours / bare {bare / ours:.1%}")
    if args.profile:
        print_profile(step, device)
    ours, bare, packed = (statistics.median(r[i] for r in rounds) for i in range(3))
    ratio = statistics.median(r[1] / r[0] for r in rounds)
    median = f" (medians of {args.rounds} rounds)" if args.rounds > 1 else ""
    print(f"ours:       {audio_seconds / ours:8.1f} audio-seconds per second  ({ours / args.steps * 1000:.0f} ms per step)"
          f"{median}")
    print(f"bare cuDNN: {audio_seconds / bare:8.1f} audio-seconds per second  ({bare / args.steps * 1000:.0f} ms per step)")
    print(f"bare cuDNN on packed input: {audio_seconds / packed:8.1f} audio-seconds per second  "
          f"({packed / args.steps * 1000:.0f} ms per step, through PyTorch's pack_padded_sequence)")
    print(f"ratio ours / bare: {ratio:.1%}")
    if device.type == "cuda":
        print(f"peak GPU memory: ours {ours_memory / 2**30:.2f} GiB, bare {bare_memory / 2**30:.2f} GiB")


def timed(step, args, device) -> tuple[float, int]:
    """Seconds for `args.steps` steps after `args.warmup`, and peak GPU memory (0 on CPU)."""
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
    memory = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return time.perf_counter() - started, memory


def bare_cudnn_step(recognizer, n_out, targets, n_targets, device, dtype, use_autocast, packed=False):
    """The recurrent stack alone, on padded input of the size our front end hands it: cuDNN
    LSTM/GRU layers, a linear output and CTC; no packing, no normalisation, no feature pipeline.

    Its layers have our layers' sizes: one multi-layer `nn.LSTM`/`nn.GRU` where directions are
    concatenated, and where they are summed (`ds2`) one layer per call with the sum in between,
    which is what makes the next layer's input `hidden` wide rather than `2 x hidden`.
    With `packed`, the same stack runs on PyTorch's PackedSequence instead, packed once.
    """
    from torch.nn.utils.rnn import (
        PackedSequence,
        pack_padded_sequence,
        pad_packed_sequence,
    )

    dims = recognizer.dims
    rnn_class = torch.nn.LSTM if dims.rnn_type == "lstm" else torch.nn.GRU
    n_input = recognizer.model.front_end.n_output
    sum_directions = dims.sum_directions and dims.bidirectional
    if sum_directions:
        layers = [rnn_class(n_input if i == 0 else dims.hidden, dims.hidden, batch_first=True, bidirectional=True)
                  for i in range(dims.n_layers)]
    else:
        layers = [rnn_class(n_input, dims.hidden, num_layers=dims.n_layers, batch_first=True,
                            bidirectional=dims.bidirectional)]
    rnn = torch.nn.ModuleList(layers).to(device)
    n_hidden = dims.hidden * (2 if dims.bidirectional and not sum_directions else 1)
    output = torch.nn.Linear(n_hidden, dims.n_tokens).to(device)
    params = [*rnn.parameters(), *output.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    x = torch.randn(len(n_out), int(n_out.max()), n_input, device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=use_autocast):
            hidden = pack_padded_sequence(x, n_out, batch_first=True, enforce_sorted=False) if packed else x
            for layer in rnn:
                hidden, _ = layer(hidden)
                if sum_directions:
                    data = hidden.data if packed else hidden
                    data = data.view(*data.shape[:-1], 2, -1).sum(-2)
                    hidden = PackedSequence(data, *hidden[1:]) if packed else data
            if packed:
                hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=x.shape[1])
            logits = output(hidden)
        loss = ctc_loss(logits.float().log_softmax(-1), n_out, targets, n_targets) / x.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def print_profile(step, device) -> None:
    """The operators that took the most time over three of our steps."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=60))


def time_epoch(args, recognizer, optimizer, device, dtype, use_autocast) -> None:
    """Epochs of a manifest through the training pipeline (the same loader, stream of epochs and
    audio cache as `asr train`); per epoch, the share of wall time spent waiting for data. The
    GPU is synchronised after every step, so that time spent waiting is time the GPU sat idle."""
    import itertools

    from torch.utils.data import DataLoader

    from asr.data import (
        BucketBatchSampler,
        EpochStream,
        UtteranceDataset,
        cache_audio,
        collate,
    )
    from asr.manifest import read_manifest
    from asr.train import WaitClock, batch_loss

    utterances = read_manifest(args.epoch)
    rate = recognizer.features.sample_rate
    cache = cache_audio(utterances, rate, progress=False) if args.cache else None
    dataset = UtteranceDataset(utterances, recognizer.tokenizer, rate, cache=cache)
    sampler = BucketBatchSampler([u.duration for u in utterances], args.max_batch_seconds, args.batch)
    stream = EpochStream(sampler, 0, args.epochs)
    loader = iter(DataLoader(dataset, batch_sampler=stream, collate_fn=collate, num_workers=args.workers,
                             pin_memory=device.type == "cuda"))
    autocast = torch.autocast(device.type, dtype=dtype, enabled=use_autocast)
    for epoch in range(args.epochs):
        n_batches = stream.epoch_length(epoch)
        batches = WaitClock(itertools.islice(loader, n_batches), n_batches)
        audio_seconds, started = 0.0, time.perf_counter()
        for batch in batches:
            if not batch.utterances:  # all of its audio unreadable (logged)
                continue
            loss = batch_loss(recognizer, batch, device, autocast) / len(batch.utterances)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()  # so that waiting is not hidden behind queued GPU work
            audio_seconds += sum(u.duration for u in batch.utterances)
        elapsed = time.perf_counter() - started
        print(f"epoch {epoch + 1} of {args.epoch}: {elapsed:.2f} s, {audio_seconds / elapsed:.1f} audio-seconds per "
              f"second, waiting for data {batches.waited / elapsed:.1%} of the time ({args.workers} workers, "
              f"{'cached' if args.cache else 'read from disk'})")


if __name__ == "__main__":
    main()
