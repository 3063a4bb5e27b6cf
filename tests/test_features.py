import pytest
import torch
from conftest import tone

from asr.errors import InputError
from asr.features import (
    FeatureConfig,
    FeatureExtractor,
    GlobalNorm,
    SpecAugment,
    SpecAugmentConfig,
    StatsAccumulator,
    frame_mask,
    warp_frequencies,
    warped_mel_filters,
)


@pytest.mark.parametrize("kind, n_features", [("fbank", 80), ("mfcc", 40), ("spectrogram", 161)])
def test_shapes_and_frame_counts(kind, n_features):
    config = FeatureConfig(kind=kind, win_ms=20.0 if kind == "spectrogram" else 25.0)
    assert config.n_features == n_features
    waves = torch.from_numpy(tone(1.0))[None].repeat(2, 1)
    feats, n_frames = FeatureExtractor(config)(waves, torch.tensor([16000, 8000]))
    expected = [(16000 - config.win_samples) // 160 + 1, (8000 - config.win_samples) // 160 + 1]
    assert feats.shape == (2, expected[0], n_features)
    assert n_frames.tolist() == expected
    assert torch.isfinite(feats).all()


def test_padding_never_changes_a_valid_frame():
    extractor = FeatureExtractor(FeatureConfig())
    short = torch.from_numpy(tone(0.37, seed=1))
    alone, n_alone = extractor(short[None], torch.tensor([short.shape[0]]))
    padded = torch.zeros(2, 16000)
    padded[0, : short.shape[0]] = short
    padded[1] = torch.from_numpy(tone(1.0, seed=2))
    batch, n_batch = extractor(padded, torch.tensor([short.shape[0], 16000]))
    assert n_batch[0] == n_alone[0]
    torch.testing.assert_close(batch[0, : n_alone[0]], alone[0])


def test_global_norm_from_valid_frames_only():
    feats = torch.randn(2, 50, 4) * 3 + 5
    n_frames = torch.tensor([50, 20])
    feats[1, 20:] = 1000.0  # padding must not leak into the statistics
    stats = StatsAccumulator(4)
    stats.add(feats, n_frames)
    mean, std = stats.result()
    valid = torch.cat([feats[0], feats[1, :20]])
    torch.testing.assert_close(mean, valid.mean(0))
    torch.testing.assert_close(std, valid.std(0, unbiased=False), rtol=1e-4, atol=1e-4)
    normed = GlobalNorm(mean, std)(feats, n_frames)
    assert normed[1, 20:].abs().sum() == 0
    assert abs(float(torch.cat([normed[0], normed[1, :20]]).mean())) < 1e-4


def test_specaugment_masks_in_training_only_and_inside_the_utterance():
    torch.manual_seed(0)
    augment = SpecAugment(SpecAugmentConfig(freq_masks=2, freq_width=10, time_masks=2, time_ratio=0.2))
    feats = torch.ones(4, 100, 40)
    n_frames = torch.tensor([100, 60, 30, 10])
    augment.train()
    masked = augment(feats, n_frames)
    assert (masked == 0).any()
    zero_bins = (masked == 0).all(dim=1)  # (batch, bins) wholly masked bands
    assert zero_bins.sum(1).max() <= 20
    for row, n in enumerate(n_frames.tolist()):
        zero_frames = (masked[row] == 0).all(dim=1)
        assert zero_frames.sum() <= 2 * int(n * 0.2)
    augment.eval()
    assert torch.equal(augment(feats, n_frames), feats)


def test_frame_mask():
    assert frame_mask(torch.tensor([2, 0, 3]), 3).tolist() == [[True, True, False], [False] * 3, [True] * 3]


def test_audio_shorter_than_one_window_gives_one_frame():
    extractor = FeatureExtractor(FeatureConfig())
    feats, n_frames = extractor(torch.from_numpy(tone(0.01))[None], torch.tensor([160]))
    assert feats.shape == (1, 1, 80) and n_frames.tolist() == [1]


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_features_match_librosa(kind):
    """Independent reference: librosa's STFT (periodic Hann, no centring), HTK mel filters without
    normalisation, and an orthonormal DCT-II, as our settings of torchaudio describe them."""
    import librosa
    import numpy as np
    import scipy.fft

    config = FeatureConfig(kind=kind)
    wave = tone(0.5, seed=3)
    ours, _ = FeatureExtractor(config)(torch.from_numpy(wave)[None], torch.tensor([wave.shape[0]]))
    power = np.abs(librosa.stft(wave.astype(np.float64), n_fft=400, hop_length=160, center=False)) ** 2
    mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80, htk=True, norm=None) @ power
    expected = np.log(mel + 1e-6)
    if kind == "mfcc":
        expected = scipy.fft.dct(expected, type=2, norm="ortho", axis=0)[:40]
    torch.testing.assert_close(ours[0].double(), torch.from_numpy(expected.T), rtol=1e-3, atol=2e-3)


def test_features_stay_in_float32_under_autocast():
    """bf16 autocast (as training on a GPU uses) must not reach the features: it moved MFCC bins
    by up to 8% of their standard deviation."""
    extractor = FeatureExtractor(FeatureConfig(kind="mfcc"))
    wave = torch.from_numpy(tone(0.5, seed=4))[None]
    plain, _ = extractor(wave, torch.tensor([wave.shape[1]]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = extractor(wave, torch.tensor([wave.shape[1]]))
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain)


def test_the_warp_map_worked_by_hand():
    """Jaitly and Hinton's map at 16 kHz (cutoff 4.8 kHz): below the knee f -> warp * f; above it
    the line through (knee, warp * knee) and (8000, 8000). Warp 1.1: knee 4800 / 1.1 = 4363.6 Hz, and
    6000 -> 8000 - 3200 / 3636.4 * 2000 = 6240. Warp 0.9: knee 4800, 6000 -> 8000 - 3680 / 3200 * 2000 = 5700."""
    mapped = warp_frequencies(torch.tensor([0.0, 1000.0, 4000.0, 6000.0, 8000.0]), torch.tensor([1.1, 0.9, 1.0]), 8000.0)
    expected = [[0.0, 1100.0, 4400.0, 6240.0, 8000.0], [0.0, 900.0, 3600.0, 5700.0, 8000.0],
                [0.0, 1000.0, 4000.0, 6000.0, 8000.0]]
    torch.testing.assert_close(mapped, torch.tensor(expected))


def test_an_unwarped_filterbank_is_torchaudios():
    filters = FeatureExtractor(FeatureConfig()).transform.mel_scale.fb  # torchaudio's own HTK triangles
    warped = warped_mel_filters(201, 80, 16000, torch.tensor([1.0, 1.1]))
    torch.testing.assert_close(warped[0], filters, atol=1e-4, rtol=0)
    assert not torch.allclose(warped[1], filters, atol=1e-2)


@pytest.mark.parametrize("freq, warp, moved_to", [(1000.0, 1.1, 1100.0), (1000.0, 0.9, 900.0), (3000.0, 1.2, 3600.0),
                                                  (6000.0, 1.1, 6240.0), (6000.0, 0.9, 5700.0)])
def test_a_warped_tone_lands_in_the_band_of_its_mapped_frequency(freq, warp, moved_to):
    """A tone's loudest mel band under a warp is the band an unwarped tone at the frequency worked
    out by hand (see above) peaks in, and not its own."""
    extractor = FeatureExtractor(FeatureConfig())

    def loudest(f, warps=None):
        feats, _ = extractor(torch.from_numpy(tone(0.5, freq=f))[None], torch.tensor([8000]), warps)
        return int(feats[0].mean(0).argmax())

    assert loudest(freq, torch.tensor([warp])) == loudest(moved_to) != loudest(freq)


def test_warps_are_drawn_in_training_only_within_their_range_and_from_the_seed():
    augment = SpecAugment(SpecAugmentConfig(warp=0.1)).train()
    torch.manual_seed(3)
    first = augment.warps(1000)
    torch.manual_seed(3)
    assert torch.equal(augment.warps(1000), first)
    assert 0.9 <= float(first.min()) < 0.91 and 1.09 < float(first.max()) <= 1.1
    for quiet in (augment.eval(), SpecAugment(SpecAugmentConfig()).train()):
        torch.manual_seed(3)
        assert quiet.warps(4) is None
        assert torch.equal(torch.rand(3), (torch.manual_seed(3), torch.rand(3))[1])  # drew nothing


def test_warping_a_recognizer_in_training_mode_only():
    from asr.model import ModelDims
    from asr.recognizer import Recognizer
    from asr.tokenizer import CharTokenizer

    dims = ModelDims(n_input=80, n_tokens=3, conv_channels=(4,), conv_kernels=((3, 3),), conv_strides=((2, 2),),
                     n_layers=1, hidden=8)
    recognizer = Recognizer(FeatureConfig(), dims, CharTokenizer(["<blank>", "A", "B"]), torch.zeros(80), torch.ones(80),
                            SpecAugmentConfig(freq_masks=0, time_masks=0, warp=0.2))
    seen = []
    recognizer.norm.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    waves = torch.from_numpy(tone(0.5, freq=1000.0))[None].repeat(2, 1)
    n = torch.tensor([8000, 8000])
    recognizer.eval()(waves, n)
    recognizer.train()(waves, n)
    plain, warped = seen
    assert torch.equal(plain[0], plain[1])
    assert not torch.allclose(warped[0], plain[0]) and not torch.allclose(warped[0], warped[1])
    assert torch.isfinite(warped).all()


def test_a_warp_out_of_range_or_on_other_features_is_one_line():
    with pytest.raises(InputError, match=r"specaugment.warp: 0.6; choose a value from 0"):
        SpecAugmentConfig(warp=0.6)
    with pytest.raises(InputError, match="specaugment.warp: frequency warping needs fbank features, not mfcc"):
        FeatureExtractor(FeatureConfig(kind="mfcc"))(torch.zeros(1, 800), torch.tensor([800]), torch.tensor([1.1]))
