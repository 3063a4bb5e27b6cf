#!/usr/bin/env bash
# Every GPU measurement of the training-speed work in one go, for one call on a lent GPU machine:
#   tools/device_checks.sh [DATA_DIR [CHECK ...]]   (default .devdata/an4: AN4 manifests + FLAC
#   audio; naming checks runs those alone, e.g. `tools/device_checks.sh .devdata/an4 recipe ds2_32x15`)
# Logs go to $OUT (the device tool's folder) or ./out/device; the table at the end of checks.log
# holds the figures. Each check has its own time limit, so one that hangs does not sink the rest.
# QUICK=1 runs every check for a moment on the CPU, to try the script before spending GPU time.
set -u
data=${1:-.devdata/an4}
shift || true
only=" $* "
out=${OUT:-out/device}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
if ! command -v asr >/dev/null; then  # a source tree that was not installed: python -m asr
  mkdir -p /tmp/asr-bin && printf '#!/bin/sh\nexec python3 -m asr "$@"\n' >/tmp/asr-bin/asr
  chmod +x /tmp/asr-bin/asr && export PATH=/tmp/asr-bin:$PATH
fi
log=$out/checks.log

check() {  # check NAME LIMIT_S COMMAND...: run it, keep its output, time it
  local name=$1 limit=$2
  shift 2
  [ "$only" = "  " ] || [[ "$only" == *" $name "* ]] || return 0
  echo "== $name: $*" | tee -a "$log"
  local started=$SECONDS
  timeout "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  echo "== $name: exit $rc, $((SECONDS - started)) s" | tee -a "$log"
}

nvidia-smi -L | tee -a "$log"
python3 -c "import torch; print('torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())" | tee -a "$log"
if [ "${QUICK:-0}" = 1 ]; then
  bench="python3 tools/bench_train.py --device cpu --dtype fp32"
  few="--steps 1 --warmup 0" many=$few tiny="model.hidden=16 model.n_layers=1"
  recipe_args=(-- device=cpu train.epochs=1 $tiny)
else
  bench="python3 tools/bench_train.py --device cuda --dtype bf16"
  few="--steps 10 --warmup 3" many="--steps 30 --warmup 5" tiny="" recipe_args=()
fi
check padding_invariance 120 python3 -m pytest -q tests/test_model.py
check ds2_32x15 120 $bench --model ds2 --batch 32 --seconds 15 $few $tiny
check ds2_8x3.5 120 $bench --model ds2 --batch 8 --seconds 3.5 $many $tiny
rm -rf exp/an4_gpu
started=$SECONDS
check recipe 240 bash recipes/an4/run.sh --config gpu --stage 2 --stop-stage 3 --data "$data" "${recipe_args[@]}"
[ -f exp/an4_gpu/test.json ] && echo "recipe stages 2-3 (train + evaluate): $((SECONDS - started)) s wall" | tee -a "$log"
cp exp/an4_gpu/metrics.csv exp/an4_gpu/test.json "$out"/ 2>/dev/null
check compact_32x3 60 $bench --model compact --batch 32 --seconds 3 $many $tiny
check bigru_32x4 60 $bench --model bigru --batch 32 --seconds 4 $many $tiny
# The GPU recipe's model and batch (conf/experiment/an4_gpu.yaml) through the training pipeline.
check epoch_wait 120 $bench --model compact --epoch "$data/train.jsonl" --cache --batch 32 --max-batch-seconds 320 \
  --workers 4 $tiny
check ds2_32x15_again 120 $bench --model ds2 --batch 32 --seconds 15 $few $tiny
# Where a small model's step goes (kernel table), last: the figures above matter more.
check bigru_profile 90 $bench --model bigru --batch 32 --seconds 4 --steps 3 --warmup 2 --profile $tiny

echo "== figures" | tee -a "$log"
grep -aoE "^(model|ours|bare|ratio|peak|epoch [0-9]+ of|recipe|[0-9]+ passed|[0-9]+ failed).*|WER [0-9.]+%  CER [0-9.]+%|^== .*exit.*" "$log" | tee "$out/figures.txt"
