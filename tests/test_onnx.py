"""ONNX export: the exported model's log-probabilities match PyTorch's on real AN4 clips (the
six of tests/data/an4 and the three samples of the built-in model), in padded batches of several
sizes and lengths; fp32 transcripts are identical; the int8 model's WER stays within 0.3 points
of fp32 on these clips. Tolerance: 1e-3 absolute on log-probabilities (float32 kernels differ in
summation order between PyTorch and ONNX Runtime)."""
import numpy as np
import pytest
import torch

from asr.audio import load_audio
from asr.cli import main
from asr.decoding import GreedyDecoder
from asr.metrics import error_rates
from asr.recognizer import BUILTIN_DIR, BUILTIN_MODEL, load_recognizer


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", "--model", str(BUILTIN_MODEL), "--format", "onnx", "--out", str(out), "--int8"]) == 0
    return out


@pytest.fixture(scope="module")
def clips():
    from pathlib import Path

    fixture = Path(__file__).parent / "data" / "an4"
    texts = dict(line.split(" ", 1) for line in (fixture / "text").read_text().splitlines())
    texts.update(line.split(" ", 1) for line in (BUILTIN_DIR / "samples" / "text").read_text().splitlines())
    paths = sorted(fixture.glob("*.flac")) + sorted((BUILTIN_DIR / "samples").glob("*.flac"))
    return [(load_audio(p), texts[p.stem]) for p in paths]


def test_onnx_log_probs_match_pytorch_with_dynamic_batch_and_length(exported, clips):
    from asr.onnx_backend import OnnxRecognizer

    torch_model, onnx_model = load_recognizer(BUILTIN_MODEL), OnnxRecognizer(exported)
    for batch in ([0], [1, 2, 3], list(range(len(clips)))):  # lengths differ inside each batch
        waves = [torch.from_numpy(clips[i][0]) for i in batch]
        expected, expected_n = torch_model.infer(waves)
        got, got_n = onnx_model.infer(waves)
        assert torch.equal(got_n, expected_n.cpu())
        for row, n in enumerate(expected_n.tolist()):
            assert (got[row, :n] - expected[row, :n]).abs().max() < 1e-3, (batch, row)


def test_onnx_transcripts_equal_pytorch_in_fp32_and_int8_stays_within_0_3_wer(exported, clips, capsys):
    from asr.onnx_backend import OnnxRecognizer

    torch_model = load_recognizer(BUILTIN_MODEL)
    refs = [text for _, text in clips]

    def transcripts(model):
        decoder = GreedyDecoder(model.tokenizer)
        return [model.transcribe(audio, decoder).text for audio, _ in clips]

    fp32 = transcripts(OnnxRecognizer(exported))
    assert fp32 == transcripts(torch_model)
    int8 = transcripts(OnnxRecognizer(exported, int8=True))
    assert abs(error_rates(refs, int8).wer - error_rates(refs, fp32).wer) <= 0.3


def test_asr_transcribe_with_the_onnx_backend_and_its_lm(exported, capsys):
    sample = BUILTIN_DIR / "samples" / "an417-fjlp-b.flac"
    assert main(["transcribe", "--backend", "onnx", "--model", str(exported), "--decoder", "lm", str(sample)]) == 0
    assert capsys.readouterr().out.strip().endswith("ENTER NINE ONE SIX NINE")
    assert main(["transcribe", "--backend", "onnx", str(sample)]) != 0
    assert "--backend onnx: give --model DIR" in capsys.readouterr().err


def test_the_numpy_front_end_matches_the_torch_features(exported, clips):
    from asr.onnx_frontend import Frontend

    recognizer = load_recognizer(BUILTIN_MODEL)
    audio = clips[0][0]
    feats, n = recognizer.extractor(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    expected = recognizer.norm(feats, n)[0].numpy()
    got = Frontend.load(exported)(audio)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-3


def test_a_streaming_model_with_lookahead_exports_too(tmp_path):
    from test_stream import streaming_model

    from asr.export import export_onnx
    from asr.onnx_backend import OnnxRecognizer

    model = streaming_model()
    model.save(tmp_path / "streaming.pt")
    out = export_onnx(tmp_path / "streaming.pt", tmp_path / "onnx")
    waves = [torch.randn(16000) * 0.1, torch.randn(9000) * 0.1]
    expected, n = model.infer(waves)
    got, got_n = OnnxRecognizer(out).infer(waves)
    assert torch.equal(got_n, n)
    for row, frames in enumerate(n.tolist()):
        assert (got[row, :frames] - expected[row, :frames]).abs().max() < 1e-4


def test_the_int8_model_quantises_the_matmuls_and_keeps_conv_and_gru_in_float(exported):
    # onnxruntime has no int8 GRU, and its ConvInteger ran 6x slower than the float Conv here
    import onnx

    ops = {node.op_type for node in onnx.load(str(exported / "model.int8.onnx")).graph.node}
    assert "MatMulInteger" in ops and "ConvInteger" not in ops and {"Conv", "GRU"} <= ops


def test_with_the_onnx_backend_onnxruntime_gets_the_threads_and_torch_one(exported, capsys):
    # torch's idle threads spinning beside onnxruntime's made a 2-thread run slower than a 1-thread one
    before = torch.get_num_threads()
    try:
        sample = BUILTIN_DIR / "samples" / "an417-fjlp-b.flac"
        assert main(["transcribe", "--backend", "onnx", "--model", str(exported), "--threads", "2", str(sample)]) == 0
        assert torch.get_num_threads() == 1
        assert main(["transcribe", "--model", str(BUILTIN_MODEL), "--threads", "2", str(sample)]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("lengths", [[16000, 9000, 3000], [5200]])
def test_a_latency_controlled_model_exports_with_both_directions_and_any_number_of_windows(tmp_path, lengths):
    # its layers hold the backward direction apart (rnn_reverse), and its windows depend on the
    # length: traced on 2 x 300 frames, the graph must still cut 3 utterances, or 1, into their own windows
    from test_chunked import chunked_recognizer

    from asr.export import export_onnx
    from asr.onnx_backend import OnnxRecognizer

    model = chunked_recognizer()
    model.save(tmp_path / "chunked.pt")
    out = export_onnx(tmp_path / "chunked.pt", tmp_path / "onnx")
    generator = torch.Generator().manual_seed(len(lengths))
    waves = [torch.randn(n, generator=generator) * 0.1 for n in lengths]
    expected, n = model.infer(waves)
    got, got_n = OnnxRecognizer(out).infer(waves)
    assert torch.equal(got_n, n)
    for row, frames in enumerate(n.tolist()):
        assert (got[row, :frames] - expected[row, :frames]).abs().max() < 1e-4, row
    # and the comparison above can tell: backward GRUs deaf to their input move the output past 1e-2
    for layer in model.model.layers:
        layer.rnn_reverse.weight_ih_l0.data.zero_()
    assert (model.infer(waves)[0] - expected).abs().max() > 1e-2
