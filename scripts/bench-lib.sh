# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# Shared helpers of the bench scripts; source it from the repository root:
#
#   . scripts/bench-lib.sh
#   ratio_row NAME RATIO TARGET COMMAND
#
# ratio_row records one benchmark ratio in docs/bench-ratios.tsv (columns
# benchmark, ratio, target, command; tab-separated, with a header). RATIO is
# ours / reference, higher is better; TARGET is the minimum ratio the project
# aims for, or `-`. A row replaces an earlier row of the same NAME (in
# place); new names are appended. The chart docs/bench-ratios.svg is then
# re-rendered by scripts/bench-chart.

BENCH_RATIOS=${BENCH_RATIOS:-docs/bench-ratios.tsv}

ratio_row() {
  if [ $# -ne 4 ]; then
    echo "usage: ratio_row NAME RATIO TARGET COMMAND" >&2
    return 2
  fi
  local name ratio target cmd tmp lock
  # One line per row: no tabs or newlines inside a field.
  name=$(printf '%s' "$1" | tr '\t\n' '  ')
  ratio=$(printf '%s' "$2" | tr -d ' \t\n')
  target=$(printf '%s' "$3" | tr -d ' \t\n')
  cmd=$(printf '%s' "$4" | tr '\t\n' '  ')
  case $ratio in
    '' | *[!0-9.]*) echo "ratio_row: ratio '$ratio' is not a number" >&2; return 2 ;;
  esac
  case $target in
    -) ;;
    '' | *[!0-9.]*) echo "ratio_row: target '$target' is not a number or -" >&2; return 2 ;;
  esac
  [ -s "$BENCH_RATIOS" ] || printf 'benchmark\tratio\ttarget\tcommand\n' >"$BENCH_RATIOS"
  tmp=$BENCH_RATIOS.tmp.$$
  lock=${TMPDIR:-/tmp}/verityfsd-bench-ratios.lock
  (
    # Scripts running at the same time take turns.
    command -v flock >/dev/null && flock 9
    awk -F'\t' -v OFS='\t' -v n="$name" -v r="$ratio" -v t="$target" -v c="$cmd" '
      NR == 1 { print; next }
      $1 == n { if (!done) print n, r, t, c; done = 1; next }
      { print }
      END { if (!done) print n, r, t, c }' "$BENCH_RATIOS" >"$tmp" &&
      mv "$tmp" "$BENCH_RATIOS"
  ) 9>>"$lock"
  rm -f "$tmp"
  scripts/bench-chart "$BENCH_RATIOS" "${BENCH_RATIOS%.tsv}.svg"
}
