#!/bin/sh
# Gamma/vega hedging of a written 1-month ATM straddle (10 calls + 10 puts, S = K = 100) under
# Heston volatility shocks, every option marked at the path's instantaneous vol sqrt(v):
# delta only against delta + gamma/vega bands, same paths. Writes docs/gamma_vega.txt.
# Usage: sh docs/gamma_vega.sh [path/to/keel]   (about a minute on 2 cores)
set -eu
KEEL=${1:-target/release/keel}
OUT=docs/gamma_vega.txt
M1=0.083333
M2=0.166667
BASE="backtest --model heston --mark-vol model --vol 0.2 --kappa 2 --rho -0.7
  --book docs/straddle.csv --paths 20000 --steps-per-year 2920 --cost-bps 5
  --policy time:1d --policy ww:1 --gamma-band 0.2 --vega-band 20 --option-spread-vol 0.005"
# At most 40 contracts of one option per order (twice the book's size).
CAP="--option-max 40"
# The listed strip: both expiries, strikes 90 (put), 100 (call, put), 110 (call).
STRIP="--hedge-option put:90:$M1 --hedge-option call:100:$M1 --hedge-option put:100:$M1
  --hedge-option call:110:$M1 --hedge-option put:90:$M2 --hedge-option call:100:$M2
  --hedge-option put:100:$M2 --hedge-option call:110:$M2"
# The same without the book's own options (1-month strike 100): 95 and 105 instead.
NO_OWN="--hedge-option put:95:$M1 --hedge-option call:105:$M1 --hedge-option put:90:$M1
  --hedge-option call:110:$M1 --hedge-option put:90:$M2 --hedge-option call:100:$M2
  --hedge-option put:100:$M2 --hedge-option call:110:$M2"
: > "$OUT"
run() {
  echo "\$ keel $*" | tr -s ' \n' ' ' >> "$OUT"
  echo >> "$OUT"
  # shellcheck disable=SC2086
  "$KEEL" "$@" >> "$OUT"
  echo >> "$OUT"
}
for seed in 1 2 3; do
  # shellcheck disable=SC2086
  run $BASE $CAP --vol-of-vol 0.5 --seed $seed $STRIP
done
# shellcheck disable=SC2086
run $BASE $CAP --vol-of-vol 1.0 --seed 1 $STRIP
# shellcheck disable=SC2086
run $BASE $CAP --vol-of-vol 0.5 --seed 1 $NO_OWN
# No cap on the hedge orders (--option-max 1e6; the default is the book's size), vol of vol 1.0.
# shellcheck disable=SC2086
run $BASE --vol-of-vol 1.0 --seed 1 $STRIP --option-max 1e6
cat "$OUT"
