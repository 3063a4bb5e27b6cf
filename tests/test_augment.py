"""Waveform augmentations: seeded, the SNR asked for, lengths kept, no NaN; expected values from
the definitions (SNR, spectral slope, G.711 quantisation, decibels), not from the code."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.augment import (
    AugmentConfig,
    add_noise,
    augment,
    coloured_noise,
    gain_and_clip,
    join_with_pause,
    narrow_band,
    reverberate,
    synthetic_rir,
)

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


def schroeder_rt60(rir: torch.Tensor) -> float:
    """RT60 by Schroeder's backward integration (ISO 3382 T20): the time the energy decay curve
    takes to fall from -5 to -25 dB, times three."""
    energy = rir.double().pow(2).flip(0).cumsum(0).flip(0)
    decay_db = 10 * torch.log10(energy / energy[0])
    t5 = int((decay_db > -5).sum())
    t25 = int((decay_db > -25).sum())
    return 3 * (t25 - t5) / SR


@pytest.mark.parametrize("rt60", [0.3, 0.7])
def test_synthetic_rooms_have_the_reverberation_time_asked_for(rt60):
    rir = synthetic_rir(rt60, SR, seeded(2))
    assert torch.equal(rir, synthetic_rir(rt60, SR, seeded(2))) and rir[0] == 1.0
    # the direct path takes part of the energy: measure the tail's decay, as a room's late field
    assert schroeder_rt60(rir[int(0.0025 * SR):]) == pytest.approx(rt60, rel=0.1)
    speech = tone()
    wet = reverberate(speech, rir)
    assert wet.shape == speech.shape and torch.isfinite(wet).all()
    assert float(wet.double().pow(2).mean()) == pytest.approx(float(speech.double().pow(2).mean()), rel=1e-6)


def test_a_measured_impulse_response_from_a_folder_is_convolved_aligned_on_its_peak(tmp_path):
    # an echo 100 samples after the direct path, at half its amplitude, after 50 samples of delay
    rir = np.zeros(251, np.float32)
    rir[50], rir[150] = 1.0, 0.5
    (tmp_path / "rirs" / "room1").mkdir(parents=True)
    sf.write(tmp_path / "rirs" / "room1" / "echo.wav", rir, SR, subtype="FLOAT")
    config = AugmentConfig(reverb_prob=1.0, rir_dirs=(str(tmp_path / "rirs"),), rir_file_prob=1.0)
    x = tone(0.25)
    out = augment(x, SR, config, seeded(0))
    expected = x.double().clone()
    expected[100:] += 0.5 * x.double()[:-100]
    expected *= torch.sqrt(x.double().pow(2).mean() / expected.pow(2).mean())
    assert torch.allclose(out.double(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="nowhere: not a folder"):
        AugmentConfig(rir_dirs=("nowhere",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        AugmentConfig(noise_dirs=(str(tmp_path / "empty"),))


def test_noise_from_a_musan_style_folder_at_the_snr_asked_for(tmp_path):
    folder = tmp_path / "musan" / "noise" / "free-sound"
    folder.mkdir(parents=True)
    hum = 0.2 * np.sin(2 * np.pi * 100 * np.arange(3 * SR) / SR)  # a 100 Hz hum, 3 s
    sf.write(folder / "noise-free-sound-0000.wav", hum, SR)
    config = AugmentConfig(noise_prob=1.0, noise_snr_db=(10.0, 10.0), noise_dirs=(str(tmp_path / "musan"),),
                           noise_file_prob=1.0)
    clean = tone(freq=1000.0)
    noisy = augment(clean, SR, config, seeded(1))
    assert torch.equal(noisy, augment(clean, SR, config, seeded(1)))
    noise = (noisy - clean).double()
    assert 10 * math.log10(clean.double().pow(2).mean() / noise.pow(2).mean()) == pytest.approx(10.0, abs=0.01)
    spectrum = torch.fft.rfft(noise).abs()
    assert int(spectrum.argmax()) == 100  # 1 s of noise: bin k is k Hz; the hum, not synthetic noise


@pytest.mark.parametrize("kind", ["silence", "room_tone", "noise"])
def test_utterances_are_joined_with_the_pause_asked_for(kind):
    quiet = 0.001 * torch.randn(SR // 2, generator=seeded(0))  # half a second of room tone, then speech
    first, second = torch.cat([quiet, tone(0.5)]), tone(0.3, freq=300.0)
    joined = join_with_pause(first, second, 8000, kind, seeded(3))
    assert joined.shape[0] == first.shape[0] + 8000 + second.shape[0] and torch.isfinite(joined).all()
    assert torch.equal(joined[: first.shape[0]], first) and torch.equal(joined[-second.shape[0]:], second)
    gap_db = 10 * math.log10(joined[first.shape[0]: -second.shape[0]].double().pow(2).mean() + 1e-30)
    expected_db = {"silence": -300.0,  # digital silence
                   "room_tone": 10 * math.log10(1e-6),  # the quietest tenth of 10 ms blocks: the 0.001 rms tone
                   "noise": 10 * math.log10(first.double().pow(2).mean() / 100)}[kind]  # 20 dB below
    assert gap_db == pytest.approx(expected_db, abs=0.5 if kind == "room_tone" else 0.01)


def test_the_loader_joins_two_utterances_and_their_texts(tmp_path):
    from conftest import write_tone

    from asr.data import BucketBatchSampler, EpochStream, UtteranceDataset
    from asr.manifest import Utterance
    from asr.tokenizer import CharTokenizer

    utts = [Utterance("a", str(write_tone(tmp_path / "a.wav", 0.5)), 0.5, "AB"),
            Utterance("b", str(write_tone(tmp_path / "b.wav", 0.25)), 0.25, "CD")]
    tokenizer = CharTokenizer.build(["AB CD"])
    config = AugmentConfig(concat_prob=1.0, concat_pause_seconds=(1.0, 1.0), concat_pause_kinds=("silence",))
    data = UtteranceDataset(utts, tokenizer, SR, augment=config, seed=1)
    sampler = BucketBatchSampler([u.duration for u in utts], 10.0, shuffle=False)
    assert list(EpochStream(sampler, 0, 1, join_prob=1.0)) == [[(0, 1, 0)]]  # neighbours by length, shortest first
    assert list(EpochStream(sampler, 0, 1, join_prob=0.0)) == [[(0, 1), (0, 0)]]
    _, waveform, tokens = data[(0, 0, 1)]
    assert waveform.shape[0] == int(0.5 * SR) + SR + int(0.25 * SR)
    assert waveform[int(0.5 * SR): int(1.5 * SR)].abs().max() == 0
    assert tokenizer.decode(tokens.tolist()) == "AB CD"
    assert torch.equal(waveform, UtteranceDataset(utts, tokenizer, SR, augment=config, seed=1)[(0, 0, 1)][1])
    assert data[(0, 0)][1].shape[0] == int(0.5 * SR)  # an item of one utterance stays one


@pytest.mark.parametrize("group", ["noise", "robust"])
def test_training_with_augmentation_records_it_in_the_checkpoint(tmp_path, group):
    from test_train import overrides, tiny_corpus

    from asr.config import compose_config
    from asr.recognizer import read_checkpoint
    from asr.train import train

    best = train(compose_config(overrides(tmp_path, tiny_corpus(tmp_path), 1, f"augment={group}")))
    recorded = read_checkpoint(best)["config"]["augment"]
    assert recorded["noise_prob"] == 0.5 and recorded["concat_prob"] == (0.1 if group == "robust" else 0.0)


def test_babble_is_talkers_at_unit_power_each_and_the_loader_adds_it_at_the_snr(tmp_path):
    from conftest import write_tone

    from asr.augment import babble
    from asr.data import UtteranceDataset
    from asr.manifest import Utterance

    a, b = tone(0.5, 300.0, 0.2), tone(0.3, 1000.0, 0.05)  # orthogonal over whole periods: powers add
    mix = babble([a, b], SR)
    assert mix.shape == (SR,) and float(mix.double().pow(2).mean()) == pytest.approx(2.0, rel=0.01)
    utts = [Utterance(f"u{i}", str(write_tone(tmp_path / f"u{i}.wav", 0.5 + 0.1 * i)), 0.5 + 0.1 * i,
                      "AB") for i in range(4)]
    config = AugmentConfig(babble_prob=1.0, babble_snr_db=(10.0, 10.0), babble_talkers=(2, 2))
    clean = UtteranceDataset(utts, None, SR)[(0, 0)][1]
    noisy = UtteranceDataset(utts, None, SR, augment=config, seed=3)[(0, 0)][1]
    assert torch.equal(noisy, UtteranceDataset(utts, None, SR, augment=config, seed=3)[(0, 0)][1])
    noise = (noisy - clean).double()
    assert 10 * math.log10(clean.double().pow(2).mean() / noise.pow(2).mean()) == pytest.approx(10.0, abs=0.01)
