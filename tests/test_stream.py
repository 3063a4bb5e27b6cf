"""Streaming: a unidirectional model with lookahead, fed in chunks of any size, gives the
whole-utterance model's output frame for frame (the offline forward pass is the reference), and
its final words are those of offline greedy decoding (a word closes as soon as the space leads the
other tokens under the blank, worked by hand below); a bidirectional model streams at the pauses
silero-vad finds."""
import numpy as np
import pytest
import torch

from asr.decoding import GreedyDecoder
from asr.features import FeatureConfig
from asr.model import ModelDims
from asr.recognizer import BUILTIN_DIR, Recognizer, load_recognizer
from asr.stream import Stream, _Incremental
from asr.tokenizer import BLANK, CharTokenizer


def streaming_model(seed=0, **settings):
    """A tiny unidirectional model with lookahead (or what `settings` make of it)."""
    torch.manual_seed(seed)
    tokenizer = CharTokenizer([BLANK, " ", "A", "B", "C"])
    features = FeatureConfig(kind="fbank", n_mels=20)
    dims = ModelDims(**{**dict(n_input=20, n_tokens=5, conv_channels=(4, 4), n_layers=2, hidden=16,
                               bidirectional=False, lookahead=3), **settings})
    model = Recognizer(features, dims, tokenizer, torch.zeros(20), torch.ones(20)).eval()
    with torch.no_grad():  # a model that emits words and spaces: a strong output bias per token
        model.model.output.bias.copy_(torch.tensor([2.0, 0.5, 1.0, 1.0, 1.0]))
    return model


@pytest.mark.parametrize("chunk", [160, 1234, 4000])
def test_chunked_streaming_gives_the_offline_model_frame_for_frame(chunk):
    model = streaming_model()
    audio = np.random.default_rng(1).normal(0, 0.1, 16000 * 2).astype(np.float32)
    seen = []
    original = _Incremental._greedy
    stream = Stream(model)
    stream._state._greedy = lambda log_probs: (seen.append(log_probs), original(stream._state, log_probs))
    finals = []
    for start in range(0, len(audio), chunk):
        finals += [e for e in stream.accept(audio[start:start + chunk]) if e.kind == "final"]
    finals += [e for e in stream.finish() if e.kind == "final"]
    expected, n = model.infer([torch.from_numpy(audio)])
    got = torch.cat(seen)
    assert got.shape[0] == int(n[0])
    assert torch.allclose(got, expected[0, : n[0]], atol=1e-5)
    offline = GreedyDecoder(model.tokenizer).decode(expected, n)[0]
    assert " ".join(e.text for e in finals) == offline


def test_a_word_is_final_once_the_space_leads_under_the_blank_not_before():
    # tokens: blank, space, A, B, C. Frames 0-6 (probabilities): A | blank, B second | B | blank,
    # space second | blank, space second | space | C. "AB" is final at frame 3, two frames before
    # the space's own spike (frame 5); the blank with B second inside the word (frame 1) closes nothing.
    def frame(*probs):
        return torch.tensor(probs).log()

    frames = [frame(.1, .1, .7, .05, .05), frame(.6, .05, .05, .25, .05), frame(.1, .05, .05, .75, .05),
              frame(.6, .3, .04, .03, .03), frame(.6, .3, .04, .03, .03), frame(.2, .7, .04, .03, .03),
              frame(.1, .1, .05, .05, .7)]
    state = Stream(streaming_model())._state
    finals = []
    for t, f in enumerate(frames):
        state._greedy(f[None])
        finals += [(t, e.text) for e in state._events(final=False) if e.kind == "final"]
    assert finals == [(3, "AB")]
    assert state.r.tokenizer.decode(state.ids).split() == ["AB", "C"]  # the text of greedy decoding


def test_a_bidirectional_model_streams_at_the_pauses_vad_finds():
    from asr.audio import load_audio

    recognizer = load_recognizer()
    clips = [load_audio(p) for p in sorted((BUILTIN_DIR / "samples").glob("*.flac"))]
    texts = dict(line.split(" ", 1) for line in (BUILTIN_DIR / "samples" / "text").read_text().splitlines())
    pause = np.zeros(16000, np.float32)
    audio = np.concatenate([x for clip in clips for x in (clip, pause)])
    stream = recognizer.stream()
    events = []
    for start in range(0, len(audio), 1600):  # 100 ms chunks
        events += stream.accept(audio[start:start + 1600])
    events += stream.finish()
    finals = [e for e in events if e.kind == "final"]
    offline = [recognizer.transcribe(clip).text for clip in clips]
    assert [e.text for e in finals] == offline
    assert any(e.kind == "partial" for e in events)
    assert set(offline) & set(texts.values())  # a sanity check on the clips themselves
    first = finals[1].words[0]  # times are on the stream's clock: the second clip starts after clip 1 + 1 s
    assert len(clips[0]) / 16000 + 1.0 - 0.1 < first.start < (len(clips[0]) + len(clips[1])) / 16000 + 1.0


def test_asr_transcribe_stream_reads_pcm_from_stdin(monkeypatch, capsys):
    import io
    import sys

    import soundfile as sf

    from asr.cli import main

    clip, _ = sf.read(str(BUILTIN_DIR / "samples" / "an417-fjlp-b.flac"), dtype="int16")
    pcm = np.concatenate([clip, np.zeros(16000, np.int16), clip]).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(pcm)})())
    assert main(["transcribe", "--stream", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    finals = [line.split("\t") for line in lines if line.startswith("final")]
    assert [f[3] for f in finals] == ["ENTER NINE ONE SIX NINE"] * 2
    assert float(finals[1][1]) > len(clip) / 16000 + 0.9  # the second one on the stream's clock
    assert any(line.startswith("partial\t") for line in lines)
    assert main(["transcribe", "--stream", "a.wav"]) != 0
    assert "--stream reads raw PCM from stdin" in capsys.readouterr().err


def test_a_streaming_model_starts_from_a_bidirectional_models_forward_direction():
    from asr.transfer import init_weights

    torch.manual_seed(3)
    tokenizer = CharTokenizer([BLANK, " ", "A", "B", "C"])
    features = FeatureConfig(kind="fbank", n_mels=20)
    common = dict(n_input=20, n_tokens=5, conv_channels=(4, 4), n_layers=2, hidden=8)
    bi = Recognizer(features, ModelDims(**common), tokenizer, torch.zeros(20), torch.ones(20))
    uni = Recognizer(features, ModelDims(**common, bidirectional=False, lookahead=2), tokenizer, torch.zeros(20),
                     torch.ones(20))
    copied, left = init_weights(uni, bi.checkpoint())
    assert left == 1  # the lookahead convolution, which the bidirectional model has not
    src, dst = bi.model.state_dict(), uni.model.state_dict()
    assert torch.equal(dst["layers.0.rnn.weight_ih_l0"], src["layers.0.rnn.weight_ih_l0"])
    assert torch.equal(dst["layers.1.rnn.weight_hh_l0"], src["layers.1.rnn.weight_hh_l0"])
    # the next layer and the output read [forward | backward]: the forward half's columns
    assert torch.equal(dst["layers.1.rnn.weight_ih_l0"], src["layers.1.rnn.weight_ih_l0"][:, :8])
    assert torch.equal(dst["output.weight"], src["output.weight"][:, :8])
    assert torch.equal(dst["front_end.blocks.0.0.weight"], src["front_end.blocks.0.0.weight"])


@pytest.mark.parametrize("rnn_type,bidirectional", [("gru", False), ("lstm", False), ("gru", True)])
def test_a_wider_model_starts_out_computing_what_the_narrower_checkpoint_computes(rnn_type, bidirectional):
    # The reference: the same checkpoint started at its own width (the plain copy of the test above),
    # whose outputs the wider model must reproduce before any training; the new units then learn.
    from asr.transfer import init_weights

    torch.manual_seed(4)
    tokenizer = CharTokenizer([BLANK, " ", "A", "B", "C"])
    features = FeatureConfig(kind="fbank", n_mels=20)
    common = dict(n_input=20, n_tokens=5, conv_channels=(4, 4), n_layers=3, rnn_type=rnn_type)
    bi = Recognizer(features, ModelDims(**common, hidden=8), tokenizer, torch.zeros(20), torch.ones(20))
    narrow, wide = (Recognizer(features, ModelDims(**common, hidden=h, bidirectional=bidirectional), tokenizer,
                               torch.zeros(20), torch.ones(20)) for h in (8, 13))
    assert init_weights(narrow, bi.checkpoint())[1] == 0
    assert init_weights(wide, bi.checkpoint())[1] == 0
    x, lengths = torch.randn(2, 9000), torch.tensor([9000, 6000])
    for r in (narrow, wide, bi):
        r.eval()
    with torch.no_grad():
        expected, n_expected = narrow(x, lengths)
        got, n_got = wide(x, lengths)
    assert torch.equal(n_got, n_expected)
    assert torch.allclose(got, expected, atol=1e-5)
    # the new units are not dead: their rows kept a fresh initialisation, and reading them is allowed
    w = wide.model.state_dict()["layers.1.rnn.weight_hh_l0"]
    assert w[8:13].abs().sum() > 0 and w[:8, 8:].abs().sum() == 0


def test_two_bidirectional_streams_at_once_do_not_share_the_vad_state():
    # silero-vad's model carries state from window to window: two streams fed turn about must find
    # what each finds alone
    from asr.audio import load_audio

    recognizer = load_recognizer()
    clip = load_audio(BUILTIN_DIR / "samples" / "an417-fjlp-b.flac")
    pause = np.zeros(8000, np.float32)
    speech = np.concatenate([pause, clip, pause, clip, pause])
    noise = np.random.default_rng(0).normal(0, 0.3, len(speech)).astype(np.float32)

    def run(streams_and_audio):
        events = [[] for _ in streams_and_audio]
        for start in range(0, len(speech), 1600):
            for k, (stream, audio) in enumerate(streams_and_audio):
                events[k] += [(e.kind, e.text, e.audio_seconds) for e in stream.accept(audio[start:start + 1600])]
        for k, (stream, _) in enumerate(streams_and_audio):
            events[k] += [(e.kind, e.text, e.audio_seconds) for e in stream.finish()]
        return events

    alone = run([(recognizer.stream(), speech)])[0]
    together = run([(recognizer.stream(), speech), (recognizer.stream(), noise)])[0]
    assert [e for e in alone if e[0] == "final"]  # the clip's words were found
    assert together == alone


def test_a_model_whose_features_need_the_whole_utterance_streams_at_pauses():
    # each utterance's own normalisation and centred frames (an imported DeepSpeech2's) cannot be
    # computed chunk by chunk: such a model streams by VAD segments, as a bidirectional one does
    from asr.audio import load_audio

    base = streaming_model()
    features = FeatureConfig(kind="fbank", n_mels=20, center=True, normalize="utterance")
    model = Recognizer(features, base.dims, base.tokenizer, torch.zeros(20), torch.ones(20)).eval()
    model.model.load_state_dict(base.model.state_dict())
    with torch.no_grad():  # tokens win over the blank more often: the clip gives a text
        model.model.output.bias.copy_(torch.tensor([1.0, 0.5, 1.0, 1.0, 1.0]))
    clip = load_audio(BUILTIN_DIR / "samples" / "an417-fjlp-b.flac")
    audio = np.concatenate([np.zeros(8000, np.float32), clip, np.zeros(16000, np.float32)])
    stream = model.stream()
    events = [e for start in range(0, len(audio), 1600) for e in stream.accept(audio[start:start + 1600])]
    finals = [e.text for e in events + stream.finish() if e.kind == "final"]
    assert not stream.incremental and finals and all(finals)
    assert Stream(base).incremental  # the same model with global statistics and plain frames runs frame by frame

