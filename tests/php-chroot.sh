#!/usr/bin/env bash
# The test suites on another PHP than the host's, in a Debian chroot.
#
#   tests/php-chroot.sh 8.4 [phpunit arguments]     (./build.sh test --php 8.4 runs this)
#
# Debian 13 (trixie) carries PHP 8.4. The chroot is made once with
# `debootstrap --variant=minbase` under target/php<version>/root and reused
# while its package list is the same (target/php<version>/root/.amocrm-packages).
# The repository is bind-mounted at its own path and the host's Rust toolchain
# (~/.rustup, ~/.cargo) read-only; the extension is built inside against that
# PHP into target/php<version>/target, so the host's target/release is
# untouched. The emulator is the host's (a plain binary; the chroot runs it).
# Everything runs in a mount namespace of its own: the mounts vanish with it,
# whatever happens, and an exit trap unmounts them in order before that.
# The tests reach 127.0.0.1 only; the chroot shares the host's network.
#
# Needs root (debootstrap, chroot, mount) and the network to Debian's mirror
# the first time (AMOCRM_DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'php-chroot: %s\n' "$*" >&2; exit 2; }

VERSION=${1:-}
[ $# -gt 0 ] && shift
# The Debian release that carries each PHP this script can test. PHP 8.2 is
# the host's (Debian 12); Debian has no 8.3 in any release.
declare -A SUITES=([8.4]=trixie)
SUITE=${SUITES[$VERSION]:-}
[ -n "$SUITE" ] || die "no Debian release here carries PHP '${VERSION}': --php takes one of: ${!SUITES[*]} (the host's own PHP: ./build.sh test)"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"

# What the suites need inside: the PHP to build against and to test on, what
# ext-php-rs's build wants (php-dev, clang, libclang), a linker, PHPUnit and
# composer (ComposerTest), nginx and openssl (TlsTest's HTTPS front),
# php-fpm, chromium and node for the gateway suite, procps.
PACKAGES=("php$VERSION-cli" "php$VERSION-dev" "php$VERSION-curl" "php$VERSION-mbstring" "php$VERSION-xml" "php$VERSION-fpm"
    clang libclang-dev gcc libc6-dev phpunit composer nginx openssl ca-certificates procps nodejs chromium
    php-monolog)
MIRROR=${AMOCRM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=$ROOT/target/php$VERSION
CHROOT=$BASE/root
STAMP=$CHROOT/.amocrm-packages

# 1. The chroot: debootstrap into a temp folder, moved into place when whole,
# so an interrupted run never leaves a half chroot that looks ready.
make_chroot() {
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
    fi
    mkdir -p "$BASE"
    if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
        local tmp=$BASE/root.tmp
        rm -rf "$tmp" "$CHROOT"
        log "debootstrap --variant=minbase $SUITE ($MIRROR)"
        debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" >"$BASE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$BASE/debootstrap.log" >&2; die "debootstrap failed (log: $BASE/debootstrap.log)"; }
        mv "$tmp" "$CHROOT"
    fi
    # Names the tests use (localhost for the HTTPS front); minbase has no /etc/hosts.
    [ -s "$CHROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$CHROOT/etc/hosts"
    cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
}

# 2. Everything inside runs in this mount namespace (see the header).
MOUNTED=()
mount_in() { # mount_in <target inside the chroot> <mount arguments…>
    local target=$CHROOT$1
    shift
    mkdir -p "$target"
    mount "$@" "$target"
    MOUNTED+=("$target")
}
unmount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
    MOUNTED=()
}

in_chroot() { # in_chroot <command…>: a login-less shell's environment, the toolchain on PATH
    chroot "$CHROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo "$@"
}

setup_mounts() {
    trap unmount_all EXIT
    mount_in /proc -t proc proc
    mount_in /dev --bind /dev
    mount_in /dev/pts --bind /dev/pts
    mount_in /dev/shm -t tmpfs -o mode=1777,nosuid,nodev shm
    # The chroot's /tmp is the tests' temp dir: empty at every run.
    mount_in /tmp -t tmpfs -o mode=1777,nosuid,nodev,size=4g tmp
    mount_in "$ROOT" --bind "$ROOT"
    # A worktree's tests/e2e/node_modules may be a link out of the repository.
    if [ -L "$ROOT/tests/e2e/node_modules" ]; then
        local modules
        modules=$(readlink -f "$ROOT/tests/e2e/node_modules")
        mount_in "$modules" --bind "$modules"
    fi
    local d
    for d in .rustup .cargo; do
        [ -d "$HOME/$d" ] || die "the host's Rust toolchain is not in $HOME/$d"
        mount_in "/root/$d" --bind "$HOME/$d"
        mount -o remount,bind,ro "$CHROOT/root/$d"
    done
}

install_packages() {
    local want
    want=$(printf '%s\n' "${PACKAGES[@]}" | sort | tr '\n' ' ')
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && return 0
    log "apt-get install in the $SUITE chroot: ${PACKAGES[*]}"
    in_chroot sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"' \
        sh "${PACKAGES[@]}" >"$BASE/apt.log" 2>&1 \
        || { tail -n 20 "$BASE/apt.log" >&2; die "apt-get install failed in the chroot (log: $BASE/apt.log)"; }
    printf '%s' "$want" >"$STAMP"
}

# Runs inside the namespace: mounts, packages, build, suites.
run_inside() {
    setup_mounts
    install_packages
    local php=/usr/bin/php$VERSION
    in_chroot "$php" -r 'echo "PHP ", PHP_VERSION, " (", PHP_OS_FAMILY, ZEND_THREAD_SAFE ? ", ZTS" : ", NTS", ")\n";' >&2

    # The extension against this PHP (ext-php-rs's build asks $PHP / $PHP_CONFIG).
    log "cargo build --release -p amocrm against PHP $VERSION (target/php$VERSION/target)"
    in_chroot sh -c 'cd "$1" && PHP="$2" PHP_CONFIG="$3" CARGO_TARGET_DIR="$4" cargo build --release --offline --locked -p amocrm --lib' \
        sh "$ROOT" "$php" "/usr/bin/php-config$VERSION" "$BASE/target"
    local ext=$BASE/target/release/libamocrm.so

    # php -l with every diagnostic shown: a deprecation (an implicitly nullable
    # parameter, …) fails the job as a syntax error would.
    log "php$VERSION -l (E_ALL, deprecations fail)"
    in_chroot sh -c 'cd "$1" && out=$(find php tests/php tests/gateway tests/reliability bench -name "*.php" -print0 \
            | xargs -0 -n1 "$2" -d error_reporting=-1 -d display_errors=stderr -l 2>&1 >/dev/null) || { echo "$out"; exit 1; }
        [ -z "$out" ] || { echo "$out"; exit 1; }' sh "$ROOT" "$php"

    local failed=0
    mkdir -p "$BASE/reliability"
    log "PHPUnit on PHP $VERSION: the extension"
    in_chroot sh -c 'cd "$1" && shift && exec "$@"' sh "$ROOT" \
        /usr/bin/env AMOCRM_EXT="$ext" AMOCRM_EMULATOR="$ROOT/target/release/amocrm-emulator" \
        AMOCRM_RELIABILITY_DIR="$BASE/reliability" \
        "$php" -d error_reporting=-1 /usr/bin/phpunit --configuration tests/php/phpunit.xml "$@" || failed=1
    log "PHPUnit on PHP $VERSION: the gateway (php -S, nginx + php$VERSION-fpm, CLI, browser E2E)"
    in_chroot sh -c 'cd "$1" && shift && exec "$@"' sh "$ROOT" \
        /usr/bin/env AMOCRM_EXT="$ext" AMOCRM_EMULATOR="$ROOT/target/release/amocrm-emulator" \
        AMOCRM_RELIABILITY_DIR="$BASE/reliability" \
        "$php" -d error_reporting=-1 /usr/bin/phpunit --configuration tests/gateway/phpunit.xml "$@" || failed=1
    return "$failed"
}

if [ "${AMOCRM_CHROOT_NS:-}" != "$VERSION" ]; then
    make_chroot
    # The emulator the suites start: the host's, fresh (a no-op when it is).
    # The crates the chroot's offline build needs are fetched here too.
    log "the emulator (host build) and the crates for the chroot's build"
    cargo build --release --locked -p amocrm-emulator
    cargo fetch --locked >/dev/null
    AMOCRM_CHROOT_NS=$VERSION exec unshare --mount --propagation private "$ROOT/tests/php-chroot.sh" "$VERSION" "$@"
fi
run_inside "$@"
