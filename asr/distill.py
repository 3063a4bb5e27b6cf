"""Frame-level knowledge distillation: a trained recogniser (the teacher) whose token posteriors
the model in training learns to match frame by frame, beside its CTC loss.

The teacher reads the same waveforms (after speed perturbation and waveform augmentation, before
SpecAugment, in eval mode) with its own features and normalisation, so it only has to share the
student's tokens, sample rate and output frame rate. With `clean`, it reads them as they were
before babble and waveform augmentation (noise, reverberation, narrow band, gain), as in
teacher-student learning for noise robustness (Li et al., 2014): the student learns to hear in the
noise what the teacher hears without it. `shift` delays the teacher: student frame t
learns teacher frame t - shift, for a student that sees less of the future than its teacher.
"""
from __future__ import annotations

from pathlib import Path

import torch

from asr.errors import AsrError
from asr.recognizer import (
    CheckpointError,
    Recognizer,
    checkpoint_source,
    load_recognizer,
)


class DistillError(AsrError):
    """A teacher that cannot teach this model; the message names the checkpoint and the reason."""


def needs_clean_audio(teacher: Teacher | None) -> bool:
    """Whether the loader must also keep each utterance's audio before augmentation."""
    return teacher is not None and teacher.clean


class Teacher:
    """A recogniser in eval mode and how much, how late and on what audio the model learns from it."""

    def __init__(self, recognizer: Recognizer, weight: float, shift: int = 0, clean: bool = False,
                 source: str = "teacher"):
        self.recognizer = recognizer.eval()
        self.weight, self.shift, self.clean, self.source = weight, shift, clean, source

    @classmethod
    def load(cls, path: str | Path, weight: float, shift: int, clean: bool, device: torch.device) -> Teacher:
        source = checkpoint_source(path)
        try:
            recognizer = load_recognizer(source, device)
        except CheckpointError as error:
            raise DistillError(f"train.distill_from: {error}") from None
        return cls(recognizer, weight, shift, clean, str(source))

    def check(self, student: Recognizer) -> None:
        """Refuse a teacher whose outputs cannot be matched with the student's, frame for frame."""
        teacher = self.recognizer
        if list(teacher.tokenizer.vocab) != list(student.tokenizer.vocab):
            raise DistillError(f"{self.source}: its tokens ({len(teacher.tokenizer.vocab)}) are not the model's "
                               f"({len(student.tokenizer.vocab)}): train.distill_from needs the same tokenizer")
        if teacher.features.sample_rate != student.features.sample_rate:
            raise DistillError(f"{self.source}: reads {teacher.features.sample_rate} Hz audio, the model "
                               f"{student.features.sample_rate} Hz")
        probe = torch.tensor([1, 4000, 16000, 48001, 160000]) * student.features.sample_rate // 16000
        if not torch.equal(teacher.output_lengths(probe), student.output_lengths(probe)):
            raise DistillError(f"{self.source}: its output frame rate is not the model's (the front ends' strides "
                               "differ)")

    def loss(self, log_probs: torch.Tensor, waveforms: torch.Tensor, n_samples: torch.Tensor,
             n_frames: torch.Tensor) -> torch.Tensor:
        """`weight` x the summed KL(teacher || student) over the valid frames of the batch."""
        with torch.no_grad():
            target, _ = self.recognizer(waveforms, n_samples)
        return self.weight * frame_kl(log_probs.float(), target.float(), n_frames, self.shift)


def frame_kl(student: torch.Tensor, teacher: torch.Tensor, n_frames: torch.Tensor, shift: int = 0) -> torch.Tensor:
    """sum over utterances b and frames shift <= t < n_frames[b] of KL(teacher[b, t - shift] || student[b, t]),
    both `(batch, frames, tokens)` log-probabilities."""
    frames = student.shape[1]
    if shift:
        student, teacher = student[:, shift:], teacher[:, :frames - shift]
    t = torch.arange(shift, frames, device=student.device)
    valid = t[None, :] < n_frames.to(student.device)[:, None]
    kl = (teacher.exp() * (teacher - student)).sum(-1)
    return (kl * valid).sum()
