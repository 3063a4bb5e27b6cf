"""The `asr` command as a user meets it: one-line errors with documented exit codes, flags that
are checked, decoder options that mean what they say, resources that are asked for."""
import errno
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import AN4_FIXTURE, write_tone

from asr.cli import build_parser, main
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.recognizer import BUILTIN_DIR

SAMPLES = BUILTIN_DIR / "samples"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("asr: error: ") and "\n" not in err, err
    return err


def test_version_and_train_help_with_groups(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == "asr 0.1.0"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "model: bigru, chunked, compact, ds2, streaming" in out and "--print-config" in out and "exit codes" in out


def test_print_config_shows_the_composed_configuration(capsys):
    assert main(["train", "experiment=an4_cpu", "train.epochs=7", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 7" in out and "out_dir: exp/an4_cpu" in out


@pytest.mark.parametrize("override, named", [
    ("train.epoch=3", "train.epoch"),  # a typo: was a 60-line traceback
    ("model=nope", "model/nope"),  # an unknown group option
    ("train.epochs=abc", "train.epochs='abc': expected an integer"),  # was caught after the model was built
    ("train.cache_audio=maybe", "train.cache_audio='maybe': expected true or false"),
    ("train.epochs=0", "train.epochs=0: must be above 0"),
    ("model.rnn_type=rnn", "model.rnn_type must be lstm or gru"),
    # was refused only at the first training batch, after the feature statistics
    ("features=mfcc specaugment.warp=0.1", "specaugment.warp: frequency warping needs fbank features, not mfcc"),
])
def test_configuration_mistakes_are_one_line_before_any_work(override, named, capsys, tmp_path):
    assert main(["train", *override.split(), f"out_dir={tmp_path / 'exp'}"]) == 2
    assert named in one_line_error(capsys)
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("argv, named", [
    (["transcribe", "--batch-size", "-3", "x.wav"], "--batch-size: -3 must be above 0"),
    (["transcribe", "--beam-size", "0", "--decoder", "beam", "x.wav"], "--beam-size: 0 must be above 0"),
    (["transcribe", "--max-segment-seconds", "abc", "x.wav"], "is not a number"),
    (["lm", "build", "--order", "7", "--text", "t.txt", "--out", "x.arpa"], "invalid choice: 7"),
])
def test_bad_flag_values_are_refused(argv, named, capsys):
    """--batch-size -3 and --beam-size 0 once printed empty transcripts and exited 0."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2 and named in capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [
    (["--decoder", "greedy", "--lm-weight", "2"], "--lm-weight: not used by --decoder greedy"),
    (["--decoder", "greedy", "--beam-size", "5"], "--beam-size: not used by --decoder greedy"),
    (["--decoder", "greedy", "--sil-score", "-1"], "--sil-score: not used by --decoder greedy"),
    (["--decoder", "beam", "--lm", "x.arpa"], "--lm: not used by --decoder beam"),
])
def test_options_that_do_not_apply_to_the_decoder_are_refused(argv, named, capsys):
    assert main(["transcribe", str(SAMPLES), *argv]) == 2
    assert named in one_line_error(capsys)


def test_decoder_beam_means_beam_without_an_lm_whatever_decoder_json_says():
    from asr.cli import _load

    assert (BUILTIN_DIR / "decoder.json").is_file()  # tuned LM settings beside the built-in model
    _, beam = _load(build_parser().parse_args(["transcribe", "x.wav", "--decoder", "beam"]))
    assert beam.options.lm is None and beam.options.lexicon is None and beam.options.word_score == 0.0
    _, lm = _load(build_parser().parse_args(["transcribe", "x.wav", "--decoder", "lm"]))
    assert lm.options.lm.endswith("words.arpa") and lm.options.lexicon.endswith("lexicon.txt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_one_line_with_exit_code_3(capsys):
    assert main(["transcribe", str(SAMPLES), "--device", "cuda"]) == 3
    assert "no CUDA GPU is available here" in one_line_error(capsys)


def test_no_network_is_one_line_with_exit_code_3(tmp_path, capsys):
    # Nothing listens on port 9 of this machine: the connection is refused at once, as offline.
    assert main(["prepare", "an4", "--src", "http://127.0.0.1:9/an4_sphere.tar.gz", "--out", str(tmp_path)]) == 3
    err = one_line_error(capsys)
    assert "download failed" in err and "--src" in err
    assert not list((tmp_path / "download").glob("*.part"))


@pytest.mark.parametrize("code, said", [(errno.ENOSPC, "no space left on the device"),
                                        (errno.EROFS, "read-only file system")])
def test_a_full_disk_or_read_only_folder_is_said_so(monkeypatch, tmp_path, capsys, code, said):
    import asr.writers

    def refuse(path, text):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(asr.writers, "atomic_write_text", refuse)
    out = tmp_path / "out"
    assert main(["transcribe", str(SAMPLES / "an406-fcaw-b.flac"), "--format", "txt", "--output-dir", str(out)]) == 3
    assert one_line_error(capsys) == f"asr: error: {out / 'an406-fcaw-b.txt'}: {said}"


def test_a_bug_in_our_code_keeps_its_traceback(monkeypatch, tmp_path):
    import asr.evaluate

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(asr.evaluate, "decode_utterances", broken)
    manifest = write_manifest([Utterance("a", str(SAMPLES / "an406-fcaw-b.flac"), 1.0, "A")], tmp_path / "m.jsonl")
    with pytest.raises(KeyError, match="a bug"):
        main(["evaluate", "--manifest", str(manifest)])


def test_transcribe_refuses_two_inputs_that_would_write_one_file_before_decoding(tmp_path, capsys):
    """a/x.wav and b/x.flac both wrote OUT/x.txt, silently."""
    first = write_tone(tmp_path / "a" / "x.wav", 0.5)
    second = write_tone(tmp_path / "b" / "x.flac", 0.5)
    out = tmp_path / "out"
    assert main(["transcribe", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "txt",
                 "--output-dir", str(out)]) == 2
    err = one_line_error(capsys)
    assert str(first) in err and str(second) in err and "x.*" in err
    assert not out.exists()


def test_transcribe_never_overwrites_a_file_it_did_not_ask_to(tmp_path, capsys):
    """`asr transcribe talk.wav --format txt` in a folder of recordings with their reference
    transcripts (talk.wav + talk.txt, the layout `asr prepare folder` reads) replaced the reference."""
    audio = tmp_path / "talk.flac"
    audio.write_bytes((SAMPLES / "an406-fcaw-b.flac").read_bytes())
    reference = tmp_path / "talk.txt"
    reference.write_text("RUBOUT G M E F THREE NINE\n")
    args = ["transcribe", str(audio), "--format", "txt", "--output-dir", str(tmp_path)]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert str(reference) in err and "--overwrite" in err
    assert reference.read_text() == "RUBOUT G M E F THREE NINE\n"
    assert main([*args, "--overwrite"]) == 0
    assert reference.read_text() != "RUBOUT G M E F THREE NINE\n"  # the model's text now, as asked


def test_a_lexicon_word_the_model_cannot_spell_is_named(tmp_path):
    from asr.decoding import BeamDecoder, BeamOptions
    from asr.errors import InputError
    from asr.tokenizer import BLANK, CharTokenizer

    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("AB A B |\nCAFÉ C A F É |\n")
    with pytest.raises(InputError, match=r"lexicon.txt:2: the model cannot spell 'CAFÉ': 'C', 'F', 'É'"):
        BeamDecoder(CharTokenizer([BLANK, " ", "A", "B"]), BeamOptions(lexicon=str(lexicon)))


def test_kenlm_is_loaded_once_and_its_banner_never_reaches_the_user(capfd):
    from asr.decoding import BeamDecoder, BeamOptions, load_kenlm
    from asr.recognizer import load_recognizer

    tokenizer = load_recognizer().tokenizer
    load_kenlm.cache_clear()
    options = BeamOptions(lm=str(BUILTIN_DIR / "words.arpa"), lexicon=str(BUILTIN_DIR / "lexicon.txt"))
    for weight in (0.5, 1.0, 2.0):  # as tune-decoder builds one decoder per setting
        BeamDecoder(tokenizer, BeamOptions(**{**options.__dict__, "lm_weight": weight}))
    assert load_kenlm.cache_info().misses == 1
    err = capfd.readouterr().err
    assert "Loading the LM" not in err and "----5---10" not in err


def test_the_tuning_grid_grows_past_its_edges(monkeypatch):
    """Both tuned word scores once sat at the grid's maximum of 2.0. Here each point of word score
    brings one more word, until all six come at a word score of 4: a grid of -1..2 must grow to find it.
    The same holds for the separator score."""
    import asr.tune
    from asr.decoding import BeamOptions
    from asr.tune import tune_decoder

    utt = Utterance("u", "u.wav", 1.0, "A B C D E F")

    class Batch:
        utterances = [utt]

    class FakeDecoder:
        def __init__(self, tokenizer, options):
            self.options = options

        def decode(self, log_probs, n_frames):
            n_words = int(min(6, max(0, self.options.word_score + 2)))
            return [" ".join("ABCDEF"[:n_words])]

    class FakeRecognizer:
        tokenizer = type("Characters", (), {"kind": "char"})()

    monkeypatch.setattr(asr.tune, "forward_batches", lambda rec, utts: [(Batch, torch.zeros(1, 1, 2), torch.ones(1))])
    monkeypatch.setattr(asr.tune, "BeamDecoder", FakeDecoder)
    best, trials = tune_decoder(FakeRecognizer(), [utt], BeamOptions(lm="x"), lm_weights=(0.5, 1.0),
                                word_scores=(-1.0, 0.0, 1.0, 2.0))
    assert best.word_score == 4.0
    assert {t["word_score"] for t in trials} >= {3.0, 4.0, 5.0}

    # the separator score is searched too: here each point below 0 brings one more word, up to six at -3
    FakeDecoder.decode = lambda self, lp, n: [" ".join("ABCDEF"[:int(min(6, 3 - self.options.sil_score))])]
    best, trials = tune_decoder(FakeRecognizer(), [utt], BeamOptions(lm="x"), lm_weights=(0.5, 1.0),
                                word_scores=(0.0, 1.0), sil_scores=(-1.0, 0.0))
    assert best.sil_score == -3.0
    assert {t["sil_score"] for t in trials} >= {-3.0, -2.0, -1.0, 0.0}
    # a subword model never emits the separator: its score is not searched
    FakeRecognizer.tokenizer = type("Pieces", (), {"kind": "bpe"})()
    best, trials = tune_decoder(FakeRecognizer(), [utt], BeamOptions(lm="x", sil_score=0.5), lm_weights=(0.5, 1.0),
                                word_scores=(0.0, 1.0), sil_scores=(-1.0, 0.0))
    assert best.sil_score == 0.5 and {t["sil_score"] for t in trials} == {0.5}


def fixture_manifest(tmp_path) -> Path:
    utts = []
    for line in (AN4_FIXTURE / "text").read_text().splitlines():
        utt_id, text = line.split(" ", 1)
        path = AN4_FIXTURE / f"{utt_id}.flac"
        utts.append(Utterance(utt_id, str(path), sf.info(str(path)).duration, text))
    return write_manifest(utts, tmp_path / "m.jsonl")


def _score_with_pid(work, setting):
    """asr.tune's own scoring of a setting, and the process that ran it."""
    return {**_REAL_SCORE(work, setting), "pid": os.getpid()}


_REAL_SCORE = None


def test_tuning_in_several_processes_gives_the_trials_of_one(tmp_path, monkeypatch):
    global _REAL_SCORE
    import asr.tune
    from asr.decoding import BeamOptions
    from asr.recognizer import load_recognizer

    recognizer, utts = load_recognizer(), read_manifest(fixture_manifest(tmp_path))
    options = BeamOptions(lm=str(BUILTIN_DIR / "words.arpa"), lexicon=str(BUILTIN_DIR / "lexicon.txt"))
    _REAL_SCORE = asr.tune._score
    monkeypatch.setattr(asr.tune, "_score", _score_with_pid)
    grid = {"lm_weights": (0.0, 1.0), "word_scores": (-40.0, 0.0), "sil_scores": (0.0,), "max_extensions": 0}
    one_best, one = asr.tune.tune_decoder(recognizer, utts, options, **grid, jobs=1)
    two_best, two = asr.tune.tune_decoder(recognizer, utts, options, **grid, jobs=2)
    assert {t.pop("pid") for t in one} == {os.getpid()}
    pids = {t.pop("pid") for t in two}
    assert os.getpid() not in pids and len(pids) >= 1  # searched in forked workers
    assert two == one and two_best == one_best
    assert len({t["wer"] for t in one}) > 1  # the settings do decode differently


def test_two_tunings_at_once_each_score_their_own_utterances(tmp_path, monkeypatch):
    """Two tunings in two threads, the second run whole while the first is held inside its first
    setting's scoring: each gets the trials it gets alone. (The tuning's work was a module
    global, which the second tuning replaced and then cleared.)"""
    import dataclasses
    import threading

    import asr.tune
    from asr.decoding import BeamOptions
    from asr.manifest import read_manifest
    from asr.recognizer import load_recognizer

    recognizer, utts = load_recognizer(), read_manifest(fixture_manifest(tmp_path))
    options = BeamOptions(lm=str(BUILTIN_DIR / "words.arpa"), lexicon=str(BUILTIN_DIR / "lexicon.txt"))
    grid = {"lm_weights": (0.0, 1.0), "word_scores": (0.0,), "sil_scores": (0.0,), "max_extensions": 0}
    # the second half's references each gain a word, so its WER differs from the first's
    halves = utts[:3], [dataclasses.replace(u, text=u.text + " EXTRA") for u in utts[3:]]
    alone = [asr.tune.tune_decoder(recognizer, half, options, **grid)[1] for half in halves]
    assert [t["wer"] for t in alone[0]] != [t["wer"] for t in alone[1]]

    real_score, first_held, second_done, results = asr.tune._score, threading.Event(), threading.Event(), {}

    def held_score(work, setting):
        if threading.current_thread().name == "first" and not first_held.is_set():
            first_held.set()
            second_done.wait(timeout=60)
        return real_score(work, setting)

    monkeypatch.setattr(asr.tune, "_score", held_score)

    def tune(name, half):
        if name == "second":  # starts once the first is inside its first scoring
            first_held.wait(timeout=60)
        results[name] = asr.tune.tune_decoder(recognizer, half, options, **grid)[1]
        if name == "second":
            second_done.set()

    threads = [threading.Thread(target=tune, args=(name, half), name=name)
               for name, half in zip(("first", "second"), halves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == {"first": alone[0], "second": alone[1]}


def test_evaluate_reports_the_token_error_rate(tmp_path, capsys):
    """The built-in model spells characters, so its greedy token error rate is the character error
    rate of its greedy words with the spaces taken out: jiwer's, computed here on the report's text.
    The references are made wrong (a word added to each, another word swapped) for errors to count."""
    import jiwer

    utts = [replace(u, text=u.text.replace("ONE", "NINE") + " EXTRA") for u in read_manifest(fixture_manifest(tmp_path))]
    manifest, report_path = write_manifest(utts, tmp_path / "wrong.jsonl"), tmp_path / "report.json"
    assert main(["evaluate", "--manifest", str(manifest), "--decoder", "greedy", "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    rows = report["hypotheses"]
    expected = 100 * jiwer.cer([r["ref"].replace(" ", "") for r in rows], [r["hyp"].replace(" ", "") for r in rows])
    assert report["token_unit"] == "char" and report["ter"] > 20 and report["ter"] == pytest.approx(expected)
    assert report["n_ref_tokens"] == sum(len(r["ref"].replace(" ", "")) for r in rows)
    assert f"TER {report['ter']:.2f}% of the greedy path in the model's units (char;" in capsys.readouterr().out


def test_threads_flag_sets_torchs_threads(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert main(["evaluate", "--manifest", str(fixture_manifest(tmp_path)), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_progress_bars_stay_out_of_pipes_and_logs(tmp_path):
    """Training logged "feature statistics: 0%|" bars into its log file."""
    from test_train import overrides, tiny_corpus

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    manifest = tiny_corpus(tmp_path)
    run = subprocess.run([sys.executable, "-m", "asr", "train", *overrides(tmp_path, manifest, 1)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "epoch 1:" in run.stderr
    assert "\r" not in run.stderr and "statistics" not in run.stderr and "%|" not in run.stderr


def test_narrow_band_input_gets_a_warning(tmp_path, caplog):
    import torchaudio.functional as AF

    audio, rate = sf.read(str(SAMPLES / "an406-fcaw-b.flac"), dtype="float32")
    narrow = AF.resample(torch.from_numpy(audio), rate, 8000).numpy()
    sf.write(str(tmp_path / "phone.wav"), np.clip(narrow, -1, 1), 8000)
    assert main(["transcribe", str(tmp_path / "phone.wav")]) == 0
    assert "phone.wav: recorded at 8000 Hz, below the 16000 Hz the model was trained on" in caplog.text


def test_a_damaged_kenlm_binary_is_one_line(tmp_path, capsys):
    damaged = tmp_path / "lm.bin"
    damaged.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0" + b"\x07" * 200)
    assert main(["transcribe", str(SAMPLES / "an406-fcaw-b.flac"), "--decoder", "lm", "--lm", str(damaged),
                 "--lexicon", str(BUILTIN_DIR / "lexicon.txt")]) == 2
    assert f"{damaged}: KenLM could not load it" in one_line_error(capsys)
