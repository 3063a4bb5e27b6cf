"""Training end to end on tiny data: checkpoints, resume, a kill -9 mid-run, bad audio."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_corrupt, write_tone

from asr.config import compose_config
from asr.evaluate import evaluate
from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest
from asr.recognizer import load_recognizer, read_checkpoint
from asr.train import TrainingError, train

TINY = ["model.conv_channels=[4,4]", "model.n_layers=1", "model.hidden=16", "device=cpu",
        "train.max_batch=4", "train.threads=1"]


def tiny_corpus(tmp_path, n=8, bad=False):
    utts = []
    for i in range(n):
        path = write_tone(tmp_path / "audio" / f"u{i}.wav", 0.3 + 0.05 * i)
        utts.append(Utterance(f"u{i}", str(path), 0.3 + 0.05 * i, "AB" if i % 2 else "BA"))
    if bad:
        utts.append(Utterance("corrupt", str(write_corrupt(tmp_path / "audio" / "c.wav")), 0.5, "AB"))
        utts.append(Utterance("missing", str(tmp_path / "audio" / "none.wav"), 0.5, "BA"))
    return write_manifest(utts, tmp_path / "train.jsonl")


def overrides(tmp_path, manifest, epochs, *extra):
    return [f"data.train={manifest}", f"data.dev={manifest}", f"out_dir={tmp_path / 'exp'}",
            f"train.epochs={epochs}", *TINY, *extra]


def metrics(tmp_path):
    with (tmp_path / "exp" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_writes_self_describing_checkpoints_and_skips_bad_audio(tmp_path, caplog):
    manifest = tiny_corpus(tmp_path, bad=True)
    best = train(compose_config(overrides(tmp_path, manifest, 2)))
    rows = metrics(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(r["skipped"] == "2" for r in rows)  # logged, skipped, counted, and the run went on
    assert "corrupt" in caplog.text and "no such file" in caplog.text
    ckpt = torch.load(best, weights_only=True)
    assert {"dims", "features", "vocab", "norm_mean", "norm_std", "model"} <= set(ckpt)
    assert ckpt["vocab"] == ["<blank>", "A", "B"] and ckpt["dims"]["hidden"] == 16
    recognizer = load_recognizer(best)
    assert not recognizer.training and recognizer.dims.n_tokens == 3
    assert "optimizer" in read_checkpoint(tmp_path / "exp" / "last.pt")


def test_training_with_subword_units_keeps_them_in_the_checkpoint(tmp_path):
    from asr.tokenizer import SentencePieceTokenizer

    utts = [Utterance(f"u{i}", str(write_tone(tmp_path / f"u{i}.wav", 0.6)), 0.6, text)
            for i, text in enumerate(["AB BA", "BA AB", "AB AB", "BA"] * 2)]
    manifest = write_manifest(utts, tmp_path / "train.jsonl")
    best = train(compose_config(overrides(tmp_path, manifest, 2, "tokenizer=bpe", "tokenizer.vocab_size=6")))
    ckpt = read_checkpoint(best)
    assert ckpt["tokenizer"]["kind"] == "bpe" and ckpt["config"]["tokenizer"]["kind"] == "bpe"
    tokenizer = load_recognizer(best).tokenizer
    assert isinstance(tokenizer, SentencePieceTokenizer) and ckpt["dims"]["n_tokens"] == len(tokenizer)
    assert tokenizer.decode(tokenizer.encode("AB BA")) == "AB BA"
    # resumed, the run keeps the tokenizer it started with rather than learning another
    train(compose_config(overrides(tmp_path, manifest, 3, "tokenizer=bpe", "tokenizer.vocab_size=6",
                                   f"train.resume={tmp_path / 'exp' / 'last.pt'}")))
    assert read_checkpoint(tmp_path / "exp" / "last.pt")["tokenizer"]["model"] == ckpt["tokenizer"]["model"]


def test_init_from_copies_matching_weights_and_maps_output_rows_by_token(tmp_path):
    from asr.train import build_recognizer
    from asr.transfer import init_weights

    manifest = tiny_corpus(tmp_path)  # texts AB / BA: vocabulary <blank> A B
    source = read_checkpoint(train(compose_config(overrides(tmp_path, manifest, 1))))
    utts = [Utterance("c", str(write_tone(tmp_path / "c.wav", 0.5)), 0.5, "CAB")]  # <blank> A B C
    cfg = compose_config(overrides(tmp_path, write_manifest(utts, tmp_path / "c.jsonl"), 1))
    recognizer = build_recognizer(cfg, utts, None, progress=False)
    fresh_c = recognizer.model.output.weight[3].clone()
    copied, left = init_weights(recognizer, source)
    target = recognizer.model.state_dict()
    assert left == 0 and copied == len(target)
    for name, value in source["model"].items():
        if not name.startswith("output."):
            assert torch.equal(target[name], value), name
    for mine, theirs in ((0, 0), (1, 1), (2, 2)):  # <blank>, A, B: the same rows
        assert torch.equal(target["output.weight"][mine], source["model"]["output.weight"][theirs])
        assert target["output.bias"][mine] == source["model"]["output.bias"][theirs]
    assert torch.equal(target["output.weight"][3], fresh_c)  # C: not in the source, left as initialised
    # through the configuration, a new run starts from those weights
    best = train(compose_config(overrides(tmp_path, tmp_path / "c.jsonl", 1, f"out_dir={tmp_path / 'exp2'}",
                                          f"train.init_from={tmp_path / 'exp' / 'best.pt'}")))
    assert read_checkpoint(best)["vocab"] == ["<blank>", "A", "B", "C"]


@pytest.mark.parametrize("extra", [
    [],
    ["model.rnn_type=lstm", "model.layer_norm=batch", "model.output_norm=batch", "model.n_layers=2"],
])
def test_training_under_bf16_autocast_the_gpus_default(tmp_path, monkeypatch, extra):
    """On a GPU, `train.precision=bf16` (the default) runs each step under bf16 autocast; CPU
    autocast takes the same path here. The front end's batch norm failed at the first step; now
    a run with augmentation, the warp and a clean teacher trains, its weights stay finite and
    float32, and it is scored."""
    import asr.train

    monkeypatch.setattr(asr.train, "_autocast", lambda device, precision: torch.autocast("cpu", dtype=torch.bfloat16))
    manifest = tiny_corpus(tmp_path)
    teacher = train(compose_config(overrides(tmp_path / "teacher", manifest, 1)))
    best = train(compose_config(overrides(tmp_path, manifest, 2, "augment=robust", "specaugment.warp=0.1",
                                          f"train.distill_from={teacher}", "train.distill_clean=true", *extra)))
    weights = read_checkpoint(best)["model"]
    assert all(w.dtype in (torch.float32, torch.int64) and torch.isfinite(w.float()).all() for w in weights.values())
    rows = metrics(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["nonfinite"] == "0" for r in rows)
    assert float(rows[-1]["dev_wer"]) >= 0


def test_resume_continues_after_the_last_saved_epoch(tmp_path):
    manifest = tiny_corpus(tmp_path)
    train(compose_config(overrides(tmp_path, manifest, 2)))
    last = tmp_path / "exp" / "last.pt"
    before = read_checkpoint(last)
    train(compose_config(overrides(tmp_path, manifest, 3, f"train.resume={last}")))
    after = read_checkpoint(last)
    assert [r["epoch"] for r in metrics(tmp_path)] == ["1", "2", "3"]
    assert after["epoch"] == 2 and after["step"] == 3 * before["step"] // 2
    assert torch.equal(after["norm_mean"], before["norm_mean"]) and after["vocab"] == before["vocab"]


def test_resume_with_another_number_of_processes_keeps_the_schedules_place(tmp_path, caplog):
    manifest = tiny_corpus(tmp_path)  # two batches an epoch for one process
    train(compose_config(overrides(tmp_path, manifest, 2)))
    last = tmp_path / "exp" / "last.pt"
    saved = torch.load(last, weights_only=True)
    assert saved["world"] == 1 and saved["step"] == 4
    # As two processes would have left it: half the steps for the same two epochs.
    torch.save({**saved, "world": 2, "step": 2}, last)
    caplog.set_level("INFO", logger="asr.train")
    train(compose_config(overrides(tmp_path, manifest, 3, f"train.resume={last}")))
    assert "written by 2 process(es), this run has 1" in caplog.text
    # The schedule went on from epoch 2's share of the training (step 4 of 6), not from step 2.
    assert read_checkpoint(last)["step"] == 6
    straight = tmp_path / "straight"  # the same three epochs without a stop
    train(compose_config(overrides(straight, manifest, 3)))
    assert metrics(tmp_path)[-1]["lr"] == metrics(straight)[-1]["lr"]


def test_kill_9_mid_run_leaves_a_loadable_checkpoint_to_resume_from(tmp_path):
    manifest = tiny_corpus(tmp_path, n=40)
    cmd = [sys.executable, "-m", "asr", "train", *overrides(tmp_path, manifest, 200)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "exp" / "last.pt"
    try:
        deadline = time.time() + 120
        while not last.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert last.exists(), "no checkpoint written within two minutes"
        time.sleep(0.7)  # somewhere inside a later epoch, or inside a save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = read_checkpoint(last)  # never torn
    epochs_done = saved["epoch"] + 1
    train(compose_config(overrides(tmp_path, manifest, epochs_done + 1, f"train.resume={last}")))
    assert read_checkpoint(last)["epoch"] == epochs_done
    # every epoch logged once: rows of epochs run again after the resume were dropped first
    assert [r["epoch"] for r in metrics(tmp_path)] == [str(e) for e in range(1, epochs_done + 2)]


def test_check_every_scores_dev_and_saves_every_nth_epoch_and_the_last(tmp_path):
    manifest = tiny_corpus(tmp_path)
    train(compose_config(overrides(tmp_path, manifest, 3, "train.check_every=2", "train.cache_audio=true")))
    rows = metrics(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["dev_wer"] != "" for r in rows] == [False, True, True]
    assert all(0.0 <= float(r["data_wait"]) <= 1.0 for r in rows)
    assert read_checkpoint(tmp_path / "exp" / "last.pt")["epoch"] == 2


def test_test_best_scores_the_best_checkpoint_as_evaluate_does(tmp_path):
    manifest = tiny_corpus(tmp_path)
    best = train(compose_config(overrides(tmp_path, manifest, 2, "train.test_best=true", f"data.test={manifest}",
                                          "train.tensorboard=false")))
    written = json.loads((tmp_path / "exp" / "test.json").read_text())
    again = evaluate(load_recognizer(best), read_manifest(manifest))
    assert written["hypotheses"] == again["hypotheses"] and written["wer"] == again["wer"]
    assert written["utterances"] == 8
    assert not (tmp_path / "exp" / "tensorboard").exists()


def test_test_best_without_a_readable_test_manifest_stops_before_training(tmp_path):
    manifest = tiny_corpus(tmp_path)
    with pytest.raises(TrainingError, match="data.test"):
        train(compose_config(overrides(tmp_path, manifest, 1, "train.test_best=true", "data.test=null")))
    with pytest.raises(ManifestError, match="nowhere.jsonl"):
        train(compose_config(overrides(tmp_path, manifest, 1, "train.test_best=true",
                                       f"data.test={tmp_path / 'nowhere.jsonl'}")))
    assert not (tmp_path / "exp" / "metrics.csv").exists()


def test_resume_drops_metrics_rows_logged_after_its_checkpoint(tmp_path):
    manifest = tiny_corpus(tmp_path)
    train(compose_config(overrides(tmp_path, manifest, 2)))
    path = tmp_path / "exp" / "metrics.csv"
    path.write_text(path.read_text() + "3,99,0.1,123.0,,,,1.0,1.0,0.0,0\n")  # logged, then killed before saving
    last = tmp_path / "exp" / "last.pt"
    train(compose_config(overrides(tmp_path, manifest, 3, f"train.resume={last}")))
    rows = metrics(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and rows[-1]["train_loss"] != "123.0"


class Killed(BaseException):
    """Stands for a kill at a chosen moment."""


def kill_at(monkeypatch, saves_of_epoch: int, epoch: int):
    """Make the `saves_of_epoch`-th checkpoint write of (0-based) `epoch` die before it writes."""
    from asr.recognizer import Recognizer

    original, seen = Recognizer.save, []

    def save(self, path, **extra):
        if extra.get("epoch") == epoch:
            seen.append(path)
            if len(seen) == saves_of_epoch:
                raise Killed(path)
        return original(self, path, **extra)

    monkeypatch.setattr(Recognizer, "save", save)
    return original


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_killed_and_resumed_equals_the_uninterrupted_run_bit_for_bit(tmp_path, monkeypatch, workers):
    """Speed perturbation (in loader workers), SpecAugment (its warps too) and dropout all draw random numbers."""
    from asr.recognizer import Recognizer

    manifest = tiny_corpus(tmp_path, n=12)
    extra = ["train.speeds=[0.9,1.0,1.1]", "model.n_layers=2", "model.dropout=0.3", "specaugment.warp=0.1",
             f"train.num_workers={workers}"]
    straight = tmp_path / "straight"
    train(compose_config(overrides(straight, manifest, 3, *extra)))
    original = kill_at(monkeypatch, 2, epoch=1)  # dies right after epoch 2's best.pt, before its last.pt
    with pytest.raises(Killed):
        train(compose_config(overrides(tmp_path, manifest, 3, *extra)))
    monkeypatch.setattr(Recognizer, "save", original)
    assert read_checkpoint(tmp_path / "exp" / "last.pt")["epoch"] == 0
    train(compose_config(overrides(tmp_path, manifest, 3, *extra, f"train.resume={tmp_path / 'exp' / 'last.pt'}")))
    a, b = read_checkpoint(straight / "exp" / "last.pt"), read_checkpoint(tmp_path / "exp" / "last.pt")
    assert a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], b["optimizer"]["state"][index]["exp_avg_sq"])
    assert [r["train_loss"] for r in metrics(straight)] == [r["train_loss"] for r in metrics(tmp_path)]


def test_the_best_checkpoint_survives_a_kill_between_the_two_writes(tmp_path, monkeypatch):
    import asr.train

    manifest = tiny_corpus(tmp_path)
    wers = iter([50.0, 40.0, 45.0, 45.0])  # epochs 1 and 2, killed; then epochs 2 (again, or 3) and 3
    monkeypatch.setattr(asr.train, "score", lambda utts, decoded: {"loss": 1.0, "cer": 1.0, "wer": next(wers)})
    kill_at(monkeypatch, 2, epoch=1)  # between epoch 2's two checkpoint writes
    with pytest.raises(Killed):
        train(compose_config(overrides(tmp_path, manifest, 3)))
    monkeypatch.undo()
    monkeypatch.setattr(asr.train, "score", lambda utts, decoded: {"loss": 1.0, "cer": 1.0, "wer": next(wers)})
    train(compose_config(overrides(tmp_path, manifest, 3, f"train.resume={tmp_path / 'exp' / 'last.pt'}")))
    best_logged = min(float(r["dev_wer"]) for r in metrics(tmp_path))
    assert read_checkpoint(tmp_path / "exp" / "best.pt")["metrics"]["dev_wer"] == best_logged


def test_a_new_run_never_clobbers_an_earlier_one(tmp_path):
    manifest = tiny_corpus(tmp_path)
    train(compose_config(overrides(tmp_path, manifest, 1)))
    exp = tmp_path / "exp"
    before = {p.name: p.read_bytes() for p in exp.iterdir() if p.is_file()}
    with pytest.raises(TrainingError, match=r"holds a run already \(last.pt, best.pt, metrics.csv.*train.resume="):
        train(compose_config(overrides(tmp_path, manifest, 1)))
    assert {p.name: p.read_bytes() for p in exp.iterdir() if p.is_file()} == before
    train(compose_config(overrides(tmp_path, manifest, 2, "train.overwrite=true")))
    assert [r["epoch"] for r in metrics(tmp_path)] == ["1", "2"]


def test_a_run_that_fails_at_start_up_writes_nothing(tmp_path):
    manifest = tiny_corpus(tmp_path)
    with pytest.raises(ManifestError, match="nowhere.jsonl"):
        train(compose_config(overrides(tmp_path, manifest, 1, f"data.dev={tmp_path / 'nowhere.jsonl'}")))
    assert not (tmp_path / "exp").exists()


def test_nan_audio_is_refused_by_name_and_never_reaches_statistics_or_weights(tmp_path, caplog):
    import numpy as np
    import soundfile as sf

    manifest = tiny_corpus(tmp_path)
    utts = read_manifest(manifest)
    samples = np.full(8000, 0.1, dtype=np.float32)
    samples[100] = np.nan
    sf.write(tmp_path / "audio" / "nan.wav", samples, 16000, subtype="FLOAT")
    utts.append(Utterance("nan", str(tmp_path / "audio" / "nan.wav"), 0.5, "AB"))
    write_manifest(utts, manifest)
    best = train(compose_config(overrides(tmp_path, manifest, 2)))
    assert "nan.wav" in caplog.text and "not finite" in caplog.text
    saved = read_checkpoint(best)
    assert torch.isfinite(saved["norm_mean"]).all() and torch.isfinite(saved["norm_std"]).all()
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    assert [r["skipped"] for r in metrics(tmp_path)] == ["1", "1"]


def test_non_finite_losses_are_skipped_counted_and_stop_the_run_when_they_persist(tmp_path, monkeypatch):
    import asr.train

    manifest = tiny_corpus(tmp_path)
    real, calls = asr.train.batch_loss, []

    def sometimes_nan(*args):
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) <= 2 else loss

    monkeypatch.setattr(asr.train, "batch_loss", sometimes_nan)
    best = train(compose_config(overrides(tmp_path, manifest, 2)))
    assert [r["nonfinite"] for r in metrics(tmp_path)] == ["2", "0"]
    assert all(torch.isfinite(v).all() for v in read_checkpoint(best)["model"].values() if v.is_floating_point())
    monkeypatch.setattr(asr.train, "batch_loss", lambda *args: real(*args) * float("nan"))
    with pytest.raises(TrainingError, match="3 batches in a row had a non-finite loss"):
        train(compose_config(overrides(tmp_path / "again", manifest, 2, "train.max_nonfinite_batches=3")))


def test_infeasible_targets_are_counted(tmp_path):
    manifest = tiny_corpus(tmp_path)
    utts = read_manifest(manifest)
    # 0.3 s gives 28 feature frames and 7 output frames: 10 letters cannot fit.
    utts.append(Utterance("long", str(write_tone(tmp_path / "audio" / "long.wav", 0.3)), 0.3, "ABABABABAB"))
    write_manifest(utts, manifest)
    train(compose_config(overrides(tmp_path, manifest, 1)))
    assert metrics(tmp_path)[0]["infeasible"] == "1"


def test_training_text_is_normalised_as_scoring_normalises_it(tmp_path):
    """Case, punctuation and a decomposed accent once became output symbols of their own."""
    utts = []
    for i, text in enumerate(["ab", "AB.", "Ab, ba!", "BA", "e\u0301a", "ÉA"]):
        path = write_tone(tmp_path / "audio" / f"u{i}.wav", 0.4 + 0.05 * i)
        utts.append(Utterance(f"u{i}", str(path), 0.4 + 0.05 * i, text))
    manifest = write_manifest(utts, tmp_path / "train.jsonl")
    best = train(compose_config(overrides(tmp_path, manifest, 1)))
    assert read_checkpoint(best)["vocab"] == ["<blank>", " ", "A", "B", "É"]


def test_lm_build_normalises_its_text_as_scoring_does(tmp_path, capsys):
    from asr.cli import main
    from asr.lm import read_arpa

    text = tmp_path / "t.txt"
    text.write_text("Hello, world!\nhello WORLD\n")
    assert main(["lm", "build", "--order", "2", "--text", str(text), "--out", str(tmp_path / "lm.arpa"),
                 "--lexicon", str(tmp_path / "lexicon.txt")]) == 0
    words = {ngram[0] for ngram in read_arpa(tmp_path / "lm.arpa").logprob[0]}
    assert words == {"<s>", "</s>", "<unk>", "HELLO", "WORLD"}
    assert (tmp_path / "lexicon.txt").read_text() == "HELLO H E L L O |\nWORLD W O R L D |\n"
