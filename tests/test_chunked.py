"""The latency-controlled bidirectional stack (asr/chunked.py) against references built here from
plain torch GRUs: with chunks as long as the utterance it is torch's bidirectional GRU, and with
short chunks it is the published algorithm written out window by window with loops; batches with
padding, training mode and a stream fed in chunks of any size all give the same numbers."""
import re

import numpy as np
import pytest
import torch

from asr.chunked import chunked_stack
from asr.errors import InputError
from asr.features import FeatureConfig
from asr.model import CTCModel, ModelDims
from asr.recognizer import Recognizer
from asr.stream import Stream, _Incremental
from asr.tokenizer import BLANK, CharTokenizer

COMMON = dict(n_input=20, n_tokens=5, conv_channels=(4, 4), n_layers=2, hidden=8, dropout=0.0)


def reference_lc_bigru(model: CTCModel, x: torch.Tensor, chunk: int, right_context: int) -> torch.Tensor:
    """One utterance `x: (frames, n)` through the stack, window by window, as Zhang et al. describe
    latency-controlled BLSTMs: the forward state is carried from chunk to chunk and continues,
    thrown away after, over the right context; the backward state starts from zero at the window's end."""
    forward_state = [None] * len(model.layers)
    outputs = []
    for start in range(0, x.shape[0], chunk):
        window = x[start:start + chunk + right_context]
        n_chunk = min(chunk, window.shape[0])
        for i, layer in enumerate(model.layers):
            f, b = layer.rnn, layer.rnn_reverse  # plain one-direction torch GRUs
            out, forward_state[i] = f(window[None, :n_chunk], forward_state[i])
            if window.shape[0] > n_chunk:
                out_right, _ = f(window[None, n_chunk:], forward_state[i])
                out = torch.cat([out, out_right], 1)
            back, _ = b(window.flip(0)[None])
            window = torch.cat([out[0], back[0].flip(0)], -1)
        outputs.append(window[:n_chunk])
    return torch.cat(outputs)


def test_chunks_as_long_as_the_utterance_are_torchs_bidirectional_gru():
    torch.manual_seed(0)
    bi = CTCModel(ModelDims(**COMMON)).eval()
    chunked = CTCModel(ModelDims(**COMMON, chunk=1000)).eval()
    renamed = {re.sub(r"_reverse$", "", name.replace(".rnn.", ".rnn_reverse.")) if name.endswith("_reverse")
               else name: w for name, w in bi.state_dict().items()}
    chunked.load_state_dict(renamed)
    x, n = torch.randn(3, 50, 20), torch.tensor([50, 37, 21])
    expected, n_out = bi(x, n)
    got, _ = chunked(x, n)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("chunk,right_context", [(3, 2), (4, 0), (2, 5)])
def test_a_batch_with_padding_gives_the_window_by_window_reference(chunk, right_context):
    torch.manual_seed(1)
    model = CTCModel(ModelDims(**COMMON, chunk=chunk, right_context=right_context)).eval()
    lengths = torch.tensor([23, 17, 5, 1])
    x = torch.randn(4, 23, model.front_end.n_output)
    got = chunked_stack(model.layers, x, lengths, chunk, right_context)
    for row, n in enumerate(lengths.tolist()):
        expected = reference_lc_bigru(model, x[row, :n], chunk, right_context)
        assert torch.allclose(got[row, :n], expected, atol=1e-5), row
        assert not got[row, n:].any()  # padding stays zero


def test_training_mode_learns_both_directions_and_padding_does_not_change_an_utterance():
    torch.manual_seed(2)
    # no batch norm, whose training statistics would come from the batch, and no dropout
    model = CTCModel(ModelDims(**COMMON, chunk=3, right_context=2, conv_norm=False)).train()
    x = torch.randn(2, 40, 20)
    x[0, 31:] = 0  # padding, as batches have it
    alone, n_alone = model(x[:1, :31], torch.tensor([31]))
    batched, _ = model(x, torch.tensor([31, 40]))
    assert torch.allclose(batched[0, : n_alone[0]], alone[0, : n_alone[0]], atol=1e-5)
    batched.sum().backward()
    for layer in model.layers:
        assert layer.rnn.weight_hh_l0.grad.abs().sum() > 0
        assert layer.rnn_reverse.weight_hh_l0.grad.abs().sum() > 0


def test_a_chunked_model_starts_from_a_bidirectional_models_two_directions():
    from asr.transfer import init_weights

    torch.manual_seed(3)
    tokenizer = CharTokenizer([BLANK, " ", "A", "B", "C"])
    features = FeatureConfig(kind="fbank", n_mels=20)
    bi = Recognizer(features, ModelDims(**COMMON), tokenizer, torch.zeros(20), torch.ones(20)).eval()
    chunked = Recognizer(features, ModelDims(**COMMON, chunk=10_000), tokenizer, torch.zeros(20),
                         torch.ones(20)).eval()
    copied, left = init_weights(chunked, bi.checkpoint())
    assert left == 0
    audio = torch.from_numpy(np.random.default_rng(4).normal(0, 0.1, 16000).astype(np.float32))
    expected, _ = bi.infer([audio])
    got, _ = chunked.infer([audio])
    assert torch.allclose(got, expected, atol=1e-5)


def chunked_recognizer(seed=0):
    from test_stream import streaming_model

    return streaming_model(seed, bidirectional=True, lookahead=0, chunk=3, right_context=2)


@pytest.mark.parametrize("chunk", [160, 1234, 4000])
def test_a_stream_gives_the_whole_utterance_model_frame_for_frame(chunk):
    model = chunked_recognizer()
    audio = np.random.default_rng(1).normal(0, 0.1, 16000 * 2).astype(np.float32)
    stream = Stream(model)
    assert isinstance(stream._state, _Incremental)
    seen, original = [], _Incremental._greedy
    stream._state._greedy = lambda log_probs: (seen.append(log_probs), original(stream._state, log_probs))
    first_out = None
    for start in range(0, len(audio), chunk):
        stream.accept(audio[start:start + chunk])
        if first_out is None and seen and sum(len(s) for s in seen):
            first_out = start + chunk
    stream.finish()
    expected, n = model.infer([torch.from_numpy(audio)])
    got = torch.cat(seen)
    assert got.shape[0] == int(n[0])
    assert torch.allclose(got, expected[0, : n[0]], atol=1e-5)
    # nothing waits for the end: the first chunk's frames are out once its window (3 + 2 frames of
    # 40 ms, and the front end's 3 feature frames and 25 ms window) has been heard
    assert first_out <= 0.2 * 16000 + 0.055 * 16000 + chunk


@pytest.mark.parametrize("settings,needle", [
    (dict(chunk=4, bidirectional=False), "bidirectional GRU"),
    (dict(chunk=4, rnn_type="lstm"), "bidirectional GRU"),
    (dict(right_context=2), "a right context needs a chunk"),
    (dict(chunk=-1), "model.chunk=-1"),
])
def test_bad_chunk_settings_are_named(settings, needle):
    with pytest.raises(InputError, match=needle):
        ModelDims(**{**COMMON, **settings})


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("training", [False, True])
def test_a_norm_between_layers_works_on_windows_and_padding_does_not_move_it(norm, training):
    # the layers' input is (batch, windows, frames, n): a batch norm needs it frame by frame, and in
    # training its statistics must come from the valid frames only, as in the packed layers
    torch.manual_seed(3)
    model = CTCModel(ModelDims(**COMMON, chunk=3, right_context=2, layer_norm=norm, conv_norm=False))
    model.train(training)
    x = torch.randn(1, 40, 20)
    alone, n = model(x, torch.tensor([40]))
    padded, _ = model(torch.cat([x, torch.zeros(1, 24, 20)], 1), torch.tensor([40]))
    assert torch.allclose(padded[0, : n[0]], alone[0, : n[0]], atol=1e-5)
    if norm == "batch" and training:  # the statistics really are the batch's: eval mode differs
        assert not torch.allclose(model.eval()(x, torch.tensor([40]))[0], alone, atol=1e-3)
