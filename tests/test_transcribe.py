"""Segmentation, timestamps, output formats and the transcription pipeline on synthetic audio."""
import json

import numpy as np
import pytest
import torch
from conftest import tone, write_corrupt, write_empty, write_tone

from asr.alignment import Word, align_words
from asr.features import FeatureConfig
from asr.model import ModelDims
from asr.recognizer import Recognizer
from asr.segment import block_energy_db, split_on_silence
from asr.tokenizer import BLANK, CharTokenizer
from asr.transcribe import Segment, Transcript, expand_inputs, transcribe_files
from asr.writers import FORMATS, render, write_outputs

TOKENIZER = CharTokenizer([BLANK, " ", "A", "B"])


def speech_and_silence(pattern, rate=16000, seed=0):
    """Concatenate (seconds, loud?) pieces: tones for speech, faint noise for silence."""
    rng = np.random.default_rng(seed)
    pieces = [tone(s, rate, 300 + 50 * i) if loud else rng.normal(0, 1e-3, int(s * rate)).astype(np.float32)
              for i, (s, loud) in enumerate(pattern)]
    return np.concatenate(pieces)


def test_short_audio_is_one_segment():
    assert split_on_silence(np.zeros(16000, np.float32), 16000, max_seconds=20) == [(0, 16000)]


def test_long_audio_is_cut_in_silences_within_the_maximum():
    pattern = [(4, True), (0.6, False), (5, True), (0.6, False), (3, True), (0.8, False), (6, True)]
    audio = speech_and_silence(pattern)
    segments = split_on_silence(audio, 16000, max_seconds=10)
    assert segments[0][0] == 0 and segments[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))  # contiguous, nothing lost
    assert all(end - start <= 10 * 16000 for start, end in segments)
    silences = [(4.0, 4.6), (9.6, 10.2), (13.2, 14.0)]
    for _, end in segments[:-1]:  # every cut lies inside a silence
        assert any(a <= end / 16000 <= b for a, b in silences)


def test_no_silence_still_respects_the_maximum():
    audio = tone(25.0)
    segments = split_on_silence(audio, 16000, max_seconds=10)
    assert all(end - start <= 10 * 16000 for start, end in segments) and segments[-1][1] == len(audio)


def test_the_vad_segmenter_cuts_real_speech_in_noisy_pauses():
    """Three AN4 clips with 1.5 s of pink noise 10 dB below the speech between them: silero-vad
    finds the pauses that the noise fills, and every cut lies in one."""
    from asr.audio import load_audio
    from asr.augment import coloured_noise, power
    from asr.recognizer import BUILTIN_DIR
    from asr.segment import split_on_speech

    clips = [load_audio(p) for p in sorted((BUILTIN_DIR / "samples").glob("*.flac"))]
    level = float(np.sqrt(np.mean([power(torch.from_numpy(c)) for c in clips]) / 10))
    noise = (coloured_noise(24000 * 4, 1.0, torch.Generator().manual_seed(0)).numpy() * level)
    pieces, pauses, position = [], [], 0
    for k, clip in enumerate(clips):
        pieces += [clip, noise[k * 24000 : (k + 1) * 24000]]
        pauses.append(((position + len(clip)) / 16000, (position + len(clip) + 24000) / 16000))
        position += len(clip) + 24000
    floor = coloured_noise(position, 1.0, torch.Generator().manual_seed(1)).numpy() * level * 0.1
    audio = np.concatenate(pieces) + floor  # a quieter floor under the speech too
    segments = split_on_speech(audio, 16000, max_seconds=6)
    assert segments[0][0] == 0 and segments[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    assert len(segments) == 3  # one cut in each of the first two pauses (the clips are under 6 s each)
    for _, end in segments[:-1]:
        assert any(a <= end / 16000 <= b for a, b in pauses[:2]), end / 16000


def test_block_energy():
    energy = block_energy_db(np.ones(1600, np.float32), 16000)
    assert energy.shape == (10,) and np.allclose(energy, 0.0, atol=1e-6)


def peaky(frames):
    """Log-probs that emit token ids at given frames and blank elsewhere."""
    log_probs = torch.full((len(frames), 4), -20.0)
    for t, token in enumerate(frames):
        log_probs[t, token] = 0.0
    return log_probs.log_softmax(-1)


def test_word_times_and_confidence_from_the_alignment():
    # frames: A A _ _ | B _ B B _ at 40 ms a frame: words "AA" and "BB" (1 = space)
    frames = [2, 0, 2, 0, 1, 3, 0, 3, 0, 0]
    words = align_words(peaky(frames), "AA BB", TOKENIZER, frame_seconds=0.04)
    assert [w.word for w in words] == ["AA", "BB"]
    assert words[0].start == 0.0 and words[0].end == pytest.approx(0.12)
    assert words[1].start == pytest.approx(0.2) and words[1].end == pytest.approx(0.32)
    assert all(0.99 < w.confidence <= 1.0 for w in words)


def test_unalignable_text_spreads_words_evenly():
    words = align_words(peaky([2, 0]), "AB BA AB", TOKENIZER, frame_seconds=0.5)
    assert [(w.start, w.end, w.confidence) for w in words] == [(0.0, 0.333, 0.0), (0.333, 0.667, 0.0), (0.667, 1.0, 0.0)]
    assert align_words(peaky([2, 0]), "  ", TOKENIZER, 0.04) == []


def test_writers_render_every_format(tmp_path):
    words = [Word("HELLO", 1.0, 1.5, 0.9), Word("WORLD", 1.6, 2.0, 0.8)]
    transcript = Transcript("/x/clip.wav", "HELLO WORLD", [Segment(0.5, 3661.25, "HELLO WORLD", words), Segment(3661.25, 3662, "")])
    assert render(transcript, "txt") == "HELLO WORLD\n"
    body = json.loads(render(transcript, "json"))
    assert body["text"] == "HELLO WORLD" and len(body["segments"]) == 1
    assert body["segments"][0]["words"][1] == {"word": "WORLD", "start": 1.6, "end": 2.0, "confidence": 0.8}
    assert render(transcript, "srt") == "1\n00:00:00,500 --> 01:01:01,250\nHELLO WORLD\n"
    assert render(transcript, "vtt") == "WEBVTT\n\n00:00:00.500 --> 01:01:01.250\nHELLO WORLD\n"
    assert render(transcript, "tsv") == "start\tend\ttext\n500\t3661250\tHELLO WORLD\n"
    paths = write_outputs(transcript, list(FORMATS), tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"clip.{f}" for f in FORMATS)


def test_expand_inputs_folders_globs_and_files(tmp_path):
    write_tone(tmp_path / "a" / "one.wav")
    write_tone(tmp_path / "a" / "deep" / "two.FLAC")
    (tmp_path / "a" / "notes.txt").write_text("x")
    write_tone(tmp_path / "b" / "three.wav")
    found = expand_inputs([tmp_path / "a", str(tmp_path / "b" / "*.wav"), tmp_path / "missing.wav"])
    assert [p.name for p in found] == ["two.FLAC", "one.wav", "three.wav", "missing.wav"]


@pytest.fixture
def tiny_recognizer():
    torch.manual_seed(0)
    dims = ModelDims(n_input=80, n_tokens=4, conv_channels=(4, 4), n_layers=1, hidden=8)
    return Recognizer(FeatureConfig(), dims, TOKENIZER, torch.zeros(80), torch.ones(80)).eval()


def test_pipeline_handles_bad_silent_short_and_long_inputs(tiny_recognizer, tmp_path):
    import soundfile as sf

    folder = tmp_path / "in"
    write_tone(folder / "ok.wav", 1.0)
    sf.write(str(folder / "silent.wav"), np.zeros(16000, np.float32), 16000)
    write_tone(folder / "short.wav", 0.05)
    sf.write(str(folder / "long.flac"), speech_and_silence([(12, True), (0.5, False), (12, True)]), 16000)
    write_corrupt(folder / "corrupt.wav")
    write_empty(folder / "empty.wav")
    (folder / "readme.md").write_text("not audio")
    results = {r.path.rsplit("/", 1)[-1]: r for r in transcribe_files(tiny_recognizer, [folder], max_segment_seconds=10)}
    assert set(results) == {"ok.wav", "silent.wav", "short.wav", "long.flac", "corrupt.wav", "empty.wav"}
    assert "unreadable audio" in results["corrupt.wav"].error and "no audio samples" in results["empty.wav"].error
    for name in ("ok.wav", "silent.wav", "short.wav", "long.flac"):
        assert results[name].error is None
    long = results["long.flac"]
    assert len(long.segments) >= 3 and long.segments[-1].end == pytest.approx(24.5)
    assert all(b.start == a.end for a, b in zip(long.segments, long.segments[1:]))
    for segment in long.segments:  # word times are on the file's clock, inside their segment
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end + 0.05


def test_each_thread_segments_with_its_own_vad_model():
    # silero-vad's model carries state between windows: asr serve's workers must not share one
    import threading

    from asr.segment import silero_model

    models = []
    thread = threading.Thread(target=lambda: models.append(silero_model()))
    thread.start()
    thread.join()
    assert models[0] is not silero_model() and silero_model() is silero_model()
