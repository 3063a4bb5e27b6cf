"""The `asr` command: prepare, train, evaluate, transcribe. It parses arguments and calls the library."""
from __future__ import annotations

import argparse
import logging
import sys

from asr.corpora.an4 import AN4_URL

log = logging.getLogger("asr")


def _prepare_an4(args) -> int:
    from asr.corpora.an4 import prepare_an4

    prepare_an4(args.src, args.out, args.dev_speakers, args.seed)  # logs what it wrote
    return 0


def _prepare_kaldi(args) -> int:
    from asr.corpora.kaldi import prepare_kaldi
    from asr.manifest import write_manifest

    utts = prepare_kaldi(args.src, args.audio_root)
    write_manifest(utts, args.out)
    print(f"{args.out}: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h")
    return 0


def _train(args) -> int:
    from asr.config import compose_config
    from asr.train import train

    cfg = compose_config(args.overrides)
    best = train(cfg)
    print(f"best checkpoint: {best}")
    return 0


def _evaluate(args) -> int:
    from asr.decoding import make_decoder
    from asr.evaluate import evaluate, format_report
    from asr.manifest import read_manifest
    from asr.recognizer import load_recognizer
    from asr.train import pick_device

    recognizer = load_recognizer(args.model, pick_device(args.device))
    decoder = make_decoder(args.decoder, recognizer.tokenizer.blank)
    report = evaluate(recognizer, read_manifest(args.manifest), decoder, args.report)
    print(format_report(report))
    if args.report:
        print(f"report: {args.report}")
    return 0


def _transcribe(args) -> int:
    from asr.decoding import make_decoder
    from asr.recognizer import load_recognizer
    from asr.train import pick_device
    from asr.transcribe import transcribe_files

    recognizer = load_recognizer(args.model, pick_device(args.device))
    decoder = make_decoder(args.decoder, recognizer.tokenizer.blank)
    n_failed = 0
    for result in transcribe_files(recognizer, args.paths, decoder, args.batch_size):
        if result.error:
            n_failed += 1
            print(f"asr: error: {result.path}: {result.error}", file=sys.stderr)
        else:
            print(f"{result.path}\t{result.text}", flush=True)
    return 1 if n_failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description="Train and use CTC speech recognisers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="write JSON-lines manifests from a corpus")
    corpora = prepare.add_subparsers(dest="corpus", required=True)
    an4 = corpora.add_parser("an4", help="CMU AN4: train/dev/test manifests")
    an4.add_argument("--src", default=AN4_URL, help="AN4 folder (WAV or SPHERE layout), archive or URL (default: %(default)s)")
    an4.add_argument("--out", default="data/an4", help="output folder (default: %(default)s)")
    an4.add_argument("--dev-speakers", type=float, default=0.1, help="fraction of training speakers held out as dev")
    an4.add_argument("--seed", type=int, default=0)
    an4.set_defaults(run=_prepare_an4)
    kaldi = corpora.add_parser("kaldi", help="a Kaldi data directory (wav.scp, text, [utt2spk], [segments])")
    kaldi.add_argument("--src", required=True, help="the data directory")
    kaldi.add_argument("--out", required=True, help="the manifest to write (.jsonl)")
    kaldi.add_argument("--audio-root", default=".", help="folder that relative wav.scp paths start from (default: .)")
    kaldi.set_defaults(run=_prepare_kaldi)

    train = commands.add_parser("train", help="train a model; arguments are Hydra overrides")
    train.add_argument("overrides", nargs="*", help="e.g. experiment=an4_cpu model=ds2 optim.lr=3e-4")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="decode a manifest and print WER and CER")
    evaluate.add_argument("--model", required=True, help="checkpoint (.pt)")
    evaluate.add_argument("--manifest", required=True, help="JSON-lines manifest")
    evaluate.add_argument("--report", help="write the JSON report here")
    evaluate.add_argument("--decoder", default="greedy", choices=["greedy"])
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(run=_evaluate)

    transcribe = commands.add_parser("transcribe", help="print the text of audio files and folders")
    transcribe.add_argument("paths", nargs="+", help="audio files or folders")
    transcribe.add_argument("--model", required=True, help="checkpoint (.pt)")
    transcribe.add_argument("--decoder", default="greedy", choices=["greedy"])
    transcribe.add_argument("--batch-size", type=int, default=8)
    transcribe.add_argument("--device", default="auto")
    transcribe.set_defaults(run=_transcribe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from asr.audio import AudioError
    from asr.corpora.kaldi import KaldiDataError
    from asr.manifest import ManifestError
    from asr.recognizer import CheckpointError

    try:
        return args.run(args)
    except (AudioError, CheckpointError, KaldiDataError, ManifestError, FileNotFoundError) as error:
        print(f"asr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130
