import pytest
import torch

from asr.decoding import GreedyDecoder, make_decoder
from asr.metrics import error_rates, normalize_text, token_error_rate, utterance_wer
from asr.tokenizer import BLANK, CharTokenizer


def test_tokenizer_round_trip():
    tok = CharTokenizer.build(["HELLO WORLD", "IT'S"])
    assert tok.vocab[0] == BLANK and tok.blank == 0
    assert tok.vocab[1:] == sorted(set("HELLO WORLDIT'S"))
    assert tok.decode(tok.encode("HELLO IT'S")) == "HELLO IT'S"
    assert tok.encode("H?") == tok.encode("H")  # unknown characters are dropped
    with pytest.raises(ValueError):
        CharTokenizer(["A", "B"])


def test_greedy_merges_repeats_drops_blanks_and_respects_lengths():
    frames = [[1, 1, 0, 1, 2, 2, 0, 0, 3], [2, 0, 2, 2, 3, 3, 3, 3, 3]]
    log_probs = torch.full((2, 9, 4), -10.0)
    for row, ids in enumerate(frames):
        for t, token in enumerate(ids):
            log_probs[row, t, token] = 0.0
    decoder = GreedyDecoder(CharTokenizer([BLANK, "A", "B", " "]))
    assert decoder.decode_ids(log_probs, torch.tensor([9, 4])) == [[1, 1, 2, 3], [2, 2]]
    assert decoder.decode(log_probs, torch.tensor([9, 4])) == ["AAB", "BB"]
    with pytest.raises(ValueError, match="unknown decoder"):
        make_decoder("oracle", decoder.tokenizer)


def test_error_rates():
    assert normalize_text("  hello,   World! it's ") == "HELLO WORLD IT'S"
    counts = error_rates(["A B C D", "E F"], ["a x c", "e f g"])
    # one substitution, one deletion, one insertion over six reference words
    assert (counts.substitutions, counts.deletions, counts.insertions, counts.n_ref_words) == (1, 1, 1, 6)
    assert counts.wer == pytest.approx(50.0)
    assert error_rates(["ABC"], ["ABD"]).cer == pytest.approx(100 / 3)
    assert utterance_wer("A B", "") == 100.0
    with pytest.raises(ValueError):
        error_rates([""], ["A"])


def test_error_rates_count_as_sclite_does():
    """Counted by hand: "A B C" -> "A X C D": 1 substitution, 1 insertion; "" -> "F G": 2 insertions
    (an empty reference still counts them); "D E" -> "": 2 deletions. 6 errors over 5 words."""
    counts = error_rates(["A B C", "", "D E"], ["A X C D", "F G", ""])
    assert (counts.substitutions, counts.deletions, counts.insertions, counts.n_ref_words) == (1, 2, 3, 5)
    assert counts.wer == pytest.approx(120.0)
    # characters: "A B C" -> "A X C D" is 1 substitution + 2 insertions (" D"); "F G" 3 insertions;
    # "D E" 3 deletions: 9 errors over 5 + 3 reference characters.
    assert counts.cer == pytest.approx(100 * 9 / 8)
    assert utterance_wer("", "F G") == 200.0 and utterance_wer("", "") == 0.0


def test_token_error_rate_counts_as_sclite_does():
    """By hand: [1 2 3] -> [1 3] one deletion; [4] -> [4 4] one insertion; [] -> [5] one insertion
    (an empty reference still counts it); [6 7] -> [8 7] one substitution. 4 errors over 6 tokens;
    multi-digit ids are single tokens ([12] is not [1 2])."""
    rate, n_ref = token_error_rate([[1, 2, 3], [4], [], [6, 7]], [[1, 3], [4, 4], [5], [8, 7]])
    assert (rate, n_ref) == (pytest.approx(100 * 4 / 6), 6)
    assert token_error_rate([[12]], [[1, 2]]) == (pytest.approx(200.0), 1)
    with pytest.raises(ValueError):
        token_error_rate([[]], [[1]])


def test_score_gives_the_phone_error_rate_of_the_greedy_path(tmp_path):
    """A phone model's report has its phone error rate, whatever decoder wrote the words. By hand,
    with the dictionary's own entries: "THE CAT" is DH AH | K AE T, greedy DH AH K AE D is one
    substitution (separators not counted); "DOG" (D AO G) unreadable: three deletions; "ZEBRA" is
    not in the dictionary, so it has no phones and the greedy path's Z after THE CAT counts as an
    insertion. 5 errors over 13 phones; 2 over 10 with the unreadable one left out."""
    from asr.evaluate import DecodeResult, format_report, score
    from asr.manifest import Utterance
    from asr.tokenizer import build_tokenizer

    dictionary = tmp_path / "dict.txt"
    dictionary.write_text("CAT K AE1 T\nDOG D AO1 G\nTHE DH AH0\nZ Z IY1\n")
    tokenizer = build_tokenizer("phone", ["THE CAT DOG"], lexicon=dictionary)
    phones = {p: tokenizer.vocab.index(p) for p in ("DH", "AH", "K", "AE", "T", "D", "Z")}
    greedy = [phones["DH"], phones["AH"], tokenizer.vocab.index(" "), phones["K"], phones["AE"], phones["D"]]
    utts = [Utterance("a", "a.wav", 1.0, "the cat"), Utterance("b", "b.wav", 1.0, "DOG"),
            Utterance("c", "c.wav", 1.0, "THE CAT ZEBRA")]
    decoded = DecodeResult(hypotheses={"a": "THE CAT", "c": "THE CAT Z"},
                           greedy_tokens={"a": greedy, "c": [*greedy[:5], phones["T"], phones["Z"]]})
    report = score(utts, decoded, tokenizer=tokenizer)
    assert report["n_ref_tokens"] == 5 + 3 + 5 and report["token_unit"] == "phone"
    assert report["ter"] == pytest.approx(100 * (1 + 3 + 1) / 13)
    assert "TER 38.46% of the greedy path in the model's units (phone; 13 reference tokens" in format_report(report)
    assert "ter" not in score(utts, decoded)  # no tokenizer, no token figure
    assert score(utts, decoded, exclude_unreadable=True, tokenizer=tokenizer)["ter"] == pytest.approx(100 * 2 / 10)


def test_score_counts_unreadable_audio_as_deletions_unless_excluded():
    from asr.evaluate import DecodeResult, score
    from asr.manifest import Utterance

    utts = [Utterance("a", "a.wav", 1.0, "ONE TWO"), Utterance("b", "b.wav", 1.0, "THREE FOUR FIVE")]
    decoded = DecodeResult(hypotheses={"a": "ONE TWO"})  # b could not be read
    report = score(utts, decoded)
    assert report["wer"] == pytest.approx(60.0) and report["deletions"] == 3 and report["utterances"] == 2
    assert report["skipped"] == 1 and report["excluded"] == 0
    excluded = score(utts, decoded, exclude_unreadable=True)
    assert excluded["wer"] == 0.0 and excluded["utterances"] == 1 and excluded["excluded"] == 1


def test_normalisation_is_unicode_composed_upper_case_without_punctuation():
    decomposed = "cafe\u0301, déjà-vu!"
    assert normalize_text(decomposed) == "CAFÉ DÉJÀ VU"
    assert len(normalize_text(decomposed).split()[0]) == 4  # É is one character, not E + a combining accent


def test_lexicon_search_keeps_the_last_word(tmp_path):
    from asr.decoding import BeamDecoder, BeamOptions, write_lexicon

    tokenizer = CharTokenizer([BLANK, " ", "A", "B"])
    lexicon = write_lexicon(["AB", "B", "A"], tmp_path / "lexicon.txt", tokenizer)
    assert lexicon.read_text() == "A A |\nAB A B |\nB B |\n"
    frames = [2, 0, 3, 1, 0, 3, 0]  # "AB B", no separator after the last word, as our models emit
    log_probs = torch.full((1, len(frames), 4), -10.0)
    for t, token in enumerate(frames):
        log_probs[0, t, token] = 0.0
    decoder = BeamDecoder(tokenizer, BeamOptions(lexicon=str(lexicon)))
    assert decoder.decode(log_probs.log_softmax(-1), torch.tensor([len(frames)])) == ["AB B"]
    assert BeamDecoder(tokenizer, BeamOptions()).decode(log_probs.log_softmax(-1), torch.tensor([7])) == ["AB B"]


def test_the_separator_score_is_added_where_the_separator_is_emitted():
    """Frame 2 says separator 0.6, blank 0.4. By hand: 'A B' scores log 0.6 = -0.51 and 'AB'
    log 0.4 = -0.92, so 'A B' wins; a separator score of -1 makes 'A B' -1.51 and 'AB' wins."""
    from asr.decoding import BeamDecoder, BeamOptions

    tokenizer = CharTokenizer([BLANK, " ", "A", "B"])
    probs = torch.full((1, 3, 4), 1e-6)
    probs[0, 0, 2] = probs[0, 2, 3] = 1.0
    probs[0, 1, 1], probs[0, 1, 0] = 0.6, 0.4
    log_probs, n_frames = probs.log(), torch.tensor([3])
    assert BeamDecoder(tokenizer, BeamOptions(sil_score=0.0)).decode(log_probs, n_frames) == ["A B"]
    assert BeamDecoder(tokenizer, BeamOptions(sil_score=-0.3)).decode(log_probs, n_frames) == ["A B"]
    assert BeamDecoder(tokenizer, BeamOptions(sil_score=-1.0)).decode(log_probs, n_frames) == ["AB"]
