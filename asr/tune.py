"""Search the LM weight and word-insertion score of the LM decoder on a dev set."""
from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import replace

from asr.decoding import BeamDecoder, BeamOptions
from asr.evaluate import DecodeResult, forward_batches, score
from asr.manifest import Utterance
from asr.recognizer import Recognizer

log = logging.getLogger(__name__)


def tune_decoder(
    recognizer: Recognizer,
    utterances: Sequence[Utterance],
    base: BeamOptions,
    lm_weights: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    word_scores: Sequence[float] = (-1.0, 0.0, 1.0, 2.0),
    max_extensions: int = 6,
) -> tuple[BeamOptions, list[dict]]:
    """The options with the lowest WER (then CER) on `utterances`, and every trial's scores.

    The acoustic model runs once and the LM is loaded once; each trial only re-runs the beam
    search. Where the best setting lies on an edge of the grid, the grid grows past that edge
    (by its outermost step) and the search goes on, up to `max_extensions` times: a best value on
    the edge says only that the optimum lies beyond it. LM weights stay at 0 or above.
    """
    cached = [(b.utterances, lp.float().cpu(), n.cpu()) for b, lp, n in forward_batches(recognizer, utterances)
              if lp is not None]
    results: dict[tuple[float, float], dict] = {}

    def trial(lm_weight: float, word_score: float) -> dict:
        key = (round(lm_weight, 6), round(word_score, 6))
        if key not in results:
            decoder = BeamDecoder(recognizer.tokenizer, replace(base, lm_weight=key[0], word_score=key[1]))
            decoded = DecodeResult()
            for utts, log_probs, n_frames in cached:
                decoded.hypotheses.update({u.id: t for u, t in zip(utts, decoder.decode(log_probs, n_frames))})
            report = score(utterances, decoded)
            results[key] = {"lm_weight": key[0], "word_score": key[1], "wer": report["wer"], "cer": report["cer"]}
            log.info("lm_weight %.2f word_score %.2f: WER %.2f CER %.2f", *key, report["wer"], report["cer"])
        return results[key]

    weights, scores = sorted(set(lm_weights)), sorted(set(word_scores))
    for extension in range(max_extensions + 1):
        for lm_weight, word_score in itertools.product(weights, scores):
            trial(lm_weight, word_score)
        best = min(results.values(), key=lambda t: (t["wer"], t["cer"]))
        on_edge = [_past_edge(scores, best["word_score"], None), _past_edge(weights, best["lm_weight"], 0.0)]
        if not any(on_edge):
            break
        if extension == max_extensions:
            log.warning("the best setting is still on the grid's edge after %d extensions: lm_weight %s, word_score %s",
                        max_extensions, best["lm_weight"], best["word_score"])
            break
        log.info("best on the grid's edge (lm_weight %s, word_score %s): searching past it",
                 best["lm_weight"], best["word_score"])
        for grid, point in zip((scores, weights), on_edge):
            if point is not None:
                grid.insert(0 if point < grid[0] else len(grid), point)
    trials = list(results.values())
    best = min(trials, key=lambda t: (t["wer"], t["cer"]))
    return replace(base, lm_weight=best["lm_weight"], word_score=best["word_score"]), trials


def _past_edge(grid: list[float], best: float, floor: float | None) -> float | None:
    """The next point past the edge of the sorted `grid` that `best` sits on (its outermost step
    further out, not below `floor`), or None where `best` is inside or the grid cannot grow."""
    if len(grid) < 2:
        return None
    if best == grid[-1]:
        return grid[-1] + (grid[-1] - grid[-2])
    if best == grid[0] and (floor is None or grid[0] > floor):
        point = grid[0] - (grid[1] - grid[0])
        return point if floor is None else max(floor, point)
    return None
