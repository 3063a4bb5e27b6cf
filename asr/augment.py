"""Waveform augmentations (issue 12 groundwork): coloured noise at a chosen SNR, narrow band
(8 kHz round trip, telephone band-pass, mu-law), gain and clipping.

Each function takes mono float32 samples `(samples,)`; random draws come from a
`torch.Generator`, so that a draw is reproducible from a seed; each keeps the length and never
returns NaN. `augment` applies the configuration of the Hydra group `augment` (recorded in every
checkpoint's config) to a training utterance; the loader seeds it by (seed, epoch, utterance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torchaudio.functional as AF


def power(audio: torch.Tensor) -> torch.Tensor:
    """Mean square of the samples."""
    return audio.double().pow(2).mean()


def coloured_noise(n_samples: int, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """Noise whose power spectral density goes as 1 / f**exponent (0 white, 1 pink, 2 brown),
    shaped from white Gaussian noise in the frequency domain; unit power."""
    white = torch.randn(n_samples, generator=generator, dtype=torch.float64)
    spectrum = torch.fft.rfft(white)
    freqs = torch.arange(spectrum.shape[0], dtype=torch.float64)
    freqs[0] = 1.0  # keep the DC bin finite (it is then removed)
    spectrum = spectrum / freqs.pow(exponent / 2)
    spectrum[0] = 0.0
    noise = torch.fft.irfft(spectrum, n=n_samples)
    return (noise / noise.pow(2).mean().sqrt().clamp(min=1e-12)).float()


def add_noise(audio: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """`audio` plus `noise` (tiled or cut to its length) scaled to `snr_db` dB below the audio's
    power: 10 log10(P_audio / P_scaled_noise) = snr_db. Silent audio comes back unchanged."""
    if noise.shape[0] < audio.shape[0]:
        noise = noise.repeat(math.ceil(audio.shape[0] / noise.shape[0]))
    noise = noise[: audio.shape[0]]
    signal_power, noise_power = power(audio), power(noise)
    if signal_power == 0 or noise_power == 0:
        return audio.clone()
    scale = torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (audio.double() + scale * noise.double()).float()


def narrow_band(audio: torch.Tensor, sample_rate: int, kind: str = "resample") -> torch.Tensor:
    """Telephone-like audio at the same rate and length: `resample` (to 8 kHz and back),
    `bandpass` (300-3400 Hz, the telephone band) or `mulaw` (8-bit mu-law companding, as G.711)."""
    if kind == "resample":
        down = AF.resample(audio, sample_rate, 8000)
        return AF.resample(down, 8000, sample_rate)[: audio.shape[0]]
    if kind == "bandpass":  # three biquads each way: 6th-order edges, about 30 dB down at 6 kHz
        for _ in range(3):
            audio = AF.lowpass_biquad(AF.highpass_biquad(audio, sample_rate, 300.0), sample_rate, 3400.0)
        return audio
    if kind == "mulaw":
        encoded = AF.mu_law_encoding(audio.clamp(-1.0, 1.0), 256)
        return AF.mu_law_decoding(encoded, 256)
    raise ValueError(f"narrow band kind {kind!r}: expected resample, bandpass or mulaw")


def gain_and_clip(audio: torch.Tensor, gain_db: float, clip: float = 1.0) -> torch.Tensor:
    """Scale by `gain_db` dB, then clip to [-clip, clip] as a saturating recorder would."""
    return (audio * 10 ** (gain_db / 20)).clamp(-clip, clip)


@dataclass(frozen=True)
class AugmentConfig:
    """What `augment` does, and how often (probabilities per utterance)."""

    noise_prob: float = 0.0
    noise_snr_db: tuple[float, float] = (5.0, 20.0)
    noise_exponents: tuple[float, ...] = (0.0, 1.0, 2.0)
    narrow_band_prob: float = 0.0
    narrow_band_kinds: tuple[str, ...] = field(default=("resample", "bandpass", "mulaw"))
    gain_prob: float = 0.0
    gain_db: tuple[float, float] = (-10.0, 10.0)

    def __post_init__(self):
        for name in ("noise_prob", "narrow_band_prob", "gain_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name}={getattr(self, name)}: expected a probability, 0 to 1")
        for name in ("noise_snr_db", "gain_db"):
            low_high = tuple(getattr(self, name))
            if len(low_high) != 2 or low_high[0] > low_high[1]:
                raise ValueError(f"augment.{name}={list(low_high)}: expected [low, high]")
            object.__setattr__(self, name, low_high)
        unknown = set(self.narrow_band_kinds) - {"resample", "bandpass", "mulaw"}
        if unknown or not self.narrow_band_kinds or not self.noise_exponents:
            raise ValueError(f"augment.narrow_band_kinds={list(self.narrow_band_kinds)}: expected some of "
                             "resample, bandpass, mulaw (and augment.noise_exponents not empty)")
        object.__setattr__(self, "narrow_band_kinds", tuple(self.narrow_band_kinds))
        object.__setattr__(self, "noise_exponents", tuple(self.noise_exponents))

    @property
    def active(self) -> bool:
        return self.noise_prob > 0 or self.narrow_band_prob > 0 or self.gain_prob > 0


def augment(audio: torch.Tensor, sample_rate: int, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Narrow band, then noise, then gain and clipping, each with its probability."""

    def draw() -> float:
        return float(torch.rand((), generator=generator, dtype=torch.float64))

    def pick(options):
        return options[int(torch.randint(len(options), (), generator=generator))]

    if draw() < config.narrow_band_prob:
        audio = narrow_band(audio, sample_rate, pick(config.narrow_band_kinds))
    if draw() < config.noise_prob:
        low, high = config.noise_snr_db
        snr = low + (high - low) * draw()
        audio = add_noise(audio, coloured_noise(audio.shape[0], pick(config.noise_exponents), generator), snr)
    if draw() < config.gain_prob:
        low, high = config.gain_db
        audio = gain_and_clip(audio, low + (high - low) * draw())
    return audio
