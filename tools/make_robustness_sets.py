"""Evaluation variants of a test set (AN4 test by default), built deterministically from a seed.

    python tools/make_robustness_sets.py --test data/an4/test.jsonl --train data/an4/train.jsonl \
        --out data/an4_robust [--seed 0]

Writes OUT/<variant>/<variant>.jsonl (and its FLAC files) for each variant:

- `clean`: the test set as it is (the manifest only);
- `8k`: resampled to 8 kHz and stored at 8 kHz (the recogniser brings it back up, as it would a
  telephone recording);
- `white10`, `white5`: white Gaussian noise at 10 and 5 dB SNR;
- `babble10`, `babble5`: babble of five training utterances from five different speakers (never
  test speakers) at 10 and 5 dB SNR;
- `reverb03`, `reverb07`: convolved with the impulse response of a shoebox room whose RT60 is 0.3
  and 0.7 s, made by pyroomacoustics' image method (not the training's statistical model);
- `joined`: every utterance in one file with 0.5-2 s of noise or room tone between them
  (`joined.flac`, a one-line manifest holding the references joined, and `segments.jsonl` with each
  utterance's place in the file and its speech onset, for `tools/eval_timestamps.py --segments`).

The SNR is the ratio of the utterance's power to the noise's over the whole clip. Nothing here
depends on the models being compared.
"""
from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from eval_timestamps import speech_onset  # tools/, beside this script

from asr.audio import load_audio
from asr.augment import add_noise, babble, join_with_pause, reverberate
from asr.manifest import Utterance, read_manifest, write_manifest

RATE = 16000
VARIANTS = ("clean", "8k", "white10", "white5", "babble10", "babble5", "reverb03", "reverb07", "joined")


def speaker(utt: Utterance) -> str:
    return utt.speaker or utt.id


def samples(utt: Utterance) -> torch.Tensor:
    return torch.from_numpy(load_audio(utt.audio, RATE, utt.start, utt.duration))


def seeded(*key) -> int:
    """A seed from `key` (Python's `hash` of strings changes with every process)."""
    return random.Random("/".join(map(str, key))).getrandbits(63)


def talkers(train: list[Utterance], n_samples: int, rng: random.Random, count: int = 5) -> torch.Tensor:
    """Babble of `count` training utterances of different speakers (`asr.augment.babble`)."""
    by_speaker: dict[str, list[Utterance]] = {}
    for utt in train:
        by_speaker.setdefault(speaker(utt), []).append(utt)
    return babble([samples(rng.choice(by_speaker[who])) for who in rng.sample(sorted(by_speaker), count)], n_samples)


def room_impulse_response(rt60: float, seed: int) -> torch.Tensor:
    """A 6 x 4 x 3 m shoebox room (image method, pyroomacoustics) with the absorption and
    reflection order that Sabine's formula gives for `rt60`; source and microphone 2 m apart."""
    import pyroomacoustics as pra

    size = [6.0, 4.0, 3.0]
    absorption, max_order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(size, fs=RATE, materials=pra.Material(absorption), max_order=max_order,
                       use_rand_ism=True, max_rand_disp=0.05)
    # the randomised image positions: pyroomacoustics >= 0.10 draws them from its own generator,
    # earlier versions from numpy's global state
    if hasattr(pra, "random") and hasattr(pra.random, "seed"):
        pra.random.seed(seed)
    np.random.seed(seed)
    room.add_source([2.0, 2.0, 1.5])
    room.add_microphone([4.0, 2.0, 1.5])
    room.compute_rir()
    return torch.from_numpy(np.asarray(room.rir[0][0], dtype=np.float32))


def write_variant(out: Path, name: str, test: list[Utterance], make: Callable[[int, torch.Tensor], tuple]) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, utt in enumerate(test):
        audio, rate = make(k, samples(utt))
        path = folder / f"{utt.id}.flac"
        sf.write(path, np.clip(audio.numpy(), -1, 1), rate, subtype="PCM_16")
        rows.append(Utterance(utt.id, str(path.resolve()), len(audio) / rate, utt.text, utt.speaker))
    write_manifest(rows, folder / f"{name}.jsonl")


def write_joined(out: Path, test: list[Utterance], seed: int) -> None:
    """Every utterance in order, 0.5-2 s of room tone or pink noise before each and after the last."""
    folder = out / "joined"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}/joined")
    generator = torch.Generator().manual_seed(seeded(seed, "joined"))
    joined, segments = torch.zeros(0), []
    for utt in test:
        clip = samples(utt)
        pause = int(rng.uniform(0.5, 2.0) * RATE)
        kind = rng.choice(["room_tone", "noise"])
        # the pause's level comes from the clip that follows (join_with_pause measures its first part)
        gap = join_with_pause(clip, torch.zeros(0), pause, kind, generator)[clip.shape[0]:]
        start = (joined.shape[0] + pause) / RATE
        joined = torch.cat([joined, gap, clip])
        segments.append({"id": utt.id, "text": utt.text, "start": start, "end": joined.shape[0] / RATE,
                         "onset": speech_onset(clip.numpy(), RATE)})
    tail = join_with_pause(clip, torch.zeros(0), int(rng.uniform(0.5, 2.0) * RATE), "room_tone", generator)
    joined = torch.cat([joined, tail[clip.shape[0]:]])
    path = folder / "joined.flac"
    sf.write(path, np.clip(joined.numpy(), -1, 1), RATE, subtype="PCM_16")
    text = " ".join(u.text for u in test)
    write_manifest([Utterance("joined", str(path.resolve()), joined.shape[0] / RATE, text)], folder / "joined.jsonl")
    with open(folder / "segments.jsonl", "w") as f:
        for row in segments:
            f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", default="data/an4/test.jsonl")
    parser.add_argument("--train", default="data/an4/train.jsonl", help="babble speakers come from here")
    parser.add_argument("--out", default="data/an4_robust")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    out, seed = Path(args.out), args.seed
    test, train = read_manifest(args.test), read_manifest(args.train)
    test_speakers = {speaker(u) for u in test}
    train = [u for u in train if speaker(u) not in test_speakers]

    def noisy(kind: str, snr: float):
        def make(k: int, audio: torch.Tensor):
            g = torch.Generator().manual_seed(seeded(seed, kind, snr, k))
            noise = (torch.randn(audio.shape[0], generator=g) if kind == "white"
                     else talkers(train, audio.shape[0], random.Random(f"{seed}/{kind}/{snr}/{k}")))
            return add_noise(audio, noise, snr), RATE
        return make

    def in_room(rt60: float):
        rirs = [room_impulse_response(rt60, seed * 1000 + n) for n in range(8)]  # eight source-microphone draws
        return lambda k, audio: (reverberate(audio, rirs[k % len(rirs)]), RATE)

    builders = {
        "8k": lambda k, audio: (AF.resample(audio, RATE, 8000), 8000),
        "white10": noisy("white", 10.0), "white5": noisy("white", 5.0),
        "babble10": noisy("babble", 10.0), "babble5": noisy("babble", 5.0),
    }
    for name in args.variants:
        if name == "clean":
            (out / "clean").mkdir(parents=True, exist_ok=True)
            write_manifest(test, out / "clean" / "clean.jsonl")
        elif name == "joined":
            write_joined(out, test, seed)
        elif name.startswith("reverb"):
            write_variant(out, name, test, in_room(int(name[-2:]) / 10))
        else:
            write_variant(out, name, test, builders[name])
        print(f"{out / name}: done")


if __name__ == "__main__":
    main()
