# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# shellcheck shell=bash
# shellcheck disable=SC2034 # results are returned in global variables
# Shared functions of the guest tooling (sourced by scripts/guest/*, scripts/demo and
# scripts/bench-guest).  Everything built or downloaded goes to $GUEST_CACHE
# (default: target/guest in the repository); per-run files go to a mktemp -d directory.
#
# Environment knobs (all optional):
#   GUEST_CACHE=DIR        cache directory (default: <repo>/target/guest)
#   VERITYFSD_BIN=PATH     daemon under test; "upstream" = virtiofsd 1.14.0 built into the
#                          cache (default: <repo>/target/release/verityfsd)
#   VERITYFSD_ARGS="..."   extra daemon arguments; --sandbox=none --seccomp=none are added
#                          unless these name --sandbox / --seccomp
#   VERITYCTL_BIN=PATH     guest binary packed into the initramfs
#                          (default: <repo>/target/release/verityctl when it exists)
#   GUEST_ACCEL=tcg|kvm    skip the KVM probe and use this accelerator
#   GUEST_CPU=...          QEMU -cpu for TCG (default: max,cx16=off)
#   GUEST_KERNEL_SERIES    kernel series to fetch (default: 6.12)
#   GUEST_TIMEOUT=SECS     watchdog for one boot (default: 300)

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$GUEST_DIR/../.." && pwd)
GUEST_CACHE=${GUEST_CACHE:-$REPO_ROOT/target/guest}
GUEST_KERNEL_SERIES=${GUEST_KERNEL_SERIES:-6.12}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-300}
GUEST_MEM=${GUEST_MEM:-1G}
GUEST_SMP=${GUEST_SMP:-2}
UPSTREAM_VIRTIOFSD_VERSION=1.14.0
SAMPLE_VERSION=sample-v1
# Packages a guest test needs on the host (Debian 12).
GUEST_PACKAGES=(qemu-system-x86 busybox-static cpio gzip zstd fsverity e2fsprogs gcc libc6-dev
  coreutils util-linux ca-certificates)

log() { printf '== %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------
# apt packages
APT_UPDATED=0
ensure_packages() { # ensure_packages PKG...
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (run as root or install them)"
  log "installing: ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    > /dev/null || die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------------------------------
# cache lock (several runs may share one cache)
cache_lock() {
  mkdir -p "$GUEST_CACHE"
  exec 9> "$GUEST_CACHE/.lock"
  flock -w 1200 9 || die "timed out waiting for the lock on $GUEST_CACHE"
}
cache_unlock() { flock -u 9 2> /dev/null || true; }

# ---------------------------------------------------------------------------------------
# Kernel: linux-image-<series>.*-cloud-amd64 from the <codename>-backports suite, fetched
# with a private apt configuration.  The mirror is read from the system's own apt sources.
priv_apt() {
  local a=$GUEST_CACHE/apt
  apt-get -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o APT::Sandbox::User=root "$@"
}
priv_apt_cache() {
  local a=$GUEST_CACHE/apt
  apt-cache -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" "$@"
}

system_mirror() { # system_mirror CODENAME -> the URI of the system's CODENAME main archive
  # shellcheck disable=SC2016 # $(...) here is apt's format syntax
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2> /dev/null |
    awk -v c="$1" '$2 == c {print $1; exit}'
}

priv_apt_update() {
  local a=$GUEST_CACHE/apt codename uri
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release"
  uri=${GUEST_APT_MIRROR:-$(system_mirror "$codename")}
  if [ -z "$uri" ] && [ "$APT_UPDATED" = 0 ] && [ "$(id -u)" -eq 0 ]; then
    # apt lists only the index targets it has downloaded: a fresh system may have none yet
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
    uri=$(system_mirror "$codename")
  fi
  [ -n "$uri" ] || die "no '$codename' entry in the system's apt sources; cannot pick a mirror (set GUEST_APT_MIRROR=URI)"
  echo "deb $uri $codename-backports main" > "$a/sources.list"
  log "apt: $uri $codename-backports (private lists under $a)"
  priv_apt update -qq || die "apt-get update of $codename-backports failed"
}

kernel_dir() { # newest cached kernel directory, or empty
  local d
  d=$(find "$GUEST_CACHE/kernel" -mindepth 2 -maxdepth 2 -name vmlinux 2> /dev/null |
    sed 's|/vmlinux$||' | sort -V | tail -1)
  printf '%s' "$d"
}

prepare_kernel() {
  KERNEL_DIR=$(kernel_dir)
  if [ -n "$KERNEL_DIR" ] && [ "${GUEST_KERNEL_REFRESH:-0}" != 1 ]; then
    return 0
  fi
  priv_apt_update
  local pkg ver deb tmp cfg o vmlinuz off
  pkg=$(priv_apt_cache depends linux-image-cloud-amd64 2> /dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  case "$pkg" in
    linux-image-"$GUEST_KERNEL_SERIES".*) ;;
    *)
      pkg=$(priv_apt_cache pkgnames "linux-image-$GUEST_KERNEL_SERIES." 2> /dev/null |
        grep -E -- '-cloud-amd64$' | grep -v -- '-dbg' | sort -V | tail -1)
      ;;
  esac
  [ -n "$pkg" ] || die "no linux-image-$GUEST_KERNEL_SERIES.*-cloud-amd64 in backports"
  ver=$(priv_apt_cache show "$pkg" 2> /dev/null | awk '/^Version:/ {print $2; exit}')
  log "kernel: $pkg $ver"
  tmp=$(mktemp -d "$GUEST_CACHE/kernel.tmp.XXXXXX")
  (cd "$tmp" && { priv_apt download "$pkg" 2>&1 | grep -v '^W:' || true; })
  deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -1)
  [ -n "$deb" ] || die "download of $pkg failed"
  dpkg-deb -x "$deb" "$tmp/pkg"
  cfg=$(find "$tmp/pkg/boot" -name 'config-*' | head -1)
  # Built in (=y) in the cloud flavour, so the initramfs needs no modules.
  for o in VIRTIO_PCI VIRTIO_FS FUSE_FS SERIAL_8250_CONSOLE DEVTMPFS RD_GZIP PVH; do
    grep -q "^CONFIG_$o=y" "$cfg" || die "$pkg: kernel config lacks CONFIG_$o=y"
  done
  # Boot the ELF vmlinux through QEMU's PVH entry (faster under TCG than the bzImage).
  # vmlinuz = setup code + zstd(vmlinux); zstd complains about trailing data but the ELF
  # it writes is complete.
  vmlinuz=$(find "$tmp/pkg/boot" -name 'vmlinuz-*' | head -1)
  off=$(LC_ALL=C grep -abo $'\x28\xb5\x2f\xfd' "$vmlinuz" | head -1 | cut -d: -f1)
  [ -n "$off" ] || die "$vmlinuz: no zstd payload found"
  tail -c +$((off + 1)) "$vmlinuz" | zstd -dcq > "$tmp/vmlinux" 2> /dev/null || true
  [ "$(head -c 4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
    die "vmlinux extraction from $vmlinuz failed"
  KERNEL_DIR=$GUEST_CACHE/kernel/${pkg}_$ver
  mkdir -p "$KERNEL_DIR"
  cp "$cfg" "$KERNEL_DIR/config"
  echo "$pkg $ver" > "$KERNEL_DIR/version"
  mv "$tmp/vmlinux" "$KERNEL_DIR/vmlinux"
  rm -rf "$tmp"
  log "kernel cached in $KERNEL_DIR"
}

# ---------------------------------------------------------------------------------------
# Guest test tool and base initramfs (busybox, vtest, fsverity, lsattr, /init)
prepare_vtest() {
  VTEST=$GUEST_CACHE/bin/vtest
  if [ ! -x "$VTEST" ] || [ "$GUEST_DIR/vtest.c" -nt "$VTEST" ]; then
    mkdir -p "$GUEST_CACHE/bin"
    gcc -static -O2 -Wall -o "$VTEST.tmp" "$GUEST_DIR/vtest.c" || die "building vtest failed"
    mv "$VTEST.tmp" "$VTEST"
  fi
}

copy_with_libs() { # copy_with_libs ROOT BINARY DEST_IN_ROOT
  local root=$1 bin=$2 dest=$3 l
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$bin" "$root$dest"
  for l in $(ldd "$bin" 2> /dev/null | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}'); do
    mkdir -p "$root$(dirname "$l")"
    cp -L "$l" "$root$l"
  done
}

pack_cpio() { # pack_cpio DIR OUT.gz
  (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) |
    gzip -6 -n > "$2"
}

prepare_initramfs() {
  INITRAMFS=$GUEST_CACHE/initramfs-base.cpio.gz
  local stamp r app
  stamp=$( {
    sha256sum "$GUEST_DIR/init" "$VTEST" "$(command -v busybox)" "$(command -v fsverity)" \
      "$(command -v lsattr)" | cut -d' ' -f1
  } | sha256sum | cut -d' ' -f1)
  if [ -s "$INITRAMFS" ] && [ "$(cat "$INITRAMFS.stamp" 2> /dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building the base initramfs"
  r=$(mktemp -d "$GUEST_CACHE/irfs.XXXXXX")
  mkdir -p "$r"/{bin,sbin,dev,proc,sys,mnt,tmp,usr/bin,usr/sbin,vt}
  cp "$(command -v busybox)" "$r/bin/busybox"
  for app in $("$r/bin/busybox" --list); do
    [ -e "$r/bin/$app" ] || ln -s busybox "$r/bin/$app"
  done
  cp "$VTEST" "$r/bin/vtest"
  cp "$GUEST_DIR/init" "$r/init"
  chmod 755 "$r/init"
  mknod -m 600 "$r/dev/console" c 5 1 # opened by the kernel before /init runs
  mknod -m 666 "$r/dev/null" c 1 3
  copy_with_libs "$r" "$(command -v fsverity)" /usr/bin/fsverity
  rm -f "$r/bin/lsattr" # Debian's lsattr knows the 'V' (fs-verity) flag
  copy_with_libs "$r" "$(command -v lsattr)" /usr/bin/lsattr
  pack_cpio "$r" "$INITRAMFS.tmp"
  rm -rf "$r"
  mv "$INITRAMFS.tmp" "$INITRAMFS"
  echo "$stamp" > "$INITRAMFS.stamp"
}

# make_run_initrd OUT PARAMS_FILE [FILE...]: base initramfs + a per-run layer (guest.sh,
# params, the FILEs in /vt, verityctl with its libraries).  The kernel unpacks concatenated
# cpio archives in order.
make_run_initrd() {
  local out=$1 params=$2 r vctl
  shift 2
  r=$(mktemp -d "${RUN_DIR:-${TMPDIR:-/tmp}}/layer.XXXXXX")
  mkdir -p "$r/vt"
  cp "$GUEST_DIR/guest.sh" "$r/vt/guest.sh"
  cp "$params" "$r/vt/params"
  [ $# -gt 0 ] && cp "$@" "$r/vt/"
  vctl=${VERITYCTL_BIN:-$REPO_ROOT/target/release/verityctl}
  if [ -x "$vctl" ]; then
    copy_with_libs "$r" "$vctl" /usr/bin/verityctl
    # a release build carries debug info: keep the initramfs small
    if command -v strip > /dev/null; then strip --strip-debug "$r/usr/bin/verityctl" || true; fi
  elif [ -n "${VERITYCTL_BIN:-}" ]; then
    die "VERITYCTL_BIN=$VERITYCTL_BIN is not an executable"
  fi
  pack_cpio "$r" "$r.cpio.gz"
  cat "$INITRAMFS" "$r.cpio.gz" > "$out"
  rm -rf "$r" "$r.cpio.gz"
}

# ---------------------------------------------------------------------------------------
# Sample rootfs: generated deterministically (fixed seeds, sizes, modes and mtimes).
gen_file() { # gen_file PATH SEED SIZE [MODE]
  mkdir -p "$(dirname "$1")"
  "$VTEST" gen "$2" "$3" > "$1"
  chmod "${4:-0644}" "$1"
}

prepare_sample() {
  SAMPLE=$GUEST_CACHE/$SAMPLE_VERSION
  [ -f "$SAMPLE.done" ] && return 0
  log "generating the sample rootfs ($SAMPLE_VERSION)"
  local s i
  rm -rf "$SAMPLE" "$SAMPLE.tmp"
  s=$SAMPLE.tmp
  mkdir -p "$s"/{bin,etc,usr/lib,usr/share/doc,var/empty,deep/a/b/c/d/e,tmp,private}
  gen_file "$s/bin/sh" 1 123457 0755
  gen_file "$s/bin/ls" 2 51200 0755
  gen_file "$s/bin/suid-tool" 3 7000 4755
  printf 'guest\n' > "$s/etc/hostname"
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' > "$s/etc/passwd"
  printf 'ID=sample\nVERSION_ID=1\n' > "$s/etc/os-release"
  : > "$s/etc/empty"
  ln "$s/etc/passwd" "$s/etc/passwd.hardlink"
  gen_file "$s/etc/shadow" 4 300 0600
  gen_file "$s/usr/lib/libsample.so.1.2.3" 5 300001 0755
  ln -s libsample.so.1.2.3 "$s/usr/lib/libsample.so.1"
  ln -s libsample.so.1 "$s/usr/lib/libsample.so"
  ln -s usr/lib "$s/lib"
  ln -s /vtest-absent/target "$s/dangling-absolute"
  ln -s ../etc/hostname "$s/bin/hostname-link"
  # sizes around page, readahead and FUSE request boundaries
  for i in 1 511 4095 4096 4097 65535 65536 131073 1048576 1048577 3000000; do
    gen_file "$s/usr/share/doc/size-$i" "$((100 + i))" "$i"
  done
  for i in $(seq 1 40); do
    gen_file "$s/usr/share/doc/small-$i.txt" "$((1000 + i))" "$((i * 777))" 0444
  done
  printf 'deep\n' > "$s/deep/a/b/c/d/e/file"
  printf 'utf-8 name\n' > "$s/etc/nämé-ütf8"
  gen_file "$s/private/key" 6 4096 0400
  chmod 0700 "$s/private"
  chmod 1777 "$s/tmp"
  gen_file "$s/tamper.bin" 7 1048576
  gen_file "$s/big.bin" 8 $((64 << 20))
  if [ "$(id -u)" -eq 0 ]; then
    chown -R 1000:1000 "$s/deep"
    chown -h 1000:1000 "$s/bin/hostname-link"
  fi
  find "$s" -exec touch -h -d @1700000000 {} +
  mv "$s" "$SAMPLE"
  touch "$SAMPLE.done"
}

# ---------------------------------------------------------------------------------------
# Daemons
ensure_upstream_virtiofsd() {
  UPSTREAM_BIN=$GUEST_CACHE/virtiofsd/bin/virtiofsd
  [ -x "$UPSTREAM_BIN" ] && return 0
  ensure_packages libseccomp-dev libcap-ng-dev pkg-config
  command -v cargo > /dev/null || die "cargo is needed to build upstream virtiofsd"
  log "building upstream virtiofsd $UPSTREAM_VIRTIOFSD_VERSION into $GUEST_CACHE/virtiofsd"
  cargo install --locked --root "$GUEST_CACHE/virtiofsd" virtiofsd \
    --version "$UPSTREAM_VIRTIOFSD_VERSION" 2>&1 | tail -3
  [ -x "$UPSTREAM_BIN" ] || die "cargo install virtiofsd failed"
}

# resolve_daemon [SPEC] -> DAEMON_BIN, DAEMON_NAME (SPEC: PATH, "upstream", or empty = default)
resolve_daemon() {
  local spec=${1:-$REPO_ROOT/target/release/verityfsd}
  if [ "$spec" = upstream ]; then
    ensure_upstream_virtiofsd
    DAEMON_BIN=$UPSTREAM_BIN
    DAEMON_NAME="virtiofsd-$UPSTREAM_VIRTIOFSD_VERSION"
  else
    [ -x "$spec" ] || die "daemon '$spec' is not an executable (build with 'cargo build --release --bins', or set VERITYFSD_BIN=PATH|upstream)"
    DAEMON_BIN=$spec
    DAEMON_NAME=$(basename "$spec")
  fi
}

# daemon_start SHARE SOCK LOG [ARG...] -> DAEMON_PID (waits up to 15 s for the socket)
# ARGs (e.g. --manifest=...) go to the daemon after the common ones.
daemon_start() {
  local share=$1 sock=$2 dlog=$3 i extra=()
  shift 3
  # shellcheck disable=SC2206 # word splitting of the extra arguments is intended
  [ -n "${VERITYFSD_ARGS:-}" ] && extra=($VERITYFSD_ARGS)
  # No sandbox or seccomp unless VERITYFSD_ARGS asks for them (the daemon refuses repeats).
  case " ${VERITYFSD_ARGS:-} " in *" --sandbox"*) ;; *) extra+=(--sandbox=none) ;; esac
  case " ${VERITYFSD_ARGS:-} " in *" --seccomp"*) ;; *) extra+=(--seccomp=none) ;; esac
  rm -f "$sock"
  RUST_LOG=${RUST_LOG:-info} "$DAEMON_BIN" --socket-path="$sock" --shared-dir="$share" \
    --cache=auto --readonly "${extra[@]}" "$@" \
    < /dev/null > "$dlog" 2>&1 &
  DAEMON_PID=$!
  for i in $(seq 150); do
    [ -S "$sock" ] && return 0
    kill -0 "$DAEMON_PID" 2> /dev/null || break
    sleep 0.1
  done
  kill "$DAEMON_PID" 2> /dev/null || true
  wait "$DAEMON_PID" 2> /dev/null || true
  DAEMON_PID=
  echo "daemon $DAEMON_BIN did not create $sock; its log:" >&2
  sed 's/^/  daemon| /' "$dlog" >&2
  return 1
}

# daemon_wait SECS -> DAEMON_RC (exit status; 124 = had to be killed)
daemon_wait() {
  local i
  DAEMON_RC=124
  [ -n "${DAEMON_PID:-}" ] || return 0
  for i in $(seq $(($1 * 10))); do
    kill -0 "$DAEMON_PID" 2> /dev/null || break
    sleep 0.1
  done
  if kill -0 "$DAEMON_PID" 2> /dev/null; then
    kill "$DAEMON_PID" 2> /dev/null || true
    sleep 0.5
    kill -9 "$DAEMON_PID" 2> /dev/null || true
    wait "$DAEMON_PID" 2> /dev/null || true
  else
    DAEMON_RC=0
    wait "$DAEMON_PID" || DAEMON_RC=$?
  fi
  DAEMON_PID=
}

# ---------------------------------------------------------------------------------------
# QEMU
qemu_base_args() { # qemu_base_args ACCEL -> QEMU_ARGS (everything but the device part)
  local accel=$1 cpu
  if [ "$accel" = kvm ]; then cpu=${GUEST_KVM_CPU:-host}; else cpu=${GUEST_CPU:-max,cx16=off}; fi
  # cx16=off: QEMU 7.2 multi-threaded TCG corrupts RFLAGS after cmpxchg16b (guest oopses).
  QEMU_ARGS=(-accel "$accel" -cpu "$cpu" -smp "$GUEST_SMP" -m "$GUEST_MEM"
    -kernel "$KERNEL_DIR/vmlinux"
    -nodefaults -no-user-config -nic none -display none -monitor none -no-reboot)
}

# Use KVM only when a probe boot works (cached per kernel and host kernel).
choose_accel() {
  if [ -n "${GUEST_ACCEL:-}" ]; then
    ACCEL=$GUEST_ACCEL
    return 0
  fi
  ACCEL=tcg
  [ -w /dev/kvm ] || return 0
  local f qpid i
  f=$KERNEL_DIR/accel.$(uname -r)
  if [ -f "$f" ]; then
    ACCEL=$(cat "$f")
    return 0
  fi
  log "probing KVM (one boot, at most 30 s)"
  local p
  p=$(mktemp -d "${TMPDIR:-/tmp}/verityfsd-kvm-probe.XXXXXX")
  qemu_base_args kvm
  {
    qemu-system-x86_64 "${QEMU_ARGS[@]}" -initrd "$INITRAMFS" \
      -append "console=ttyS0 panic=-1 quiet vt.mode=probe" -serial "file:$p/serial.log" \
      < /dev/null > "$p/qemu.log" 2>&1 &
    qpid=$!
    for i in $(seq 60); do
      kill -0 "$qpid" || break
      grep -q 'KVM internal error' "$p/qemu.log" && break
      sleep 0.5
    done
    kill "$qpid" || true
    wait "$qpid" || true
  } 2> /dev/null
  if grep -q 'VTEST-END' "$p/serial.log" 2> /dev/null; then
    ACCEL=kvm
  else
    log "KVM probe boot failed: $(grep -m1 -iE 'error|fail' "$p/qemu.log" 2> /dev/null || echo 'no output')"
  fi
  rm -rf "$p"
  log "KVM probe: using $ACCEL (cached in $f)"
  echo "$ACCEL" > "$f"
}

# boot NAME MODE INITRD SOCK [iommu] -> BOOT_RC, BOOT_WALL; logs in $RUN_DIR/NAME.{serial,qemu}.log
# BOOT_EXTRA (array, optional): more QEMU arguments, e.g. a second vhost-user-fs device.
boot() {
  local name=$1 mode=$2 initrd=$3 sock=$4 iommu=${5:-} dev t0 t1 mem
  [ -n "${BOOT_EXTRA+x}" ] || BOOT_EXTRA=()
  dev="vhost-user-fs-pci,chardev=vfs,tag=share,queue-size=1024"
  [ "$iommu" = iommu ] && dev="$dev,iommu_platform=on"
  mem="memory-backend-memfd,id=mem,size=$GUEST_MEM,share=on"
  [ "${GUEST_PREALLOC:-0}" = 1 ] && mem="$mem,prealloc=on"
  qemu_base_args "$ACCEL"
  local serial=(-serial "file:$RUN_DIR/$name.serial.log")
  [ "$mode" = shell ] && serial=(-serial mon:stdio)
  t0=$(date +%s.%N)
  BOOT_RC=0
  if [ "$mode" = shell ]; then
    qemu-system-x86_64 "${QEMU_ARGS[@]}" -object "$mem" -numa node,memdev=mem \
      -chardev socket,id=vfs,path="$sock" -device "$dev" "${BOOT_EXTRA[@]}" -initrd "$initrd" \
      -append "console=ttyS0 panic=-1 quiet vt.mode=$mode ${GUEST_APPEND:-}" "${serial[@]}" ||
      BOOT_RC=$?
  else
    # in the background, so that a signal to this script is handled at once (cleanup_run)
    timeout -k 5 "$GUEST_TIMEOUT" qemu-system-x86_64 "${QEMU_ARGS[@]}" \
      -object "$mem" -numa node,memdev=mem \
      -chardev socket,id=vfs,path="$sock" -device "$dev" "${BOOT_EXTRA[@]}" -initrd "$initrd" \
      -append "console=ttyS0 panic=-1 quiet loglevel=1 vt.mode=$mode ${GUEST_APPEND:-}" \
      "${serial[@]}" < /dev/null > "$RUN_DIR/$name.qemu.log" 2>&1 &
    QEMU_PID=$!
    wait "$QEMU_PID" || BOOT_RC=$?
    QEMU_PID=
  fi
  t1=$(date +%s.%N)
  BOOT_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  [ -f "$RUN_DIR/$name.serial.log" ] && sed -i 's/\r$//' "$RUN_DIR/$name.serial.log"
  return 0
}

# One call that makes everything a guest run needs (idempotent; downloads only when the
# cache lacks something).
prepare_guest() {
  cache_lock
  ensure_packages "${GUEST_PACKAGES[@]}"
  prepare_kernel
  prepare_vtest
  prepare_initramfs
  prepare_sample
  choose_accel
  cache_unlock
}

# Per-run temp dir with cleanup of anything still running.
start_run_dir() {
  RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/verityfsd-guest.XXXXXX")
  DAEMON_PID=
  QEMU_PID=
  trap cleanup_run EXIT
  trap 'exit 130' INT TERM
}
cleanup_run() {
  local rc=$?
  if [ -n "${QEMU_PID:-}" ]; then # the timeout wrapper; it passes the signal on to QEMU
    kill "$QEMU_PID" 2> /dev/null || true
    wait "$QEMU_PID" 2> /dev/null || true
  fi
  local p
  for p in ${DAEMON_PID:-} ${EXTRA_PIDS:-}; do
    kill "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
  if [ "${VTEST_KEEP:-0}" = 1 ]; then
    echo "run directory kept: $RUN_DIR" >&2
  else
    rm -rf "$RUN_DIR"
  fi
  exit "$rc"
}
