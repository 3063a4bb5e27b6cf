"""Waveform augmentations (issue 12 groundwork): coloured noise at a chosen SNR, narrow band
(8 kHz round trip, telephone band-pass, mu-law), gain and clipping.

Each function takes mono float32 samples `(samples,)` and a `torch.Generator`, so that a draw is
reproducible from a seed; each keeps the length and never returns NaN. Not yet wired into
training: the Hydra groups and the checkpoint record come with the rest of issue 12.
"""
from __future__ import annotations

import math

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
