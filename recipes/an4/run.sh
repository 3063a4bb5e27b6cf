#!/usr/bin/env bash
# AN4 from audio to WER. Run from the repository root:
#   recipes/an4/run.sh [--config cpu|gpu|builtin] [--src PATH_OR_URL] [--exp DIR] [--data DIR]
#                      [--stage N] [--stop-stage N] [--lm-order N] [-- extra Hydra overrides for training]
# Stages: 1 prepare manifests, 2 train, then score the best checkpoint on test with greedy decoding
#         (EXP/test.json), 3 the same scoring alone, for an EXP trained earlier (skipped after stage 2),
#         4 build a word n-gram LM and lexicon from the training transcripts (EXP/lm/),
#         5 tune LM weight and word score on dev (EXP/decoder.json),
#         6 evaluate on test with the LM decoder (EXP/test_lm.json).
set -euo pipefail

config=cpu
src=http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz
data=data/an4
exp=
stage=1
stop_stage=6
lm_order=4
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --lm-order) lm_order=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$config" in cpu|gpu|builtin) ;; *) echo "run.sh: --config must be cpu, gpu or builtin" >&2; exit 2 ;; esac
exp=${exp:-exp/an4_$config}
mkdir -p "$exp"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: prepare AN4 manifests in $data"
  asr prepare an4 --src "$src" --out "$data"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train ($config) into $exp, then score its best checkpoint on AN4 test"
  asr train experiment=an4_$config data.train="$data/train.jsonl" data.dev="$data/dev.jsonl" \
    data.test="$data/test.jsonl" train.test_best=true out_dir="$exp" "$@"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: done by stage 2 in the same process ($exp/test.json)"
elif [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: evaluate on AN4 test"
  asr evaluate --model "$exp/best.pt" --manifest "$data/test.jsonl" --report "$exp/test.json"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: $lm_order-gram word LM and lexicon from the training transcripts"
  asr lm build --order "$lm_order" --text "$data/train.jsonl" --out "$exp/lm/words.arpa" \
    --lexicon "$exp/lm/lexicon.txt"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "== stage 5: tune the LM decoder on dev"
  asr tune-decoder --model "$exp/best.pt" --manifest "$data/dev.jsonl" \
    --lm "$exp/lm/words.arpa" --lexicon "$exp/lm/lexicon.txt"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  echo "== stage 6: evaluate on AN4 test with the LM decoder (settings from $exp/decoder.json)"
  asr evaluate --model "$exp/best.pt" --manifest "$data/test.jsonl" --decoder lm --report "$exp/test_lm.json"
fi
