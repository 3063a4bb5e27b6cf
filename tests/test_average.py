"""Checkpoint averaging: the mean is worked with plain torch arithmetic on the saved weights; the
epochs kept during training are checked against metrics.csv."""
import pytest
import torch
from test_train import metrics, overrides, tiny_corpus

from asr.average import AverageError, average, epoch_files
from asr.cli import main
from asr.config import compose_config
from asr.recognizer import load_recognizer, read_checkpoint
from asr.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("average")
    train(compose_config(overrides(tmp_path, tiny_corpus(tmp_path), 4, "train.keep_epochs=2")))
    return tmp_path


def test_training_keeps_the_newest_and_the_best_epochs(run):
    rows = metrics(run)
    wers = {int(r["epoch"]): float(r["dev_wer"]) for r in rows}
    best_two = sorted(wers, key=lambda e: (wers[e], e))[:2]
    assert set(epoch_files(run / "exp")) == {3, 4} | set(best_two)
    assert read_checkpoint(run / "exp" / "epochs" / "epoch-004.pt")["metrics"]["dev_wer"] == wers[4]


def test_asr_average_writes_the_mean_of_the_last_epochs(run, capsys):
    out = run / "avg.pt"
    assert main(["average", "--exp", str(run / "exp"), "--last", "2", "--out", str(out)]) == 0
    a, b = (read_checkpoint(run / "exp" / "epochs" / f"epoch-00{e}.pt")["model"] for e in (3, 4))
    averaged = read_checkpoint(out)["model"]
    for key, value in averaged.items():
        if value.is_floating_point():
            assert torch.allclose(value, (a[key] + b[key]) / 2, atol=1e-7), key
    load_recognizer(out)  # a self-describing checkpoint, usable as any other
    paths = [str(run / "exp" / "epochs" / f"epoch-00{e}.pt") for e in (3, 4)]
    assert torch.equal(average(paths)["model"][key], averaged[key])


def test_average_names_what_is_wrong(run, tmp_path, capsys):
    assert main(["average", "--exp", str(run / "exp"), "--last", "9", "--out", str(tmp_path / "a.pt")]) != 0
    assert "fewer than the 9 asked for" in capsys.readouterr().err
    assert main(["average", "--exp", str(tmp_path), "--best", "2", "--out", str(tmp_path / "a.pt")]) != 0
    assert "no epoch checkpoints" in capsys.readouterr().err
    other = run / "other"
    train(compose_config(overrides(other, tiny_corpus(other), 1, "model.hidden=24")))
    with pytest.raises(AverageError, match="a different model"):
        average([run / "exp" / "best.pt", other / "exp" / "best.pt"])
