"""Phone units from a pronunciation dictionary (tokenizer=phone): spelling, reading back, lexicons,
LM decoding, word times, checkpoints, export and training. Expected phones are CMUdict's own
entries (`cat K AE1 T`, `the DH AH0` / `DH AH1` / `DH IY0`, ...), stress dropped by hand."""
import logging

import pytest
import torch
from conftest import write_tone
from test_tokenizer import peaky
from test_train import overrides

from asr.alignment import align_words
from asr.config import compose_config
from asr.decoding import BeamDecoder, BeamOptions, GreedyDecoder, write_lexicon
from asr.errors import InputError
from asr.features import FeatureConfig
from asr.manifest import Utterance, write_manifest
from asr.model import ModelDims
from asr.recognizer import Recognizer, load_recognizer, read_checkpoint
from asr.tokenizer import BLANK, PhoneTokenizer, build_tokenizer
from asr.train import train

# a dictionary of our own in CMUdict's format: a variant, a comment, stress marks, two homophones
DICTIONARY = """\
CAT K AE1 T
DOG D AO1 G  # an animal
THE DH AH0
THE(2) DH IY0
THERE DH EH1 R
THEIR DH EH1 R
SAT S AE1 T
"""


@pytest.fixture
def dictionary(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text(DICTIONARY)
    return path


def ids(tokenizer, tokens):
    return [tokenizer.vocab.index(t) for t in tokens]


def unigram_arpa(path, words):
    """A bigram ARPA file: each word at log10 -0.6, and the one bigram `<s> THE`."""
    unigrams = "".join(f"-0.6\t{w}\t0.0\n" for w in words)
    path.write_text(f"\\data\\\nngram 1={len(words) + 3}\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t0.0\n-1.0\t</s>\n"
                    f"-1.0\t<unk>\n{unigrams}\n\\2-grams:\n-0.1\t<s> THE\n\n\\end\\\n")
    return path


def test_the_shipped_cmudict_spells_words_as_its_entries_do():
    tokenizer = build_tokenizer("phone", ["THE CAT"])
    assert tokenizer.vocab[:2] == [BLANK, " "] and len(tokenizer) == 2 + 39  # CMUdict's 39 phones
    assert tokenizer.encode("THE CAT") == ids(tokenizer, ["DH", "AH", " ", "K", "AE", "T"])
    # the(2) DH AH1 is the(1) once stress is dropped: two pronunciations are left
    assert tokenizer.spellings("THE") == [["DH", "AH", "|"], ["DH", "IY", "|"]]
    assert tokenizer.spellings("READ") == [["R", "EH", "D", "|"], ["R", "IY", "D", "|"]]
    assert tokenizer.decode(tokenizer.encode("THE CAT")) == "THE CAT"


def test_words_without_a_pronunciation_are_left_out_and_counted(dictionary, caplog):
    with caplog.at_level(logging.WARNING, logger="asr.tokenizer"):
        tokenizer = build_tokenizer("phone", ["CAT DOG ZEBRA", "CAT"], lexicon=dictionary)
    assert "1 of 3 training word types (1 of 4 words)" in caplog.text and "ZEBRA" in caplog.text
    assert tokenizer.encode("CAT ZEBRA DOG") == ids(tokenizer, ["K", "AE", "T", " ", "D", "AO", "G"])
    with pytest.raises(InputError, match="no training word has a pronunciation"):
        build_tokenizer("phone", ["ZEBRA OKAPI"], lexicon=dictionary)
    (dictionary.parent / "bad.txt").write_text("CAT K AE1 T\nDOG\n")
    with pytest.raises(InputError, match=r"bad.txt:2: 'DOG' has no pronunciation"):
        build_tokenizer("phone", ["CAT"], lexicon=dictionary.parent / "bad.txt")


def test_phones_read_back_as_the_training_word_first_or_as_joined_phones(dictionary):
    # THERE comes before THEIR in the file, but THEIR is a training word: it is the one read back
    tokenizer = build_tokenizer("phone", ["THEIR CAT"], lexicon=dictionary)
    assert tokenizer.decode(tokenizer.encode("THERE CAT")) == "THEIR CAT"
    assert build_tokenizer("phone", ["CAT"], lexicon=dictionary).decode(ids(tokenizer, ["DH", "EH", "R"])) == "THERE"
    # no word is K AE: it reads back as its phones, and those spell it again
    unknown = ids(tokenizer, ["K", "AE", " ", "D", "AO", "G"])
    assert tokenizer.decode(unknown) == "K_AE DOG"
    assert tokenizer.encode("K_AE DOG") == unknown
    frames = ids(tokenizer, ["K", "K", BLANK, "AE", "T", " ", "D", "AO", "G", "G"])
    log_probs = peaky(frames, len(tokenizer), blank_between=False)[None]
    assert GreedyDecoder(tokenizer).decode(log_probs, torch.tensor([len(frames)])) == ["CAT DOG"]


def test_lm_decoding_spells_the_lexicon_with_pronunciations(dictionary, tmp_path, caplog):
    tokenizer = build_tokenizer("phone", ["THE CAT SAT"], lexicon=dictionary)
    lexicon = write_lexicon(["THE", "CAT", "SAT", "ZEBRA"], tmp_path / "lexicon.txt")  # characters, as lm build writes
    arpa = unigram_arpa(tmp_path / "words.arpa", ["THE", "CAT", "SAT", "ZEBRA"])
    # THE said as DH IY, its second pronunciation
    spoken = ids(tokenizer, ["DH", "IY", " ", "K", "AE", "T", " ", "S", "AE", "T"])
    log_probs = peaky(spoken, len(tokenizer))[None]
    with caplog.at_level(logging.WARNING, logger="asr.decoding"):
        decoder = BeamDecoder(tokenizer, BeamOptions(lm=str(arpa), lexicon=str(lexicon), lm_weight=0.5))
    assert "1 of 4 words have no pronunciation" in caplog.text and "ZEBRA" in caplog.text
    assert decoder.decode(log_probs, torch.tensor([log_probs.shape[1]])) == ["THE CAT SAT"]
    phones = write_lexicon(["THE", "ZEBRA"], tmp_path / "phones.txt", tokenizer).read_text()
    assert phones == "THE DH AH |\nTHE DH IY |\n"


def test_decoders_differing_in_their_weights_share_the_spelt_lexicon_and_the_lm(dictionary, tmp_path):
    from asr.decoding import load_kenlm

    tokenizer = build_tokenizer("phone", ["THE CAT SAT"], lexicon=dictionary)
    lexicon = write_lexicon(["THE", "CAT", "SAT"], tmp_path / "lexicon.txt")
    arpa = unigram_arpa(tmp_path / "words.arpa", ["THE", "CAT", "SAT"])
    load_kenlm.cache_clear()
    decoders = [BeamDecoder(tokenizer, BeamOptions(lm=str(arpa), lexicon=str(lexicon), lm_weight=w))
                for w in (0.5, 1.0, 2.0)]  # as tune-decoder builds one per setting
    assert load_kenlm.cache_info().misses == 1
    spoken = ids(tokenizer, ["K", "AE", "T", " ", "S", "AE", "T"])
    log_probs = peaky(spoken, len(tokenizer))[None]
    assert all(d.decode(log_probs, torch.tensor([log_probs.shape[1]])) == ["CAT SAT"] for d in decoders)
    lexicon.write_text(lexicon.read_text() + "SAT S AE T |\n")  # a changed file is spelt anew
    BeamDecoder(tokenizer, BeamOptions(lm=str(arpa), lexicon=str(lexicon), lm_weight=0.5))
    assert load_kenlm.cache_info().misses == 2


def test_word_times_keep_the_decoded_word_not_its_homophone(dictionary):
    tokenizer = build_tokenizer("phone", ["THEIR CAT"], lexicon=dictionary)
    frames = [0, 0, *ids(tokenizer, ["DH", "EH", "R", " ", "K", "AE", "T"])]
    words = align_words(peaky(frames, len(tokenizer), blank_between=False), "THERE CAT", tokenizer, 0.04)
    assert [w.word for w in words] == ["THERE", "CAT"]  # the text's word, though DH EH R reads back as THEIR
    assert words[0].start == pytest.approx(0.08) and words[0].end == pytest.approx(0.20)
    assert words[1].start == pytest.approx(0.24) and words[1].end == pytest.approx(0.36)


def test_the_checkpoint_and_the_export_carry_the_dictionary(dictionary, tmp_path):
    from asr.export import export_onnx
    from asr.onnx_backend import OnnxRecognizer

    tokenizer = build_tokenizer("phone", ["THEIR CAT"], lexicon=dictionary)
    dims = ModelDims(n_input=80, n_tokens=len(tokenizer), conv_channels=[4], conv_kernels=[[3, 3]],
                     conv_strides=[[2, 2]], n_layers=1, hidden=8)
    path = Recognizer(FeatureConfig(), dims, tokenizer, torch.zeros(80), torch.ones(80)).save(tmp_path / "m.pt")
    dictionary.unlink()  # the model no longer needs the file it was built from
    for loaded in (Recognizer.from_checkpoint(read_checkpoint(path)).tokenizer,
                   OnnxRecognizer(export_onnx(path, tmp_path / "onnx")).tokenizer):
        assert isinstance(loaded, PhoneTokenizer) and loaded.vocab == tokenizer.vocab
        assert loaded.pronunciations == tokenizer.pronunciations
        assert loaded.decode(tokenizer.encode("THERE")) == "THEIR"


def test_training_with_phone_units(dictionary, tmp_path):
    utts = [Utterance(f"u{i}", str(write_tone(tmp_path / f"u{i}.wav", 0.6)), 0.6, text)
            for i, text in enumerate(["CAT DOG", "DOG CAT", "THE CAT", "DOG"] * 2)]
    manifest = write_manifest(utts, tmp_path / "train.jsonl")
    best = train(compose_config(overrides(tmp_path, manifest, 2, "tokenizer=phone", f"tokenizer.lexicon={dictionary}")))
    checkpoint = read_checkpoint(best)
    assert checkpoint["tokenizer"]["kind"] == "phone" and checkpoint["config"]["tokenizer"]["kind"] == "phone"
    assert checkpoint["vocab"] == [BLANK, " ", "AE", "AH", "AO", "D", "DH", "EH", "G", "IY", "K", "R", "S", "T"]
    tokenizer = load_recognizer(best).tokenizer
    assert list(tokenizer.pronunciations)[:3] == ["CAT", "DOG", "THE"]  # the training words, most frequent first
