import json
import logging
import tarfile
from pathlib import Path

import pytest
from conftest import write_corrupt, write_empty, write_tone

from asr.cli import main
from asr.corpora.an4 import clean_an4_text, prepare_an4
from asr.corpora.kaldi import KaldiDataError, prepare_kaldi
from asr.manifest import read_manifest

SPEAKERS = ["fash", "fbbh", "mcen", "mdxn", "mjgk"]


def make_an4(root, ext=".wav", fmt=None):
    """A tiny AN4 copy: 5 training speakers x 2 utterances, 1 test speaker; as CMU lays it out."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    train_ids, train_lines = [], []
    for spk in SPEAKERS:
        for n in (1, 2):
            utt = f"an{n}-{spk}-b"
            train_ids.append(f"an4_clstk/{spk}/{utt}")
            train_lines.append(f"<s> YES {spk.upper()} </s> ({utt})")
            write_tone(root / "wav" / "an4_clstk" / spk / f"{utt}{ext}", 0.4, **(fmt or {}))
    (etc / "an4_train.fileids").write_text("\n".join(train_ids) + "\n")
    (etc / "an4_train.transcription").write_text("\n".join(train_lines) + "\n")
    write_tone(root / "wav" / "an4test_clstk" / "fcaw" / f"an406-fcaw-b{ext}", 0.4, **(fmt or {}))
    (etc / "an4_test.fileids").write_text("an4test_clstk/fcaw/an406-fcaw-b\n")
    (etc / "an4_test.transcription").write_text("RUBOUT G M E F THREE NINE (an406-fcaw-b)\n")
    return root


def test_clean_text():
    assert clean_an4_text("<s> YES </s> (an251-fash-b)") == "YES"
    assert clean_an4_text("RUBOUT G M E (an406-fcaw-b)") == "RUBOUT G M E"


def test_wav_layout_gives_three_manifests_with_dev_by_speaker(tmp_path):
    src = make_an4(tmp_path / "an4")
    splits = prepare_an4(src, tmp_path / "out", dev_speakers=0.2)
    train, dev, test = (read_manifest(tmp_path / "out" / f"{n}.jsonl") for n in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (8, 2, 1)
    assert {u.speaker for u in train}.isdisjoint({u.speaker for u in dev})
    assert test[0].text == "RUBOUT G M E F THREE NINE" and test[0].speaker == "fcaw"
    assert abs(train[0].duration - 0.4) < 1e-6
    assert splits["train"] == train
    assert all(u.text.startswith("YES ") for u in train + dev)


def test_sphere_layout_and_archive(tmp_path):
    src = make_an4(tmp_path / "src" / "an4", ".sph", {"format": "NIST", "subtype": "PCM_16"})
    archive = tmp_path / "an4_sphere.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="an4")
    prepare_an4(archive, tmp_path / "out")
    test = read_manifest(tmp_path / "out" / "test.jsonl")
    assert test[0].audio.endswith(".sph") and test[0].duration == pytest.approx(0.4)
    prepare_an4(tmp_path / "src", tmp_path / "out2")  # the unpacked folder, one level up
    assert len(read_manifest(tmp_path / "out2" / "train.jsonl")) + len(read_manifest(tmp_path / "out2" / "dev.jsonl")) == 10


def test_missing_and_empty_are_reported_and_left_out(tmp_path, caplog):
    src = make_an4(tmp_path / "an4")
    (src / "wav" / "an4_clstk" / "fash" / "an1-fash-b.wav").unlink()
    write_corrupt(src / "wav" / "an4_clstk" / "fbbh" / "an1-fbbh-b.wav")
    lines = (src / "etc" / "an4_train.transcription").read_text().replace("YES MCEN </s> (an2", "</s> (an2")
    (src / "etc" / "an4_train.transcription").write_text(lines)
    with caplog.at_level(logging.WARNING):
        splits = prepare_an4(src, tmp_path / "out", dev_speakers=0.2)
    kept = {u.id for u in splits["train"] + splits["dev"]}
    assert len(kept) == 7 and not kept & {"an1-fash-b", "an1-fbbh-b", "an2-mcen-b"}
    assert "missing audio: an1-fash-b" in caplog.text
    assert "unreadable audio: an1-fbbh-b" in caplog.text
    assert "empty text: an2-mcen-b" in caplog.text


def test_not_an_an4_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="an4_train.transcription"):
        prepare_an4(tmp_path, tmp_path / "out")


def make_kaldi(tmp_path):
    audio = tmp_path / "audio"
    write_tone(audio / "a.wav", 1.0)
    write_tone(audio / "b.flac", 0.5)
    write_corrupt(audio / "c.wav")
    write_empty(audio / "d.wav")
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("a a.wav\nb b.flac\nc c.wav\nd d.wav\ne missing.wav\nf a.wav\n")
    (data / "text").write_text("a HELLO WORLD\nb GOOD\nc BAD\nd EMPTY AUDIO\ne MISSING\nf\n")
    (data / "utt2spk").write_text("a s1\nb s2\nc s1\nd s1\ne s2\nf s2\n")
    return data, audio


def test_kaldi_relative_paths_resolve_against_audio_root(tmp_path, caplog):
    data, audio = make_kaldi(tmp_path)
    with caplog.at_level(logging.WARNING):
        utts = prepare_kaldi(data, audio_root=audio)
    assert [(u.id, u.speaker, u.text) for u in utts] == [("a", "s1", "HELLO WORLD"), ("b", "s2", "GOOD")]
    assert utts[0].audio == str((audio / "a.wav").resolve()) and utts[1].duration == 0.5
    for reason, ids in [("unreadable audio", "c"), ("no audio samples", "d"), ("missing audio", "e"), ("empty text", "f")]:
        assert f"{reason}: {ids}" in caplog.text


def test_kaldi_segments(tmp_path):
    data, audio = make_kaldi(tmp_path)
    (data / "segments").write_text("a1 a 0.0 0.4\na2 a 0.5 1.0\nbad a 2.0 3.0\n")
    (data / "text").write_text("a1 FIRST\na2 SECOND\nbad BEYOND THE END\n")
    utts = prepare_kaldi(data, audio_root=audio)
    assert [(u.id, u.start, u.duration) for u in utts] == [("a1", 0.0, 0.4), ("a2", 0.5, 0.5)]


def test_kaldi_pipe_is_refused(tmp_path):
    data, audio = make_kaldi(tmp_path)
    (data / "wav.scp").write_text("a a.wav\nb sox b.flac -t wav - |\n")
    with pytest.raises(KaldiDataError, match=r"wav.scp:2: 'b' is a shell pipe.*never run"):
        prepare_kaldi(data, audio_root=audio)


def test_kaldi_cli(tmp_path, capsys):
    data, audio = make_kaldi(tmp_path)
    out = tmp_path / "m.jsonl"
    assert main(["prepare", "kaldi", "--src", str(data), "--out", str(out), "--audio-root", str(audio)]) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "b"]
    (data / "wav.scp").write_text("a cat a.wav |\n")
    assert main(["prepare", "kaldi", "--src", str(data), "--out", str(out)]) == 2
    assert "shell pipe" in capsys.readouterr().err


def test_kaldi_files_split_as_kaldi_splits_them(tmp_path):
    """Tabs (as speechocean762 ships them), runs of spaces, CRLF line endings and a byte-order mark."""
    data, audio = make_kaldi(tmp_path)
    (data / "wav.scp").write_bytes("\ufeffa\ta.wav\r\nb   b.flac\r\n".encode())
    (data / "text").write_bytes("\ufeffa\tHELLO  WORLD\r\nb \t GOOD\r\n".encode())
    (data / "utt2spk").write_text("a\ts1\nb\ts2\n")
    utts = prepare_kaldi(data, audio_root=audio)
    assert [(u.id, u.speaker, u.text) for u in utts] == [("a", "s1", "HELLO  WORLD"), ("b", "s2", "GOOD")]


def test_kaldi_duplicate_key_is_an_error_naming_the_line(tmp_path):
    data, audio = make_kaldi(tmp_path)
    (data / "text").write_text("a HELLO\nb GOOD\na AGAIN\n")
    with pytest.raises(KaldiDataError, match=r"text:3: duplicate key 'a' \(first on line 1\)"):
        prepare_kaldi(data, audio_root=audio)


def test_kaldi_warnings_name_the_true_reason(tmp_path, caplog):
    data, audio = make_kaldi(tmp_path)
    (data / "wav.scp").write_text("a a.wav\nb b.flac\ne missing.wav\nf a.wav\n")
    (data / "text").write_text("a HELLO\ne MISSING\nf\nz ORPHAN\n")  # b has no line; z has no audio entry
    with caplog.at_level(logging.WARNING):
        utts = prepare_kaldi(data, audio_root=audio)
    assert [u.id for u in utts] == ["a"]
    for reason, ids in [("no transcript line", "b"), ("missing audio", "e"), ("empty text", "f"),
                        ("a text line but no entry in wav.scp", "z")]:
        assert f"left out 1 utterance(s) with {reason}: {ids}" in caplog.text


def test_kaldi_segments_past_the_end_are_cut_or_left_out(tmp_path, caplog):
    data, audio = make_kaldi(tmp_path)  # a.wav lasts 1.0 s
    (data / "segments").write_text("a1 a 0.5 1.3\na2 a 0.5 1.6\na3 a 0.2 -1\n")
    (data / "text").write_text("a1 CUT AT THE END\na2 TOO FAR\na3 TO THE END\n")
    with caplog.at_level(logging.WARNING):
        utts = prepare_kaldi(data, audio_root=audio)
    assert [(u.id, u.start, u.duration) for u in utts] == [("a1", 0.5, 0.5), ("a3", 0.2, 0.8)]
    assert "cut 1 segment(s)" in caplog.text and "past the end of its audio: a2" in caplog.text


def test_kaldi_import_of_nothing_is_an_error(tmp_path, capsys):
    data, audio = make_kaldi(tmp_path)
    (data / "text").write_text("zz NOT IN WAV.SCP\n")
    with pytest.raises(KaldiDataError, match="no utterance could be imported"):
        prepare_kaldi(data, audio_root=audio)
    assert main(["prepare", "kaldi", "--src", str(data), "--out", str(tmp_path / "m.jsonl"),
                 "--audio-root", str(audio)]) == 2
    assert "no utterance could be imported" in capsys.readouterr().err
    assert not (tmp_path / "m.jsonl").exists()


SPEECHOCEAN = Path(__file__).parents[2] / "shared" / "data" / "speechocean762"


@pytest.mark.skipif(not (SPEECHOCEAN / "train" / "wav.scp").is_file(), reason="../shared/data/speechocean762 not here")
def test_speechocean762_train_imports_every_utterance():
    """The corpus that imported 0 of 2,500 utterances when tabs were not separators."""
    utts = prepare_kaldi(SPEECHOCEAN / "train", audio_root=SPEECHOCEAN)
    assert len(utts) == 2500 and len({u.speaker for u in utts}) == 125
    assert 2.8 < sum(u.duration for u in utts) / 3600 < 2.95


def test_preparing_refuses_a_duplicate_utterance_id(tmp_path):
    from asr.manifest import Candidate, ManifestError, check_candidates

    audio = str(write_tone(tmp_path / "a.wav", 0.5))
    with pytest.raises(ManifestError, match="corpus X: utterance id 'u1' is used twice"):
        check_candidates([Candidate("u1", audio, "A"), Candidate("u2", audio, "B"), Candidate("u1", audio, "C")],
                         "corpus X")


def test_a_folder_of_recordings_with_their_transcripts(tmp_path, an4_fixture, capsys):
    """The six AN4 clips as a user keeps them (a speaker per folder, `x.flac` beside `x.txt`):
    `asr prepare folder` gives the manifest written by hand below, and `asr evaluate` on it the
    same report as on that hand-written one."""
    import shutil

    import soundfile as sf

    from asr.manifest import Utterance, write_manifest

    folder, expected = tmp_path / "mine", []
    for n, (utt_id, flac, text) in enumerate(an4_fixture):
        speaker = f"spk{n % 2}"
        (folder / speaker).mkdir(parents=True, exist_ok=True)
        shutil.copy(flac, folder / speaker / f"{utt_id}.flac")
        (folder / speaker / f"{utt_id}.txt").write_text(text.lower() + "\n", encoding="utf-8")
        expected.append(Utterance(f"{speaker}/{utt_id}", str((folder / speaker / f"{utt_id}.flac").resolve()),
                                  round(sf.info(str(flac)).duration, 4), text.lower(), speaker))
    out = tmp_path / "mine.jsonl"
    assert main(["prepare", "folder", "--src", str(folder), "--out", str(out)]) == 0
    assert sorted(read_manifest(out), key=lambda u: u.id) == sorted(expected, key=lambda u: u.id)
    by_hand = write_manifest(expected, tmp_path / "by_hand.jsonl")
    reports = []
    for manifest in (out, by_hand):
        report = tmp_path / f"{manifest.stem}.json"
        assert main(["evaluate", "--manifest", str(manifest), "--report", str(report)]) == 0
        body = json.loads(report.read_text())
        body["hypotheses"] = sorted(body["hypotheses"], key=lambda h: h["id"])
        reports.append({k: v for k, v in body.items() if k not in ("manifest", "model")})
    assert reports[0] == reports[1] and reports[0]["utterances"] == 6


def test_a_folder_names_what_it_left_out_and_refuses_what_is_ambiguous(tmp_path, caplog):
    from asr.corpora.folder import prepare_folder
    from asr.errors import InputError

    write_tone(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("\ufeffHELLO\r\nTHERE\r\n", encoding="utf-8")  # BOM, CRLF, two lines
    write_tone(tmp_path / "no_text.wav")
    write_tone(tmp_path / "empty.wav")
    (tmp_path / "empty.txt").write_text("  \n")
    write_corrupt(tmp_path / "broken.wav")
    (tmp_path / "broken.txt").write_text("WORDS")
    (tmp_path / "notes.txt").write_text("not a transcript of anything")
    with caplog.at_level(logging.WARNING):
        utts = prepare_folder(tmp_path)
    assert [(u.id, u.text, u.speaker) for u in utts] == [("a", "HELLO THERE", "")]
    warnings = caplog.text
    assert "1 utterance(s) with no transcript line: no_text" in warnings
    assert "1 utterance(s) with empty text: empty" in warnings
    assert "broken" in warnings
    write_tone(tmp_path / "a.flac")
    with pytest.raises(InputError, match=r"a\.wav: a\.flac has the same name, and a\.txt can transcribe only one"):
        prepare_folder(tmp_path)
    (tmp_path / "a.flac").unlink()
    (tmp_path / "a.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(InputError, match=r"a\.txt: not UTF-8 text"):
        prepare_folder(tmp_path)
    (tmp_path / "silent").mkdir()
    with pytest.raises(InputError, match="no audio files below it"):
        prepare_folder(tmp_path / "silent")
