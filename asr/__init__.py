"""CTC speech recognition: features, BiLSTM/BiGRU acoustic models, decoding and scoring.

    import asr
    model = asr.load_model()            # the built-in AN4 model, or load_model("exp/x/best.pt")
    result = model.transcribe("a.wav")  # result.text, result.segments, result.words
"""
from asr.audio import AudioError, load_audio
from asr.recognizer import Recognizer, load_recognizer

__all__ = ["AudioError", "Recognizer", "load_audio", "load_model", "load_recognizer"]
__version__ = "0.1.0"


def load_model(path=None, device: str = "auto") -> Recognizer:
    """A recogniser from a checkpoint (default: the built-in AN4 model) on `device` (auto: CUDA if present)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_recognizer(path, device)
