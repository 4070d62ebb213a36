#!/bin/sh
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# Guest side of the guest tests (busybox ash), run by /init as: sh /vt/guest.sh MODE TAG
# It reports facts on the serial console; the host decides pass/fail:
#   VTEST <case> OK|FAIL|SKIP <detail>   verdicts the guest can give alone (mount)
#   VDATA <case> <payload>               data the host compares with its own expectations
# /vt/params (shell variables) is written by the host for each run.
# No `set -e` on purpose: every case must report, even after another one failed; the host
# notices missing or wrong reports.
# shellcheck disable=SC2317 # the case_* functions are called as "case_$c"
MODE=${1:-test}
TAG=${2:-share}
M=/mnt
CASES=""
# shellcheck disable=SC1091
. /vt/params

dropc() { sync; echo 3 > /proc/sys/vm/drop_caches; }
data() { sed "s|^|VDATA $1 |"; }
# "sha256:HEX PATH" -> "sha256:HEX"; anything else (an error) -> one word without blanks
result_word() {
  case $1 in
    sha256:* | sha512:*) echo "${1%% *}" ;;
    *) echo "error:$1" | tr -s ' \t' '__' ;;
  esac
}

mkdir -p "$M"
if mount -t virtiofs "$TAG" "$M"; then
  echo "VTEST mount OK $(grep " $M " /proc/mounts)"
else
  echo "VTEST mount FAIL mount -t virtiofs $TAG $M failed"
  dmesg | tail -20
  exit 1
fi

# ---- test mode ------------------------------------------------------------------------
case_tree() { vtest tree "$M" | data tree; }

case_sha256() {
  (cd "$M" && find . -type f -exec sha256sum {} + 2>&1) > /tmp/sha256.out
  data sha256 < /tmp/sha256.out
  # reading through symlinks (only those that resolve to a regular file)
  (cd "$M" && find . -type l | while read -r l; do
     [ -f "$l" ] && echo "$(sha256sum < "$l" | cut -d' ' -f1) $l"
   done) | data symread
}

case_mutate() { vtest mutate "$M" "$M/$MUT_FILE" "$M/$MUT_DIR" 2>&1 | data mutate; }

case_bigread() {
  # the sequential read of the whole file: the sha256 case already did it (first read, cold
  # guest cache) when it ran; otherwise read it here
  if grep -q " ./$BIG\$" /tmp/sha256.out 2> /dev/null; then
    grep " ./$BIG\$" /tmp/sha256.out | cut -d' ' -f1 | data bigseq
  else
    dropc
    sha256sum < "$M/$BIG" | cut -d' ' -f1 | data bigseq
  fi
  dropc
  i=0
  for r in $RANGES; do
    i=$((i + 1))
    off=${r%%:*}; rest=${r#*:}; len=${rest%%:*}; how=${rest#*:}
    case $how in
      pread) s=$(vtest cat "$M/$BIG" "$off" "$len" | sha256sum) ;;
      direct) s=$(vtest cat "$M/$BIG" "$off" "$len" direct | sha256sum) ;;
      dd) s=$(dd if="$M/$BIG" bs=4096 skip=$((off / 4096)) count=$((len / 4096)) 2>/dev/null | sha256sum) ;;
      *) s="unknown-method" ;;
    esac
    echo "$i $off $len $how ${s%% *}" | data range
  done
}

case_verityctl() {
  if command -v verityctl > /dev/null; then
    verityctl --help > /dev/null 2>&1
    echo "present rc=$?" | data verityctl
  else
    echo "absent" | data verityctl
  fi
}

# gated (VTEST_VERITY=1 on the host): daemon-side fs-verity
case_measure() {
  # one fsverity process for all files (fast); it stops at the first error, so on any error
  # measure file by file to report each result
  if ! (cd "$M" && find . -type f -exec fsverity measure {} + > /tmp/measure 2>&1); then
    (cd "$M" && find . -type f | while read -r f; do
       echo "$(fsverity measure "$f" 2>&1 | head -1) $f"
     done) > /tmp/measure
  fi
  while read -r line; do
    echo "${line##* } $(result_word "$line")"
  done < /tmp/measure | data measure
}

case_vctl_digest() {
  if command -v verityctl > /dev/null; then
    (cd "$M" && find . -type f | while read -r f; do
       echo "$f $(result_word "$(verityctl digest "$f" 2>&1 | head -1)")"
     done) | data vctl-digest
  else
    echo "absent" | data vctl-digest
  fi
}

case_lsattr() {
  for f in $VERITY_FILES; do
    a=$(lsattr "$M/$f" 2>&1 | head -1)
    case $a in
      lsattr:*) a=$(echo "error:$a" | tr -s ' \t' '__') ;;
      *" $M/$f") a=${a%% *} ;;
      *) a=$(echo "error:$a" | tr -s ' \t' '__') ;;
    esac
    echo "$f $a $(vtest flags "$M/$f" | tr ' ' '_')" | data lsattr
  done
}

case_tamper() {
  dropc
  vtest cat "$M/$TAMPER_FILE" $((TAMPER_BLOCK * 4096)) 4096 direct > /dev/null 2>&1
  echo "bad-direct rc=$?" | data tamper
  vtest cat "$M/$TAMPER_FILE" $((TAMPER_BLOCK * 4096)) 4096 > /dev/null 2>&1
  echo "bad-buffered rc=$?" | data tamper
  for b in $TAMPER_GOOD; do
    s=$(vtest cat "$M/$TAMPER_FILE" $((b * 4096)) 4096 direct | sha256sum)
    echo "good $b ${s%% *}" | data tamper
  done
}

# ---- modes ----------------------------------------------------------------------------
case $MODE in
test)
  for c in $CASES; do
    case $c in
      tree | sha256 | mutate | bigread | verityctl | measure | vctl-digest | lsattr | tamper)
        echo "VTEST-CASE $c start uptime=$(cut -d' ' -f1 /proc/uptime)"
        "case_$(echo "$c" | tr - _)"
        ;;
    esac
  done
  ;;
demo)
  echo "VDEMO ---- guest: $(uname -r), share mounted:"
  grep " $M " /proc/mounts | sed 's/^/VDEMO   /'
  echo "VDEMO ---- guest: ls -l $M"
  # shellcheck disable=SC2012 # shown to a human
  ls -l "$M" 2>&1 | sed 's/^/VDEMO   /'
  echo "VDEMO ---- guest: fsverity measure"
  for f in $DEMO_FILES; do
    out=$(fsverity measure "$M/$f" 2>&1 | head -1)
    echo "VDEMO   $out"
    echo "$f $(result_word "$out")" | data measure
  done
  echo "VDEMO ---- guest: lsattr (V = fs-verity)"
  for f in $DEMO_FILES; do lsattr "$M/$f" 2>&1 | sed 's/^/VDEMO   /'; done
  if [ -n "${DEMO_TAMPER_FILE:-}" ]; then
    echo "VDEMO ---- guest: read the tampered block of $DEMO_TAMPER_FILE"
    out=$(vtest cat "$M/$DEMO_TAMPER_FILE" $((DEMO_TAMPER_BLOCK * 4096)) 4096 direct 2>&1 > /dev/null)
    echo "VDEMO   rc=$? $out"
  fi
  ;;
bench)
  for r in $(seq "${BENCH_REPEAT:-1}"); do
    dropc
    vtest seqread "$M/$BENCH_FILE" | data "bench-seq"
    vtest randread "$M/$BENCH_FILE" "$BENCH_SECS" 1 | data "bench-rand-direct"
    dropc
    vtest randread "$M/$BENCH_FILE" "$BENCH_SECS" 0 | data "bench-rand-buffered"
    echo "round $r done" > /dev/null
  done
  ;;
shell)
  echo "guest shell: share on $M; 'exit' powers the guest off"
  setsid cttyhack sh
  ;;
*)
  echo "VTEST mode FAIL unknown mode $MODE"
  ;;
esac
echo "VTEST-DMESG-BEGIN"
dmesg | grep -iE 'fuse|virtio|virtiofs|error|warn|bug' | tail -20
echo "VTEST-DMESG-END"
exit 0
