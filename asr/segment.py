"""Split long recordings into segments no longer than a maximum length: at silences found by
block energy (`split_on_silence`), or at the pauses a voice-activity detector finds between speech
(`split_on_speech`, silero-vad), which does not need clean silence."""
from __future__ import annotations

import threading

import numpy as np

BLOCK_SECONDS = 0.01


def block_energy_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean power of consecutive 10 ms blocks, in dB (one value per block)."""
    block = max(1, int(sample_rate * BLOCK_SECONDS))
    if len(audio) < block:
        return np.array([10 * np.log10(float(np.mean(audio**2)) + 1e-12)]) if len(audio) else np.array([-120.0])
    n_blocks = len(audio) // block
    blocks = audio[: n_blocks * block].reshape(n_blocks, block)
    power = np.einsum("ij,ij->i", blocks, blocks) / block  # no full-size temporary for long files
    return 10 * np.log10(power + 1e-12)


def split_on_silence(
    audio: np.ndarray,
    sample_rate: int,
    max_seconds: float = 20.0,
    min_silence_seconds: float = 0.5,
    threshold_db: float = 12.0,
) -> list[tuple[int, int]]:
    """`(start, end)` sample ranges that cover `audio`, each at most `max_seconds` long.

    A 10 ms block is silent when its energy is less than `threshold_db` above the recording's noise
    floor (its 10th-percentile block energy). A recording longer than `max_seconds` is cut in the
    middle of every silence of at least `min_silence_seconds`, so that its segments look like the
    utterances a model is trained on; a stretch still too long is cut at its quietest block past a
    quarter of the limit. A shorter recording is one segment.
    """
    n_samples = len(audio)
    block = int(sample_rate * BLOCK_SECONDS)
    if n_samples <= max_seconds * sample_rate:
        return [(0, n_samples)]
    energy = block_energy_db(audio, sample_rate)
    silent = energy < np.percentile(energy, 10) + threshold_db
    return _cut(energy, _silence_centres(silent, int(min_silence_seconds / BLOCK_SECONDS)).tolist(), max_seconds,
                block, n_samples)


def _cut(energy: np.ndarray, centres: list[int], max_seconds: float, block: int, n_samples: int) -> list[tuple[int, int]]:
    """Segments cut at the `centres` (block indices) of pauses; a stretch still longer than
    `max_seconds` is cut at its quietest block past a quarter of the limit."""
    max_blocks = int(max_seconds / BLOCK_SECONDS)
    cuts = [0, *centres, len(energy)]
    bounds = [0]
    for start, end in zip(cuts, cuts[1:]):
        while end - start > max_blocks:
            lo = start + max_blocks // 4
            start = lo + int(np.argmin(energy[lo : start + max_blocks]))
            bounds.append(start)
        if end not in (0, len(energy)):
            bounds.append(end)
    samples = sorted({b * block for b in bounds if 0 < b < len(energy)})
    edges = [0, *samples, n_samples]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def _silence_centres(silent: np.ndarray, min_blocks: int) -> np.ndarray:
    """Centre block of every run of at least `min_blocks` silent blocks."""
    edges = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_enough = (ends - starts) >= min_blocks
    return ((starts + ends) // 2)[long_enough]


_per_thread = threading.local()


def new_silero_model():
    """A silero-vad model of its own, the ONNX one of its package (onnxruntime, one thread): it
    finds the same speech at twice the speed of the TorchScript one (1.77 s against 0.85 s for
    151 s of AN4 test audio; a 512-sample window per call)."""
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


def silero_model():
    """This thread's silero-vad model. The model carries state from one window to the next, so
    threads must not share one: `asr serve --workers N` segments N recordings at once."""
    model = getattr(_per_thread, "model", None)
    if model is None:
        model = _per_thread.model = new_silero_model()
    return model


VAD_RATE = 16000


def speech_regions(audio: np.ndarray, sample_rate: int, threshold: float = 0.5) -> list[tuple[int, int]]:
    """`(start, end)` sample ranges that silero-vad (its model ships in its pip package) calls
    speech."""
    import torch
    from silero_vad import get_speech_timestamps

    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if sample_rate != VAD_RATE:
        import torchaudio.functional as AF

        wave = AF.resample(wave, sample_rate, VAD_RATE)
    with torch.no_grad():
        found = get_speech_timestamps(wave, silero_model(), threshold=threshold, sampling_rate=VAD_RATE)
    scale = sample_rate / VAD_RATE
    return [(int(r["start"] * scale), int(r["end"] * scale)) for r in found]


def split_on_speech(
    audio: np.ndarray,
    sample_rate: int,
    max_seconds: float = 20.0,
    min_pause_seconds: float = 0.3,
) -> list[tuple[int, int]]:
    """Like `split_on_silence`, but a recording longer than `max_seconds` is cut in the middle of
    every pause of at least `min_pause_seconds` between the speech that silero-vad finds, so that
    noise or room tone between sentences does not hide the pauses."""
    n_samples = len(audio)
    if n_samples <= max_seconds * sample_rate:
        return [(0, n_samples)]
    block = int(sample_rate * BLOCK_SECONDS)
    regions = speech_regions(audio, sample_rate)
    centres = [(end + start) // 2 // block for (_, end), (start, _) in zip(regions, regions[1:])
               if start - end >= min_pause_seconds * sample_rate]
    return _cut(block_energy_db(audio, sample_rate), centres, max_seconds, block, n_samples)


SEGMENTERS = {"energy": split_on_silence, "vad": split_on_speech}
DEFAULT_SEGMENTER = "vad"  # how `asr transcribe` cuts long recordings (vad: fewer errors on noisy joined files, tools/bench_robustness.py)
