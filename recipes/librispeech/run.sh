#!/usr/bin/env bash
# LibriSpeech (OpenSLR 12) from audio to WER, on the shared driver (recipes/run_recipe.sh: its --help
# lists the stages): trains on train-clean-100, selects on dev-clean, scores dev-clean, test-clean
# and test-other. Give --prepare-args "--parts ..." for other training subsets. Run from the
# repository root:
#   recipes/librispeech/run.sh [--config gpu|cpu] [--src PATH_OR_URL] [--data DIR] [--exp DIR]
#                              [--stage N] [--stop-stage N] [--lm-order N] [--beam-size N] [-- extra Hydra overrides]
case " $* " in *" -h "*|*" --help "*) sed -n '2,/^case/p' "$0" | sed '$d'; echo ;; esac
exec "$(dirname "$0")/../run_recipe.sh" --corpus librispeech --configs "gpu cpu" \
  --default-src "https://www.openslr.org/resources/12/{part}.tar.gz" \
  --prepare-args "--parts train-clean-100 dev-clean test-clean test-other" \
  --train-set train-clean-100 --dev-set dev-clean --test-sets "test-clean test-other" --lm-order 4 "$@"
