"""Package a trained AN4 model as the built-in model of `asr` (asr/assets/an4/).

    python tools/build_builtin_model.py --exp exp/an4_builtin --data data/an4 --an4 ../shared/data/an4

Copies the checkpoint (float16 weights, no optimizer state), the LM, lexicon and tuned decoder
settings of the recipe's stages 4-5, AN4's licence, three AN4 test clips as samples, and writes a
README with the measured test WER from the recipe's reports.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import soundfile as sf

from asr.decoding import read_beam_options, write_beam_options
from asr.lm import read_arpa
from asr.manifest import read_manifest
from asr.recognizer import BUILTIN_DIR, export_checkpoint, read_checkpoint

SAMPLES = ("an406-fcaw-b", "an417-fjlp-b", "cen6-fjlp-b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", required=True, help="recipe experiment folder (best.pt, lm/, decoder.json, test*.json)")
    parser.add_argument("--data", default="data/an4", help="the recipe's manifests")
    parser.add_argument("--an4", required=True, help="AN4 copy (for its LICENSE)")
    parser.add_argument("--out", default=str(BUILTIN_DIR))
    args = parser.parse_args()
    exp, out = Path(args.exp), Path(args.out)
    (out / "samples").mkdir(parents=True, exist_ok=True)

    export_checkpoint(exp / "best.pt", out / "model.pt", half=True)
    shutil.copy(exp / "lm" / "words.arpa", out / "words.arpa")
    shutil.copy(exp / "lm" / "lexicon.txt", out / "lexicon.txt")
    options = read_beam_options(exp / "decoder.json")
    options = type(options)(**{**options.__dict__, "lm": str(out / "words.arpa"), "lexicon": str(out / "lexicon.txt")})
    write_beam_options(options, out / "decoder.json")
    shutil.copy(Path(args.an4) / "LICENSE", out / "LICENSE")

    test = {u.id: u for u in read_manifest(Path(args.data) / "test.jsonl")}
    lines = []
    for utt_id in SAMPLES:
        audio, rate = sf.read(test[utt_id].audio, dtype="int16")
        sf.write(str(out / "samples" / f"{utt_id}.flac"), audio, rate)
        lines.append(f"{utt_id} {test[utt_id].text}")
    (out / "samples" / "text").write_text("\n".join(lines) + "\n")

    checkpoint = read_checkpoint(out / "model.pt")
    greedy = json.loads((exp / "test.json").read_text())
    with_lm = json.loads((exp / "test_lm.json").read_text())
    config = checkpoint.get("config", {})
    n_params = sum(v.numel() for v in checkpoint["model"].values())
    (out / "README.md").write_text(
        f"""# Built-in AN4 model

Trained on the CMU AN4 training set (minus the dev speakers) with `recipes/an4/run.sh`; see
`recipes/an4/README.md` for the command, the hardware and the training time.

- model: {checkpoint['dims']['n_layers']}x{checkpoint['dims']['hidden']} bidirectional {checkpoint['dims']['rnn_type'].upper()} over {checkpoint['features']['kind']} features, {n_params / 1e6:.2f} M parameters (stored as float16)
- epochs: {config.get('train', {}).get('epochs')} (checkpoint of epoch {checkpoint.get('epoch', 0) + 1}, best dev WER)
- AN4 test (130 utterances): greedy WER {greedy['wer']:.2f}% / CER {greedy['cer']:.2f}%; with the {read_beam_options(out / 'decoder.json').lm and 'word n-gram LM'} decoder (`decoder.json`) WER {with_lm['wer']:.2f}% / CER {with_lm['cer']:.2f}%
- `words.arpa`: word {read_arpa(out / 'words.arpa').order}-gram LM (modified Kneser-Ney, `asr lm build`) of the training transcripts, the order chosen on dev; `lexicon.txt`: their words
- `samples/`: three AN4 test utterances (transcripts in `samples/text`)

The AN4 audio and transcripts are Copyright (c) 1991-2005 Carnegie Mellon University, free for
any use under the BSD-style terms in `LICENSE`.

Training configuration:

```yaml
{json.dumps(config, indent=1)}
```
"""
    )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
