"""Tar shards: packing, the per-process reading plan, and AN4 training from shards (1 and 2 processes)."""
import csv
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch
from test_distributed import torchrun

from asr.audio import load_audio
from asr.cli import main
from asr.config import compose_config
from asr.manifest import Manifest, Utterance, write_manifest
from asr.recognizer import read_checkpoint
from asr.shards import ShardStream, read_shard, write_shards
from asr.tokenizer import CharTokenizer
from asr.train import TrainingError, train

TINY = ["model.conv_channels=[4,4]", "model.n_layers=1", "model.hidden=16", "device=cpu", "train.threads=1",
        "train.tensorboard=false", "data.dev=null"]


@pytest.fixture
def an4_manifest(an4_fixture, tmp_path):
    utts = [Utterance(i, str(p), sf.info(str(p)).duration, t, speaker=i[:4]) for i, p, t in an4_fixture]
    utts.append(Utterance("gone", str(tmp_path / "missing.flac"), 1.0, "GONE"))
    return write_manifest(utts, tmp_path / "an4.jsonl")


def test_shards_hold_each_readable_utterance_once_with_its_samples(an4_manifest, tmp_path, caplog):
    assert main(["shard", "--manifest", str(an4_manifest), "--out", str(tmp_path / "shards"), "--shard-size", "4"]) == 0
    names = sorted(p.name for p in (tmp_path / "shards").glob("*.tar"))
    assert names == ["shard-000000.tar", "shard-000001.tar"]
    assert "missing audio" in caplog.text or "no such file" in caplog.text  # the missing file, named and left out
    index = Manifest(tmp_path / "shards" / "shards.jsonl")
    source = {u.id: u for u in Manifest(an4_manifest)}
    assert sorted(u.id for u in index) == sorted(k for k in source if k != "gone")
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as tar:
        assert len(tar.getnames()) == 4
    audio = {**read_shard(tmp_path / "shards" / names[0]), **read_shard(tmp_path / "shards" / names[1])}
    for utt in index:
        expected = load_audio(source[utt.id].audio, 16000)
        got = audio[utt.audio.split("#")[1]]
        assert got.shape == expected.shape and utt.duration == pytest.approx(len(expected) / 16000)
        assert np.abs(got - expected).max() <= 1 / 32768 + 1e-7  # 16-bit FLAC: one quantisation step
        assert utt.text == source[utt.id].text


def test_feature_statistics_read_a_few_whole_shards_not_every_shard(an4_manifest, tmp_path, monkeypatch):
    import asr.shards
    from asr.features import FeatureConfig
    from asr.train import estimate_stats

    utts = [u for u in Manifest(an4_manifest) if u.id != "gone"]
    twice = [*utts, *(Utterance(f"{u.id}-b", u.audio, u.duration, u.text) for u in utts)]  # 10 utterances
    index = Manifest(write_shards(twice, tmp_path / "shards", shard_size=5, progress=False))  # 2 shards
    read = []
    monkeypatch.setattr(asr.shards, "read_shard", lambda path: read.append(path.name) or read_shard(path))
    mean, std = estimate_stats(FeatureConfig(), index, 3, seed=1, progress=False, shards=True)
    assert len(read) == 1  # 3 utterances fit in one shard: the other is never read
    assert torch.isfinite(mean).all() and (std > 0).all()


def synthetic_index(tmp_path, n_shards=5, per_shard=6):
    rows = [Utterance(f"u{s}-{k}", f"shard-{s:06d}.tar#{k:09d}.flac", 0.5 + 0.1 * k, "AB", "")
            for s in range(n_shards) for k in range(per_shard)]
    return Manifest(write_manifest(rows, tmp_path / "shards.jsonl"))


def test_each_process_reads_its_own_whole_shards_and_all_take_the_same_steps(tmp_path):
    index = synthetic_index(tmp_path)
    tokenizer = CharTokenizer(["<blank>", "A", "B"])
    streams = [ShardStream(index, tokenizer, 16000, [1.0], 1.5, 2, seed=3, rank=r, world=2) for r in (0, 1)]
    plans = [s.plan(epoch=0) for s in streams]
    assert plans[0][1] == plans[1][1] == min(len(p[0]) for p in plans)
    shards = [{shard for shard, _ in p[0]} for p in plans]
    assert not shards[0] & shards[1]  # disjoint shards
    for plan, _ in plans:
        for shard, rows in plan:
            assert all(index[i].audio.startswith(shard) for i in rows)
            assert 1 <= len(rows) <= 2 and max(index[i].duration for i in rows) * len(rows) <= 1.5
        order = [shard for shard, _ in plan]
        assert order == sorted(order, key=order.index) and len(set(order)) == len(dict.fromkeys(order))
    # the plan depends on (seed, epoch) only, and changes from one epoch to the next
    again = ShardStream(index, tokenizer, 16000, [1.0], 1.5, 2, seed=3, rank=0, world=2)
    assert again.plan(0) == plans[0] and again.plan(1) != plans[0]
    with pytest.raises(Exception, match="5 shard"):
        ShardStream(index, tokenizer, 16000, [1.0], 1.5, 2, seed=3, rank=0, world=8)


def test_an4_trains_from_shards(an4_manifest, tmp_path):
    write_shards(Manifest(an4_manifest), tmp_path / "shards", shard_size=2, progress=False)
    overrides = [f"data.train={tmp_path / 'shards'}", f"out_dir={tmp_path / 'exp'}", "train.epochs=2",
                 "train.max_batch=2", *TINY]
    best = train(compose_config(overrides))
    with (tmp_path / "exp" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["skipped"] == "0" for r in rows)
    assert all(float(r["train_loss"]) > 0 for r in rows)
    assert read_checkpoint(best)["epoch"] == 1
    with pytest.raises(TrainingError, match="cache_audio"):
        train(compose_config([*overrides, "train.cache_audio=true", f"out_dir={tmp_path / 'exp2'}"]))


def test_an4_trains_from_shards_under_two_gloo_processes(an4_manifest, tmp_path):
    write_shards(Manifest(an4_manifest), tmp_path / "shards", shard_size=2, progress=False)
    out = tmp_path / "weights"
    torchrun("distributed_train.py", str(out), f"data.train={tmp_path / 'shards'}", f"out_dir={tmp_path / 'exp'}",
             "train.epochs=2", "train.max_batch=1", *TINY)
    first, second = (torch.load(f"{out}.{rank}.pt", weights_only=True) for rank in (0, 1))
    for name in first:
        assert torch.equal(first[name], second[name]), name  # the replicas stepped together
    with (tmp_path / "exp" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(r["train_loss"]) > 0 for r in rows)
