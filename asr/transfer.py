"""Starting a model from another checkpoint's weights (`train.init_from`): by name and shape,
token by token for the output layer, the forward half of a bidirectional model for a
unidirectional one, and a narrower model inside a wider one."""
from __future__ import annotations

import re

import torch

from asr.recognizer import Recognizer


def _reads_recurrent(name: str) -> bool:
    """A weight whose input is a recurrent layer's output (both directions side by side)."""
    return name == "output.weight" or (".rnn.weight_ih_l0" in name and not name.startswith("layers.0."))


def _widen(value: torch.Tensor, weights: torch.Tensor, gates: int, blocks: int) -> torch.Tensor:
    """A narrower model's recurrent weight inside the wider model's `value`: the rows of each of
    `gates` gate blocks, the columns of each of `blocks` direction blocks, the old units first. The
    old units' rows read nothing from the new units (zeros there), so the wider model starts out
    computing what the narrower one did; the new units' rows keep their fresh initialisation."""
    out = value.clone()
    if weights.dim() == 1:
        out.view(gates, -1)[:, : weights.shape[0] // gates] = weights.view(gates, -1)
        return out
    old_rows, old_columns = weights.shape[0] // gates, weights.shape[1] // blocks
    grid = out.view(gates, -1, blocks, out.shape[1] // blocks)  # gate, unit, direction, column
    grid[:, :old_rows] = 0
    grid[:, :old_rows, :, :old_columns] = weights.view(gates, old_rows, blocks, old_columns)
    return out


def init_weights(recognizer: Recognizer, checkpoint: dict) -> tuple[int, int]:
    """Start `recognizer`'s model from `checkpoint`'s weights where names and shapes match; the
    output layer's rows go token by token for the tokens both vocabularies have (the others keep
    their fresh initialisation). The features and normalisation stay the recogniser's own.
    A unidirectional model started from a bidirectional one (not summing its directions) takes the
    forward direction: its recurrent weights, and of each weight that reads a recurrent layer's
    output (the next layer's input weights, the output layer) the columns of the forward half.
    A latency-controlled bidirectional model (`model.chunk`) takes a bidirectional model's two
    directions as they are.
    A model with wider recurrent layers than the checkpoint's takes them as its first units
    (`_widen`), and starts out computing what the checkpoint's model computes.
    Returns (tensors copied whole, tensors left as they were)."""
    source, target = checkpoint["model"], recognizer.model.state_dict()
    dims, mine = checkpoint.get("dims", {}), recognizer.dims
    forward_half = (dims.get("bidirectional") and not dims.get("sum_directions") and not mine.bidirectional)
    if mine.chunk and not dims.get("chunk"):  # the chunked layer keeps its backward direction apart
        source = {re.sub(r"\.rnn\.(\w+)_reverse$", r".rnn_reverse.\1", name): w for name, w in source.items()}
    if forward_half:
        source = {name: (w[:, : w.shape[1] // 2] if w.dim() == 2 and _reads_recurrent(name) else w)
                  for name, w in source.items()}
    if dims.get("hidden", mine.hidden) < mine.hidden and dims.get("rnn_type") == mine.rnn_type:
        blocks = 2 if mine.bidirectional and not mine.sum_directions else 1
        for name, value in target.items():
            weights = source.get(name)
            if name.startswith("layers.") and ".rnn." in name and weights is not None:
                reads = blocks if _reads_recurrent(name) else 1
                source[name] = _widen(value, weights, value.shape[0] // mine.hidden, reads)
            elif name == "output.weight" and weights is not None:
                wide = torch.zeros(weights.shape[0], value.shape[1], dtype=weights.dtype)
                source[name] = _widen(wide, weights, 1, blocks)
    source_ids = {token: i for i, token in enumerate(checkpoint["vocab"])}
    shared = [(i, source_ids[t]) for i, t in enumerate(recognizer.tokenizer.vocab) if t in source_ids]
    copied, left = 0, 0
    with torch.no_grad():
        for name, value in target.items():
            weights = source.get(name)
            if weights is not None and weights.shape == value.shape and not name.startswith("output."):
                value.copy_(weights.float() if weights.is_floating_point() else weights)
                copied += 1
            elif weights is not None and name.startswith("output.") and weights.shape[1:] == value.shape[1:]:
                for mine_row, theirs in shared:
                    value[mine_row] = weights[theirs].float()
                copied += 1
            else:
                left += 1
    return copied, left
