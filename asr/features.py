"""Feature extraction (log-mel filterbank, MFCC, linear spectrogram), normalisation, SpecAugment.

All three run with torchaudio on whatever device the module lives on. Frames never read past an
utterance's last sample (no centring), so padding in a batch never changes a valid frame.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torchaudio.transforms as T
from torch import nn

from asr.errors import InputError

KINDS = ("fbank", "mfcc", "spectrogram")
WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window}  # periodic, as librosa's


@dataclass(frozen=True)
class FeatureConfig:
    kind: str = "fbank"
    sample_rate: int = 16000
    n_mels: int = 80
    n_mfcc: int = 40
    win_ms: float = 25.0
    hop_ms: float = 10.0
    window: str = "hann"  # hann | hamming (deepspeech.pytorch's spectrogram)
    center: bool = False  # frames centred on hop multiples, the signal reflected at its ends (librosa's stft)
    normalize: str = "global"  # global: training-set statistics per bin | utterance: each utterance's own mean and std

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"features.kind: unknown feature kind {self.kind!r}; choose one of {KINDS}")
        if self.window not in WINDOWS:
            raise InputError(f"features.window: {self.window!r}; choose one of {tuple(WINDOWS)}")
        if self.normalize not in ("global", "utterance"):
            raise InputError(f"features.normalize: {self.normalize!r}; choose global or utterance")

    @property
    def win_samples(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_features(self) -> int:
        return {"fbank": self.n_mels, "mfcc": self.n_mfcc, "spectrogram": self.win_samples // 2 + 1}[self.kind]

    def n_frames(self, n_samples: torch.Tensor) -> torch.Tensor:
        """Frames an utterance of `n_samples` gives (0 when shorter than one window)."""
        if self.center:
            return torch.div(n_samples, self.hop_samples, rounding_mode="floor") + 1
        return torch.div(n_samples - self.win_samples, self.hop_samples, rounding_mode="floor").clamp(min=-1) + 1

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureExtractor(nn.Module):
    """waveforms `(batch, samples)` + `n_samples` -> features `(batch, frames, n_features)` + `n_frames`."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        common = dict(n_fft=config.win_samples, hop_length=config.hop_samples, center=False,
                      window_fn=WINDOWS[config.window])
        if config.kind == "spectrogram":
            self.transform = T.Spectrogram(power=1.0, **common)
        else:
            mel = dict(n_mels=config.n_mels, **common)
            if config.kind == "fbank":
                self.transform = T.MelSpectrogram(config.sample_rate, **mel)
            else:
                self.transform = T.MFCC(config.sample_rate, config.n_mfcc, log_mels=True, melkwargs=mel)

    @torch.no_grad()
    def forward(self, waveforms: torch.Tensor, n_samples: torch.Tensor,
                warps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Always in float32, outside any autocast region: in bf16 the mel and DCT products moved
        MFCC bins by up to 8% of their standard deviation. `warps` (one factor a row, fbank
        only) scale each row's frequencies before its mel filterbank (`warped_mel_filters`)."""
        with torch.autocast(waveforms.device.type, enabled=False):
            return self._extract(waveforms.float(), n_samples, warps)

    def _extract(self, waveforms: torch.Tensor, n_samples: torch.Tensor,
                 warps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.center:
            waveforms = _reflect_each(waveforms, n_samples, self.config.win_samples // 2)
        short = self.config.win_samples - waveforms.shape[-1]
        if short > 0:
            waveforms = torch.nn.functional.pad(waveforms, (0, short))
        if warps is None:
            spec = self.transform(waveforms)  # (batch, n_features, frames)
        else:
            check_warp_features(self.config.kind)
            power = self.transform.spectrogram(waveforms)  # (batch, n_freqs, frames)
            filters = warped_mel_filters(power.shape[1], self.config.n_mels, self.config.sample_rate,
                                         warps.to(power.device))
            spec = torch.einsum("bft,bfm->bmt", power, filters)
        if self.config.kind == "fbank":
            spec = torch.log(spec + 1e-6)
        elif self.config.kind == "spectrogram":
            spec = torch.log1p(spec)
        # An utterance shorter than one window still gets the one frame its zero-padded batch row has.
        n_frames = self.config.n_frames(n_samples).clamp(min=1, max=spec.shape[-1])
        return spec.transpose(1, 2), n_frames


WARP_CUTOFF = 0.6  # of the Nyquist frequency: where the warp's two straight pieces meet (4.8 kHz at 16 kHz)


def check_warp_features(kind: str) -> None:
    """Frequency warping acts on the mel filters: a one-line error for other features."""
    if kind != "fbank":
        raise InputError(f"specaugment.warp: frequency warping needs fbank features, not {kind}")


def warp_frequencies(freqs: torch.Tensor, warp: torch.Tensor, nyquist: float) -> torch.Tensor:
    """Vocal tract length perturbation's frequency map (Jaitly and Hinton, 2013): `f -> warp * f`
    up to a cutoff, then the straight line that takes the Nyquist frequency to itself. `freqs:
    (n,)`, `warp: (batch,)` -> `(batch, n)`."""
    warp = warp[:, None]
    knee = WARP_CUTOFF * nyquist * warp.clamp(max=1.0) / warp  # where the first piece ends
    above = nyquist - (nyquist - knee * warp) / (nyquist - knee) * (nyquist - freqs)
    return torch.where(freqs <= knee, freqs * warp, above)


def warped_mel_filters(n_freqs: int, n_mels: int, sample_rate: int, warp: torch.Tensor) -> torch.Tensor:
    """Each row's mel filterbank on warped frequencies, for the `n_freqs` bins of an STFT: `warp:
    (batch,)` -> `(batch, n_freqs, n_mels)`, where filter m weighs bin f by its triangle at
    `warp_frequencies(f)`. The triangles are the extractor's: torchaudio `MelScale`'s defaults (HTK
    mel scale, 0 Hz to Nyquist, unnormalised). So energy at f counts as if it were at warp * f: a
    warp above 1 moves formants up, as a shorter vocal tract does. A warp of 1 gives `MelScale`'s
    filterbank."""
    nyquist = sample_rate / 2
    device = warp.device
    freqs = torch.linspace(0, nyquist, n_freqs, device=device)
    top_mel = 2595.0 * math.log10(1.0 + nyquist / 700.0)  # HTK, as MelScale's default
    points = torch.linspace(0, top_mel, n_mels + 2, device=device)
    points = 700.0 * (10 ** (points / 2595.0) - 1.0)  # the triangles' corners, in Hz
    warped = warp_frequencies(freqs, warp, nyquist)[..., None]  # (batch, n_freqs, 1)
    rising = (warped - points[:-2]) / (points[1:-1] - points[:-2])
    falling = (points[2:] - warped) / (points[2:] - points[1:-1])
    return torch.minimum(rising, falling).clamp(min=0.0)


def _reflect_each(waveforms: torch.Tensor, n_samples: torch.Tensor, pad: int) -> torch.Tensor:
    """Each row reflected by `pad` samples at both ends of its own length (not of the padded
    batch), as librosa's centred STFT of that utterance alone; padding after it stays zero."""
    out = waveforms.new_zeros(waveforms.shape[0], waveforms.shape[1] + 2 * pad)
    for row, n in enumerate(n_samples.tolist()):
        wave = waveforms[row, :n]
        if n > pad:
            out[row, : n + 2 * pad] = torch.nn.functional.pad(wave[None, None], (pad, pad), mode="reflect")[0, 0]
        else:  # too short to reflect: zeros, as librosa pads a clip shorter than the window
            out[row, pad : pad + n] = wave
    return out


def frame_mask(n_frames: torch.Tensor, max_frames: int) -> torch.Tensor:
    """`(batch, max_frames)` boolean mask, True on valid frames."""
    return torch.arange(max_frames, device=n_frames.device)[None, :] < n_frames[:, None]


class GlobalNorm(nn.Module):
    """Mean/variance normalisation with statistics estimated on the training set; padding stays 0."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, feats: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        normed = (feats - self.mean) / self.std
        return normed * frame_mask(n_frames, feats.shape[1]).unsqueeze(-1)


class UtteranceNorm(GlobalNorm):
    """Each utterance scaled by the mean and (unbiased) standard deviation of all its valid
    feature values, as deepspeech.pytorch does; padding stays 0. Keeps GlobalNorm's buffers, so
    checkpoints have one layout."""

    def forward(self, feats: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(n_frames, feats.shape[1]).unsqueeze(-1).to(feats.dtype)
        count = (n_frames.to(feats.dtype) * feats.shape[2]).clamp(min=2)[:, None, None]
        mean = (feats * mask).sum((1, 2), keepdim=True) / count
        var = ((feats - mean).square() * mask).sum((1, 2), keepdim=True) / (count - 1)
        return (feats - mean) / var.sqrt().clamp(min=1e-12) * mask


class StatsAccumulator:
    """Running per-feature sums over valid frames only."""

    def __init__(self, n_features: int):
        self.total = torch.zeros(n_features, dtype=torch.float64)
        self.total_sq = torch.zeros(n_features, dtype=torch.float64)
        self.count = 0

    def add(self, feats: torch.Tensor, n_frames: torch.Tensor) -> None:
        valid = feats[frame_mask(n_frames, feats.shape[1])].double().cpu()  # (n_valid, n_features)
        self.total += valid.sum(0)
        self.total_sq += (valid**2).sum(0)
        self.count += valid.shape[0]

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count == 0:
            raise InputError("no frames to estimate normalisation statistics from")
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean**2).clamp(min=1e-10)
        return mean.float(), var.sqrt().float()


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_ratio: float = 0.08
    warp: float = 0.0  # vocal tract length perturbation: each utterance's warp drawn from [1 - warp, 1 + warp]

    def __post_init__(self):
        if not 0.0 <= self.warp < 0.5:
            raise InputError(f"specaugment.warp: {self.warp}; choose a value from 0 (off) up to 0.5")


class SpecAugment(nn.Module):
    """Zero random frequency bands and time spans of each utterance (training mode only).

    Time masks are sized relative to each utterance's own length and stay inside it.
    """

    def __init__(self, config: SpecAugmentConfig):
        super().__init__()
        self.config = config

    def warps(self, batch: int) -> torch.Tensor | None:
        """Each row's frequency warp for the feature extractor (training mode, `warp` > 0), drawn
        before the masks from the same generator; None otherwise, drawing nothing."""
        if not self.training or self.config.warp == 0.0:
            return None
        return 1.0 + self.config.warp * (2.0 * torch.rand(batch) - 1.0)

    def forward(self, feats: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        batch, max_frames, n_features = feats.shape
        keep = torch.ones_like(feats, dtype=torch.bool)
        bins = torch.arange(n_features, device=feats.device)
        frames = torch.arange(max_frames, device=feats.device)
        for _ in range(self.config.freq_masks):
            width = torch.randint(0, self.config.freq_width + 1, (batch, 1), device=feats.device)
            start = (torch.rand(batch, 1, device=feats.device) * (n_features - width + 1)).long()
            keep &= ~((bins >= start) & (bins < start + width)).unsqueeze(1)
        max_width = (n_frames.float() * self.config.time_ratio).long().unsqueeze(1)
        for _ in range(self.config.time_masks):
            width = (torch.rand(batch, 1, device=feats.device) * (max_width + 1).float()).long()
            start = (torch.rand(batch, 1, device=feats.device) * (n_frames.unsqueeze(1) - width + 1).float()).long()
            keep &= ~((frames >= start) & (frames < start + width)).unsqueeze(2)
        return feats * keep
