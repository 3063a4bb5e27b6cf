"""Each corpus preparer on a tiny copy of the corpus's real on-disk layout: folder names, transcript
formats, and audio in the corpus's own container (FLAC, MP3, NIST SPHERE). Nothing is downloaded."""
import logging
import tarfile

import pytest
from conftest import write_tone

from asr.cli import main
from asr.corpora.commonvoice import prepare_commonvoice
from asr.corpora.librispeech import prepare_librispeech
from asr.corpora.speechocean762 import prepare_speechocean762
from asr.corpora.tedlium import clean_tedlium_text, prepare_tedlium
from asr.errors import MissingFileError
from asr.manifest import read_manifest


def make_librispeech(root, part="dev-clean"):
    chapters = {("84", "121123"): ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES"], ("174", "50561"): ["FORGOTTEN TOO"]}
    for (speaker, chapter), texts in chapters.items():
        folder = root / "LibriSpeech" / part / speaker / chapter
        lines = []
        for i, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{i:04d}"
            write_tone(folder / f"{utt}.flac", 0.5 + 0.1 * i)
            lines.append(f"{utt} {text}")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_from_a_folder_and_from_a_part_archive(tmp_path):
    make_librispeech(tmp_path / "src")
    parts = prepare_librispeech(tmp_path / "src", tmp_path / "out", parts=["dev-clean"])
    utts = read_manifest(tmp_path / "out" / "dev-clean.jsonl")
    assert utts == parts["dev-clean"]
    assert [(u.id, u.speaker, u.text) for u in utts] == [
        ("174-50561-0000", "174", "FORGOTTEN TOO"), ("84-121123-0000", "84", "GO DO YOU HEAR"),
        ("84-121123-0001", "84", "BUT IN LESS THAN FIVE MINUTES")]
    assert utts[2].duration == 0.6 and utts[2].audio.endswith("84/121123/84-121123-0001.flac")
    # the part's archive as OpenSLR ships it (LibriSpeech/<part>/... inside)
    make_librispeech(tmp_path / "packed", "test-other")
    archives = tmp_path / "archives"
    archives.mkdir()
    with tarfile.open(archives / "test-other.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "packed" / "LibriSpeech", arcname="LibriSpeech")
    assert main(["prepare", "librispeech", "--src", str(archives), "--out", str(tmp_path / "out2"),
                 "--parts", "test-other"]) == 0
    assert len(read_manifest(tmp_path / "out2" / "test-other.jsonl")) == 3


def test_librispeech_missing_part_is_named(tmp_path):
    make_librispeech(tmp_path / "src")
    with pytest.raises(MissingFileError, match="no LibriSpeech/test-clean folder"):
        prepare_librispeech(tmp_path / "src", tmp_path / "out", parts=["test-clean"])


CV_HEADER = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"


def make_commonvoice(root):
    lang = root / "cv-corpus-19.0-2024-09-13" / "en"
    rows = {"dev": [("spk1", "common_voice_en_1.mp3", 'He said "hello" to me.'), ("spk2", "common_voice_en_2.mp3", "Fine.")],
            "test": [("spk3", "common_voice_en_3.mp3", "Good night"), ("spk3", "common_voice_en_4.mp3", "")],
            "train": [("spk4", "common_voice_en_5.mp3", "Lost clip")]}
    for split, entries in rows.items():
        lines = [CV_HEADER]
        for client, clip, sentence in entries:
            if clip != "common_voice_en_5.mp3":  # its clip is missing
                write_tone(lang / "clips" / clip, 0.6, format="MP3")
            lines.append(f"{client}\t{clip}\tsid\t{sentence}\t\t2\t0\t\t\t\t\ten\t")
        (lang / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    (lang / "validated.tsv").write_text((lang / "dev.tsv").read_text())
    return lang


def test_commonvoice_tsv_splits_with_mp3_clips(tmp_path, caplog):
    make_commonvoice(tmp_path / "src")
    with caplog.at_level(logging.WARNING):
        splits = prepare_commonvoice(tmp_path / "src", tmp_path / "out")
    assert [(u.id, u.speaker, u.text) for u in splits["dev"]] == [
        ("common_voice_en_1", "spk1", 'He said "hello" to me.'), ("common_voice_en_2", "spk2", "Fine.")]
    assert 0.55 < splits["dev"][0].duration < 0.75  # MP3 frames pad a little
    assert [u.id for u in splits["test"]] == ["common_voice_en_3"] and splits["train"] == []
    assert "empty text: common_voice_en_4" in caplog.text and "missing audio: common_voice_en_5" in caplog.text
    assert read_manifest(tmp_path / "out" / "test.jsonl") == splits["test"]


def make_tedlium(root):
    legacy = root / "TEDLIUM_release-3" / "legacy"
    for split in ("train", "dev", "test"):
        talk = f"Talk_{split}"
        write_tone(legacy / split / "sph" / f"{talk}.sph", 4.0, format="NIST", subtype="PCM_16")
        (legacy / split / "stm").mkdir(parents=True)
        (legacy / split / "stm" / f"{talk}.stm").write_text(
            ";; a comment line\n"
            f"{talk} 1 {talk} 0.00 0.50 <o,f0,male> ignore_time_segment_in_scoring\n"
            f"{talk} 1 {talk} 0.50 2.00 <o,f0,male> it 's a <unk> talk about ideas\n"
            f"{talk} 1 {talk} 2.00 3.75 <o,f0,male> we 're done\n")
    return root


def test_tedlium_stm_segments_of_sphere_audio(tmp_path, caplog):
    make_tedlium(tmp_path / "src")
    with caplog.at_level(logging.WARNING):
        splits = prepare_tedlium(tmp_path / "src", tmp_path / "out")
    assert set(splits) == {"train", "dev", "test"}
    utts = splits["dev"]
    assert [(u.id, u.start, u.duration, u.text) for u in utts] == [
        ("Talk_dev-00000.50-00002.00", 0.5, 1.5, "it's a talk about ideas"),
        ("Talk_dev-00002.00-00003.75", 2.0, 1.75, "we're done")]
    assert utts[0].audio.endswith("legacy/dev/sph/Talk_dev.sph") and utts[0].speaker == "Talk_dev"
    assert "ignore_time_segment_in_scoring: Talk_dev-00000.00-00000.50" in caplog.text
    assert clean_tedlium_text("<unk> i 'm here") == "i'm here"


def make_speechocean762(root):
    rows = [("000010011", "0001", "WE CALL IT BEAR"), ("000010035", "0001", "ZERO THREE FIVE ONE"),
            ("000050001", "0005", "THE BOOK"), ("000060001", "0006", "A CAT"), ("000070001", "0007", "MY DOG")]
    for split, chosen in (("train", rows), ("test", rows[:2])):  # test/ made from training speakers, as a stand-in
        folder = root / split
        folder.mkdir(parents=True)
        (folder / "wav.scp").write_text("".join(f"{u}\tWAVE/SPEAKER{s}/{u}.flac\n" for u, s, _ in chosen))
        (folder / "text").write_text("".join(f"{u}\t{t}\n" for u, _, t in chosen))
        (folder / "utt2spk").write_text("".join(f"{u}\t{s}\n" for u, s, _ in chosen))
    for utt, speaker, _ in rows:
        write_tone(root / "WAVE" / f"SPEAKER{speaker}" / f"{utt}.flac", 0.5)
    return root


def test_speechocean762_with_a_dev_set_by_speaker_and_its_test_folder(tmp_path, capsys):
    make_speechocean762(tmp_path / "so762")
    splits = prepare_speechocean762(tmp_path / "so762", tmp_path / "out", dev_speakers=0.25)
    train_speakers, dev_speakers = {u.speaker for u in splits["train"]}, {u.speaker for u in splits["dev"]}
    assert len(dev_speakers) == 1 and not train_speakers & dev_speakers
    assert len(splits["train"]) + len(splits["dev"]) == 5 and len(splits["test"]) == 2
    assert main(["prepare", "speechocean762", "--src", str(tmp_path / "so762"), "--out", str(tmp_path / "cli")]) == 0
    assert {p.name for p in (tmp_path / "cli").iterdir()} == {"train.jsonl", "dev.jsonl", "test.jsonl"}


def test_a_folder_that_is_not_the_corpus_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["prepare", "tedlium", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no TEDLIUM_release-3/legacy folder" in capsys.readouterr().err
