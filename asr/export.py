"""Export a checkpoint for ONNX Runtime: `asr export --model CKPT --format onnx --out DIR`.

DIR holds:
- `model.onnx`: normalised features `feats (batch, frames, n_input)` and `n_frames (batch,)` ->
  `log_probs (batch, frames', n_tokens)` and `n_out (batch,)`, dynamic batch and length; with
  `--int8` also `model.int8.onnx` (onnxruntime's dynamic int8 quantisation of the matrix
  products; the recurrent layers and convolutions stay in float);
- `frontend.npz` + `config.json`: the feature front end as data (window, mel filterbank, DCT,
  normalisation statistics) for `asr.onnx_frontend`, which computes it with numpy alone; the
  model's dimensions, the tokens and the tokenizer's kind (`tokenizer.model` for subwords);
- the decoder's files where the checkpoint has them beside it: `decoder.json`, `words.arpa`,
  `lexicon.txt`.

The recurrent layers are exported without packed sequences: a padded batch runs each direction
as a plain LSTM/GRU, the backward one over each utterance reversed within its own length, so
padding never reaches a valid frame (the same results as the packed PyTorch model). A
latency-controlled model (`model.chunk`) exports its stack as trained: `asr.chunked.chunked_stack`
cuts the frames into windows with tensor operations, so the graph windows any length.
"""
from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from asr.chunked import chunked_stack, reverse_within
from asr.decoding import read_beam_options, write_beam_options
from asr.features import frame_mask
from asr.model import CTCModel
from asr.recognizer import Recognizer, read_checkpoint


def _direction(rnn: nn.RNNBase, suffix: str) -> nn.RNNBase:
    """One direction of a (bi)directional layer as a unidirectional module of the same kind."""
    single = type(rnn)(rnn.input_size, rnn.hidden_size, batch_first=True)
    single.load_state_dict({name: getattr(rnn, name + suffix) for name in
                            ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")})
    return single


class ExportableModel(nn.Module):
    """`CTCModel` over padded tensors, without packing: what `model.onnx` computes. A
    latency-controlled model's stack (`model.chunk`) is `chunked_stack` as trained, which is
    tensor operations already."""

    def __init__(self, model: CTCModel):
        super().__init__()
        self.model = model.eval()
        self.chunked = bool(model.dims.chunk)
        layers = [] if self.chunked else model.layers
        self.forward_rnns = nn.ModuleList(_direction(layer.rnn, "") for layer in layers)
        self.backward_rnns = nn.ModuleList(_direction(layer.rnn, "_reverse") if layer.rnn.bidirectional
                                           else nn.Identity() for layer in layers)

    def forward(self, feats: torch.Tensor, n_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        x, n_out = m.front_end(feats, n_frames)
        mask = frame_mask(n_out, x.shape[1]).unsqueeze(-1).to(x.dtype)
        if self.chunked:
            x = chunked_stack(m.layers, x, n_out, m.dims.chunk, m.dims.right_context)
        else:
            for layer, fwd, bwd in zip(m.layers, self.forward_rnns, self.backward_rnns):
                x = layer.dropout(layer.norm(x))
                out, _ = fwd(x)
                if layer.rnn.bidirectional:
                    back, _ = bwd(reverse_within(x, n_out))
                    back = reverse_within(back, n_out)
                    out = out + back if layer.sum_directions else torch.cat([out, back], -1)
                x = layer.projection(out) * mask
        if m.lookahead is not None:
            x = m.lookahead(x) * mask
        return m.output(m.output_norm(x)).float().log_softmax(-1) * mask, n_out


def frontend_data(recognizer: Recognizer) -> dict[str, np.ndarray]:
    """The front end's constants, taken from the torchaudio modules the model was trained with."""
    transform = recognizer.extractor.transform
    data = {"mean": recognizer.norm.mean.cpu().numpy(), "std": recognizer.norm.std.cpu().numpy()}
    mel = getattr(transform, "MelSpectrogram", transform)  # MFCC wraps a MelSpectrogram
    spectrogram = getattr(mel, "spectrogram", mel)  # a MelSpectrogram wraps a Spectrogram
    data["window"] = spectrogram.window.cpu().numpy()
    if hasattr(mel, "mel_scale"):
        data["mel"] = mel.mel_scale.fb.cpu().numpy()  # (n_freq, n_mels)
    if hasattr(transform, "dct_mat"):
        data["dct"] = transform.dct_mat.cpu().numpy()  # (n_mels, n_mfcc)
    return data


def _export(model: nn.Module, feats: torch.Tensor, n_frames: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        model, (feats, n_frames), str(path), input_names=["feats", "n_frames"],
        output_names=["log_probs", "n_out"], opset_version=opset, dynamo=False,
        dynamic_axes={"feats": {0: "batch", 1: "frames"}, "n_frames": {0: "batch"},
                      "log_probs": {0: "batch", 1: "out_frames"}, "n_out": {0: "batch"}})


def export_onnx(checkpoint: str | Path, out: str | Path, int8: bool = False, opset: int = 17) -> Path:
    out = Path(out)
    saved = read_checkpoint(checkpoint)
    recognizer = Recognizer.from_checkpoint(saved).eval()
    out.mkdir(parents=True, exist_ok=True)
    model = ExportableModel(recognizer.model).eval()
    feats = torch.randn(2, 300, recognizer.dims.n_input)
    n_frames = torch.tensor([300, 211])
    with warnings.catch_warnings():  # the GRU batch-size warning: no initial state is exported, any batch works
        warnings.simplefilter("ignore")
        _export(model, feats, n_frames, out / "model.onnx", opset)
    if int8:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.WARNING)  # the quantiser logs a line per tensor
        try:
            # MatMul and Gemm only: onnxruntime has no int8 GRU, and its ConvInteger took 6x the
            # time of the float Conv on this model (2 cores). reduce_range: 7-bit weights, which CPUs
            # without VNNI multiply without saturating
            quantize_dynamic(str(out / "model.onnx"), str(out / "model.int8.onnx"), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"], reduce_range=True)
        finally:
            logging.getLogger().setLevel(quiet)
    np.savez(out / "frontend.npz", **frontend_data(recognizer))
    tokenizer = saved.get("tokenizer") or {"kind": "char"}
    if tokenizer.get("model"):  # sentencepiece's model, as bytes
        (out / "tokenizer.model").write_bytes(bytes(tokenizer["model"]))
    config = {"format": "asr-onnx/1", "features": recognizer.features.to_dict(), "dims": recognizer.dims.to_dict(),
              "vocab": list(saved["vocab"]), "tokenizer": tokenizer.get("kind", "char"),
              "source": str(checkpoint)}
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    saved_decoder = Path(checkpoint).parent / "decoder.json"
    if saved_decoder.is_file():  # the LM decoder's settings, and copies of its LM and lexicon
        options = read_beam_options(saved_decoder)
        for key in ("lm", "lexicon"):
            source = getattr(options, key)
            if source:
                copy = out / Path(source).name
                shutil.copy(source, copy)
                options = replace(options, **{key: str(copy)})
        write_beam_options(options, out / "decoder.json")
    return out
