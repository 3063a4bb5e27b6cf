"""Subword (sentencepiece) tokenizers: spelling, decoding, lexicons, word times, checkpoints."""
import pytest
import torch

from asr.alignment import align_words
from asr.decoding import (
    BeamDecoder,
    BeamOptions,
    GreedyDecoder,
    make_decoder,
    write_lexicon,
)
from asr.errors import InputError
from asr.features import FeatureConfig
from asr.model import ModelDims
from asr.recognizer import Recognizer, read_checkpoint
from asr.tokenizer import (
    BLANK,
    WORD_START,
    CharTokenizer,
    SentencePieceTokenizer,
    build_tokenizer,
)

TEXTS = ["THE CAT SAT ON THE MAT", "THE DOG SAT ON THE LOG", "A CAT AND A DOG", "THE MAT AND THE LOG",
         "CATS AND DOGS SAT", "ON THE MAT THE CAT SAT"] * 5


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer("bpe", TEXTS, vocab_size=40)


def peaky(ids, n_tokens, blank_between=True):
    """Log-probs with one certain token a frame (a blank after each token when `blank_between`)."""
    frames = [f for i in ids for f in ([i, 0] if blank_between else [i])]
    log_probs = torch.full((len(frames), n_tokens), -20.0)
    for t, token in enumerate(frames):
        log_probs[t, token] = 0.0
    return log_probs.log_softmax(-1)


def test_pieces_spell_each_word_and_mark_its_start(bpe):
    assert bpe.vocab[0] == BLANK and len(bpe) <= 41
    for text in TEXTS[:6]:
        ids = bpe.encode(text)
        assert 0 not in ids
        assert bpe.decode(ids) == text
        starts = [bpe.starts_word(i) for i in ids]
        assert sum(starts) == len(text.split())  # one `▁` piece a word
    for word in ["CAT", "DOGS", "MAT"]:
        pieces = bpe.spell(word)
        assert "".join(pieces) == WORD_START + word
        assert pieces[0].startswith(WORD_START) and not any(p.startswith(WORD_START) for p in pieces[1:])
    assert bpe.spell("ZEBRA") is None  # Z is not among its characters
    assert bpe.decode(bpe.encode("A ZOO")) == "A OO"  # the unknown piece is left out of the text


def test_unigram_units_and_config_errors():
    unigram = build_tokenizer("unigram", TEXTS, vocab_size=30)
    assert unigram.kind == "unigram" and unigram.decode(unigram.encode(TEXTS[0])) == TEXTS[0]
    with pytest.raises(InputError, match="vocab_size"):
        build_tokenizer("bpe", TEXTS, vocab_size=0)
    with pytest.raises(InputError, match="wordpiece"):
        build_tokenizer("wordpiece", TEXTS)


def test_greedy_decoding_merges_repeats_and_joins_pieces_into_words(bpe):
    ids = bpe.encode("THE CAT SAT")
    frames = [0, ids[0], ids[0], 0] + [i for i in ids[1:] for _ in (0, 1)] + [0]  # each piece twice in a row
    log_probs = peaky(frames, len(bpe), blank_between=False)[None]
    assert GreedyDecoder(bpe).decode(log_probs, torch.tensor([len(frames)])) == ["THE CAT SAT"]


def test_beam_search_with_a_word_lm_spells_the_lexicon_in_pieces(bpe, tmp_path):
    # a character-spelt lexicon (as `asr lm build --lexicon` writes it): the decoder respells it
    lexicon = write_lexicon(["THE", "CAT", "SAT", "MAT"], tmp_path / "lexicon.txt")
    arpa = tmp_path / "words.arpa"
    unigrams = "".join(f"-0.6\t{w}\t0.0\n" for w in ["THE", "CAT", "SAT", "MAT"])
    arpa.write_text("\\data\\\nngram 1=7\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t0.0\n-1.0\t</s>\n-1.0\t<unk>\n"
                    f"{unigrams}\n\\2-grams:\n-0.1\t<s> THE\n\n\\end\\\n")
    log_probs = peaky(bpe.encode("THE CAT SAT"), len(bpe))[None]
    n_frames = torch.tensor([log_probs.shape[1]])
    decoder = BeamDecoder(bpe, BeamOptions(lm=str(arpa), lexicon=str(lexicon), lm_weight=0.5))
    assert decoder.decode(log_probs, n_frames) == ["THE CAT SAT"]
    assert make_decoder("beam", bpe).decode(log_probs, n_frames) == ["THE CAT SAT"]  # lexicon-free
    with pytest.raises(InputError, match="only with a lexicon"):
        BeamDecoder(bpe, BeamOptions(lm=str(arpa)))
    (tmp_path / "zoo.txt").write_text("THE T H E |\nZOO Z O O |\n")
    with pytest.raises(InputError, match=r"zoo.txt:2: the model cannot spell 'ZOO'"):
        BeamDecoder(bpe, BeamOptions(lexicon=str(tmp_path / "zoo.txt")))


def test_write_lexicon_spells_with_the_tokenizer(bpe, tmp_path):
    text = write_lexicon(["CAT", "ZOO"], tmp_path / "lexicon.txt", bpe).read_text()
    assert text == f"CAT {' '.join(bpe.spell('CAT'))}\n"  # ZOO cannot be spelt
    chars = write_lexicon(["AB"], tmp_path / "chars.txt", CharTokenizer([BLANK, " ", "A", "B"])).read_text()
    assert chars == "AB A B |\n"


def test_word_times_from_subword_alignment(bpe):
    # 40 ms frames; each piece takes one frame then a blank, two blanks lead in
    ids = bpe.encode("THE CAT")
    frames = [0, 0] + [f for i in ids for f in (i, 0)]
    log_probs = peaky(frames, len(bpe), blank_between=False)
    words = align_words(log_probs, "THE CAT", bpe, frame_seconds=0.04)
    assert [w.word for w in words] == ["THE", "CAT"]
    n_the = len(bpe.encode("THE"))
    # THE: its first piece at frame 2, its last at frame 2 + 2 (n_the - 1); CAT starts right after
    assert words[0].start == pytest.approx(0.08)
    assert words[0].end == pytest.approx((2 + 2 * (n_the - 1) + 1) * 0.04)
    assert words[1].start == pytest.approx((2 + 2 * n_the) * 0.04)
    assert all(w.confidence > 0.99 for w in words)


def test_checkpoint_carries_the_sentencepiece_model(bpe, tmp_path):
    dims = ModelDims(n_input=80, n_tokens=len(bpe), conv_channels=[4], conv_kernels=[[3, 3]],
                     conv_strides=[[2, 2]], n_layers=1, hidden=8)
    recognizer = Recognizer(FeatureConfig(), dims, bpe, torch.zeros(80), torch.ones(80))
    path = recognizer.save(tmp_path / "model.pt")
    checkpoint = read_checkpoint(path)  # weights_only loading
    assert checkpoint["tokenizer"]["kind"] == "bpe" and isinstance(checkpoint["tokenizer"]["model"], bytes)
    loaded = Recognizer.from_checkpoint(checkpoint).tokenizer
    assert isinstance(loaded, SentencePieceTokenizer)
    assert loaded.vocab == bpe.vocab and loaded.encode(TEXTS[1]) == bpe.encode(TEXTS[1])
    # checkpoints written before subwords have no "tokenizer": characters
    old = {k: v for k, v in checkpoint.items() if k != "tokenizer"} | {"vocab": [BLANK, " ", "A"]}
    old["dims"] = {**old["dims"], "n_tokens": 3}
    old["model"] = Recognizer(FeatureConfig(), ModelDims.from_dict(old["dims"]), CharTokenizer(old["vocab"]),
                              torch.zeros(80), torch.ones(80)).model.state_dict()
    assert isinstance(Recognizer.from_checkpoint(old).tokenizer, CharTokenizer)
