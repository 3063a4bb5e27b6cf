"""Acoustic model: convolutional front end, stacked (bi)directional LSTM/GRU, linear output over tokens.

The recurrent stack runs on one PackedSequence from the first layer to the last: normalisation,
dropout, projections and direction sums act on `packed.data`, which holds valid frames only, so
padding never reaches a statistic or a result and there is one pack and one unpack per batch.
Packing needs the lengths on the host: pass them (`n_frames_cpu`) and the forward pass never
waits for the GPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from asr.chunked import ChunkedBiLayer, chunked_stack
from asr.devices import to_device
from asr.errors import InputError
from asr.features import frame_mask


@dataclass(frozen=True)
class ModelDims:
    """Everything needed to rebuild the model; stored in every checkpoint."""

    n_input: int  # feature bins per frame
    n_tokens: int  # vocabulary size including the CTC blank
    conv_channels: tuple[int, ...] = (32, 32)
    conv_kernels: tuple[tuple[int, int], ...] = ((3, 3), (3, 3))  # (freq, time)
    conv_strides: tuple[tuple[int, int], ...] = ((2, 2), (2, 2))  # (freq, time)
    conv_activation: str = "relu"  # relu | hardtanh (clipped to [0, 20], as DeepSpeech2)
    conv_norm: bool = True  # batch norm after each convolution
    rnn_type: str = "gru"  # lstm | gru
    n_layers: int = 4
    hidden: int = 512
    bidirectional: bool = True
    sum_directions: bool = False  # DeepSpeech2 sums the two directions instead of concatenating
    projection: int = 0  # linear projection after each recurrent layer (0: none)
    layer_norm: str = "none"  # none | layer | batch: before each recurrent layer but the first
    dropout: float = 0.0  # between recurrent layers
    output_norm: str = "none"  # none | batch: before the output layer (DeepSpeech2 uses batch)
    output_bias: bool = True
    lookahead: int = 0  # frames of future context (DeepSpeech2's lookahead convolution) after a unidirectional stack
    # latency-controlled bidirectional GRU (asr/chunked.py): the backward directions see chunks of
    # `chunk` output frames and `right_context` frames after each; 0: the whole utterance
    chunk: int = 0
    right_context: int = 0

    def __post_init__(self):
        # Hydra and JSON give lists; the dataclass is frozen and hashable with tuples.
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        object.__setattr__(self, "conv_kernels", tuple(tuple(int(v) for v in k) for k in self.conv_kernels))
        object.__setattr__(self, "conv_strides", tuple(tuple(int(v) for v in s) for s in self.conv_strides))
        if not (len(self.conv_channels) == len(self.conv_kernels) == len(self.conv_strides)):
            raise InputError("model: conv_channels, conv_kernels and conv_strides need one entry per convolution")
        if self.rnn_type not in ("lstm", "gru"):
            raise InputError(f"model.rnn_type must be lstm or gru, not {self.rnn_type!r}")
        for name in ("layer_norm", "output_norm"):
            if getattr(self, name) not in ("none", "layer", "batch"):
                raise InputError(f"model.{name} must be none, layer or batch")
        if self.lookahead < 0 or (self.lookahead and self.bidirectional):
            raise InputError(f"model.lookahead={self.lookahead}: a number of frames >= 0, for unidirectional models "
                             "(model.bidirectional=false)")
        if self.chunk < 0 or self.right_context < 0 or (self.right_context and not self.chunk):
            raise InputError(f"model.chunk={self.chunk}, model.right_context={self.right_context}: frames >= 0, "
                             "and a right context needs a chunk")
        if self.chunk and not (self.bidirectional and self.rnn_type == "gru"):
            raise InputError(f"model.chunk={self.chunk}: chunks are for bidirectional GRU stacks "
                             "(model.bidirectional=true, model.rnn_type=gru)")

    @classmethod
    def from_dict(cls, values: dict) -> ModelDims:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        values = asdict(self)
        values["conv_kernels"] = [list(k) for k in self.conv_kernels]
        values["conv_strides"] = [list(s) for s in self.conv_strides]
        values["conv_channels"] = list(self.conv_channels)
        return values

    @property
    def subsampling(self) -> int:
        factor = 1
        for _, time_stride in self.conv_strides:
            factor *= time_stride
        return factor


def _norm(kind: str, size: int) -> nn.Module:
    return {"none": nn.Identity, "layer": nn.LayerNorm, "batch": nn.BatchNorm1d}[kind](size)


def _conv_length(n_frames: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """Frames out of one convolution along time."""
    return torch.div(n_frames + 2 * padding - kernel, stride, rounding_mode="floor") + 1


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over `(batch, channels, freq, time)` whose training statistics come from valid
    frames only: padding never moves the mean, the variance or the running estimates. In eval
    mode it is BatchNorm2d (same parameters and buffers, so checkpoints load either way). Under
    autocast the statistics and the result are worked out in float32 (as BatchNorm2d's are), and
    the result is given back in the input's precision."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: `(batch, time)`, True on valid frames."""
        if not self.training or mask is None:
            return super().forward(x)
        dtype, x = x.dtype, x.float()
        valid = mask[:, None, None, :].to(x.dtype)  # (batch, 1, 1, time)
        n = valid.sum() * x.shape[2]
        masked = x * valid
        mean = masked.sum((0, 2, 3)) / n
        var = (((x - mean[None, :, None, None]) * valid).square().sum((0, 2, 3)) / n)  # centred: no cancellation
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / max(float(n) - 1, 1.0)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        # y = (x - mean) / sqrt(var + eps) * weight + bias, as one multiply-add over the big tensor
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = (self.bias if self.affine else 0) - mean * scale
        return torch.addcmul(shift[None, :, None, None], x, scale[None, :, None, None]).to(dtype)


class ConvFrontEnd(nn.Module):
    """Conv2d stack over (freq, time): `(batch, frames, n_input)` -> `(batch, frames', n_output)`."""

    def __init__(self, dims: ModelDims):
        super().__init__()
        self.blocks = nn.ModuleList()
        self.time_geometry = []  # (kernel, stride, padding) along time, for output lengths
        in_channels, n_freq = 1, dims.n_input
        for channels, kernel, stride in zip(dims.conv_channels, dims.conv_kernels, dims.conv_strides):
            padding = (kernel[0] // 2, kernel[1] // 2)
            act = nn.Hardtanh(0, 20, inplace=True) if dims.conv_activation == "hardtanh" else nn.ReLU(inplace=True)
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, channels, kernel, stride, padding),
                    MaskedBatchNorm2d(channels) if dims.conv_norm else nn.Identity(),
                    act,
                )
            )
            self.time_geometry.append((kernel[1], stride[1], padding[1]))
            n_freq = (n_freq + 2 * padding[0] - kernel[0]) // stride[0] + 1
            in_channels = channels
        self.n_output = in_channels * n_freq if self.blocks else dims.n_input

    def output_lengths(self, n_frames: torch.Tensor) -> torch.Tensor:
        for geometry in self.time_geometry:
            n_frames = _conv_length(n_frames, *geometry)
        return n_frames

    def forward(self, feats: torch.Tensor, n_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.blocks:
            return feats, n_frames
        x = feats.transpose(1, 2).unsqueeze(1)  # (batch, 1, freq, time)
        for (conv, norm, act), geometry in zip(self.blocks, self.time_geometry):
            x = conv(x)
            n_frames = _conv_length(n_frames, *geometry)
            mask = frame_mask(n_frames, x.shape[-1])
            x = norm(x, mask) if isinstance(norm, MaskedBatchNorm2d) else norm(x)
            # Zero the padded frames so the next kernel sees what it would see on the utterance alone.
            x = act(x) * mask[:, None, None, :]
        batch, channels, n_freq, time = x.shape
        return x.reshape(batch, channels * n_freq, time).transpose(1, 2), n_frames


class RecurrentLayer(nn.Module):
    """(optional norm + dropout) -> LSTM/GRU -> (direction sum) -> (projection), on packed data."""

    def __init__(self, n_input: int, dims: ModelDims, first: bool):
        super().__init__()
        rnn = nn.LSTM if dims.rnn_type == "lstm" else nn.GRU
        self.norm = _norm("none" if first else dims.layer_norm, n_input)
        self.dropout = nn.Dropout(0.0 if first else dims.dropout)
        self.rnn = rnn(n_input, dims.hidden, batch_first=True, bidirectional=dims.bidirectional)
        self.sum_directions = dims.sum_directions and dims.bidirectional
        n_rnn_out = dims.hidden * (2 if dims.bidirectional and not self.sum_directions else 1)
        self.projection = nn.Linear(n_rnn_out, dims.projection) if dims.projection else nn.Identity()
        self.n_output = dims.projection or n_rnn_out

    def forward(self, packed: PackedSequence) -> PackedSequence:
        packed = _map_packed(packed, lambda data: self.dropout(self.norm(data)))
        packed, _ = self.rnn(packed)
        if self.sum_directions:
            packed = _map_packed(packed, lambda data: data.view(data.shape[0], 2, -1).sum(1))
        return _map_packed(packed, self.projection)


def _map_packed(packed: PackedSequence, fn) -> PackedSequence:
    return PackedSequence(fn(packed.data), packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)


def pack(x: torch.Tensor, lengths: torch.Tensor) -> tuple[PackedSequence, torch.Tensor]:
    """`pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)` as one gather,
    and the gather's row index for `unpack`.

    PyTorch's own pack and unpack copy one time step per kernel (thousands of launches for long
    utterances, forward and backward) and copy the sort order to the GPU with a blocking copy.
    Here the index is built on the host from host `lengths` and copied without blocking.
    """
    batch, max_frames = x.shape[:2]
    lengths, order = torch.sort(lengths.cpu(), descending=True)
    steps = torch.arange(max_frames)[:, None]
    valid = steps < lengths[None, :]  # (time, sorted batch): the packed layout is time-major
    rows = (order[None, :] * max_frames + steps)[valid]  # row of each packed frame in x.view(-1, n)
    batch_sizes = valid.sum(1)[: int(lengths[0])]
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(batch)
    rows, order, inverse = (to_device(t, x.device) for t in (rows, order, inverse))
    data = x.reshape(batch * max_frames, -1).index_select(0, rows)
    return PackedSequence(data, batch_sizes, order, inverse), rows


def unpack(packed: PackedSequence, rows: torch.Tensor, batch: int, max_frames: int) -> torch.Tensor:
    """The inverse of `pack`: `(batch, max_frames, n)`, zeros on padding, in one scatter."""
    data = packed.data
    out = data.new_zeros(batch * max_frames, data.shape[-1]).index_copy(0, rows, data)
    return out.view(batch, max_frames, -1)


class Lookahead(nn.Module):
    """Each output frame t mixes frames t .. t + context - 1 channel by channel (a depthwise
    convolution over the future, Wang et al. 2016, as DeepSpeech2's unidirectional model), then
    hardtanh(0, 20): `(batch, frames, n)` -> the same shape."""

    def __init__(self, n: int, context: int):
        super().__init__()
        self.context = context
        self.conv = nn.Conv1d(n, n, context, groups=n, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zeros stand for the frames past the end."""
        return self.mix(nn.functional.pad(x, (0, 0, 0, self.context - 1)))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """`(batch, frames + context - 1, n)` -> `(batch, frames, n)`, without padding: every
        output frame's future is in `x` (as a stream has it)."""
        return nn.functional.hardtanh(self.conv(x.transpose(1, 2)), 0, 20).transpose(1, 2)


class CTCModel(nn.Module):
    """Normalised features `(batch, frames, n_input)` -> log-probabilities `(batch, frames', n_tokens)`."""

    def __init__(self, dims: ModelDims):
        super().__init__()
        self.dims = dims
        self.front_end = ConvFrontEnd(dims)
        layers, n_input = [], self.front_end.n_output
        for i in range(dims.n_layers):
            if dims.chunk:
                norm = _norm("none" if i == 0 else dims.layer_norm, n_input)
                layers.append(ChunkedBiLayer(n_input, dims, first=i == 0, norm=norm))
            else:
                layers.append(RecurrentLayer(n_input, dims, first=i == 0))
            n_input = layers[-1].n_output
        self.layers = nn.ModuleList(layers)
        self.lookahead = Lookahead(n_input, dims.lookahead + 1) if dims.lookahead else None
        self.output_norm = _norm(dims.output_norm, n_input)
        self.output = nn.Linear(n_input, dims.n_tokens, bias=dims.output_bias)

    def output_lengths(self, n_frames: torch.Tensor) -> torch.Tensor:
        return self.front_end.output_lengths(n_frames)

    def forward(
        self, feats: torch.Tensor, n_frames: torch.Tensor, n_frames_cpu: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`n_frames_cpu`: `n_frames` on the host, if the caller has it (else a sync fetches it)."""
        x, n_out = self.front_end(feats, n_frames)
        lengths = n_out.cpu() if n_frames_cpu is None else self.output_lengths(n_frames_cpu)
        if self.dims.chunk:  # the stack works on windows, not on one packed sequence (asr/chunked.py)
            x = chunked_stack(self.layers, x, n_out, self.dims.chunk, self.dims.right_context)
        packed, rows = pack(x, lengths)
        if not self.dims.chunk:
            for layer in self.layers:
                packed = layer(packed)
        if self.lookahead is not None:  # needs the frames in order: unpack (zeros after each end), mix, pack
            hidden = self.lookahead(unpack(packed, rows, *x.shape[:2]))
            packed = PackedSequence(hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows), *packed[1:])
        packed = _map_packed(packed, lambda data: self.output(self.output_norm(data)).float().log_softmax(-1))
        return unpack(packed, rows, *x.shape[:2]), n_out

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
