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
  recipe_args=(device=cpu train.epochs=1 $tiny)
else
  bench="python3 tools/bench_train.py --device cuda --dtype bf16"
  few="--steps 10 --warmup 3" many="--steps 30 --warmup 5" tiny="" recipe_args=()
fi
# What a Python process pays before its first step: torch, the torch._dynamo import that any
# torch.optim optimizer makes (asr train steps with asr.optim.AdamW instead), tensorboard (when installed).
check startup 60 python3 -c "
import time; t = time.time(); import torch; print(f'import torch {time.time() - t:.2f} s')
t = time.time(); import torch._dynamo; print(f'import torch._dynamo {time.time() - t:.2f} s')
t = time.time(); import torch.utils.tensorboard; print(f'import torch.utils.tensorboard {time.time() - t:.2f} s')"
# A whole training step as `asr train` takes it (AdamW from asr.optim): it must not import torch._dynamo.
check step_imports 60 python3 -c "
import sys, time; t = time.time()
import torch
from asr.data import collate
from asr.features import FeatureConfig
from asr.manifest import Utterance
from asr.model import ModelDims
from asr.optim import AdamW
from asr.recognizer import Recognizer
from asr.tokenizer import CharTokenizer
from asr.train import batch_loss, _autocast
device = torch.device('cpu' if '${QUICK:-0}' == '1' else 'cuda')
tok = CharTokenizer.build(['AB'])
rec = Recognizer(FeatureConfig(), ModelDims(80, len(tok)), tok, torch.zeros(80), torch.ones(80)).to(device).train()
opt = AdamW(rec.model.parameters(), lr=1e-3)
batch = collate([(Utterance('u', '', 1.0, 'AB'), torch.randn(16000) * 0.1, torch.tensor(tok.encode('AB')))])
batch_loss(rec, batch, device, _autocast(device, 'bf16')).backward()
torch.nn.utils.clip_grad_norm_(rec.model.parameters(), 5.0)
opt.step(); torch.cuda.synchronize() if device.type == 'cuda' else None
print(f'first training step {time.time() - t:.2f} s after start, torch._dynamo imported: {\"torch._dynamo\" in sys.modules}')"
check padding_invariance 120 python3 -m pytest -q tests/test_model.py
# recipe VARIANT LIMIT_S [HYDRA OVERRIDE...]: stages 2-3 of the GPU recipe alone on the machine,
# timed, each output line stamped with the seconds since the start (where the time goes).
recipe() {
  local name=$1 limit=$2
  shift 2
  rm -rf "exp/$name"
  local started=$SECONDS
  check "$name" "$limit" bash -c 'recipes/an4/run.sh --config gpu --stage 2 --stop-stage 3 --data "$0" --exp "exp/$1" -- "${@:3}" 2>&1 | python3 -u -c "$2"' \
    "$data" "$name" "$stamp" "${recipe_args[@]}" "$@"
  [ -f "exp/$name/test.json" ] && echo "$name stages 2-3 (train + evaluate): $((SECONDS - started)) s wall" | tee -a "$log"
  cp "exp/$name/metrics.csv" "$out/metrics_$name.csv" 2>/dev/null
  cp "exp/$name/test.json" "$out/test_$name.json" 2>/dev/null
}
stamp='
import sys, time
start, line = time.time(), ""
for ch in iter(lambda: sys.stdin.read(1), ""):
    if ch == "\n":
        print(f"[{time.time() - start:6.2f}] {line[-200:]}", flush=True)
        line = ""
    else:
        line += ch
'
b48="train.max_batch=48 train.max_batch_seconds=480 optim.lr=2.5e-3"  # the batch-48 variant tried
recipe recipe 240
recipe recipe_b48 240 $b48
check ds2_32x15 150 $bench --model ds2 --batch 32 --seconds 15 $few --rounds 3 $tiny
check ds2_8x3.5 120 $bench --model ds2 --batch 8 --seconds 3.5 $many --rounds 3 $tiny
check compact_32x3 60 $bench --model compact --batch 32 --seconds 3 $many $tiny
# Test WER of other random streams (seed), runs side by side: for WER only, their times mean nothing.
sweep() {
  local pids=() name
  for spec in "$@"; do
    name=${spec%%:*}
    rm -rf "exp/$name"
    recipes/an4/run.sh --config gpu --stage 2 --stop-stage 3 --data "$data" --exp "exp/$name" -- \
      train.num_workers=2 ${spec#*:} "${recipe_args[@]}" >"$out/sweep_$name.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  for spec in "$@"; do
    name=${spec%%:*}
    echo "sweep $name (${spec#*:}): $(grep -ao 'WER [0-9.]*%  CER [0-9.]*%' "$out/sweep_$name.log" | tail -1)" | tee -a "$log"
    cp "exp/$name/metrics.csv" "$out/metrics_$name.csv" 2>/dev/null
  done
}
if [[ "$only" == "  " || "$only" == *" sweep "* ]]; then
  echo "== sweep" | tee -a "$log"
  started=$SECONDS
  sweep "b32_s2:seed=2" "b32_s3:seed=3" "b48_s2:seed=2 $b48" "b48_s3:seed=3 $b48"
  echo "== sweep: $((SECONDS - started)) s" | tee -a "$log"
fi
# The GPU recipe's model and batch (conf/experiment/an4_gpu.yaml) through the training pipeline.
check epoch_wait 120 $bench --model compact --epoch "$data/train.jsonl" --cache --batch 32 --max-batch-seconds 320 \
  --workers 4 $tiny
check bigru_32x4 60 $bench --model bigru --batch 32 --seconds 4 $many $tiny
# Issue 12: what augment=robust costs the GPU recipe's training throughput, against none (target <= 5%).
for aug in none robust robust; do
  [ "${QUICK:-0}" = 1 ] && aug_args=("${recipe_args[@]}") || aug_args=(train.epochs=4 train.num_workers=4)
  check "aug_$aug" 300 asr train experiment=an4_gpu data.train="$data/train.jsonl" data.dev=null \
    train.test_best=false train.tensorboard=false augment=$aug out_dir="exp/aug_$aug" train.overwrite=true "${aug_args[@]}"
done
# Where a small model's step goes (kernel table), last: the figures above matter more.
check bigru_profile 90 $bench --model bigru --batch 32 --seconds 4 --steps 3 --warmup 2 --profile $tiny

echo "== figures" | tee -a "$log"
grep -aoE "^(import|first training step|model|ours|bare|ratio|round|peak|epoch [0-9]+ of|recipe|sweep|[0-9]+ passed|[0-9]+ failed).*|WER [0-9.]+%  CER [0-9.]+%|epoch [0-9]+: .*audio_seconds_per_second [0-9.]+|^== .*exit.*" "$log" | tee "$out/figures.txt"
