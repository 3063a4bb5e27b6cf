#!/usr/bin/env bash
# speechocean762 (OpenSLR 101) from audio to WER, on the shared driver (recipes/run_recipe.sh: its
# --help lists the stages). Stage 1 holds 10% of the training speakers out as dev; a test/ folder
# beside train/ in SRC is scored too. Run from the repository root:
#   recipes/speechocean762/run.sh [--config cpu|gpu] [--src PATH_OR_URL] [--data DIR] [--exp DIR]
#                                 [--stage N] [--stop-stage N] [--lm-order N] [--beam-size N] [-- extra Hydra overrides]
case " $* " in *" -h "*|*" --help "*) sed -n '2,/^case/p' "$0" | sed '$d'; echo ;; esac
exec "$(dirname "$0")/../run_recipe.sh" --corpus speechocean762 --configs "cpu gpu" \
  --default-src https://www.openslr.org/resources/101/speechocean762.tar.gz \
  --train-set train --dev-set dev --test-sets test --lm-order 3 --beam-size 200 "$@"
