"""A recipe end to end through the shared driver, on a tiny copy of the corpus's layout."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_corpus_layouts import make_speechocean762

from asr.recognizer import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.conv_channels=[4,4]", "model.n_layers=1", "model.hidden=16", "train.epochs=2", "train.threads=1",
        "train.tensorboard=false"]


@pytest.mark.slow
@pytest.mark.parametrize("units", [["tokenizer=bpe", "tokenizer.vocab_size=24"], []], ids=["bpe", "shipped-phone"])
def test_speechocean762_recipe_runs_every_stage(tmp_path, units):
    src = make_speechocean762(tmp_path / "speechocean762")  # with a test/ folder beside train/
    data, exp = tmp_path / "data", tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(ROOT / "recipes" / "speechocean762" / "run.sh"), "--src", str(src), "--data", str(data),
                          "--exp", str(exp), "--", *TINY, *units], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {p.name for p in data.iterdir()} == {"train.jsonl", "dev.jsonl", "test.jsonl"}
    for name in ("dev", "test", "dev_lm", "test_lm"):
        report = json.loads((exp / f"{name}.json").read_text())
        assert report["utterances"] >= 1 and "wer" in report
    assert read_checkpoint(exp / "best.pt")["tokenizer"]["kind"] == ("bpe" if units else "phone")
    assert (exp / "lm" / "words.arpa").is_file()
    assert json.loads((exp / "decoder.json").read_text())["beam_size"] == 200  # run.sh's --beam-size reaches stage 5
    assert "stage 3: test already scored" in run.stdout  # stage 2 scored test in the training process
