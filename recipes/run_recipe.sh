#!/usr/bin/env bash
# The one recipe driver: every recipes/<corpus>/run.sh calls it with the corpus's fixed settings
# first, then the user's options. Run a corpus's run.sh, not this file.
#
# Corpus settings (from run.sh): --corpus NAME --default-src PATH_OR_URL --configs "cpu gpu ..."
#   --train-set NAME --dev-set NAME --test-sets "NAME ..." [--lm-order N] [--beam-size N]
#   [--prepare-args "..."]
# User options: [--config NAME] [--src PATH_OR_URL] [--data DIR] [--exp DIR] [--stage N]
#   [--stop-stage N] [--lm-order N] [--beam-size N]
#   [-- extra Hydra overrides for training, e.g. tokenizer=bpe]
#
# Stages: 1 prepare manifests (asr prepare <corpus>) in DATA,
#         2 train experiment=<corpus>_<config> into EXP (and score the first test set, if any, in
#           the same process: EXP/<set>.json),
#         3 score EXP/best.pt with greedy decoding on dev and on each test set DATA has (EXP/<set>.json;
#           a set scored after best.pt was written is skipped),
#         4 word n-gram LM and lexicon of the training transcripts (EXP/lm/),
#         5 tune LM weight, word score and separator score on dev, at the beam size (default 50;
#           EXP/decoder.json keeps it),
#         6 score with the LM decoder on dev and each test set (EXP/<set>_lm.json).
set -euo pipefail

corpus= default_src= configs= train_set=train dev_set=dev test_sets=test lm_order=4 beam_size=50 prepare_args=
config= src= data= exp= stage=1 stop_stage=6
usage() { sed -n "2,$(grep -n '^set -euo' "$0" | cut -d: -f1)p" "$0" | sed '$d'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift 2 ;;
    --default-src) default_src=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --train-set) train_set=$2; shift 2 ;;
    --dev-set) dev_set=$2; shift 2 ;;
    --test-sets) test_sets=$2; shift 2 ;;
    --prepare-args) prepare_args=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --lm-order) lm_order=$2; shift 2 ;;
    --beam-size) beam_size=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$corpus" ] || { echo "run_recipe.sh: run recipes/<corpus>/run.sh, not this file" >&2; exit 2; }
config=${config:-${configs%% *}}
case " $configs " in *" $config "*) ;; *) echo "run.sh: --config must be one of: $configs" >&2; exit 2 ;; esac
src=${src:-$default_src}
data=${data:-data/$corpus}
exp=${exp:-exp/${corpus}_$config}
run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
# the scoring sets: dev, then each test set whose manifest stage 1 wrote
score_sets() { echo "$dev_set"; for s in $test_sets; do [ -f "$data/$s.jsonl" ] && echo "$s"; done; return 0; }

if run 1; then
  echo "== stage 1: prepare $corpus manifests in $data"
  # shellcheck disable=SC2086  # prepare_args holds several arguments
  asr prepare "$corpus" --src "$src" --out "$data" $prepare_args
fi

if run 2; then
  echo "== stage 2: train experiment=${corpus}_$config into $exp"
  # The first test set is scored in the training process (saves a start-up; stage 3 then skips it).
  first_test=$(score_sets | sed -n 2p)
  test_args=(data.test=null)
  [ -n "$first_test" ] && test_args=("data.test=$data/$first_test.jsonl" train.test_best=true)
  asr train "experiment=${corpus}_$config" "data.train=$data/$train_set.jsonl" "data.dev=$data/$dev_set.jsonl" \
    "${test_args[@]}" "out_dir=$exp" "$@"
fi

if run 3; then
  for set in $(score_sets); do
    if [ "$exp/$set.json" -nt "$exp/best.pt" ]; then
      echo "== stage 3: $set already scored with greedy decoding ($exp/$set.json)"; continue
    fi
    echo "== stage 3: greedy decoding of $set"
    asr evaluate --model "$exp/best.pt" --manifest "$data/$set.jsonl" --report "$exp/$set.json"
  done
fi

if run 4; then
  echo "== stage 4: $lm_order-gram word LM and lexicon from the training transcripts"
  asr lm build --order "$lm_order" --text "$data/$train_set.jsonl" --out "$exp/lm/words.arpa" \
    --lexicon "$exp/lm/lexicon.txt"
fi

if run 5; then
  echo "== stage 5: tune the LM decoder on $dev_set (beam $beam_size)"
  asr tune-decoder --model "$exp/best.pt" --manifest "$data/$dev_set.jsonl" \
    --lm "$exp/lm/words.arpa" --lexicon "$exp/lm/lexicon.txt" --beam-size "$beam_size"
fi

if run 6; then
  for set in $(score_sets); do
    echo "== stage 6: LM decoding of $set (settings from $exp/decoder.json)"
    asr evaluate --model "$exp/best.pt" --manifest "$data/$set.jsonl" --decoder lm --report "$exp/${set}_lm.json"
  done
fi
