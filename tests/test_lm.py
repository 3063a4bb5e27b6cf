
import pytest

from asr.lm import (
    ArpaError,
    adjusted_counts,
    build_ngram_lm,
    check_arpa,
    count_ngrams,
    estimate_discounts,
    read_arpa,
    text_sentences,
    write_arpa,
)

FIXED = [(0.5, 1.0, 1.5)] * 2


def tiny_lm():
    """Corpus '<s> a b </s>', '<s> a </s>'; bigram; D1, D2, D3+ = 0.5, 1, 1.5.

    Unigram continuation counts: a 1 (after <s>), b 1 (after a), </s> 2 (after a, b); total 4;
    mass set aside 0.5 + 0.5 + 1 = 2, gamma = 0.5; uniform over a, b, </s>, <unk> = 1/4.
      p(a) = p(b) = 0.5/4 + 0.5/4 = 0.25;  p(</s>) = 1/4 + 0.125 = 0.375;  p(<unk>) = 0.125
    Bigrams (raw counts): after <s>: a 2 -> p(a|<s>) = (2 - 1)/2 + 0.5 * 0.25 = 0.625
      after a: b 1, </s> 1 -> gamma(a) = 0.5, p(b|a) = 0.5/2 + 0.5 * 0.25 = 0.375,
      p(</s>|a) = 0.25 + 0.5 * 0.375 = 0.4375;  after b: p(</s>|b) = 0.5 + 0.5 * 0.375 = 0.6875
    """
    return build_ngram_lm([["a", "b"], ["a"]], order=2, discounts=FIXED)


def test_probabilities_computed_by_hand():
    lm = tiny_lm()
    p = lambda word, *context: 10 ** lm.word_logprob(word, context)
    assert p("a") == pytest.approx(0.25) and p("b") == pytest.approx(0.25)
    assert p("</s>") == pytest.approx(0.375) and p("<unk>") == pytest.approx(0.125)
    assert p("a", "<s>") == pytest.approx(0.625)
    assert p("b", "a") == pytest.approx(0.375) and p("</s>", "a") == pytest.approx(0.4375)
    assert p("</s>", "b") == pytest.approx(0.6875)
    assert p("b", "<s>") == pytest.approx(0.5 * 0.25)  # unseen: back off with gamma(<s>) = 0.5
    assert p("zebra", "a") == pytest.approx(0.5 * 0.125)  # unknown words score as <unk>
    for context in ("<s>", "a", "b"):  # each conditional distribution sums to one
        assert sum(p(w, context) for w in ("a", "b", "</s>", "<unk>")) == pytest.approx(1.0)
    assert 10 ** lm.sentence_logprob(["a", "b"]) == pytest.approx(0.625 * 0.375 * 0.6875)


def test_an_unk_in_the_text_gets_the_uniform_share_once():
    """Corpus '<s> a <unk> </s>'; bigram; D = 0.5, 1, 1.5. Continuation counts: a 1, <unk> 1,
    </s> 1; total 3, set aside 1.5, gamma 0.5; uniform over a, <unk>, </s> = 1/3.
      p(a) = p(<unk>) = p(</s>) = 0.5/3 + 0.5/3 = 1/3 (a seen <unk> is one more word, and its
      uniform share comes once: the unigrams still sum to one)."""
    lm = build_ngram_lm([["a", "<unk>"]], order=2, discounts=FIXED)
    p = lambda word, *context: 10 ** lm.word_logprob(word, context)
    assert p("<unk>") == pytest.approx(1 / 3) and p("a") == pytest.approx(1 / 3)
    assert sum(p(w) for w in ("a", "<unk>", "</s>")) == pytest.approx(1.0)
    for context in ("<s>", "a", "<unk>"):
        assert sum(p(w, context) for w in ("a", "<unk>", "</s>")) == pytest.approx(1.0)


def test_adjusted_counts_and_discounts():
    raw = count_ngrams([["a", "b"], ["a"]], 2)
    adjusted = adjusted_counts([["a", "b"], ["a"]], 2)
    assert adjusted[0][("a",)] == 1 and adjusted[0][("</s>",)] == 2 and adjusted[0][("<s>",)] == 2
    assert adjusted[1] == raw[1]
    # Chen & Goodman's n1..n4 count n-grams seen *exactly* 1..4 times: "h" (7) is in none of them.
    # n1=4, n2=2, n3=1, n4=1 ("i"): Y = 4/8; D1 = 1 - 2*.5*2/4 = .5; D2 = 2 - 3*.5*1/2 = 1.25; D3 = 3 - 4*.5*1/1 = 1
    counts = {"a": 1, "b": 1, "c": 1, "d": 1, "e": 2, "f": 2, "g": 3, "h": 7, "i": 4}
    assert estimate_discounts(counts) == pytest.approx((0.5, 1.25, 1.0))
    # Without "i", n4 = 0: D3 = 3 - 0 = 3 is not below 3, so the fallback (binning 7 as a 4 gave D3 = 1).
    del counts["i"]
    assert estimate_discounts(counts) == (0.5, 1.0, 1.5)
    assert estimate_discounts({"a": 1}) == (0.5, 1.0, 1.5)  # too sparse: the fallback


def test_discounts_and_probabilities_from_exact_counts_of_counts(caplog):
    """A unigram model worked by hand. Five sentences: e 4 times, d 3, c 2, a 1, b 1, </s> 5.

    n1..n4 = 2 (a, b), 1 (c), 1 (d), 1 (e); </s> and <s> (5 each) are in no bin.
    Y = 2/(2+2) = .5; D1 = 1 - 2*.5*1/2 = .5; D2 = 2 - 3*.5*1/1 = .5; D3+ = 3 - 4*.5*1/1 = 1.
    Total count 16 (a..e and </s>); mass set aside .5+.5 (a, b) + .5 (c) + 1+1+1 (d, e, </s>) = 4.5;
    the uniform distribution is over a..e, </s>, <unk> (7). So p(w) = (c - D(c))/16 + 4.5/16/7.
    Binning every count of 4 or more as 4 made n4 = 3 and D3+ = 3 - 4*.5*3 < 0: a silent fallback.
    """
    sentences = [["e", "d", "c"], ["e", "d", "c"], ["e", "d"], ["e", "a"], ["b"]]
    caplog.set_level("WARNING", logger="asr.lm")
    lm = build_ngram_lm(sentences, order=1)
    assert "fall back" not in caplog.text
    share = 4.5 / 16 / 7
    expected = {"a": 0.5 / 16 + share, "b": 0.5 / 16 + share, "c": 1.5 / 16 + share, "d": 2 / 16 + share,
                "e": 3 / 16 + share, "</s>": 4 / 16 + share, "<unk>": share}
    for word, p in expected.items():
        assert 10 ** lm.word_logprob(word, ()) == pytest.approx(p, rel=1e-5), word
    assert sum(expected.values()) == pytest.approx(1.0)


def test_a_discount_fallback_is_logged_with_its_reason(caplog):
    caplog.set_level("WARNING", logger="asr.lm")
    build_ngram_lm([["a", "b"], ["a"]], order=2)
    assert "order 1: discounts fall back" in caplog.text and "exactly 3" in caplog.text


def test_orders_the_decoder_cannot_load_are_refused():
    with pytest.raises(ValueError, match="order 7: must be 1 to 6"):
        build_ngram_lm([["a"]], order=7)


def test_arpa_round_trip_and_kenlm_agrees(tmp_path):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    texts = ["A B C A B", "B C A", "A B", "C C B A", "A B C"]
    lm = build_ngram_lm(text_sentences(texts), order=3)
    path = write_arpa(lm, tmp_path / "lm.arpa")
    again = read_arpa(path)
    assert again.order == 3 and set(again.logprob[2]) == set(lm.logprob[2])
    words = Dictionary()
    for word in ["<s>", "</s>", "<unk>", "A", "B", "C"]:
        words.add_entry(word)
    kenlm = KenLM(str(path), words)
    state, total = kenlm.start(False), 0.0
    for word in ["B", "A", "C", "C"]:
        state, score = kenlm.score(state, words.get_index(word))
        total += score
    state, score = kenlm.finish(state)
    assert total + score == pytest.approx(lm.sentence_logprob(["B", "A", "C", "C"]), abs=1e-4)


def test_character_units_for_lexicon_free_decoding():
    assert list(text_sentences(["AB C", "  "], unit="char")) == [["A", "B", "|", "C"]]


@pytest.mark.parametrize("text, message", [
    ("hello\n", "no \\\\data\\\\ header"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n\\end\\\n", "declares 2 1-grams but the file holds 1"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\ta\n", "no \\\\end\\\\ marker"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\nminus-one\ta\n\\end\\\n", "not a number"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n0.5\ta\n\\end\\\n", "is not <= 0"),
    ("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1\ta\n\n\\2-grams:\n-1\tb a\n\\end\\\n", "no 1-gram prefix"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta b c d\n\\end\\\n", "a 1-gram line needs"),
])
def test_malformed_arpa_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(ArpaError, match=message) as info:
        check_arpa(path)
    assert str(path) in str(info.value)


def test_binary_garbage_is_refused(tmp_path):
    path = tmp_path / "bad.arpa"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ArpaError, match="not a text ARPA file"):
        check_arpa(path)


def test_a_unigram_lm_is_refused_before_kenlm_sees_it(tmp_path):
    path = tmp_path / "uni.arpa"
    path.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n-1.0\t</s>\n-0.5\tA\n\n\\end\\\n")
    with pytest.raises(ArpaError, match="a 1-gram LM; KenLM loads orders 2 to 6"):
        check_arpa(path)


def test_a_large_arpa_gets_the_header_check_and_kenlm_names_the_rest(tmp_path, monkeypatch):
    import asr.lm
    from asr.decoding import load_kenlm

    path = tmp_path / "big.arpa"
    path.write_text("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t0\n-1.0\t</s>\nbroken\tA\n\n"
                    "\\2-grams:\n-0.1\t<s> A\n\n\\end\\\n")
    assert check_arpa(path, full_check_bytes=0) == path  # the header alone is sound
    with pytest.raises(ArpaError, match="not a number"):
        check_arpa(path)  # small: parsed in full
    monkeypatch.setattr(asr.lm, "FULL_CHECK_BYTES", 0)
    with pytest.raises(ArpaError, match="KenLM could not load it"):
        load_kenlm.__wrapped__(str(path), None, ("<blank>", "|", "A"))  # what a large file would meet
    path.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n")
    with pytest.raises(ArpaError, match="a 1-gram LM"):
        check_arpa(path, full_check_bytes=0)
