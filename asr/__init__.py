"""CTC speech recognition: features, BiLSTM/BiGRU acoustic models, decoding and scoring."""
from asr.audio import AudioError, load_audio
from asr.recognizer import Recognizer, load_recognizer

__all__ = ["AudioError", "Recognizer", "load_audio", "load_recognizer"]
__version__ = "0.1.0"
