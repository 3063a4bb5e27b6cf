"""Waveform augmentations: additive noise at a chosen SNR (coloured noise, or recordings from any
folder such as MUSAN's), reverberation (synthetic room impulse responses of a chosen RT60, or
measured ones from a folder), narrow band (8 kHz round trip, telephone band-pass, mu-law), gain and
clipping, and utterances joined with a pause of silence, room tone or noise between them.

Each function takes mono float32 samples `(samples,)`; random draws come from a
`torch.Generator`, so that a draw is reproducible from a seed; each keeps the length and never
returns NaN. `augment` applies the configuration of the Hydra group `augment` (recorded in every
checkpoint's config) to a training utterance; the loader seeds it by (seed, epoch, utterance).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchaudio.functional as AF

from asr.audio import audio_info, find_audio, load_audio


def power(audio: torch.Tensor) -> torch.Tensor:
    """Mean square of the samples."""
    return audio.double().pow(2).mean()


def coloured_noise(n_samples: int, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """Noise whose power spectral density goes as 1 / f**exponent (0 white, 1 pink, 2 brown),
    shaped from white Gaussian noise in the frequency domain; unit power. It is made at the next
    power of two and cut: an FFT of an awkward length (47,123 samples) took 5 times as long as one
    of 65,536, and was most of what `augment=robust` cost a CPU."""
    n_fft = 1 << max(0, n_samples - 1).bit_length()
    white = torch.randn(n_fft, generator=generator)
    spectrum = torch.fft.rfft(white)
    freqs = torch.arange(spectrum.shape[0], dtype=torch.float32)
    freqs[0] = 1.0  # keep the DC bin finite (it is then removed)
    spectrum = spectrum / freqs.pow(exponent / 2)
    spectrum[0] = 0.0
    noise = torch.fft.irfft(spectrum, n=n_fft)[:n_samples]
    return noise / noise.pow(2).mean().sqrt().clamp(min=1e-12)


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


def synthetic_rir(rt60: float, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """A room impulse response of reverberation time `rt60` seconds: a unit direct path, then a
    diffuse tail of Gaussian noise whose energy decays by 60 dB in `rt60` seconds (Polack's
    statistical model of a reverberant room), starting 2.5 ms after the direct path and lasting
    until it is 60 dB down. Unit peak."""
    n = max(2, int(rt60 * sample_rate))
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    # energy 10**(-6 t / rt60): amplitude exp(-3 ln(10) t / rt60)
    tail = torch.randn(n, generator=generator, dtype=torch.float64) * torch.exp(-3 * math.log(10) * t / rt60)
    tail[: int(0.0025 * sample_rate)] = 0.0
    tail = tail / tail.abs().max().clamp(min=1e-12) * 0.5
    tail[0] = 1.0
    return tail.float()


def reverberate(audio: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """`audio` convolved with the impulse response `rir` (aligned on its strongest tap), cut to
    the same length and scaled back to the same power."""
    peak = int(rir.abs().argmax())
    rir = rir[peak:].float()
    n_fft = 1 << (audio.shape[0] + rir.shape[0] - 2).bit_length()  # a power of two: the fast FFT sizes
    wet = torch.fft.irfft(torch.fft.rfft(audio.float(), n_fft) * torch.fft.rfft(rir, n_fft), n_fft)[: audio.shape[0]]
    dry_power, wet_power = power(audio), power(wet)
    if dry_power == 0 or wet_power == 0:
        return audio.clone()
    return (wet.double() * torch.sqrt(dry_power / wet_power)).float()


def join_with_pause(first: torch.Tensor, second: torch.Tensor, pause: int, kind: str,
                    generator: torch.Generator) -> torch.Tensor:
    """`first`, `pause` samples of `silence` (zeros), `room tone` (pink noise at the level of the
    quietest tenth of `first`'s 10 ms blocks, as the floor of the room it was recorded in) or `noise`
    (pink noise 20 dB below `first`'s power), then `second`."""
    if kind == "silence":
        gap = torch.zeros(pause)
    elif kind in ("room_tone", "noise"):
        if kind == "noise":
            level = power(first) / 100
        else:
            blocks = first[: first.shape[0] // 160 * 160].double().reshape(-1, 160).pow(2).mean(1)
            level = blocks.quantile(0.1) if blocks.numel() else power(first)
        gap = (coloured_noise(pause, 1.0, generator).double() * level.sqrt()).float()
    else:
        raise ValueError(f"pause kind {kind!r}: expected silence, room_tone or noise")
    return torch.cat([first, gap, second])


@functools.lru_cache(maxsize=16)
def audio_files(folder: str) -> tuple[str, ...]:
    """The audio files under `folder` (recursively, sorted): a noise or RIR collection such as
    MUSAN (`musan/noise/free-sound/*.wav`) or a folder of measured impulse responses."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{folder}: not a folder of audio files (augment.noise_dirs / augment.rir_dirs)")
    files = tuple(str(p) for p in find_audio(root))
    if not files:
        raise ValueError(f"{folder}: no audio files in it (augment.noise_dirs / augment.rir_dirs)")
    return files


def pick_file(folders: tuple[str, ...], generator: torch.Generator) -> str:
    files = [f for folder in folders for f in audio_files(folder)]
    return files[int(torch.randint(len(files), (), generator=generator))]


def noise_from_file(path: str, n_samples: int, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """A stretch of `n_samples` from a random place in a noise recording (the whole of it, looped
    by `add_noise`, when it is shorter)."""
    seconds, _ = audio_info(path)
    want = n_samples / sample_rate
    start = float(torch.rand((), generator=generator)) * max(0.0, seconds - want)
    return torch.from_numpy(load_audio(path, sample_rate, start, want))


def babble(voices: list[torch.Tensor], n_samples: int) -> torch.Tensor:
    """Several talkers at once: each voice looped to `n_samples` and scaled to unit power, summed."""
    mix = torch.zeros(n_samples, dtype=torch.float64)
    for voice in voices:
        voice = voice.double().repeat(n_samples // max(1, voice.shape[0]) + 1)[:n_samples]
        mix += voice / voice.pow(2).mean().sqrt().clamp(min=1e-12)
    return mix.float()


def gain_and_clip(audio: torch.Tensor, gain_db: float, clip: float = 1.0) -> torch.Tensor:
    """Scale by `gain_db` dB, then clip to [-clip, clip] as a saturating recorder would."""
    return (audio * 10 ** (gain_db / 20)).clamp(-clip, clip)


PAUSE_KINDS = ("silence", "room_tone", "noise")
NARROW_BAND_KINDS = ("resample", "bandpass", "mulaw")


@dataclass(frozen=True)
class AugmentConfig:
    """What `augment` does, and how often (probabilities per utterance). The Hydra group
    `augment` sets it; `conf/augment/none.yaml` documents each field."""

    noise_prob: float = 0.0
    noise_snr_db: tuple[float, float] = (5.0, 20.0)
    noise_exponents: tuple[float, ...] = (0.0, 1.0, 2.0)
    noise_dirs: tuple[str, ...] = ()
    noise_file_prob: float = 0.5
    reverb_prob: float = 0.0
    reverb_rt60: tuple[float, float] = (0.2, 0.8)
    rir_dirs: tuple[str, ...] = ()
    rir_file_prob: float = 0.5
    narrow_band_prob: float = 0.0
    narrow_band_kinds: tuple[str, ...] = field(default=NARROW_BAND_KINDS)
    gain_prob: float = 0.0
    gain_db: tuple[float, float] = (-10.0, 10.0)
    concat_prob: float = 0.0
    babble_prob: float = 0.0
    babble_snr_db: tuple[float, float] = (0.0, 20.0)
    babble_talkers: tuple[int, int] = (3, 6)
    concat_pause_seconds: tuple[float, float] = (0.5, 2.0)
    concat_pause_kinds: tuple[str, ...] = PAUSE_KINDS

    def __post_init__(self):
        for name in ("noise_prob", "noise_file_prob", "reverb_prob", "rir_file_prob", "narrow_band_prob",
                     "gain_prob", "concat_prob", "babble_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name}={getattr(self, name)}: expected a probability, 0 to 1")
        for name in ("noise_snr_db", "gain_db", "reverb_rt60", "concat_pause_seconds", "babble_snr_db",
                     "babble_talkers"):
            low_high = tuple(getattr(self, name))
            if len(low_high) != 2 or low_high[0] > low_high[1]:
                raise ValueError(f"augment.{name}={list(low_high)}: expected [low, high]")
            object.__setattr__(self, name, low_high)
        if self.reverb_rt60[0] <= 0 or self.concat_pause_seconds[0] < 0:
            raise ValueError("augment.reverb_rt60 must be above 0 s and augment.concat_pause_seconds at least 0 s")
        for name, allowed in (("narrow_band_kinds", NARROW_BAND_KINDS), ("concat_pause_kinds", PAUSE_KINDS)):
            kinds = tuple(getattr(self, name))
            if not kinds or set(kinds) - set(allowed):
                raise ValueError(f"augment.{name}={list(kinds)}: expected some of {', '.join(allowed)}")
            object.__setattr__(self, name, kinds)
        if not self.noise_exponents:
            raise ValueError("augment.noise_exponents: empty, expected some of 0 (white), 1 (pink), 2 (brown)")
        object.__setattr__(self, "noise_exponents", tuple(self.noise_exponents))
        for name in ("noise_dirs", "rir_dirs"):
            folders = tuple(str(f) for f in getattr(self, name))
            for folder in folders:
                audio_files(folder)  # a missing or empty folder is named now, not mid-training
            object.__setattr__(self, name, folders)

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.noise_prob, self.reverb_prob, self.narrow_band_prob, self.gain_prob,
                                   self.concat_prob, self.babble_prob))


def augment(audio: torch.Tensor, sample_rate: int, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Reverberation, then noise, then narrow band (the channel carries the noisy room), then gain
    and clipping, each with its probability."""

    def draw() -> float:
        return float(torch.rand((), generator=generator, dtype=torch.float64))

    def uniform(low_high) -> float:
        return low_high[0] + (low_high[1] - low_high[0]) * draw()

    def pick(options):
        return options[int(torch.randint(len(options), (), generator=generator))]

    if draw() < config.reverb_prob:
        if config.rir_dirs and draw() < config.rir_file_prob:
            rir = torch.from_numpy(load_audio(pick_file(config.rir_dirs, generator), sample_rate))
        else:
            rir = synthetic_rir(uniform(config.reverb_rt60), sample_rate, generator)
        audio = reverberate(audio, rir)
    if draw() < config.noise_prob:
        snr = uniform(config.noise_snr_db)
        if config.noise_dirs and draw() < config.noise_file_prob:
            noise = noise_from_file(pick_file(config.noise_dirs, generator), audio.shape[0], sample_rate, generator)
        else:
            noise = coloured_noise(audio.shape[0], pick(config.noise_exponents), generator)
        audio = add_noise(audio, noise, snr)
    if draw() < config.narrow_band_prob:
        audio = narrow_band(audio, sample_rate, pick(config.narrow_band_kinds))
    if draw() < config.gain_prob:
        audio = gain_and_clip(audio, uniform(config.gain_db))
    return audio
