"""Overfit a few real AN4 utterances, then evaluate and transcribe them through the CLI."""
import json

import pytest
from conftest import write_corrupt, write_empty

from asr.cli import main
from asr.manifest import Utterance, write_manifest

OVERFIT = ["device=cpu", "model=compact", "model.conv_channels=[16,16]", "model.n_layers=2",
           "model.hidden=128", "model.dropout=0.0", "specaugment.enabled=false", "optim.lr=3e-3",
           "optim.warmup_fraction=0.05", "train.max_batch=6", "train.epochs=80"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    from conftest import AN4_FIXTURE

    tmp = tmp_path_factory.mktemp("overfit")
    rows = [line.split(" ", 1) for line in (AN4_FIXTURE / "text").read_text().splitlines()]
    import soundfile as sf

    utts = []
    for utt_id, text in rows:
        path = AN4_FIXTURE / f"{utt_id}.flac"
        utts.append(Utterance(utt_id, str(path), sf.info(str(path)).duration, text))
    manifest = write_manifest(utts, tmp / "an4.jsonl")
    args = ["train", f"data.train={manifest}", f"data.dev={manifest}", f"out_dir={tmp / 'exp'}", *OVERFIT]
    assert main(args) == 0
    return tmp, manifest, utts


@pytest.mark.slow
def test_overfits_real_speech_then_evaluates_through_the_cli(trained, capsys):
    tmp, manifest, utts = trained
    report_path = tmp / "report.json"
    assert main(["evaluate", "--model", str(tmp / "exp" / "best.pt"), "--manifest", str(manifest),
                 "--report", str(report_path), "--device", "cpu"]) == 0
    report = json.loads(report_path.read_text())
    assert report["utterances"] == 6 and report["cer"] < 10.0
    assert len(report["hypotheses"]) == 6 and {"substitutions", "deletions", "insertions"} <= set(report)
    assert "WER" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_skips_and_counts_unreadable_audio(trained, tmp_path, capsys):
    tmp, manifest, utts = trained
    bad = [Utterance("corrupt", str(write_corrupt(tmp_path / "c.wav")), 1.0, "YES"),
           Utterance("empty", str(write_empty(tmp_path / "e.wav")), 1.0, "NO"),
           Utterance("missing", str(tmp_path / "m.wav"), 1.0, "GO")]
    mixed = write_manifest(utts + bad, tmp_path / "mixed.jsonl")
    report_path = tmp_path / "r.json"
    assert main(["evaluate", "--model", str(tmp / "exp" / "best.pt"), "--manifest", str(mixed),
                 "--report", str(report_path), "--device", "cpu"]) == 0
    report = json.loads(report_path.read_text())
    assert report["utterances"] == 9 and report["skipped"] == 3 and report["excluded"] == 0
    assert report["deletions"] >= 3  # YES, NO and GO: each unreadable utterance counts as all deletions
    assert "3 utterance(s) whose audio could not be read count as all deletions" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(tmp / "exp" / "best.pt"), "--manifest", str(mixed),
                 "--report", str(report_path), "--device", "cpu", "--exclude-unreadable"]) == 0
    excluded = json.loads(report_path.read_text())
    assert excluded["utterances"] == 6 and excluded["excluded"] == 3 and excluded["wer"] <= report["wer"]
    assert "excluded 3 utterance(s)" in capsys.readouterr().out


@pytest.mark.slow
def test_transcribe_prints_text_and_names_each_bad_file(trained, tmp_path, capsys):
    tmp, manifest, utts = trained
    folder = tmp_path / "in"
    folder.mkdir()
    write_corrupt(folder / "corrupt.wav")
    write_empty(folder / "empty.wav")
    (folder / "notes.txt").write_text("not audio")  # folders yield audio files only
    good = utts[0]
    exit_code = main(["transcribe", "--model", str(tmp / "exp" / "best.pt"), "--device", "cpu",
                      good.audio, str(folder), str(tmp_path / "missing.wav"), utts[1].audio])
    out, err = capsys.readouterr()
    assert exit_code == 1
    lines = out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [good.audio, utts[1].audio]
    texts = [line.split("\t")[1] for line in lines]
    assert sum(a != b for a, b in zip(texts[0] + texts[1], good.text + utts[1].text)) <= 3
    assert f"{folder / 'corrupt.wav'}: unreadable audio" in err
    assert f"{folder / 'empty.wav'}: no audio samples" in err
    assert f"{tmp_path / 'missing.wav'}: no such file" in err
    assert "notes.txt" not in err


@pytest.mark.slow
def test_transcribe_exit_code_is_zero_when_all_succeed(trained, capsys):
    tmp, manifest, utts = trained
    assert main(["transcribe", "--model", str(tmp / "exp" / "best.pt"), "--device", "cpu", utts[2].audio]) == 0
    assert capsys.readouterr().out.startswith(utts[2].audio)


def test_a_bad_checkpoint_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["transcribe", "--model", str(bad), "x.wav"]) == 2
    assert f"{bad}: not a loadable checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_lm_build_tune_and_decode_through_the_cli(trained, tmp_path, capsys):
    tmp, manifest, utts = trained
    model = tmp_path / "model" / "best.pt"
    model.parent.mkdir()
    model.write_bytes((tmp / "exp" / "best.pt").read_bytes())
    lm, lexicon = tmp_path / "model" / "words.arpa", tmp_path / "model" / "lexicon.txt"
    assert main(["lm", "build", "--order", "3", "--text", str(manifest), "--out", str(lm), "--lexicon", str(lexicon)]) == 0
    assert "THIRTY T H I R T Y |" in lexicon.read_text()
    assert main(["tune-decoder", "--model", str(model), "--manifest", str(manifest), "--lm", str(lm),
                 "--lexicon", str(lexicon), "--lm-weights", "0.5", "1.0", "--word-scores", "0", "1",
                 "--device", "cpu"]) == 0
    saved = json.loads((model.parent / "decoder.json").read_text())
    assert saved["lm"] == "words.arpa" and saved["lm_weight"] in (0.5, 1.0) and saved["word_score"] in (0, 1)
    report = tmp_path / "lm.json"
    assert main(["evaluate", "--model", str(model), "--manifest", str(manifest), "--decoder", "lm",
                 "--report", str(report), "--device", "cpu"]) == 0
    assert json.loads(report.read_text())["cer"] < 10.0
    out = tmp_path / "out"
    assert main(["transcribe", "--model", str(model), "--decoder", "lm", "--format", "all", "--output-dir", str(out),
                 "--device", "cpu", utts[0].audio]) == 0
    stem = utts[0].id
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}.{f}" for f in ("txt", "json", "srt", "vtt", "tsv"))
    body = json.loads((out / f"{stem}.json").read_text())
    words = body["segments"][0]["words"]
    assert body["text"] == " ".join(w["word"] for w in words)
    assert all(0 <= w["start"] < w["end"] <= utts[0].duration + 0.05 and 0 <= w["confidence"] <= 1 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)


@pytest.mark.slow
def test_a_malformed_arpa_is_a_clear_error_not_a_crash(trained, tmp_path, capsys):
    tmp, manifest, utts = trained
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\tA\n")
    code = main(["transcribe", "--model", str(tmp / "exp" / "best.pt"), "--decoder", "lm", "--lm", str(bad),
                 "--lexicon", "none", "--device", "cpu", utts[0].audio])
    assert code == 2
    assert f"{bad}" in capsys.readouterr().err
