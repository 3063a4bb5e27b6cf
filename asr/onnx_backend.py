"""A recogniser whose acoustic model runs in ONNX Runtime (`asr export` made its folder): the same
`infer`/`transcribe` as `asr.recognizer.Recognizer`, so that our decoders, word times and output
formats stay the same (`asr transcribe --backend onnx --model DIR`)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from asr.errors import AsrError
from asr.features import FeatureConfig
from asr.model import ModelDims
from asr.onnx_frontend import Frontend, pad_features
from asr.tokenizer import tokenizer_from_checkpoint


class OnnxRecognizer:
    def __init__(self, folder: str | Path, int8: bool = False, threads: int = 0):
        import onnxruntime as ort

        folder = Path(folder)
        model = folder / ("model.int8.onnx" if int8 else "model.onnx")
        if not model.is_file() or not (folder / "config.json").is_file():
            raise AsrError(f"{folder}: not an exported model folder (no {model.name} or config.json; "
                           "make one with asr export --format onnx" + (" --int8" if int8 else "") + ")")
        self.frontend = Frontend.load(folder)
        config = self.frontend.config
        self.features = FeatureConfig(**config["features"])
        self.dims = ModelDims.from_dict(config["dims"])
        saved = {"kind": config["tokenizer"]}
        if (folder / "tokenizer.model").is_file():
            saved["model"] = (folder / "tokenizer.model").read_bytes()
        self.tokenizer = tokenizer_from_checkpoint({"vocab": config["vocab"], "tokenizer": saved})
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def infer(self, waveforms: Sequence[torch.Tensor | np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mono waveforms -> log-probs `(batch, frames, n_tokens)` and `n_frames`, as torch tensors."""
        feats, lengths = pad_features([self.frontend(np.asarray(w, dtype=np.float32)) for w in waveforms])
        log_probs, n_out = self.session.run(None, {"feats": feats, "n_frames": lengths})
        return torch.from_numpy(log_probs), torch.from_numpy(n_out)

    def transcribe(self, audio, decoder=None, max_segment_seconds: float = 20.0, segmenter: str | None = None):
        from asr.transcribe import transcribe_input

        return transcribe_input(self, audio, decoder, max_segment_seconds, segmenter)
