"""The `asr` command: prepare, shard, train, evaluate, transcribe, lm, tune-decoder.

It parses arguments and calls the library; flags carry the names of the keyword arguments they set.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path

from asr.corpora.an4 import AN4_URL
from asr.segment import DEFAULT_SEGMENTER, SEGMENTERS

log = logging.getLogger("asr")

# Settings that only some decoders use: anything else given with them is refused, not ignored.
DECODER_FLAGS = {"greedy": set(), "beam": {"beam_size", "lexicon", "word_score", "sil_score"},
                 "lm": {"beam_size", "lexicon", "word_score", "sil_score", "lm", "lm_weight"}}


def _prepare_an4(args) -> int:
    from asr.corpora.an4 import prepare_an4

    prepare_an4(args.src, args.out, args.dev_speakers, args.seed)  # logs what it wrote
    return 0


def _prepare_corpus(args) -> int:
    """LibriSpeech, Common Voice, TED-LIUM 3, speechocean762: each writes one manifest per split."""
    from asr.corpora.commonvoice import prepare_commonvoice
    from asr.corpora.librispeech import prepare_librispeech
    from asr.corpora.speechocean762 import prepare_speechocean762
    from asr.corpora.tedlium import prepare_tedlium

    if args.corpus == "librispeech":
        prepare_librispeech(args.src, args.out, args.parts)
    elif args.corpus == "commonvoice":
        prepare_commonvoice(args.src, args.out, args.splits)
    elif args.corpus == "tedlium":
        prepare_tedlium(args.src, args.out, args.splits)
    else:
        prepare_speechocean762(args.src, args.out, args.dev_speakers, args.seed)
    return 0  # each preparer logs what it wrote


def _prepare_manifest(args) -> int:
    """A Kaldi data directory, or a folder of recordings with their transcripts: one manifest."""
    from asr.corpora.folder import prepare_folder
    from asr.corpora.kaldi import prepare_kaldi
    from asr.manifest import write_manifest

    utts = prepare_kaldi(args.src, args.audio_root) if args.corpus == "kaldi" else prepare_folder(args.src)
    write_manifest(utts, args.out)
    seconds = sum(u.duration for u in utts)
    print(f"{args.out}: {len(utts)} utterances, " + (f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.1f} s"))
    return 0


def _shard(args) -> int:
    from asr.errors import InputError
    from asr.manifest import Manifest
    from asr.shards import write_shards

    if args.shard_size < 1:
        raise InputError(f"--shard-size {args.shard_size}: must be 1 or more")
    write_shards(Manifest(args.manifest), args.out, args.shard_size, args.sample_rate)  # logs what it wrote
    return 0


def _train(args) -> int:
    from asr.config import compose_config
    from asr.train import train

    cfg = compose_config(args.overrides)
    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
    best = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        print(f"best checkpoint: {best}")
    return 0


def _load(args):
    """The recogniser and the decoder that the shared model/decoder flags ask for."""
    from dataclasses import asdict

    from asr.decoding import BeamOptions, decode_config, make_decoder, read_beam_options
    from asr.devices import pick_device
    from asr.errors import InputError
    from asr.recognizer import BUILTIN_MODEL, load_recognizer

    given = {k: getattr(args, k) for k in sorted(DECODER_FLAGS["lm"])}  # "lm" takes every decoder setting
    not_for = sorted(k for k, v in given.items() if v is not None and k not in DECODER_FLAGS[args.decoder])
    if not_for:
        flags = ", ".join("--" + k.replace("_", "-") for k in not_for)
        raise InputError(f"{flags}: not used by --decoder {args.decoder}"
                         + ("" if args.decoder == "lm" else " (these settings are for --decoder lm)"))
    onnx = getattr(args, "backend", "torch") == "onnx"
    # with onnx, onnxruntime gets the threads and torch only decodes, on one thread: torch's idle
    # threads would otherwise spin on the cores onnxruntime computes on (RTF 0.0048 against 0.0032)
    _set_threads(1 if onnx else args.threads)
    model = Path(args.model) if args.model else BUILTIN_MODEL
    if onnx:
        from asr.onnx_backend import OnnxRecognizer

        if not args.model:
            raise InputError("--backend onnx: give --model DIR, a folder made by asr export --format onnx")
        recognizer = OnnxRecognizer(model, args.int8, args.threads)
        model = model / "model.onnx"  # its decoder.json lies beside
    else:
        recognizer = load_recognizer(model, pick_device(args.device))
    saved = model.parent / "decoder.json"
    options = decode_config(args.decoder)
    if saved.is_file() and args.decoder == "lm":  # tuned LM settings; --decoder beam means beam without LM
        options = read_beam_options(saved)
    options = BeamOptions(**{**asdict(options), **{k: v for k, v in given.items() if v is not None}})
    if options.lexicon == "none":
        options = BeamOptions(**{**asdict(options), "lexicon": None})
    return recognizer, make_decoder(args.decoder, recognizer.tokenizer, options)


def _average(args) -> int:
    from asr.average import AverageError, pick, write_average

    if bool(args.checkpoints) == bool(args.exp):
        raise AverageError("asr average: give the checkpoints, or --exp DIR with --last N or --best N (one of the two)")
    paths = args.checkpoints or pick(args.exp, args.last, args.best)
    out = write_average(paths, args.out)
    print(f"{out}: the mean of {len(paths)} checkpoint(s): {', '.join(str(p) for p in paths)}")
    return 0


def _import(args) -> int:
    from asr.ds2_import import import_checkpoint

    out = import_checkpoint(args.checkpoint, args.out)
    print(f"{out}: converted from the deepspeech.pytorch checkpoint {args.checkpoint}")
    return 0


def _export(args) -> int:
    from asr.export import export_onnx

    out = export_onnx(args.model, args.out, int8=args.int8)
    print(f"{out}: model.onnx{', model.int8.onnx' if args.int8 else ''}, frontend.npz, config.json"
          f"{', decoder.json and its LM' if (out / 'decoder.json').is_file() else ''}")
    return 0


def _serve(args) -> int:
    from asr.errors import InputError

    try:
        from asr.serve import Limits, serve
    except ModuleNotFoundError as error:
        raise InputError(f"asr serve needs the serve extra ({error.name} is missing): pip install -e \".[serve]\"") from None
    recognizer, decoder = _load(args)
    limits = Limits(args.max_upload_mb, args.max_audio_seconds, args.workers, args.queue)
    serve(recognizer, decoder, args.host, args.port, limits)
    return 0


def _evaluate(args) -> int:
    from asr.evaluate import evaluate, format_report
    from asr.manifest import read_manifest

    recognizer, decoder = _load(args)
    report = evaluate(recognizer, read_manifest(args.manifest), decoder, args.report,
                      exclude_unreadable=args.exclude_unreadable, progress=sys.stderr.isatty())
    print(format_report(report))
    if args.report:
        print(f"report: {args.report}")
    return 0


def _stream_stdin(args) -> int:
    """`asr transcribe --stream -`: raw 16-bit little-endian mono PCM at the model's rate on
    stdin; a line per event on stdout: `partial<TAB>text`, `final<TAB>start<TAB>end<TAB>text`."""
    import numpy as np

    recognizer, decoder = _load(args)
    stream = recognizer.stream(decoder if args.decoder != "greedy" else None)
    # reads of at most 40 ms: a word's final text comes a median 282 ms after its end on AN4 test,
    # against 303 ms with 100 ms reads (tools/bench_stream.py)
    chunk_bytes = int(recognizer.features.sample_rate * 0.04) * 2

    def show(events):
        for event in events:
            if event.kind == "final" and event.words:
                print(f"final\t{event.words[0].start:.2f}\t{event.words[-1].end:.2f}\t{event.text}", flush=True)
            elif event.kind == "partial":
                print(f"partial\t{event.text}", flush=True)

    source = sys.stdin.buffer
    carry = b""
    while True:
        data = source.read1(chunk_bytes) if hasattr(source, "read1") else source.read(chunk_bytes)
        if not data:
            break
        data, carry = carry + data, b""
        if len(data) % 2:
            data, carry = data[:-1], data[-1:]
        show(stream.accept(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768))
    show(stream.finish())
    return 0


def _transcribe(args) -> int:
    from asr.transcribe import expand_inputs, transcribe_files
    from asr.writers import FORMATS, check_output_names, write_outputs

    if args.stream:
        from asr.errors import InputError

        if args.paths != ["-"]:
            raise InputError("--stream reads raw PCM from stdin: give - as the only input")
        return _stream_stdin(args)
    formats = list(FORMATS) if args.format == "all" else [args.format] if args.format else []
    inputs = expand_inputs(args.paths)  # folders searched and globs expanded once
    if formats:
        check_output_names(inputs, formats, args.output_dir or ".", args.overwrite)  # before any decoding
    recognizer, decoder = _load(args)
    n_failed = n_done = 0
    results = transcribe_files(recognizer, inputs, decoder, args.batch_size, args.max_segment_seconds,
                               progress=sys.stderr.isatty(), segmenter=args.segmenter)
    for result in results:
        if result.error:
            n_failed += 1
            print(f"asr: error: {result.path}: {result.error}", file=sys.stderr)
            continue
        n_done += 1
        print(f"{result.path}\t{result.text}", flush=True)
        if formats:
            write_outputs(result, formats, args.output_dir or ".")
    if n_done + n_failed == 0:
        print("asr: error: no audio files found in the given paths", file=sys.stderr)
        return 1
    return 1 if n_failed else 0


def _lm_build(args) -> int:
    from asr.lm import build_ngram_lm, text_sentences, write_arpa
    from asr.metrics import normalize_text

    # The words as scoring sees them, so that the LM's and the lexicon's words are the model's.
    texts = [normalize_text(t) for t in _read_texts(args.text)]
    lm = build_ngram_lm(text_sentences(texts, args.unit), args.order)
    write_arpa(lm, args.out)
    counts = ", ".join(f"{size} {n}-grams" for n, size in enumerate(lm.sizes(), 1))
    print(f"{args.out}: order {args.order} ({args.unit}s), {counts}")
    if args.lexicon:
        from asr.decoding import write_lexicon

        write_lexicon({w for t in texts for w in t.split()}, args.lexicon)
        print(f"{args.lexicon}: lexicon of the words")
    return 0


def _read_texts(paths):
    """Lines of text files, or the `text` of each utterance of a .jsonl manifest."""
    from asr.errors import MissingFileError
    from asr.manifest import read_manifest

    for path in paths:
        if str(path).endswith(".jsonl"):
            yield from (u.text for u in read_manifest(path))
        else:
            if not Path(path).is_file():
                raise MissingFileError(f"{path}: no such text file")
            yield from Path(path).read_text(encoding="utf-8").splitlines()


def _tune(args) -> int:
    from asr.decoding import write_beam_options
    from asr.manifest import read_manifest
    from asr.tune import tune_decoder

    recognizer, decoder = _load(args)
    best, trials = tune_decoder(recognizer, read_manifest(args.manifest), decoder.options,
                                args.lm_weights, args.word_scores, args.sil_scores, jobs=args.jobs)
    out = Path(args.out) if args.out else (Path(args.model).parent if args.model else Path(".")) / "decoder.json"
    write_beam_options(best, out)
    top = min(trials, key=lambda t: (t["wer"], t["cer"]))
    print(f"best on {args.manifest}: lm_weight {best.lm_weight}, word_score {best.word_score}, "
          f"sil_score {best.sil_score}: "
          f"WER {top['wer']:.2f}% CER {top['cer']:.2f}%")
    print(f"written: {out}")
    return 0


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value
    return parse


def default_threads() -> int:
    """Half the cores, at most 4: decoding gains little from more, and on a busy 2-core machine
    torch's default (every core) made LM evaluation of AN4 test 6x slower (26 s against 4.2 s)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _add_model_flags(parser, decoders=("greedy", "beam", "lm")):
    parser.add_argument("--model", help="checkpoint (.pt); default: the built-in AN4 model")
    parser.add_argument("--decoder", default=decoders[0], choices=decoders)
    parser.add_argument("--lm", help="n-gram LM (ARPA or KenLM binary) for --decoder lm")
    parser.add_argument("--lexicon", help="lexicon file for lexicon-constrained search ('none': lexicon-free)")
    parser.add_argument("--beam-size", type=_positive(int))
    parser.add_argument("--lm-weight", type=float)
    parser.add_argument("--word-score", type=float, help="word insertion bonus")
    parser.add_argument("--sil-score", type=float,
                        help="score added for every frame in which the word separator is emitted")
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=_positive(int), default=default_threads(),
                        help="CPU threads (default: half the cores, at most 4: %(default)s here)")


def build_parser() -> argparse.ArgumentParser:
    from asr import __version__

    parser = argparse.ArgumentParser(prog="asr", description="Train and use CTC speech recognisers.",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"asr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="write JSON-lines manifests from a corpus")
    corpora = prepare.add_subparsers(dest="corpus", required=True)
    an4 = corpora.add_parser("an4", help="CMU AN4: train/dev/test manifests")
    an4.add_argument("--src", default=AN4_URL, help="AN4 folder (WAV or SPHERE layout), archive or URL (default: %(default)s)")
    an4.add_argument("--out", default="data/an4", help="output folder (default: %(default)s)")
    an4.add_argument("--dev-speakers", type=float, default=0.1, help="fraction of training speakers held out as dev")
    an4.add_argument("--seed", type=int, default=0)
    an4.set_defaults(run=_prepare_an4)
    from asr.corpora import commonvoice, librispeech, speechocean762, tedlium

    libri = corpora.add_parser("librispeech", help="LibriSpeech (OpenSLR 12): a manifest per part")
    libri.add_argument("--src", help="folder holding LibriSpeech/<part>/ or the parts' .tar.gz; default: download "
                                     f"each part from {librispeech.URL}")
    libri.add_argument("--out", default="data/librispeech", help="output folder (default: %(default)s)")
    libri.add_argument("--parts", nargs="+", default=["train-clean-100", *librispeech.EVAL_PARTS],
                       choices=librispeech.PARTS, metavar="PART", help="default: %(default)s")
    libri.set_defaults(run=_prepare_corpus)
    cv = corpora.add_parser("commonvoice", help="Common Voice, any language: a manifest per TSV split")
    cv.add_argument("--src", required=True, help="the language folder (clips/ and *.tsv) or the release archive")
    cv.add_argument("--out", default="data/commonvoice", help="output folder (default: %(default)s)")
    cv.add_argument("--splits", nargs="+", default=["train", "dev", "test"], choices=commonvoice.SPLITS)
    cv.set_defaults(run=_prepare_corpus)
    ted = corpora.add_parser("tedlium", help="TED-LIUM release 3 (legacy splits): train/dev/test manifests")
    ted.add_argument("--src", help=f"TEDLIUM_release-3 folder or archive; default: download {tedlium.URL}")
    ted.add_argument("--out", default="data/tedlium", help="output folder (default: %(default)s)")
    ted.add_argument("--splits", nargs="+", default=list(tedlium.SPLITS), choices=tedlium.SPLITS)
    ted.set_defaults(run=_prepare_corpus)
    so = corpora.add_parser("speechocean762", help="speechocean762 (OpenSLR 101): train/dev[/test] manifests")
    so.add_argument("--src", help=f"corpus folder (train/, [test/]) or archive; default: download {speechocean762.URL}")
    so.add_argument("--out", default="data/speechocean762", help="output folder (default: %(default)s)")
    so.add_argument("--dev-speakers", type=float, default=0.1, help="fraction of training speakers held out as dev")
    so.add_argument("--seed", type=int, default=0)
    so.set_defaults(run=_prepare_corpus)
    kaldi = corpora.add_parser("kaldi", help="a Kaldi data directory (wav.scp, text, [utt2spk], [segments])")
    kaldi.add_argument("--src", required=True, help="the data directory")
    kaldi.add_argument("--out", required=True, help="the manifest to write (.jsonl)")
    kaldi.add_argument("--audio-root", default=".", help="folder that relative wav.scp paths start from (default: .)")
    kaldi.set_defaults(run=_prepare_manifest)
    folder = corpora.add_parser("folder", help="a folder of recordings, each with its transcript beside it "
                                               "(talk.wav and talk.txt)")
    folder.add_argument("--src", required=True, help="the folder (searched recursively)")
    folder.add_argument("--out", required=True, help="the manifest to write (.jsonl)")
    folder.set_defaults(run=_prepare_manifest)

    shard = commands.add_parser("shard", help="pack a manifest's audio into tar shards (train with data.train=OUT)")
    shard.add_argument("--manifest", required=True, help="JSON-lines manifest")
    shard.add_argument("--out", required=True, help="folder for shard-NNNNNN.tar and shards.jsonl")
    shard.add_argument("--shard-size", type=int, default=1000, help="utterances a shard (default: %(default)s)")
    shard.add_argument("--sample-rate", type=int, default=16000,
                       help="the model's sample rate: audio is stored as 16-bit FLAC at it (default: %(default)s)")
    shard.set_defaults(run=_shard)

    train = commands.add_parser("train", help="train a model; arguments are Hydra overrides",
                                epilog=_train_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("overrides", nargs="*", help="e.g. experiment=an4_cpu model=ds2 optim.lr=3e-4")
    train.add_argument("--print-config", action="store_true", help="print the composed configuration and exit")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="decode a manifest and print WER and CER")
    evaluate.add_argument("--manifest", required=True, help="JSON-lines manifest")
    evaluate.add_argument("--report", help="write the JSON report here")
    evaluate.add_argument("--exclude-unreadable", action="store_true",
                          help="leave utterances whose audio cannot be read out of the figures (default: they "
                               "count as all deletions, as sclite counts a missing hypothesis)")
    _add_model_flags(evaluate)
    evaluate.set_defaults(run=_evaluate)

    transcribe = commands.add_parser("transcribe", help="transcribe audio files, folders and globs")
    transcribe.add_argument("paths", nargs="+", help="audio files, folders (searched recursively) or globs")
    transcribe.add_argument("--format", choices=["txt", "json", "srt", "vtt", "tsv", "all"],
                            help="also write one file per input in this format")
    transcribe.add_argument("--output-dir", help="where --format files go (default: .)")
    transcribe.add_argument("--overwrite", action="store_true",
                            help="replace --format files that already exist (default: refuse, before decoding)")
    transcribe.add_argument("--batch-size", type=_positive(int), default=8)
    transcribe.add_argument("--max-segment-seconds", type=_positive(float), default=20.0,
                            help="long recordings are split at pauses into segments no longer than this")
    transcribe.add_argument("--stream", action="store_true",
                            help="with the input -: raw 16-bit mono PCM at 16 kHz from stdin (arecord -f S16_LE "
                                 "-r 16000), partial and final results as they come")
    transcribe.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                            help="onnx: --model is a folder made by asr export --format onnx, run by onnxruntime")
    transcribe.add_argument("--int8", action="store_true", help="with --backend onnx: the int8-quantised model")
    transcribe.add_argument("--segmenter", choices=sorted(SEGMENTERS), default=DEFAULT_SEGMENTER,
                            help="how long recordings find their pauses: a voice-activity detector (silero-vad), "
                                 "or block energy above the recording's floor (default: %(default)s)")
    _add_model_flags(transcribe)
    transcribe.set_defaults(run=_transcribe)

    average = commands.add_parser("average", help="average the weights of several checkpoints of one run")
    average.add_argument("checkpoints", nargs="*", help="checkpoints to average (or choose them with --exp)")
    average.add_argument("--exp", help="a run trained with train.keep_epochs=N: average its kept epochs")
    average.add_argument("--last", type=_positive(int), default=0, help="with --exp: the newest N epochs")
    average.add_argument("--best", type=_positive(int), default=0, help="with --exp: the N epochs of lowest dev WER")
    average.add_argument("--out", required=True, help="the averaged checkpoint")
    average.set_defaults(run=_average)

    server = commands.add_parser("serve", help="an HTTP transcription service with a web page (needs .[serve])")
    server.add_argument("--port", type=_positive(int), default=8000)
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    server.add_argument("--max-upload-mb", type=float, default=20.0)
    server.add_argument("--max-audio-seconds", type=float, default=600.0)
    server.add_argument("--workers", type=_positive(int), default=1, help="transcriptions at a time")
    server.add_argument("--queue", type=int, default=8, help="requests that may wait; more get 503")
    server.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    server.add_argument("--int8", action="store_true", help="with --backend onnx: the int8 model")
    _add_model_flags(server)
    server.set_defaults(run=_serve)

    export = commands.add_parser("export", help="write a checkpoint as ONNX, with its front end, tokens and decoder")
    export.add_argument("--model", required=True, help="checkpoint (.pt)")
    export.add_argument("--format", choices=["onnx"], default="onnx")
    export.add_argument("--out", required=True, help="folder to write")
    export.add_argument("--int8", action="store_true", help="also write model.int8.onnx (dynamic int8 quantisation)")
    export.set_defaults(run=_export)

    importer = commands.add_parser("import", help="convert another toolkit's checkpoint into ours")
    importer.add_argument("format", choices=["deepspeech-pytorch"],
                          help="deepspeech-pytorch: a DeepSpeech2 Lightning checkpoint of SeanNaren/deepspeech.pytorch")
    importer.add_argument("checkpoint", help="the checkpoint file (.ckpt)")
    importer.add_argument("--out", required=True, help="our checkpoint, for asr transcribe --model")
    importer.set_defaults(run=_import)

    lm = commands.add_parser("lm", help="n-gram language models")
    lm_commands = lm.add_subparsers(dest="lm_command", required=True)
    build = lm_commands.add_parser("build", help="estimate a modified Kneser-Ney n-gram LM, write ARPA")
    build.add_argument("--text", nargs="+", required=True, help="text files (a sentence a line) or .jsonl manifests")
    build.add_argument("--order", type=int, default=3, choices=range(2, 7), metavar="{2..6}",
                       help="n-gram order; the decoder's KenLM loads 2 to 6 (default: %(default)s)")
    build.add_argument("--unit", choices=["word", "char"], default="word",
                       help="word: for lexicon decoding; char: for lexicon-free decoding")
    build.add_argument("--out", required=True, help="the ARPA file to write")
    build.add_argument("--lexicon", help="also write a lexicon of the words here")
    build.set_defaults(run=_lm_build)

    tune = commands.add_parser("tune-decoder", help="search LM weight, word score and separator score on a dev manifest")
    tune.add_argument("--manifest", required=True, help="dev manifest")
    tune.add_argument("--lm-weights", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
    tune.add_argument("--word-scores", type=float, nargs="+", default=[-1.0, 0.0, 1.0, 2.0])
    tune.add_argument("--sil-scores", type=float, nargs="+", default=[-1.0, 0.0],
                      help="word-separator scores (character models; a subword model keeps 0)")
    tune.add_argument("--out", help="where to write the best options (default: decoder.json beside the model)")
    tune.add_argument("--jobs", type=_positive(int), default=min(8, os.cpu_count() or 1),
                      help="settings searched at once, a process each, each with its own search's memory "
                           "(default: the cores, at most 8: %(default)s here)")
    _add_model_flags(tune, decoders=("lm",))
    tune.set_defaults(run=_tune)
    return parser


EXIT_CODES = """exit codes: 0 done; 1 some inputs failed, the others were done (transcribe); 2 a bad input,
flag or setting (one line names it); 3 the machine refused (no space, read-only folder, no
network, no GPU); 130 interrupted."""


def _train_epilog() -> str:
    from asr.config import GROUPS, config_dir

    lines = ["configuration groups (choose with GROUP=OPTION):"]
    for group in GROUPS:
        options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        lines.append(f"  {group}: {', '.join(options)}")
    lines += ["values: KEY=VALUE, e.g. train.epochs=40 optim.lr=1e-3 out_dir=exp/mine",
              "print what a command line composes: asr train [OVERRIDES...] --print-config", "", EXIT_CODES]
    return "\n".join(lines)


RESOURCE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
                   errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                   errno.EDQUOT: "disk quota exceeded"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from tqdm.contrib.logging import logging_redirect_tqdm

    from asr.errors import AsrError

    try:
        with logging_redirect_tqdm():  # a warning never lands inside a progress bar's line
            return args.run(args)
    except AsrError as error:
        print(f"asr: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        if error.errno not in RESOURCE_ERRNOS:
            raise  # not the machine saying no: a bug, with its traceback
        where = error.filename or "a file"
        print(f"asr: error: {where}: {RESOURCE_ERRNOS[error.errno]}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130
