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
) -> tuple[BeamOptions, list[dict]]:
    """The options with the lowest WER (then CER) on `utterances`, and every trial's scores.

    The acoustic model runs once; each trial only re-runs the beam search on its outputs.
    """
    cached = [(b.utterances, lp.float().cpu(), n.cpu()) for b, lp, n in forward_batches(recognizer, utterances)
              if lp is not None]
    trials = []
    for lm_weight, word_score in itertools.product(lm_weights, word_scores):
        options = replace(base, lm_weight=lm_weight, word_score=word_score)
        decoder = BeamDecoder(recognizer.tokenizer, options)
        decoded = DecodeResult()
        for utts, log_probs, n_frames in cached:
            decoded.hypotheses.update({u.id: t for u, t in zip(utts, decoder.decode(log_probs, n_frames))})
        report = score(utterances, decoded)
        trials.append({"lm_weight": lm_weight, "word_score": word_score, "wer": report["wer"], "cer": report["cer"]})
        log.info("lm_weight %.2f word_score %.2f: WER %.2f CER %.2f", lm_weight, word_score, report["wer"], report["cer"])
    best = min(trials, key=lambda t: (t["wer"], t["cer"]))
    return replace(base, lm_weight=best["lm_weight"], word_score=best["word_score"]), trials
