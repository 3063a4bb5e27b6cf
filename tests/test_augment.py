"""Waveform augmentations: seeded, the SNR asked for, lengths kept, no NaN; expected values from
the definitions (SNR, spectral slope, G.711 quantisation, decibels), not from the code."""
import math

import pytest
import torch

from asr.augment import add_noise, coloured_noise, gain_and_clip, narrow_band

SR = 16000


def tone(seconds=1.0, freq=440.0, amplitude=0.3):
    t = torch.arange(int(SR * seconds)) / SR
    return amplitude * torch.sin(2 * math.pi * freq * t)


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0, 0.0])
def test_noise_is_added_at_the_snr_asked_for(snr_db):
    clean = tone()
    noisy = add_noise(clean, coloured_noise(7000, 1.0, seeded(0)), snr_db)  # shorter noise: tiled
    assert noisy.shape == clean.shape and torch.isfinite(noisy).all()
    noise = (noisy - clean).double()
    measured = 10 * math.log10(clean.double().pow(2).mean() / noise.pow(2).mean())
    assert measured == pytest.approx(snr_db, abs=0.01)
    assert torch.equal(add_noise(torch.zeros(100), torch.ones(10), 5.0), torch.zeros(100))  # silence stays silent


def test_coloured_noise_is_seeded_and_has_its_spectral_slope():
    a, b = coloured_noise(SR * 4, 1.0, seeded(3)), coloured_noise(SR * 4, 1.0, seeded(3))
    assert torch.equal(a, b) and not torch.equal(a, coloured_noise(SR * 4, 1.0, seeded(4)))
    for exponent in (0.0, 1.0, 2.0):
        noise = coloured_noise(SR * 8, exponent, seeded(1)).double()
        psd = torch.fft.rfft(noise).abs().pow(2)
        freqs = torch.fft.rfftfreq(noise.shape[0], 1 / SR)
        band = lambda lo, hi: psd[(freqs >= lo) & (freqs < hi)].mean()
        # 1/f**e: a decade up in frequency, the density falls by 10 * e dB
        drop_db = 10 * math.log10(band(100, 200) / band(1000, 2000))
        assert drop_db == pytest.approx(10 * exponent, abs=1.0), exponent
        assert noise.pow(2).mean() == pytest.approx(1.0, rel=1e-6)


def test_narrow_band_removes_what_a_telephone_cannot_carry():
    mix = tone(freq=1000.0) + tone(freq=6000.0)
    for kind in ("resample", "bandpass"):
        out = narrow_band(mix, SR, kind)
        assert out.shape == mix.shape and torch.isfinite(out).all()
        spectrum = torch.fft.rfft(out[2000:-2000].double()).abs()
        freqs = torch.fft.rfftfreq(out[2000:-2000].shape[0], 1 / SR)
        at = lambda f: spectrum[(freqs - f).abs().argmin()]
        assert at(6000.0) < 0.05 * at(1000.0), kind  # 6 kHz is above the 4 kHz Nyquist of 8 kHz audio
        reference = torch.fft.rfft(mix[2000:-2000].double()).abs()
        assert at(1000.0) > 0.8 * reference[(freqs - 1000.0).abs().argmin()], kind  # the speech band stays
    with pytest.raises(ValueError, match="expected resample, bandpass or mulaw"):
        narrow_band(mix, SR, "gsm")


def test_mulaw_quantises_as_g711_does():
    # mu-law with mu = 255: y = sign(x) ln(1 + 255|x|) / ln(256), quantised to 256 levels; the
    # round trip error is at most half a step of y, mapped back through the inverse
    x = torch.linspace(-0.99, 0.99, 2001)
    out = narrow_band(x, SR, "mulaw")
    y = torch.sign(x) * torch.log1p(255 * x.abs()) / math.log(256)
    step = 2 / 255
    upper = torch.sign(x) * ((256 ** (y.abs() + step / 2).clamp(max=1) - 1) / 255)
    assert out.shape == x.shape and ((out - x).abs() <= (upper - x).abs() + 1e-6).all()


def test_gain_and_clipping_in_decibels():
    audio = tone(amplitude=0.1)
    assert gain_and_clip(audio, 20.0).abs().max() == pytest.approx(1.0, abs=1e-3)  # x10, just under 1
    assert gain_and_clip(audio, -6.0206).abs().max() == pytest.approx(0.05, abs=1e-4)  # x0.5
    clipped = gain_and_clip(audio, 20.0, clip=0.5)
    assert clipped.abs().max() == 0.5 and clipped.shape == audio.shape


def test_loader_augmentation_is_drawn_from_seed_epoch_and_utterance(tmp_path):
    from conftest import write_tone

    from asr.augment import AugmentConfig
    from asr.data import UtteranceDataset
    from asr.manifest import Utterance

    utts = [Utterance(f"u{i}", str(write_tone(tmp_path / f"u{i}.wav", 0.5)), 0.5, "AB") for i in range(2)]
    every = AugmentConfig(noise_prob=1.0, narrow_band_prob=1.0, gain_prob=1.0, gain_db=(-3.0, -3.0))
    clean = UtteranceDataset(utts, None, SR)[(0, 0)][1]
    data = UtteranceDataset(utts, None, SR, augment=every, seed=5)
    first = data[(0, 0)][1]
    assert torch.equal(first, UtteranceDataset(utts, None, SR, augment=every, seed=5)[(0, 0)][1])
    assert not torch.equal(first, data[(1, 0)][1]) and not torch.equal(first, data[(0, 1)][1])
    assert first.shape == clean.shape and torch.isfinite(first).all() and not torch.allclose(first, clean)


def test_training_with_augmentation_records_it_in_the_checkpoint(tmp_path):
    from test_train import overrides, tiny_corpus

    from asr.config import compose_config
    from asr.recognizer import read_checkpoint
    from asr.train import train

    best = train(compose_config(overrides(tmp_path, tiny_corpus(tmp_path), 1, "augment=noise")))
    assert read_checkpoint(best)["config"]["augment"]["noise_prob"] == 0.5
