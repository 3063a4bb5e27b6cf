"""Split long recordings on silence into segments no longer than a maximum length."""
from __future__ import annotations

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
    max_blocks = int(max_seconds / BLOCK_SECONDS)
    cuts = [0, *_silence_centres(silent, int(min_silence_seconds / BLOCK_SECONDS)).tolist(), len(energy)]
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
