#!/usr/bin/env bash
# AN4 from audio to WER, on the shared driver (recipes/run_recipe.sh: its --help lists the stages).
# Run from the repository root:
#   recipes/an4/run.sh [--config cpu|gpu|builtin|robust] [--src PATH_OR_URL] [--data DIR] [--exp DIR]
#                      [--stage N] [--stop-stage N] [--lm-order N] [--beam-size N] [-- extra Hydra overrides]
case " $* " in *" -h "*|*" --help "*) sed -n '2,/^case/p' "$0" | sed '$d'; echo ;; esac
exec "$(dirname "$0")/../run_recipe.sh" --corpus an4 --configs "cpu gpu builtin robust" \
  --default-src http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz \
  --train-set train --dev-set dev --test-sets test --lm-order 4 "$@"
