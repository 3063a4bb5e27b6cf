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
    GRU -> concatenated (or summed) -> (projection), over windows `(batch, n_windows, chunk +
    right_context, n_input)`."""

    def __init__(self, n_input: int, dims, first: bool, norm: nn.Module):
        super().__init__()
        self.norm = norm
        self.dropout = nn.Dropout(0.0 if first else dims.dropout)
        self.rnn = nn.GRU(n_input, dims.hidden, batch_first=True)
        self.rnn_reverse = nn.GRU(n_input, dims.hidden, batch_first=True)
        self.chunk = dims.chunk
        self.sum_directions = dims.sum_directions
        n_rnn_out = dims.hidden * (1 if self.sum_directions else 2)
        self.projection = nn.Linear(n_rnn_out, dims.projection) if dims.projection else nn.Identity()
        self.n_output = dims.projection or n_rnn_out

    def forward(self, windows: torch.Tensor, valid: torch.Tensor,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`windows: (batch, n_windows, size, n)`, each row's windows in order; `valid: (batch,
        n_windows, size)`: which positions hold frames (a window's valid positions come first, and
        a window whose chunk is not full has none after it); `state: (1, batch, hidden)`: the
        forward direction's state before the first window (zeros if None). Returns the outputs
        `(batch, n_windows, size, n_output)`, zeros where not valid, and the forward state at the
        end of the last window's chunk (which is the carried state if that chunk is full)."""
        a = self._inputs(windows, valid)
        batch, n_windows, size, n = a.shape
        chunk = self.chunk
        # the forward direction over the chunks in order is one pass over each row's sequence
        # (trailing padding cannot reach a forward GRU's valid outputs)
        forward, _ = self.rnn(a[:, :, :chunk].reshape(batch, n_windows * chunk, n), state)
        forward = forward.view(batch, n_windows, chunk, -1)
        end = forward[:, :, -1]  # the state at each chunk's end
        if size > chunk:  # the right context continues from it, its state thrown away
            right, _ = self.rnn(a[:, :, chunk:].reshape(batch * n_windows, size - chunk, n),
                                end.reshape(1, batch * n_windows, -1))
            forward = torch.cat([forward, right.view(batch, n_windows, size - chunk, -1)], 2)
        n_window = valid.sum(-1).reshape(-1)
        backward, _ = self.rnn_reverse(reverse_within(a.reshape(batch * n_windows, size, n), n_window))
        backward = reverse_within(backward, n_window).view(batch, n_windows, size, -1)
        both = forward + backward if self.sum_directions else torch.cat([forward, backward], -1)
        return self.projection(both) * valid[..., None], end[None, :, -1]

    def _inputs(self, windows: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Norm and dropout frame by frame, zeros where not valid; a batch norm in training takes
        its statistics from the valid frames only, as the packed layers' does."""
        flat, keep = windows.reshape(-1, windows.shape[-1]), valid.reshape(-1)
        if self.training and isinstance(self.norm, nn.BatchNorm1d):
            normed = torch.zeros_like(flat)
            normed[keep] = self.norm(flat[keep])
        else:
            normed = self.norm(flat)
        return self.dropout(normed).view(windows.shape) * valid[..., None]


def cut_windows(x: torch.Tensor, lengths: torch.Tensor, n_windows, chunk: int,
                right_context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`x: (batch, frames, n)` -> its first `n_windows` windows `(batch, n_windows, chunk +
    right_context, n)`, zeros past each row's `lengths`, and `valid: (batch, n_windows, size)`,
    which places hold frames."""
    position = torch.arange(n_windows, device=x.device)[:, None] * chunk + torch.arange(
        chunk + right_context, device=x.device)  # (n_windows, size): the frame at each place
    valid = position[None] < lengths.to(x.device)[:, None, None]
    return x[:, position.clamp(max=x.shape[1] - 1)] * valid[..., None], valid


def chunked_stack(layers: nn.ModuleList, x: torch.Tensor, lengths: torch.Tensor, chunk: int,
                  right_context: int) -> torch.Tensor:
    """`x: (batch, frames, n)` with `lengths` valid frames a row -> the stack's output `(batch,
    frames, n_output)`, zeros on padding; every window of the batch at once. Tensor operations
    only, so that it is traced for ONNX with dynamic batch and length (asr/export.py)."""
    batch, frames = x.shape[:2]
    n_windows = (frames + chunk - 1) // chunk
    windows, valid = cut_windows(x, lengths, n_windows, chunk, right_context)
    for layer in layers:
        windows, _ = layer(windows, valid)
    return windows[:, :, :chunk].reshape(batch, n_windows * chunk, -1)[:, :frames]


class WindowRunner:
    """The stack over a stream: feed it the stack's input frames as they come (`accept`), and it
    returns the output frames of every chunk whose window is complete (all the rest at `finish`),
    the windows that one call completes computed together."""

    def __init__(self, layers: nn.ModuleList, chunk: int, right_context: int):
        self.layers, self.chunk, self.right_context = layers, chunk, right_context
        self.pending: torch.Tensor | None = None  # input frames from the next chunk's first on
        self.hidden = [None] * len(layers)  # each layer's forward state at the last chunk's end

    def accept(self, x: torch.Tensor, final: bool = False) -> torch.Tensor:
        """`x: (frames, n)` -> `(frames', n_output)`."""
        self.pending = x if self.pending is None else torch.cat([self.pending, x])
        frames, chunk = self.pending.shape[0], self.chunk
        if final:
            n_windows = -(-frames // chunk)
        else:
            n_windows = max(0, (frames - chunk - self.right_context) // chunk + 1)
        if n_windows == 0:
            return x.new_zeros(0, self.layers[-1].n_output)
        windows, valid = cut_windows(self.pending[None], torch.tensor([frames]), n_windows, chunk, self.right_context)
        for i, layer in enumerate(self.layers):
            windows, self.hidden[i] = layer(windows, valid, self.hidden[i])
        self.pending = self.pending[n_windows * chunk:]
        return windows[0, :, :chunk].reshape(n_windows * chunk, -1)[:frames]

    def finish(self) -> torch.Tensor:
        if self.pending is None:
            return torch.zeros(0, self.layers[-1].n_output)
        return self.accept(self.pending[:0], final=True)
