"""Streaming recognition: PCM in chunks, partial and final text with word times out.

    stream = recognizer.stream()            # or Stream(recognizer)
    for chunk in chunks:                    # mono float32 at the model's sample rate, any sizes
        for event in stream.accept(chunk):
            print(event.kind, event.text)   # "partial": the open text; "final": settled words
    for event in stream.finish(): ...

A unidirectional model (`model=streaming`: unidirectional GRU/LSTM and a lookahead convolution)
is run incrementally with greedy decoding: features and the convolutional front end are computed
for the new audio (with the few frames of left context they need), the recurrent layers carry
their state, the lookahead waits for its future frames, and a word is final once the token after
it (a space, or the next word's first subword) has been emitted, or once the space is the likeliest
token after the blank on a blank frame. Its log-probabilities are those of the whole-utterance
model, frame for frame; its text is greedy decoding's, except where that early space falls inside a
word (1 word of 777 on AN4 test).

A latency-controlled bidirectional model (`model=chunked`, asr/chunked.py) runs the same way, its
recurrent stack a window (a chunk and its right context) at a time, and gives the same
log-probabilities as its whole-utterance forward pass.

Any other bidirectional model (or one whose features need the whole utterance: centred frames, or each
utterance's own normalisation) needs the whole of a stretch of speech: silero-vad finds where
speech stops, and each stretch is then decoded as a segment (`final`); `partial` re-decodes the
open stretch every `partial_seconds`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from asr.alignment import Word, align_words
from asr.chunked import WindowRunner
from asr.decoding import GreedyDecoder
from asr.transcribe import frame_seconds, transcribe_audio


@dataclass
class StreamEvent:
    kind: str  # "partial" | "final"
    text: str
    words: list[Word] = field(default_factory=list)
    audio_seconds: float = 0.0  # audio received when the event was made


class Stream:
    def __init__(self, recognizer, decoder=None, partial_seconds: float = 0.5, max_segment_seconds: float = 20.0):
        self.recognizer = recognizer
        self.rate = recognizer.features.sample_rate
        self.received = 0
        f = recognizer.features
        # frame by frame needs a causal model and features that a chunk alone determines: not
        # centred frames, not each utterance's own normalisation (an imported DeepSpeech2's)
        d = recognizer.dims
        self.incremental = (not d.bidirectional or d.chunk > 0) and not f.center and f.normalize == "global"
        if self.incremental:
            self._state = _Incremental(recognizer)
        else:
            self._state = _Segments(recognizer, decoder, partial_seconds, max_segment_seconds)

    def accept(self, samples) -> list[StreamEvent]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.received += len(samples)
        return self._stamped(self._state.accept(samples))

    def finish(self) -> list[StreamEvent]:
        return self._stamped(self._state.finish())

    def _stamped(self, events: list[StreamEvent]) -> list[StreamEvent]:
        for event in events:
            event.audio_seconds = self.received / self.rate
        return events


class _Incremental:
    """Greedy decoding of a unidirectional model, frame by frame as the audio allows."""

    def __init__(self, recognizer):
        self.r = recognizer.eval()
        f, m = recognizer.features, recognizer.model
        self.win, self.hop = f.win_samples, f.hop_samples
        self.sub = recognizer.dims.subsampling
        geometry = m.front_end.time_geometry  # (kernel, stride, padding) of each convolution, in time
        self.reach = sum((k // 2) * int(np.prod([g[1] for g in geometry[:i]]))
                         for i, (k, _, _) in enumerate(geometry))  # input frames past a frame's centre
        self.samples = np.zeros(0, np.float32)  # audio not yet turned into feature frames
        self.feats = torch.zeros(0, recognizer.dims.n_input)  # normalised frames not yet consumed
        self.feats_offset = 0  # global index of self.feats[0]
        self.n_conv_done = 0  # conv output frames computed so far
        self.hidden = [None] * len(m.layers)
        self.pending = torch.zeros(0, m.layers[-1].n_output)  # RNN outputs waiting for lookahead
        self.context = m.lookahead.context - 1 if m.lookahead is not None else 0
        d = recognizer.dims
        self.windows = WindowRunner(m.layers, d.chunk, d.right_context) if d.chunk else None
        self.frame_seconds = frame_seconds(recognizer)
        self.log_probs = []  # output frames of the open utterance (for word times)
        self.ids: list[int] = []  # greedy tokens of the open utterance
        self.last = recognizer.tokenizer.blank
        self.n_final_words = 0
        self.origin = 0.0  # seconds of the open utterance's frame 0
        self.blank_run = 0

    @torch.no_grad()
    def accept(self, samples: np.ndarray, final: bool = False) -> list[StreamEvent]:
        self.samples = np.concatenate([self.samples, samples])
        if len(self.samples) >= self.win:  # feature frames that the audio now covers
            n = (len(self.samples) - self.win) // self.hop + 1
            wave = torch.from_numpy(self.samples[: (n - 1) * self.hop + self.win].copy())[None]
            feats, n_frames = self.r.extractor(wave, torch.tensor([wave.shape[1]]))
            self.feats = torch.cat([self.feats, self.r.norm(feats, n_frames)[0]])
            self.samples = self.samples[n * self.hop:]
        x = self._conv(final)
        model = self.r.model
        x = self.windows.accept(x, final) if self.windows is not None else self._recurrent(x)
        self.pending = torch.cat([self.pending, x]) if x.shape[0] else self.pending
        if model.lookahead is not None:
            if final:
                self.pending = torch.cat([self.pending, self.pending.new_zeros(self.context, self.pending.shape[1])])
            ready = self.pending.shape[0] - self.context
            if ready <= 0:
                return self._events(final)
            out = model.lookahead.mix(self.pending[None, : ready + self.context])[0]  # exactly `ready` frames
            self.pending = self.pending[ready:] if not final else self.pending[:0]
        else:
            out, self.pending = self.pending, self.pending[:0]
        log_probs = model.output(model.output_norm(out)).float().log_softmax(-1)
        self._greedy(log_probs)
        return self._events(final)

    def _recurrent(self, x: torch.Tensor) -> torch.Tensor:
        """A unidirectional stack over new frames `(frames, n)`, carrying each layer's state."""
        for i, layer in enumerate(self.r.model.layers):
            if x.shape[0] == 0:
                break
            x, self.hidden[i] = layer.rnn(layer.dropout(layer.norm(x))[None], self.hidden[i])
            x = layer.projection(x[0])
        return x

    def _conv(self, final: bool) -> torch.Tensor:
        """Conv front-end frames whose inputs are all here (all of them when `final`), computed
        over the frames they need plus the left context that makes them exact."""
        front = self.r.model.front_end
        total = self.feats_offset + self.feats.shape[0]
        n_all = int(front.output_lengths(torch.tensor([total]))[0]) if total else 0
        n_ready = n_all if final else max(0, min(n_all, (total - 1 - self.reach) // self.sub + 1))
        if n_ready <= self.n_conv_done:
            return torch.zeros(0, front.n_output)
        start = max(0, self.n_conv_done - 1)  # one frame of left context makes the rest exact
        first_input = start * self.sub
        local = self.feats[first_input - self.feats_offset:]
        y, _ = front(local[None], torch.tensor([local.shape[0]]))
        y = y[0, self.n_conv_done - start: n_ready - start]
        self.n_conv_done = n_ready
        keep_from = max(0, (self.n_conv_done - 1) * self.sub)  # features still needed as context
        self.feats = self.feats[keep_from - self.feats_offset:]
        self.feats_offset = keep_from
        return y

    def _greedy(self, log_probs: torch.Tensor) -> None:
        tokenizer = self.r.tokenizer
        blank = tokenizer.blank
        for frame in log_probs:
            token = int(frame.argmax())
            self.log_probs.append(frame)
            if token != blank and token != self.last:
                self.ids.append(token)
            elif token == blank and self.ids and not tokenizer.is_separator(self.ids[-1]):
                # the word is over once the separator leads the other tokens under the blank: on
                # AN4 test the median time to a final word fell from 363 to 303 ms (100 ms chunks),
                # and 1 word of 777 was split
                second = int(frame[1:].argmax()) + 1  # the blank is token 0
                if tokenizer.is_separator(second):
                    self.ids.append(second)
            self.last = token
            self.blank_run = self.blank_run + 1 if token == blank else 0

    def _words(self) -> list[Word]:
        text = self.r.tokenizer.decode(self.ids)
        if not text.strip():
            return []
        words = align_words(torch.stack(self.log_probs), " ".join(text.split()), self.r.tokenizer, self.frame_seconds)
        return [w.shifted(self.origin) for w in words]

    def _events(self, final: bool) -> list[StreamEvent]:
        tokenizer = self.r.tokenizer
        text = " ".join(tokenizer.decode(self.ids).split())
        closed = len(text.split()) if final else _closed_words(self.ids, tokenizer)
        events = []
        if closed > self.n_final_words:
            words = self._words()[self.n_final_words: closed]
            self.n_final_words = closed
            events.append(StreamEvent("final", " ".join(w.word for w in words), words))
        open_text = " ".join(text.split()[self.n_final_words:])
        if open_text and not final:
            events.append(StreamEvent("partial", open_text))
        if final or (self.blank_run * self.frame_seconds > 1.0 and self.n_final_words == len(text.split())):
            self._reset_utterance()  # a long pause: the settled words need no more frames
        return events

    def _reset_utterance(self) -> None:
        self.origin += len(self.log_probs) * self.frame_seconds
        self.log_probs, self.ids, self.n_final_words = [], [], 0

    def finish(self) -> list[StreamEvent]:
        return self.accept(np.zeros(0, np.float32), final=True)


def _closed_words(ids: list[int], tokenizer) -> int:
    """Words followed by a token of another word (or a separator): they cannot change."""
    count, in_word = 0, False
    for token in ids:
        if tokenizer.is_separator(token):
            count, in_word = count + in_word, False
        elif tokenizer.starts_word(token) and in_word:
            count += 1
        else:
            in_word = True
    return count


class _Segments:
    """A bidirectional model: stretches of speech from silero-vad, each decoded whole."""

    def __init__(self, recognizer, decoder, partial_seconds: float, max_segment_seconds: float):
        from silero_vad import VADIterator

        from asr.segment import new_silero_model

        self.r = recognizer
        self.decoder = decoder or GreedyDecoder(recognizer.tokenizer)
        self.rate = recognizer.features.sample_rate
        # a model of its own (45 ms to load): it carries state between windows, and two streams
        # fed turn about must not mix theirs
        self.vad = VADIterator(new_silero_model(), sampling_rate=16000, min_silence_duration_ms=300, speech_pad_ms=100)
        self.partial_samples = int(partial_seconds * self.rate)
        self.max_samples = int(max_segment_seconds * self.rate)
        self.audio = np.zeros(0, np.float32)  # since `offset`
        self.offset = 0
        self.start: int | None = None  # start of the open stretch of speech (global sample)
        self.vad_pending = np.zeros(0, np.float32)
        self.vad_done = 0
        self.since_partial = 0

    def accept(self, samples: np.ndarray) -> list[StreamEvent]:
        import torchaudio.functional as AF

        self.audio = np.concatenate([self.audio, samples])
        vad_in = samples if self.rate == 16000 else AF.resample(torch.from_numpy(samples), self.rate, 16000).numpy()
        self.vad_pending = np.concatenate([self.vad_pending, vad_in])
        events = []
        while len(self.vad_pending) >= 512:
            window, self.vad_pending = self.vad_pending[:512], self.vad_pending[512:]
            found = self.vad(torch.from_numpy(window.copy()), return_seconds=False) or {}
            scale = self.rate / 16000
            if "start" in found and self.start is None:
                self.start = int(found["start"] * scale)
            if "end" in found and self.start is not None:
                events += self._final(int(found["end"] * scale))
        if self.start is not None:
            if self.offset + len(self.audio) - self.start >= self.max_samples:
                events += self._final(self.offset + len(self.audio))
            else:
                self.since_partial += len(samples)
                if self.since_partial >= self.partial_samples:
                    self.since_partial = 0
                    text = self._decode(self.start, self.offset + len(self.audio))[0]
                    if text:
                        events.append(StreamEvent("partial", text))
        elif len(self.audio) > self.rate:  # no speech: keep only the last second
            drop = len(self.audio) - self.rate
            self.audio, self.offset = self.audio[drop:], self.offset + drop
        return events

    def _decode(self, start: int, end: int) -> tuple[str, list[Word]]:
        """The stretch decoded whole (it is never longer than the maximum segment), words on the stream's clock."""
        piece = self.audio[max(0, start - self.offset): end - self.offset]
        if len(piece) < self.r.features.win_samples:
            return "", []
        result = transcribe_audio(self.r, piece, self.decoder, self.max_samples / self.rate)
        return result.text, [w.shifted(max(start, self.offset) / self.rate) for w in result.words]

    def _final(self, end: int) -> list[StreamEvent]:
        text, words = self._decode(self.start, end)
        self.start, self.since_partial = None, 0
        keep = max(0, end - self.offset)
        self.audio, self.offset = self.audio[keep:], self.offset + keep
        return [StreamEvent("final", text, words)] if text else []

    def finish(self) -> list[StreamEvent]:
        if self.start is None:
            return []
        return self._final(self.offset + len(self.audio))
