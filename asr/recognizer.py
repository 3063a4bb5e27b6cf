"""A trained recogniser: features + normalisation + acoustic model + tokenizer, saved as one file.

Checkpoints describe themselves (model dimensions, feature settings, normalisation statistics,
vocabulary, weights), hold only tensors and plain Python values so they load with
`torch.load(..., weights_only=True)`, and are written to a temporary file that is then renamed,
so a kill at any moment leaves either the old file or the new one, never a torn one.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from asr.data import pad_waveforms
from asr.decoding import Decoder, GreedyDecoder
from asr.devices import to_device
from asr.errors import AsrError
from asr.features import (
    FeatureConfig,
    FeatureExtractor,
    GlobalNorm,
    SpecAugment,
    SpecAugmentConfig,
    UtteranceNorm,
)
from asr.manifest import temporary_beside
from asr.model import CTCModel, ModelDims
from asr.tokenizer import Tokenizer, tokenizer_from_checkpoint

FORMAT_VERSION = 1


class Recognizer(nn.Module):
    """waveforms `(batch, samples)` + `n_samples` -> log-probs `(batch, frames, n_tokens)` + `n_frames`."""

    def __init__(
        self,
        features: FeatureConfig,
        dims: ModelDims,
        tokenizer: Tokenizer,
        mean: torch.Tensor,
        std: torch.Tensor,
        specaugment: SpecAugmentConfig | None = None,
    ):
        super().__init__()
        self.features = features
        self.tokenizer = tokenizer
        self.extractor = FeatureExtractor(features)
        self.norm = (UtteranceNorm if features.normalize == "utterance" else GlobalNorm)(mean, std)
        self.specaugment = SpecAugment(specaugment) if specaugment else None
        self.model = CTCModel(dims)

    @property
    def dims(self) -> ModelDims:
        return self.model.dims

    @property
    def device(self) -> torch.device:
        return self.norm.mean.device

    def forward(self, waveforms: torch.Tensor, n_samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`n_samples` best stays on the host: lengths are worked out there, and nothing waits
        for the GPU. `n_frames` comes back on the device of `waveforms`."""
        n_samples = n_samples.cpu()
        warps = self.specaugment.warps(waveforms.shape[0]) if self.specaugment is not None else None
        feats, n_frames_cpu = self.extractor(waveforms, n_samples, warps)
        n_frames = to_device(n_frames_cpu, waveforms.device)
        feats = self.norm(feats, n_frames)
        if self.specaugment is not None:
            feats = self.specaugment(feats, n_frames)
        return self.model(feats, n_frames, n_frames_cpu)

    def output_lengths(self, n_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for waveforms of `n_samples` (on the device of `n_samples`)."""
        return self.model.output_lengths(self.features.n_frames(n_samples).clamp(min=1))

    @torch.no_grad()
    def infer(self, waveforms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mono waveforms at `features.sample_rate`, in one padded batch -> log-probs and `n_frames`."""
        batch, n_samples = pad_waveforms(waveforms)
        return self(batch.to(self.device), n_samples)

    def transcribe_waveforms(self, waveforms: Sequence[torch.Tensor], decoder: Decoder | None = None) -> list[str]:
        """Mono waveforms at `features.sample_rate` -> texts."""
        return (decoder or GreedyDecoder(self.tokenizer)).decode(*self.infer(waveforms))

    def transcribe(self, audio, decoder: Decoder | None = None, max_segment_seconds: float = 20.0,
                   segmenter: str | None = None):
        """A file path or mono float32 samples (at `features.sample_rate`) -> `asr.transcribe.Transcript`
        with `text`, `segments` and `words`. Raises `AudioError` for a file that cannot be read."""
        from asr.transcribe import transcribe_input

        return transcribe_input(self, audio, decoder, max_segment_seconds, segmenter)

    def stream(self, decoder: Decoder | None = None, **options):
        """An `asr.stream.Stream`: feed it PCM chunks, get partial and final text with word times."""
        from asr.stream import Stream

        return Stream(self, decoder, **options)

    def checkpoint(self, **extra) -> dict:
        """The self-describing dictionary that `save` writes; `extra` adds training state."""
        return {
            "format_version": FORMAT_VERSION,
            "dims": self.dims.to_dict(),
            "features": self.features.to_dict(),
            "vocab": list(self.tokenizer.vocab),
            "tokenizer": self.tokenizer.to_dict(),
            "norm_mean": self.norm.mean.detach().cpu(),
            "norm_std": self.norm.std.detach().cpu(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            **extra,
        }

    def save(self, path: str | Path, **extra) -> Path:
        return save_atomic(self.checkpoint(**extra), path)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, specaugment: SpecAugmentConfig | None = None) -> Recognizer:
        recognizer = cls(
            FeatureConfig(**checkpoint["features"]),
            ModelDims.from_dict(checkpoint["dims"]),
            tokenizer_from_checkpoint(checkpoint),
            checkpoint["norm_mean"],
            checkpoint["norm_std"],
            specaugment,
        )
        # Shipped models may store half-precision weights; compute always starts from float32.
        recognizer.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in checkpoint["model"].items()})
        return recognizer


class CheckpointError(AsrError):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a loadable checkpoint ({error.__class__.__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "vocab" not in checkpoint:
        raise CheckpointError(f"{path}: not an asr checkpoint (no model dimensions or vocabulary)")
    return checkpoint


BUILTIN_DIR = Path(__file__).parent / "assets" / "an4"
BUILTIN_MODEL = BUILTIN_DIR / "model.pt"


def checkpoint_source(name: str | Path) -> Path:
    """A checkpoint setting's file: `builtin` names the shipped AN4 model (train.init_from, train.distill_from)."""
    return BUILTIN_MODEL if str(name) == "builtin" else Path(name)


def load_recognizer(path: str | Path | None = None, device: str | torch.device = "cpu") -> Recognizer:
    """Rebuild a recogniser from its checkpoint file alone (default: the built-in AN4 model),
    in eval mode on `device`."""
    recognizer = Recognizer.from_checkpoint(read_checkpoint(path or BUILTIN_MODEL))
    return recognizer.to(device).eval()


def export_checkpoint(src: str | Path, dst: str | Path, half: bool = True, **extra) -> Path:
    """A copy of `src` for inference: no optimizer state, weights in float16 when `half`."""
    checkpoint = read_checkpoint(src)
    model = {k: v.half() if half and v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    keep = ("format_version", "dims", "features", "vocab", "tokenizer", "norm_mean", "norm_std", "epoch", "metrics", "config")
    return save_atomic({**{k: checkpoint[k] for k in keep if k in checkpoint}, "model": model, **extra}, dst)


def save_atomic(obj: dict, path: str | Path) -> Path:
    path = Path(path)
    fd, tmp = temporary_beside(path)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
