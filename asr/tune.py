"""Search the LM weight, word-insertion score and word-separator score of the LM decoder on a dev set."""
from __future__ import annotations

import itertools
import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import replace

from asr.decoding import BeamDecoder, BeamOptions
from asr.evaluate import DecodeResult, forward_batches, score
from asr.manifest import Utterance
from asr.recognizer import Recognizer
from asr.tokenizer import SUBWORD_KINDS

log = logging.getLogger(__name__)

# the searched settings, and the lowest value each may take (None: no floor)
FLOORS = {"lm_weight": 0.0, "word_score": None, "sil_score": None}


def tune_decoder(
    recognizer: Recognizer,
    utterances: Sequence[Utterance],
    base: BeamOptions,
    lm_weights: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    word_scores: Sequence[float] = (-1.0, 0.0, 1.0, 2.0),
    sil_scores: Sequence[float] = (-1.0, 0.0),
    max_extensions: int = 6,
    jobs: int = 1,
) -> tuple[BeamOptions, list[dict]]:
    """The options with the lowest WER (then CER) on `utterances`, and every trial's scores.

    The acoustic model runs once and the LM is loaded once; each trial only re-runs the beam
    search. Where the best setting lies on an edge of the grid, the grid grows past that edge
    (by its outermost step) and the search goes on, up to `max_extensions` times: a best value on
    the edge says only that the optimum lies beyond it. LM weights stay at 0 or above. A subword
    model never emits the word separator, so its `sil_score` stays `base.sil_score`.

    The beam search is single-threaded and holds Python's lock, so `jobs` > 1 searches that many
    settings at once in forked processes, which share the emissions and the loaded LM.
    """
    cached = [(b.utterances, lp.float().cpu(), n.cpu()) for b, lp, n in forward_batches(recognizer, utterances)
              if lp is not None]
    if recognizer.tokenizer.kind in SUBWORD_KINDS:
        sil_scores = (base.sil_score,)
    grids = {"lm_weight": sorted(set(lm_weights)), "word_score": sorted(set(word_scores)),
             "sil_score": sorted(set(sil_scores))}
    results: dict[tuple[float, ...], dict] = {}
    work = recognizer.tokenizer, base, cached, utterances
    if jobs > 1:  # spell the lexicon and load the LM here, before the workers fork
        BeamDecoder(recognizer.tokenizer, base)
    _grow_and_search(work, grids, results, jobs, max_extensions)
    trials = list(results.values())
    best = min(trials, key=lambda t: (t["wer"], t["cer"]))
    return replace(base, **{name: best[name] for name in grids}), trials


def _grow_and_search(work: tuple, grids: dict[str, list[float]], results: dict, jobs: int,
                     max_extensions: int) -> None:
    """Search every point of the grid not in `results`; while the best lies on an edge, grow the
    grid past it and search again."""
    for extension in range(max_extensions + 1):
        keys = dict.fromkeys(tuple(round(v, 6) for v in point) for point in itertools.product(*grids.values()))
        settings = [dict(zip(grids, key)) for key in keys if key not in results]
        for scores, setting in zip(_search(work, settings, jobs), settings):  # the search's end closes its pool
            results[tuple(setting.values())] = {**setting, **scores}
            log.info("%s: WER %.2f CER %.2f", _describe(setting), scores["wer"], scores["cer"])
        best = min(results.values(), key=lambda t: (t["wer"], t["cer"]))
        past = {name: _past_edge(grid, best[name], FLOORS[name]) for name, grid in grids.items()}
        past = {name: point for name, point in past.items() if point is not None}
        if not past:
            break
        if extension == max_extensions:
            log.warning("the best setting is still on the grid's edge after %d extensions: %s",
                        max_extensions, _describe(best))
            break
        log.info("best on the grid's edge (%s): searching past it", _describe(best))
        for name, point in past.items():
            grid = grids[name]
            grid.insert(0 if point < grid[0] else len(grid), point)


def _search(work: tuple, settings: list[dict], jobs: int) -> Iterator[dict]:
    """WER and CER of each setting, in order, as they come: searched here, or in `jobs` forked
    processes (where the platform forks). `work` is (tokenizer, base options, cached emissions,
    utterances); forked workers inherit it in memory, unpickled, as their start-up argument."""
    if jobs <= 1 or len(settings) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from (_score(work, setting) for setting in settings)
        return
    with multiprocessing.get_context("fork").Pool(min(jobs, len(settings)), initializer=_start_worker,
                                                  initargs=(work,)) as pool:
        yield from pool.imap(_score_in_worker, settings)


_WORKER_WORK = None  # the tuning's `work`, in a forked worker only


def _start_worker(work: tuple) -> None:
    import torch

    global _WORKER_WORK
    torch.set_num_threads(1)
    _WORKER_WORK = work


def _score_in_worker(setting: dict) -> dict:
    return _score(_WORKER_WORK, setting)


def _score(work: tuple, setting: dict) -> dict:
    tokenizer, base, cached, utterances = work
    decoder = BeamDecoder(tokenizer, replace(base, **setting))
    decoded = DecodeResult()
    for utts, log_probs, n_frames in cached:
        decoded.hypotheses.update({u.id: t for u, t in zip(utts, decoder.decode(log_probs, n_frames))})
    report = score(utterances, decoded)
    return {"wer": report["wer"], "cer": report["cer"]}


def _describe(setting: dict) -> str:
    return ", ".join(f"{name} {setting[name]:g}" for name in FLOORS)


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
