"""Frame-level distillation from a teacher checkpoint (train.distill_from)."""
import math

import pytest
import torch
import torch.nn.functional as F
from test_train import overrides, tiny_corpus

from asr.config import ConfigError, compose_config
from asr.distill import DistillError, frame_kl
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.recognizer import CheckpointError, load_recognizer, read_checkpoint
from asr.train import train


def test_frame_kl_worked_by_hand():
    # teacher (1/2, 1/2), student (1/4, 3/4): 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3), on the one valid frame
    teacher = torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]).log()
    student = torch.tensor([[[0.25, 0.75], [0.1, 0.9]]]).log()
    assert frame_kl(student, teacher, torch.tensor([1])).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    # delayed by one frame, student frame 1 learns teacher frame 0: 1/2 ln(1/0.2) + 1/2 ln(1/1.8)
    assert frame_kl(student, teacher, torch.tensor([2]), shift=1).item() == pytest.approx(
        0.5 * math.log(5) + 0.5 * math.log(1 / 1.8), rel=1e-6)


@pytest.mark.parametrize("shift", [0, 2])
def test_frame_kl_sums_torchs_kl_div_over_the_valid_frames(shift):
    torch.manual_seed(0)
    student = torch.randn(3, 7, 5).log_softmax(-1)
    teacher = torch.randn(3, 7, 5).log_softmax(-1)
    n_frames = torch.tensor([7, 4, 1])
    expected = sum(F.kl_div(student[b, t], teacher[b, t - shift], log_target=True, reduction="sum")
                   for b in range(3) for t in range(shift, int(n_frames[b])))
    assert frame_kl(student, teacher, n_frames, shift).item() == pytest.approx(float(expected), rel=1e-5)


def mean_kl(student_ckpt, teacher_ckpt, manifest) -> float:
    """The student's mean per-frame KL from the teacher on every utterance, in eval mode."""
    from asr.audio import load_audio

    student, teacher = load_recognizer(student_ckpt), load_recognizer(teacher_ckpt)
    waves = [torch.from_numpy(load_audio(u.audio, 16000)) for u in read_manifest(manifest)]
    s, n_frames = student.infer(waves)
    t, _ = teacher.infer(waves)
    return float(frame_kl(s, t, n_frames) / n_frames.sum())


def test_a_distilled_run_learns_its_teachers_posteriors(tmp_path):
    manifest = tiny_corpus(tmp_path)
    # The teacher: another width and seed, the same tokens and frame rate.
    fast = ["optim.lr=0.01"]
    teacher = train(compose_config(overrides(tmp_path / "t", manifest, 8, "model.hidden=24", "seed=7", *fast)))
    plain = train(compose_config(overrides(tmp_path / "plain", manifest, 8, *fast)))
    distilled = train(compose_config(overrides(tmp_path / "kd", manifest, 8, f"train.distill_from={teacher}",
                                               "train.distill_weight=100", *fast)))
    # The same run without the teacher is about 10x further from it (0.024 against 0.0024 when written).
    before, after = mean_kl(plain, teacher, manifest), mean_kl(distilled, teacher, manifest)
    assert after < 0.25 * before, (before, after)
    assert read_checkpoint(distilled)["config"]["train"]["distill_from"] == str(teacher)


def test_a_missing_teacher_or_init_checkpoint_stops_the_run_before_the_normalisation_statistics(tmp_path, monkeypatch):
    import asr.train

    manifest = tiny_corpus(tmp_path)

    def no_statistics(*args, **kwargs):
        raise AssertionError("the statistics were estimated before the teacher was read")

    monkeypatch.setattr(asr.train, "estimate_stats", no_statistics)
    with pytest.raises(DistillError, match="train.distill_from: .*nowhere.pt: no such checkpoint"):
        train(compose_config(overrides(tmp_path, manifest, 1, f"train.distill_from={tmp_path / 'nowhere.pt'}")))
    # train.init_from likewise
    with pytest.raises(CheckpointError, match="nowhere.pt: no such checkpoint"):
        train(compose_config(overrides(tmp_path, manifest, 1, f"train.init_from={tmp_path / 'nowhere.pt'}")))
    assert not (tmp_path / "exp").exists()


def test_a_teacher_that_cannot_teach_the_model_is_refused_before_anything_is_written(tmp_path):
    manifest = tiny_corpus(tmp_path)
    other_tokens = write_manifest([Utterance("c", str(read_manifest(manifest)[0].audio), 0.3, "ABC")],
                                  tmp_path / "abc.jsonl")
    teacher = train(compose_config(overrides(tmp_path / "t", other_tokens, 1)))
    with pytest.raises(DistillError, match=f"{teacher}: its tokens \\(4\\) are not the model's \\(3\\)"):
        train(compose_config(overrides(tmp_path / "kd", manifest, 1, f"train.distill_from={teacher}")))
    assert not (tmp_path / "kd").exists()
    slower = train(compose_config(overrides(tmp_path / "s", manifest, 1, "model.conv_strides=[[2,2],[2,3]]")))
    with pytest.raises(DistillError, match="output frame rate"):
        train(compose_config(overrides(tmp_path / "kd", manifest, 1, f"train.distill_from={slower}")))
    with pytest.raises(ConfigError, match="train.distill_weight=0"):
        train(compose_config(overrides(tmp_path / "kd", manifest, 1, f"train.distill_from={teacher}",
                                       "train.distill_weight=0")))
    assert not (tmp_path / "kd").exists()


@pytest.mark.parametrize("speeds", [(1.0,), (0.9, 1.1)])
def test_items_keep_the_audio_as_it_was_before_babble_and_augmentation(tmp_path, speeds):
    from conftest import write_tone

    from asr.augment import AugmentConfig
    from asr.data import UtteranceDataset, collate

    utts = [Utterance(f"u{i}", str(write_tone(tmp_path / f"u{i}.wav", 0.5 + 0.1 * i)), 0.5 + 0.1 * i, "AB")
            for i in range(4)]
    every = AugmentConfig(noise_prob=1.0, babble_prob=1.0, reverb_prob=1.0, narrow_band_prob=1.0)
    kept = UtteranceDataset(utts, None, 16000, speeds, seed=3, augment=every, keep_clean=True)
    # The reference: the same items from a loader that augments nothing.
    plain = UtteranceDataset(utts, None, 16000, speeds, seed=3)
    for key in [(0, 0), (1, 2), (2, 3)]:
        _, noisy, _, clean = kept[key]
        assert torch.equal(clean, plain[key][1]) and clean.shape == noisy.shape
        assert not torch.allclose(noisy, clean)
        assert torch.equal(noisy, UtteranceDataset(utts, None, 16000, speeds, seed=3, augment=every)[key][1])
    batch = collate([kept[(0, 0)], kept[(0, 3)]])
    assert batch.clean.shape == batch.waveforms.shape
    assert torch.equal(batch.clean[0, :int(batch.n_samples[0])], plain[(0, 0)][1])


def test_a_clean_teacher_hears_the_clean_audio_and_the_student_the_noisy(tmp_path):
    from contextlib import nullcontext

    from asr.data import Batch
    from asr.distill import Teacher
    from asr.evaluate import ctc_loss
    from asr.train import batch_loss

    manifest = tiny_corpus(tmp_path)
    student = load_recognizer(train(compose_config(overrides(tmp_path / "s", manifest, 1))))
    teacher = load_recognizer(train(compose_config(overrides(tmp_path / "t", manifest, 1, "seed=4"))))
    torch.manual_seed(0)
    clean = torch.randn(2, 8000) * 0.1
    noisy = clean + torch.randn(2, 8000) * 0.1
    n_samples, targets, n_targets = torch.tensor([8000, 6000]), torch.tensor([1, 2, 2, 1]), torch.tensor([2, 2])
    batch = Batch([None, None], noisy, n_samples, targets, n_targets, 0, clean)
    got = batch_loss(student, batch, torch.device("cpu"), nullcontext(), Teacher(teacher, 0.5, clean=True))
    heard, n_frames = student(noisy, n_samples)
    expected = ctc_loss(heard, n_frames, targets, n_targets) + 0.5 * frame_kl(heard, teacher(clean, n_samples)[0],
                                                                            n_frames)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    wrong = ctc_loss(heard, n_frames, targets, n_targets) + 0.5 * frame_kl(heard, teacher(noisy, n_samples)[0],
                                                                         n_frames)
    assert got.item() != pytest.approx(wrong.item(), rel=1e-3)


def test_distill_clean_without_a_teacher_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="train.distill_clean=true: there is no teacher"):
        compose_config(overrides(tmp_path, tmp_path / "m.jsonl", 1, "train.distill_clean=true"))


def test_without_a_clean_teacher_the_loader_perturbs_each_item_once(tmp_path, monkeypatch):
    # Keeping the clean audio costs a second speed perturbation of babbled items; a run without a
    # clean teacher must not pay it.
    from conftest import write_tone

    import asr.data
    from asr.augment import AugmentConfig
    from asr.data import UtteranceDataset

    calls = []
    perturb = asr.data.speed_perturb
    monkeypatch.setattr(asr.data, "speed_perturb", lambda *args: calls.append(1) or perturb(*args))
    utts = [Utterance(f"u{i}", str(write_tone(tmp_path / f"u{i}.wav", 0.5)), 0.5, "AB") for i in range(3)]
    babble = AugmentConfig(babble_prob=1.0)
    UtteranceDataset(utts, None, 16000, (0.9, 1.1), seed=3, augment=babble)[(0, 0)]
    assert len(calls) == 1
    UtteranceDataset(utts, None, 16000, (0.9, 1.1), seed=3, augment=babble, keep_clean=True)[(0, 0)]
    assert len(calls) == 3
