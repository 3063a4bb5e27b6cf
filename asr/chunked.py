"""A latency-controlled bidirectional recurrent stack (Zhang et al. 2016, "Highway long short-term
memory RNNs for distant speech recognition"; Chen and Huo 2016): streamable, with a bounded lookahead.

The frames are cut into chunks of `chunk` frames. Each chunk's window is the chunk and the
`right_context` frames after it. In every layer:
- the forward direction runs over the chunks in order, carrying its state from chunk to chunk,
  and continues from the chunk's end state over the window's right context (that state is
  thrown away);
- the backward direction starts from zero at the window's last frame and runs back over the window.

A window travels through the whole stack on its own, so a chunk's outputs need the input only up to
its window's end: `right_context` frames past the chunk, however many layers there are. Training
(`chunked_stack`, every window of a batch at once) and streaming (`WindowRunner`, a window at a time
as the audio comes) compute the same numbers. GRU only: the right context starts from the hidden
state at the chunk's end, which a GRU's output is and an LSTM's is not (its cell state).
"""
from __future__ import annotations

import torch
from torch import nn


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`x: (batch, frames, n)`: each row's first `lengths` frames in reverse order; padding
    frames stay where they are."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    lengths = lengths.to(x.device)
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class ChunkedBiLayer(nn.Module):
    """One latency-controlled bidirectional GRU layer: (norm + dropout) -> forward and backward
    GRU -> concatenated (or summed) -> (projection). Works on windows: `(n_windows, chunk +
    right_context, n_input)`; the caller runs the forward direction over the chunks (`rnn`)."""

    def __init__(self, n_input: int, dims, first: bool, norm: nn.Module):
        super().__init__()
        self.norm = norm
        self.dropout = nn.Dropout(0.0 if first else dims.dropout)
        self.rnn = nn.GRU(n_input, dims.hidden, batch_first=True)
        self.rnn_reverse = nn.GRU(n_input, dims.hidden, batch_first=True)
        self.sum_directions = dims.sum_directions
        n_rnn_out = dims.hidden * (1 if self.sum_directions else 2)
        self.projection = nn.Linear(n_rnn_out, dims.projection) if dims.projection else nn.Identity()
        self.n_output = dims.projection or n_rnn_out

    def inputs(self, windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Norm and dropout over the valid frames of the windows (`valid`: `(n_windows, frames)`)."""
        out = windows.new_zeros(windows.shape)
        out[valid] = self.dropout(self.norm(windows[valid]))
        return out

    def outputs(self, a: torch.Tensor, chunk_forward: torch.Tensor, n_chunk: torch.Tensor,
                n_window: torch.Tensor) -> torch.Tensor:
        """`a`: the windows' inputs after `inputs`; `chunk_forward: (n_windows, chunk, hidden)`: the
        forward direction's outputs over each window's chunk frames (`n_chunk` of them); `n_window`:
        each window's valid frames. Returns `(n_windows, frames, n_output)`, zeros past `n_window`."""
        n, frames = a.shape[:2]
        chunk = chunk_forward.shape[1]
        forward = a.new_zeros(n, frames, chunk_forward.shape[2])
        forward[:, :chunk] = chunk_forward
        has_right = n_window > n_chunk  # only windows whose chunk is full have frames after it
        if frames > chunk and bool(has_right.any()):
            rows = has_right.nonzero().squeeze(1)
            last = chunk_forward[rows, n_chunk[rows] - 1]  # the state at the chunk's end
            right, _ = self.rnn(a[rows, chunk:], last[None].contiguous())
            forward[rows, chunk:] = right
        backward, _ = self.rnn_reverse(reverse_within(a, n_window))
        backward = reverse_within(backward, n_window)
        both = forward + backward if self.sum_directions else torch.cat([forward, backward], -1)
        valid = torch.arange(frames, device=a.device)[None, :] < n_window.to(a.device)[:, None]
        return self.projection(both) * valid[:, :, None]


def window_plan(lengths: torch.Tensor, chunk: int, right_context: int) -> dict[str, torch.Tensor]:
    """For frames `lengths` (host tensor, one per row of a `(batch, max_frames)` batch): every
    window's chunk frames and window frames, for each of its positions the frame it holds (an
    index into the batch's `batch * max_frames` frames), and which positions are valid and which
    are in the chunk."""
    max_frames = int(lengths.max()) if len(lengths) else 0
    lengths = lengths.long()
    n_windows = torch.div(lengths + chunk - 1, chunk, rounding_mode="floor")
    rows = torch.repeat_interleave(torch.arange(len(lengths)), n_windows)
    first = torch.cumsum(n_windows, 0) - n_windows  # each row's first window
    starts = (torch.arange(len(rows)) - first[rows]) * chunk
    left = lengths[rows] - starts
    n_chunk = left.clamp(max=chunk)
    n_window = left.clamp(max=chunk + right_context)
    steps = torch.arange(chunk + right_context)[None, :]
    index = rows[:, None] * max_frames + (starts[:, None] + steps).clamp(max=max_frames - 1)
    return {"n_chunk": n_chunk, "n_window": n_window, "index": index,
            "valid": steps < n_window[:, None], "in_chunk": steps < n_chunk[:, None]}


def chunked_stack(layers: nn.ModuleList, x: torch.Tensor, lengths: torch.Tensor, chunk: int,
                  right_context: int) -> torch.Tensor:
    """`x: (batch, frames, n)` with `lengths` (host) valid frames a row -> the stack's output
    `(batch, frames, n_output)`, zeros on padding; every window of the batch at once."""
    batch, max_frames = x.shape[:2]
    plan = {k: v.to(x.device) for k, v in window_plan(lengths.cpu(), chunk, right_context).items()}
    index, valid, in_chunk = plan["index"], plan["valid"], plan["in_chunk"]
    windows = x.reshape(batch * max_frames, -1)[index] * valid[:, :, None]
    chunk_index = index[:, :chunk][in_chunk[:, :chunk]]  # each frame once, as a chunk frame
    for layer in layers:
        a = layer.inputs(windows, valid)
        # the forward direction over the chunks in order is one pass over the whole sequence
        # (trailing padding cannot reach a forward GRU's valid outputs)
        flat = a.new_zeros(batch * max_frames, a.shape[2])
        flat[chunk_index] = a[:, :chunk][in_chunk[:, :chunk]]
        forward, _ = layer.rnn(flat.view(batch, max_frames, -1))
        chunk_forward = forward.reshape(batch * max_frames, -1)[index[:, :chunk]] * in_chunk[:, :chunk, None]
        windows = layer.outputs(a, chunk_forward, plan["n_chunk"], plan["n_window"])
    out = windows.new_zeros(batch * max_frames, windows.shape[2])
    out[chunk_index] = windows[:, :chunk][in_chunk[:, :chunk]]
    return out.view(batch, max_frames, -1)


class WindowRunner:
    """The stack a window at a time, for a stream: feed it the stack's input frames as they come
    (`accept`), and it returns the output frames of every chunk whose window is complete (all
    the rest at `finish`)."""

    def __init__(self, layers: nn.ModuleList, chunk: int, right_context: int):
        self.layers, self.chunk, self.right_context = layers, chunk, right_context
        self.pending: torch.Tensor | None = None  # input frames from the next chunk's first on
        self.hidden = [None] * len(layers)  # each layer's forward state at the last chunk's end

    def accept(self, x: torch.Tensor, final: bool = False) -> torch.Tensor:
        """`x: (frames, n)` -> `(frames', n_output)`."""
        self.pending = x if self.pending is None else torch.cat([self.pending, x])
        outs = []
        size = self.chunk + self.right_context
        while self.pending.shape[0] >= size or (final and self.pending.shape[0] > 0):
            outs.append(self._window(self.pending[:size]))
            self.pending = self.pending[self.chunk:]
        if not outs:
            return x.new_zeros(0, self.layers[-1].n_output)
        return torch.cat(outs)

    def _window(self, window: torch.Tensor) -> torch.Tensor:
        n_window = window.shape[0]
        n_chunk = min(self.chunk, n_window)
        size = self.chunk + self.right_context
        windows = torch.cat([window, window.new_zeros(size - n_window, window.shape[1])])[None]
        valid = (torch.arange(size) < n_window)[None]
        n_chunks, n_windows = torch.tensor([n_chunk]), torch.tensor([n_window])
        for i, layer in enumerate(self.layers):
            a = layer.inputs(windows, valid)
            forward, self.hidden[i] = layer.rnn(a[:, :n_chunk], self.hidden[i])
            chunk_forward = torch.cat([forward, forward.new_zeros(1, self.chunk - n_chunk, forward.shape[2])], 1)
            windows = layer.outputs(a, chunk_forward, n_chunks, n_windows)
        return windows[0, :n_chunk]

    def finish(self) -> torch.Tensor:
        if self.pending is None:
            return torch.zeros(0, self.layers[-1].n_output)
        return self.accept(self.pending[:0], final=True)
