"""Decode a manifest, score it, and write a report."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from asr.data import Batch, BucketBatchSampler, UtteranceDataset, collate
from asr.decoding import Decoder, GreedyDecoder
from asr.devices import to_device
from asr.errors import InputError
from asr.manifest import Utterance, atomic_write_text
from asr.metrics import error_rates, normalize_text, token_error_rate, utterance_wer
from asr.progress import progress_bar
from asr.recognizer import Recognizer
from asr.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class DecodeResult:
    """Hypotheses by utterance id, the greedy path's tokens by utterance id (whatever the decoder),
    the mean CTC loss per utterance, and how many were skipped."""

    hypotheses: dict[str, str] = field(default_factory=dict)
    greedy_tokens: dict[str, list[int]] = field(default_factory=dict)
    loss: float = float("nan")
    n_skipped: int = 0


def ctc_loss(log_probs, n_frames, targets, n_targets) -> torch.Tensor:
    """Summed CTC loss over the batch, `log_probs: (batch, frames, n_tokens)`."""
    return F.ctc_loss(
        log_probs.transpose(0, 1), targets, n_frames, n_targets, blank=0, reduction="sum", zero_infinity=True
    )


@torch.no_grad()
def forward_batches(
    recognizer: Recognizer,
    utterances: Sequence[Utterance] | UtteranceDataset,
    max_batch_seconds: float = 300.0,
    num_workers: int = 0,
    progress: bool = False,
) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
    """`(batch, log_probs, n_frames)` over length-bucketed batches, in eval mode. `utterances`
    may come as a dataset already (one that holds its audio in memory, say)."""
    was_training = recognizer.training
    recognizer.eval()
    dataset = utterances
    if not isinstance(dataset, UtteranceDataset):
        dataset = UtteranceDataset(utterances, recognizer.tokenizer, recognizer.features.sample_rate)
    sampler = BucketBatchSampler([u.duration for u in dataset.utterances], max_batch_seconds, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)
    device = recognizer.device
    try:
        for batch in progress_bar(loader, progress, desc="decoding", unit="batch"):
            if not batch.utterances:
                yield batch, None, None
                continue
            log_probs, n_frames = recognizer(to_device(batch.waveforms, device), batch.n_samples)
            yield batch, log_probs, n_frames
    finally:
        recognizer.train(was_training)


def decode_utterances(
    recognizer: Recognizer,
    utterances: Sequence[Utterance] | UtteranceDataset,
    decoder: Decoder | None = None,
    max_batch_seconds: float = 300.0,
    num_workers: int = 0,
    progress: bool = False,
) -> DecodeResult:
    """Decode every utterance (in length-bucketed batches); unreadable audio is logged and counted."""
    greedy = GreedyDecoder(recognizer.tokenizer)
    decoder = decoder or greedy
    result, total_loss, n_scored = DecodeResult(), 0.0, 0
    device = recognizer.device
    for batch, log_probs, n_frames in forward_batches(recognizer, utterances, max_batch_seconds, num_workers, progress):
        result.n_skipped += batch.n_skipped
        if log_probs is None:
            continue
        if batch.targets is not None:
            loss = ctc_loss(log_probs, n_frames, to_device(batch.targets, device), to_device(batch.n_targets, device))
            total_loss += float(loss)
            n_scored += len(batch.utterances)
        texts = decoder.decode(log_probs, n_frames)
        result.hypotheses.update({u.id: text for u, text in zip(batch.utterances, texts)})
        result.greedy_tokens.update(zip((u.id for u in batch.utterances), greedy.decode_ids(log_probs, n_frames)))
    result.loss = total_loss / n_scored if n_scored else float("nan")
    return result


def score(utterances: Sequence[Utterance], decoded: DecodeResult, n_worst: int = 10,
          exclude_unreadable: bool = False, tokenizer: Tokenizer | None = None) -> dict:
    """The report: WER/CER (percent), edit counts, every hypothesis, and the worst utterances.

    With `tokenizer`, also `ter`: the token error rate of the greedy path in the model's own units
    (phones, subword pieces or characters; word separators not counted), against the references
    as the tokenizer spells them for training (a phone model's targets leave out the words its
    dictionary lacks, so its output for them counts as insertions).

    An utterance whose audio could not be read counts, as NIST sclite would count a missing
    hypothesis, as all deletions; with `exclude_unreadable` it is left out of the figures, and
    `excluded` says how many were.
    """
    unreadable = [u for u in utterances if u.id not in decoded.hypotheses]
    scored = [u for u in utterances if u.id in decoded.hypotheses or not exclude_unreadable]
    if not scored:
        raise InputError("no utterance could be decoded")
    refs = [u.text for u in scored]
    hyps = [decoded.hypotheses.get(u.id, "") for u in scored]
    counts = error_rates(refs, hyps)
    rows = [
        {"id": u.id, "ref": normalize_text(u.text), "hyp": normalize_text(h), "wer": round(utterance_wer(u.text, h), 2),
         **({} if u.id in decoded.hypotheses else {"unreadable": True})}
        for u, h in zip(scored, hyps)
    ]
    worst = sorted(rows, key=lambda r: (-r["wer"], r["id"]))[:n_worst]
    tokens = {}
    if tokenizer is not None:
        def units(ids):
            return [t for t in ids if not tokenizer.is_separator(t)]
        ter, n_ref_tokens = token_error_rate(
            [units(tokenizer.encode(normalize_text(u.text))) for u in scored],
            [units(decoded.greedy_tokens.get(u.id, [])) for u in scored])
        tokens = {"ter": ter, "n_ref_tokens": n_ref_tokens, "token_unit": tokenizer.kind}
    return {
        **asdict(counts),
        **tokens,
        "utterances": len(scored),
        "skipped": len(unreadable),
        "excluded": len(unreadable) if exclude_unreadable else 0,
        "loss": decoded.loss,
        "worst": worst,
        "hypotheses": rows,
    }


def evaluate(
    recognizer: Recognizer,
    utterances: Sequence[Utterance] | UtteranceDataset,
    decoder: Decoder | None = None,
    report_path: str | Path | None = None,
    max_batch_seconds: float = 300.0,
    exclude_unreadable: bool = False,
    progress: bool = False,
) -> dict:
    """Decode and score `utterances` (see `score`; the token error rate included); write the JSON report to `report_path` when given."""
    decoded = decode_utterances(recognizer, utterances, decoder, max_batch_seconds, progress=progress)
    listed = utterances.utterances if isinstance(utterances, UtteranceDataset) else utterances
    report = score(listed, decoded, exclude_unreadable=exclude_unreadable, tokenizer=recognizer.tokenizer)
    if report_path:
        atomic_write_text(report_path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def format_report(report: dict) -> str:
    lines = [
        f"WER {report['wer']:.2f}%  CER {report['cer']:.2f}%  "
        f"({report['utterances']} utterances, {report['n_ref_words']} words; "
        f"{report['substitutions']} substitutions, {report['deletions']} deletions, "
        f"{report['insertions']} insertions)"
    ]
    if "ter" in report:
        lines.append(f"TER {report['ter']:.2f}% of the greedy path in the model's units ({report['token_unit']}; "
                     f"{report['n_ref_tokens']} reference tokens, word separators not counted)")
    if report["excluded"]:
        lines.append(f"excluded {report['excluded']} utterance(s) whose audio could not be read (not in the figures)")
    elif report["skipped"]:
        lines.append(f"{report['skipped']} utterance(s) whose audio could not be read count as all deletions "
                     "(--exclude-unreadable leaves them out)")
    worst = [r for r in report["worst"] if r["wer"] > 0]
    if worst:
        lines.append("worst utterances:")
        lines += [f"  {r['id']}  WER {r['wer']:.0f}%\n    ref: {r['ref']}\n    hyp: {r['hyp']}" for r in worst]
    return "\n".join(lines)
