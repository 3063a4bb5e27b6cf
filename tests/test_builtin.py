"""The built-in AN4 model: shipped inside the package, used when no --model is given."""
import json

import soundfile as sf

import asr
from asr.cli import main
from asr.manifest import Utterance, write_manifest
from asr.metrics import error_rates
from asr.recognizer import BUILTIN_DIR, BUILTIN_MODEL

SAMPLES = BUILTIN_DIR / "samples"


def sample_texts():
    return dict(line.split(" ", 1) for line in (SAMPLES / "text").read_text().splitlines())


def test_the_assets_are_complete_and_small():
    names = {p.name for p in BUILTIN_DIR.iterdir()}
    assert {"model.pt", "words.arpa", "lexicon.txt", "decoder.json", "LICENSE", "README.md", "samples"} <= names
    size = sum(p.stat().st_size for p in BUILTIN_DIR.rglob("*") if p.is_file())
    assert size <= 20 * 2**20
    assert "Carnegie Mellon University" in (BUILTIN_DIR / "LICENSE").read_text()


def test_transcribe_without_a_model_uses_the_builtin_one(capsys):
    assert main(["transcribe", str(SAMPLES), "--device", "cpu"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    texts = sample_texts()
    assert len(rows) == len(texts) == 3
    refs = [texts[path.rsplit("/", 1)[-1].removesuffix(".flac")] for path, _ in rows]
    assert error_rates(refs, [hyp for _, hyp in rows]).wer <= 20.0


def test_python_api_gives_text_segments_and_words():
    model = asr.load_model(device="cpu")
    path = sorted(SAMPLES.glob("*.flac"))[0]
    result = model.transcribe(path)
    duration = sf.info(str(path)).duration
    assert result.text and result.segments and result.words
    assert " ".join(w.word for w in result.words) == result.text
    assert all(0 <= w.start < w.end <= duration + 0.05 and 0 <= w.confidence <= 1 for w in result.words)


def test_evaluate_with_the_builtin_lm_decoder(tmp_path):
    utts = [Utterance(i, str(SAMPLES / f"{i}.flac"), sf.info(str(SAMPLES / f"{i}.flac")).duration, t)
            for i, t in sample_texts().items()]
    manifest = write_manifest(utts, tmp_path / "samples.jsonl")
    report = tmp_path / "r.json"
    assert main(["evaluate", "--manifest", str(manifest), "--decoder", "lm", "--report", str(report),
                 "--device", "cpu"]) == 0
    assert json.loads(report.read_text())["wer"] <= 20.0
    assert BUILTIN_MODEL.is_file()
