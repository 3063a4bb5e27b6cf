"""CTC decoding strategies behind one interface."""
from __future__ import annotations

import torch


class Decoder:
    """Turns log-probabilities `(batch, frames, n_tokens)` and `n_frames` into token id lists."""

    def decode(self, log_probs: torch.Tensor, n_frames: torch.Tensor) -> list[list[int]]:
        raise NotImplementedError


class GreedyDecoder(Decoder):
    """Best token per frame, repeats merged, blanks removed."""

    def __init__(self, blank: int = 0):
        self.blank = blank

    def decode(self, log_probs: torch.Tensor, n_frames: torch.Tensor) -> list[list[int]]:
        best = log_probs.argmax(-1)  # (batch, frames)
        keep = torch.ones_like(best, dtype=torch.bool)
        keep[:, 1:] = best[:, 1:] != best[:, :-1]
        keep &= best != self.blank
        keep &= torch.arange(best.shape[1], device=best.device)[None, :] < n_frames[:, None].to(best.device)
        best, keep = best.cpu(), keep.cpu()
        return [row[mask].tolist() for row, mask in zip(best, keep)]


def make_decoder(name: str, blank: int = 0) -> Decoder:
    if name == "greedy":
        return GreedyDecoder(blank)
    raise ValueError(f"unknown decoder {name!r}; available: greedy")
