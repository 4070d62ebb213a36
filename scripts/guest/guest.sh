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
# wait_ready FILE PID: until verityctl mount wrote its --ready-file (at most 60 s) or exited;
# true when the file is there
wait_ready() {
  i=0
  while [ ! -f "$1" ] && [ "$i" -lt 300 ] && kill -0 "$2" 2> /dev/null; do
    sleep 0.2
    i=$((i + 1))
  done
  [ -f "$1" ]
}
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

# verity cases (the host serves a sealed share; --no-verity on the host leaves them out)
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
    # one process for every file but the tampered one (it cannot be read); file by file
    # when that fails, to report each result
    if (cd "$M" && find . -type f ! -path "./$TAMPER_FILE" -exec verityctl digest {} + > /tmp/vdigest 2>&1); then
      while read -r line; do
        echo "${line##* } $(result_word "$line")"
      done < /tmp/vdigest | data vctl-digest
    else
      (cd "$M" && find . -type f ! -path "./$TAMPER_FILE" | while read -r f; do
         echo "$f $(result_word "$(verityctl digest "$f" 2>&1 | head -1)")"
       done) | data vctl-digest
    fi
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

# verityctl measure: through FS_IOC_MEASURE_VERITY only, then through the xattr only
vctl_measure() { # vctl_measure CASE OPTION
  if ! command -v verityctl > /dev/null; then
    echo "absent" | data "$1"
    return
  fi
  if ! (cd "$M" && find . -type f -exec verityctl measure "$2" {} + > "/tmp/$1" 2>&1); then
    (cd "$M" && find . -type f | while read -r f; do
       echo "$(verityctl measure "$2" "$f" 2>&1 | head -1 | tr -s ' \t' '__') $f"
     done) > "/tmp/$1"
  fi
  while read -r line; do
    echo "${line##* } $(result_word "$line")"
  done < "/tmp/$1" | data "$1"
}
case_vctl_measure() { vctl_measure vctl-measure --ioctl-only; }
case_xattr() { vctl_measure xattr --xattr-only; }

case_manifest_xattr() {
  vtest getxattr "$M" user.verity.manifest_digest | data manifest-xattr
}

case_attest() {
  d=$(vtest getxattr "$M" user.verity.manifest_digest)
  case $d in
    "ok "*) d=${d#ok } ;;
    *) d=$MANIFEST_DIGEST ;;
  esac
  if command -v verityctl > /dev/null; then
    verityctl attest --manifest-digest "$d" --tag share --print > /tmp/attest 2>&1
    echo "rc=$?" | data attest-rc
    data attest < /tmp/attest
  else
    echo "absent" | data attest-rc
  fi
}

# A host that does not verify serves altered bytes on the tag "evil"; the guest verifies
# with verityctl mount against the manifest from the initramfs (/vt/manifest).
case_malicious() {
  # As docs/guest-mount.md shows it: the raw share in a 0700 directory, ro,nosuid,nodev,noexec.
  E=/run/verityctl/raw
  V=/verified
  mkdir -p "$E" "$V"
  chmod 0700 /run/verityctl
  if ! mount -t virtiofs -o ro,nosuid,nodev,noexec evil "$E"; then
    echo "raw-mount failed" | data malicious
    return
  fi
  {
    for f in $EVIL_FILES; do echo "raw-sha $f $(sha256sum < "$E/$f" 2>&1 | cut -d' ' -f1)"; done
    echo "raw-xattr $EVIL_FORGED $(vtest getxattr "$E/$EVIL_FORGED" user.verity.digest | tr ' ' '_')"
  } > /tmp/mal
  if ! command -v verityctl > /dev/null; then
    echo "verified-mount absent" >> /tmp/mal
    data malicious < /tmp/mal
    return
  fi
  rm -f /tmp/vready
  verityctl mount --manifest /vt/manifest --manifest-digest "$MANIFEST_DIGEST" \
    --tree-store "$E/$EVIL_TREES" --ready-file /tmp/vready "$E" "$V" > /tmp/vmount.log 2>&1 &
  vpid=$!
  if ! wait_ready /tmp/vready "$vpid"; then
    echo "verified-mount failed: $(tail -3 /tmp/vmount.log | tr -s ' \t\n' '___')" >> /tmp/mal
    kill "$vpid" 2> /dev/null
    data malicious < /tmp/mal
    return
  fi
  {
    echo "verified-mount ok"
    vtest cat "$V/$EVIL_FLIP" $((EVIL_FLIP_BLOCK * 4096)) 4096 direct > /dev/null 2>&1
    echo "flip-bad $EVIL_FLIP rc=$?"
    for b in $EVIL_GOOD; do
      s=$(vtest cat "$V/$EVIL_FLIP" $((b * 4096)) 4096 direct | sha256sum)
      echo "flip-good $b ${s%% *}"
    done
    for f in $EVIL_SWAP; do
      vtest cat "$V/$f" 0 4096 > /dev/null 2>&1
      echo "swap $f rc=$?"
    done
    for f in $EVIL_INTACT; do echo "intact $f $(sha256sum < "$V/$f" 2>&1 | cut -d' ' -f1)"; done
    echo "measure $EVIL_FORGED $(result_word "$(verityctl measure "$V/$EVIL_FORGED" 2>&1 | head -1)")"
    echo "measure-xattr $EVIL_FORGED $(result_word "$(verityctl measure --xattr-only "$V/$EVIL_FORGED" 2>&1 | head -1)")"
  } >> /tmp/mal
  data malicious < /tmp/mal
  umount "$V" 2> /dev/null || umount -l "$V"
  wait "$vpid"
  echo "verified-mount-exit rc=$?" | data malicious
  umount "$E"
}

# The tamper matrix (docs/testing.md): one host copy of the sealed tree, changed after sealing,
# served twice: verified by the daemon (tag tmv) and unverified (tag tmr) under verityctl mount.
# Each path reports the same facts; the host checks them against the manifest.
tm_facts() { # tm_facts DIR
  d=$1
  for f in $TM_STAT; do
    echo "stat $f $(cd "$d" && stat -c '%f %u %g %s' "$f" 2>&1 | tr -s ' ' ' ')"
  done
  for f in $TM_READ; do
    vtest cat "$d/$f" 0 100000000 > /tmp/tm.bin 2> /dev/null
    rc=$?
    if [ "$rc" = 0 ]; then echo "read $f $(sha256sum < /tmp/tm.bin | cut -d' ' -f1)"; else echo "read $f rc=$rc"; fi
  done
  for spec in $TM_BLOCKS; do
    f=${spec%%:*}
    b=${spec#*:}
    vtest cat "$d/$f" $((b * 4096)) 4096 direct > /tmp/tm.bin 2> /dev/null
    rc=$?
    if [ "$rc" = 0 ]; then echo "block $f $b $(sha256sum < /tmp/tm.bin | cut -d' ' -f1)"; else echo "block $f $b rc=$rc"; fi
  done
  for f in $TM_ABSENT; do
    if [ -e "$d/$f" ] || [ -L "$d/$f" ]; then echo "absent $f no"; else echo "absent $f yes"; fi
  done
  for dir in $TM_LIST; do
    echo "list $dir $(ls -a "$d/$dir" 2>&1 | LC_ALL=C sort | tr '\n' ' ')"
  done
  for l in $TM_LINKS; do echo "link $l $(readlink "$d/$l" 2>&1)"; done
  echo "seek $TM_HOLE $(vtest seek "$d/$TM_HOLE" 2>&1)"
}

case_tamper_matrix() {
  V=/run/verityctl/tmv
  R=/run/verityctl/tmr
  T=/tmm
  P=/tmp-pin
  mkdir -p "$V" "$R" "$T" "$P"
  chmod 0700 /run/verityctl
  if ! mount -t virtiofs -o ro,nosuid,nodev,noexec tmv "$V"; then
    echo "mount tmv failed" | data tamper-matrix
    return
  fi
  if ! mount -t virtiofs -o ro,nosuid,nodev,noexec tmr "$R"; then
    echo "mount tmr failed" | data tamper-matrix
    return
  fi
  # A stale manifest from the host: refused against the pinned digest, nothing mounted.
  verityctl mount --manifest "$R/$TM_STALE" --manifest-digest "$MANIFEST_DIGEST" \
    "$R" "$T" > /tmp/tmstale.log 2>&1
  echo "stale-manifest rc=$?" | data tamper-matrix
  rm -f /tmp/tmready
  verityctl mount --manifest /vt/manifest --manifest-digest "$MANIFEST_DIGEST" \
    --tree-store "$R/$TM_TREES" --detach-source --ready-file /tmp/tmready "$R" "$T" \
    > /tmp/tmmount.log 2>&1 &
  tpid=$!
  if ! wait_ready /tmp/tmready "$tpid"; then
    echo "verityctl-mount failed: $(tail -3 /tmp/tmmount.log | tr -s ' \t\n' '___')" | data tamper-matrix
    return
  fi
  if grep -q " $R " /proc/mounts; then echo "raw-detached no"; else echo "raw-detached yes"; fi |
    data tamper-matrix
  # Only the pin: the verified share serves the manifest and trees (.verityfsd).
  rm -f /tmp/pready
  verityctl mount --manifest-digest "$MANIFEST_DIGEST" --ready-file /tmp/pready "$V" "$P" \
    > /tmp/pmount.log 2>&1 &
  ppid=$!
  wait_ready /tmp/pready "$ppid" || echo "pin-only-mount failed: $(tail -3 /tmp/pmount.log | tr -s ' \t\n' '___')" |
    data tamper-matrix
  # Held open across the host's changes (truncate, chmod, chown after OPEN and LOOKUP).
  specs=""
  for side in v:$V m:$T p:$P; do
    for spec in $TM_HELD; do specs="$specs ${side#*:}/$spec"; done
  done
  # shellcheck disable=SC2086 # one word per file
  vtest held 4 $specs > /tmp/tmheld 2> /dev/console
  for side in v:$V m:$T p:$P; do
    label=${side%%:*}
    dir=${side#*:}
    { grep " $dir/" /tmp/tmheld | sed "s| $dir/| |"; tm_facts "$dir"; } | sed "s/^/$label /"
  done | data tamper-matrix
  umount "$T" 2> /dev/null || umount -l "$T"
  wait "$tpid"
  echo "verityctl-exit rc=$?" | data tamper-matrix
  umount "$P" 2> /dev/null || umount -l "$P"
  wait "$ppid"
  echo "pin-only-exit rc=$?" | data tamper-matrix
  umount "$V"
}

# ---- modes ----------------------------------------------------------------------------
case $MODE in
test)
  for c in $CASES; do
    case $c in
      tree | sha256 | mutate | bigread | verityctl | measure | vctl-digest | vctl-measure | xattr | \
        lsattr | manifest-xattr | tamper | attest | malicious | tamper-matrix)
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
  echo "VDEMO ---- guest: user.verity.manifest_digest of the share root ($M)"
  md=$(vtest getxattr "$M" user.verity.manifest_digest)
  echo "VDEMO   $md"
  case $md in
    "ok "*)
      echo "VDEMO ---- guest: verityctl attest --manifest-digest ${md#ok } --tag $TAG --print"
      verityctl attest --manifest-digest "${md#ok }" --tag "$TAG" --print 2>&1 | sed 's/^/VDEMO   /'
      ;;
  esac
  if [ -n "${DEMO_TAMPER_FILE:-}" ]; then
    echo "VDEMO ---- guest: read the tampered block of $DEMO_TAMPER_FILE"
    out=$(vtest cat "$M/$DEMO_TAMPER_FILE" $((DEMO_TAMPER_BLOCK * 4096)) 4096 direct 2>&1 > /dev/null)
    echo "VDEMO   rc=$? $out"
  fi
  ;;
bench)
  # Two daemons serve the same share: device 1 (tag $TAG) on $M, device 2 (tag "ref") on $R.
  # Each test runs once, from cold guest caches, as a paired vtest command that interleaves
  # the two mounts in small units.
  R=/ref
  mkdir -p "$R"
  mount -t virtiofs ref "$R" || echo "VTEST mount-ref FAIL mount -t virtiofs ref $R failed"
  for t in $BENCH_TESTS; do
    dropc
    case $t in
      walk) vtest pairwalk "$M/$BENCH_TREE" "$R/$BENCH_TREE" ;;
      readall) vtest pairreadall "$M/$BENCH_TREE" "$R/$BENCH_TREE" "$BENCH_READALL" ;;
      seq) vtest pairseq "$M/$BENCH_FILE" "$R/$BENCH_FILE" ;;
      direct) vtest pairrand "$M/$BENCH_FILE" "$R/$BENCH_FILE" "$BENCH_SECS" 1 ;;
      buffered) vtest pairrand "$M/$BENCH_FILE" "$R/$BENCH_FILE" "$BENCH_SECS" 0 ;;
    esac 2>&1 | data "bench-$t"
  done
  ;;
bench-mount)
  # verityctl mount over the raw mount of a verified share, as docs/guest-mount.md shows it,
  # against that raw mount: each test from cold caches, the order alternating per round.
  umount "$M"
  RAW=/run/verityctl/raw
  VM=/verified
  mkdir -p "$RAW" "$VM"
  chmod 0700 /run/verityctl
  mount -t virtiofs -o ro,nosuid,nodev,noexec "$TAG" "$RAW" || echo "VTEST raw-mount FAIL"
  verityctl mount --manifest-digest "$MANIFEST_DIGEST" --ready-file /tmp/bready "$RAW" "$VM" \
    > /tmp/bmount.log 2>&1 &
  bpid=$!
  wait_ready /tmp/bready "$bpid" || echo "VTEST verityctl-mount FAIL $(tail -3 /tmp/bmount.log | tr '\n' ' ')"
  for side in $BENCH_ORDER; do
    d=$RAW
    [ "$side" = mnt ] && d=$VM
    dropc
    vtest seqread "$d/$BENCH_FILE" | data "bench-seq-$side"
    dropc
    vtest randread "$d/$BENCH_FILE" "$BENCH_SECS" 1 | data "bench-direct-$side"
  done
  grep -E '^Vm(HWM|RSS)' "/proc/$bpid/status" | tr -s ' \t' ' ' | data bench-rss
  # What the guest CPU hashes: verityctl digest (read + SHA-256) of the file on the raw mount.
  dropc
  { time verityctl digest "$RAW/$BENCH_FILE" > /dev/null; } 2>&1 | grep real | tr -s ' \t' ' ' |
    data bench-digest
  umount "$VM"
  wait "$bpid"
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
