import pytest
import torch
from conftest import write_corrupt, write_tone

from asr.data import (
    BucketBatchSampler,
    EpochStream,
    UtteranceDataset,
    cache_audio,
    cache_key,
    collate,
)
from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest
from asr.tokenizer import CharTokenizer


def test_bucket_sampler_respects_budget_and_covers_everything():
    durations = [0.5 + (i * 7 % 23) / 4 for i in range(200)]
    sampler = BucketBatchSampler(durations, max_seconds=30, max_batch=16, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(200))
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) == 1 or len(batch) * max(durations[i] for i in batch) <= 30
    sampler.set_epoch(1)
    assert sampler.batches() != batches  # a new order every epoch
    sampler.set_epoch(0)
    assert sampler.batches() == batches  # and the same order for the same epoch
    ordered = BucketBatchSampler(durations, 30, shuffle=False).batches()
    flat = [durations[i] for b in ordered for i in b]
    assert flat == sorted(flat)


def test_unreadable_audio_is_skipped_and_counted(tmp_path):
    good = write_tone(tmp_path / "good.wav", 0.3)
    bad = write_corrupt(tmp_path / "bad.wav")
    utts = [Utterance("g", str(good), 0.3, "AB"), Utterance("b", str(bad), 0.3, "BA"),
            Utterance("m", str(tmp_path / "missing.wav"), 0.3, "A")]
    dataset = UtteranceDataset(utts, CharTokenizer.build(["AB"]), 16000)
    batch = collate([dataset[i] for i in range(3)])
    assert batch.n_skipped == 2 and [u.id for u in batch.utterances] == ["g"]
    assert batch.waveforms.shape == (1, 4800) and batch.targets.tolist() == [1, 2]
    assert batch.n_targets.tolist() == [2]


def test_manifest_round_trip_and_errors(tmp_path):
    utts = [Utterance("a", "/x/a.wav", 1.5, "HI", "s1"), Utterance("b", "/x/b.wav", 0.5, "YO", "s2", start=2.0)]
    path = write_manifest(utts, tmp_path / "m.jsonl")
    assert read_manifest(path) == utts
    assert not list(tmp_path.glob(".*tmp"))
    path.write_text('{"id": "a", "audio": "x.wav"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:1: no duration, text"):
        read_manifest(path)
    path.write_text('{"id": "a", "audio": "x.wav", "duration": "long", "text": ""}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:1: bad manifest line"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")


def test_speed_perturbation_changes_duration_and_pitch():
    import numpy as np
    from conftest import tone

    from asr.data import speed_perturb

    audio = torch.from_numpy(tone(1.0, freq=500.0))
    assert speed_perturb(audio, 16000, 1.0) is audio
    fast = speed_perturb(audio, 16000, 1.25)
    assert abs(fast.shape[0] - 12800) <= 1
    spectrum = np.abs(np.fft.rfft(fast.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / fast.shape[0] - 625) < 5


def test_epoch_stream_is_the_epochs_batches_back_to_back():
    durations = [0.5 + (i * 37 % 23) / 5 for i in range(60)]
    sampler = BucketBatchSampler(durations, max_seconds=12.0, max_batch=8, seed=3)
    stream = EpochStream(sampler, start=2, stop=5)
    per_epoch = [sampler.batches(epoch) for epoch in range(2, 5)]
    assert per_epoch[0] != per_epoch[1]  # shuffled anew each epoch
    assert list(stream) == [[(e, i) for i in b] for e, batches in zip(range(2, 5), per_epoch) for b in batches]
    assert [stream.epoch_length(e) for e in range(2, 5)] == [len(b) for b in per_epoch]
    assert len(stream) == sum(len(b) for b in per_epoch)


def test_cached_audio_is_read_once_and_unreadable_files_stay_skipped(tmp_path):
    good = Utterance("good", str(write_tone(tmp_path / "good.wav", 0.5)), 0.5, "AB")
    bad = Utterance("bad", str(write_corrupt(tmp_path / "bad.wav")), 1.0, "A")
    cache = cache_audio([good, bad], 16000, threads=2, progress=False)
    assert cache[cache_key(bad)] is None and cache[cache_key(good)].shape == (8000,)
    (tmp_path / "good.wav").unlink()  # from now on only the cache can serve it
    dataset = UtteranceDataset([good, bad], CharTokenizer.build(["AB"]), 16000, cache=cache)
    (_, audio, tokens), (_, missing, _) = dataset[0], dataset[1]
    assert audio.shape == (8000,) and tokens.tolist() == [1, 2] and missing is None


def test_a_manifest_line_without_text_or_with_a_duplicate_id_is_an_error(tmp_path):
    """Both once passed silently: a line without text scored as 100% with its words left out of
    the totals; one duplicate id turned WER 11.54 into 30.77."""
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "duration": 1.0, "text": "HI"}\n'
                    '{"id": "b", "audio": "b.wav", "duration": 1.0}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: no text"):
        read_manifest(path)
    path.write_text('{"id": "a", "audio": "a.wav", "duration": 1.0, "text": "HI"}\n\n'
                    '{"id": "a", "audio": "b.wav", "duration": 1.0, "text": ""}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:3: utterance id 'a' is used twice \(first on line 1\)"):
        read_manifest(path)


def test_the_audio_cache_keys_audio_by_file_not_by_id(tmp_path):
    """Two manifests (train and dev) may give one id to different audio: the cache must not mix them."""
    one = Utterance("x", str(write_tone(tmp_path / "one.wav", 0.3)), 0.3, "A")
    two = Utterance("x", str(write_tone(tmp_path / "two.wav", 0.5)), 0.5, "B")
    cache = cache_audio([one, two], 16000, threads=1, progress=False)
    dataset = UtteranceDataset([one, two], CharTokenizer.build(["AB"]), 16000, cache=cache)
    assert dataset[0][1].shape == (4800,) and dataset[1][1].shape == (8000,)
