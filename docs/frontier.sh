#!/bin/sh
# The risk/cost frontier figures of README.md ("Figures"): a written at-the-money call
# (S = K = 100, 3 months, pricing vol 20 %), 10 bps one-way costs, 20,000 paths decided 8 times
# a day, hedged by time-based policies and by cost-aware bands (Whalley-Wilmott, Zakamouline,
# the cost-versus-risk trigger) and fixed bands. Writes docs/frontier_{gbm,jump}.svg and the
# tables beside them (docs/frontier_{gbm,jump}.txt, the run time dropped). Run from the repository root:
#   sh docs/frontier.sh            (about a minute of CPU per model on one core)
set -eu
cargo build --release -q -p keel-tools
KEEL=target/release/keel
P=""
for t in 3h 6h 12h 1d 2d 4d 1w 2w; do P="$P --policy time:$t"; done
for g in 0.01 0.03 0.1 0.3 1 3 10 30 100; do P="$P --policy ww:$g"; done
for g in 0.03 0.1 0.3 1 3 10 30 100; do P="$P --policy zak:$g"; done
for g in 10 30 100 300; do P="$P --policy cost:$g"; done
for b in 0.02 0.05 0.1 0.2 0.3; do P="$P --policy band:$b"; done
COMMON="--option call --expiry 0.25 --spot 100 --vol 0.2 --cost-bps 10 --paths 20000 \
  --steps-per-year 2920 --seed 1"
# shellcheck disable=SC2086
$KEEL backtest --model gbm $COMMON $P --plot docs/frontier_gbm.svg |
  sed 's/; [0-9.]* s$//' > docs/frontier_gbm.txt
# Merton jumps: 10 a year, log size N(-3 %, 5 %); the hedger prices with the total vol
# sqrt(0.2^2 + 10 (0.03^2 + 0.05^2)) = 0.272.
# shellcheck disable=SC2086
$KEEL backtest --model jump --jump-intensity 10 --jump-mean -0.03 --jump-sd 0.05 \
  --pricing-vol 0.272 $COMMON $P --plot docs/frontier_jump.svg |
  sed 's/; [0-9.]* s$//' > docs/frontier_jump.txt
