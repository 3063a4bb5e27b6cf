#!/usr/bin/env bash
# AN4 from audio to WER. Run from the repository root:
#   recipes/an4/run.sh [--config cpu|gpu] [--src PATH_OR_URL] [--exp DIR] [--data DIR]
#                      [--stage N] [--stop-stage N] [-- extra Hydra overrides for training]
# Stages: 1 prepare manifests, 2 train, 3 evaluate on test (report in EXP/test.json).
set -euo pipefail

config=cpu
src=http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz
data=data/an4
exp=
stage=1
stop_stage=3
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$config" in cpu|gpu) ;; *) echo "run.sh: --config must be cpu or gpu" >&2; exit 2 ;; esac
exp=${exp:-exp/an4_$config}
mkdir -p "$exp"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: prepare AN4 manifests in $data"
  asr prepare an4 --src "$src" --out "$data"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train ($config) into $exp"
  asr train experiment=an4_$config data.train="$data/train.jsonl" data.dev="$data/dev.jsonl" \
    out_dir="$exp" "$@"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: evaluate on AN4 test"
  asr evaluate --model "$exp/best.pt" --manifest "$data/test.jsonl" --report "$exp/test.json"
fi
