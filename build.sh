#!/usr/bin/env bash
# amocrm: build, install and test the PHP extension.
#
#   ./build.sh            build the release extension (target/release/libamocrm.so)
#   ./build.sh install    build, copy into `php-config --extension-dir`, enable for every SAPI
#   ./build.sh test       every check and test suite (fmt, clippy, php -l, cargo test, PHPUnit),
#                         the reliability suite with short counts; writes target/reliability.md
#   ./build.sh test --long  the same with the long counts; writes docs/reliability.md
#   ./build.sh test --deploy  only the deployment suite (tests/deploy: the image, the .deb), which
#                         `test` runs last (as root; it installs and purges the package on this machine)
#   ./build.sh deb        target/deb/php-amocrm_<version>_<arch>.deb (packaging/deb/build-deb.sh)
#   ./build.sh test --php 8.4  the extension's and the gateway's PHPUnit suites on PHP 8.4, built and
#                         run in a Debian 13 chroot (tests/php-chroot.sh; cached in target/php8.4)
#   ./build.sh release X.Y.Z  the version X.Y.Z everywhere it is shown (Cargo.toml, Cargo.lock, README,
#                         the stubs' header) and CHANGELOG's "Unreleased" becomes its section
#   ./build.sh run        the gateway on 127.0.0.1:9095 (demo mode with the bundled emulator
#                         when php/.env has no amoCRM credentials)
#   ./build.sh bench      the side-by-side benchmark against hand-written PHP curl (bench/README.md);
#                         writes bench/results.md, exits 1 when a row misses its target
#   ./build.sh bench --quick  fewer rounds, for development (writes target/bench-results-quick.md)
#
# On Debian as root, missing packages are installed first.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages the build and the tests need.
# nginx, php-fpm and chromium: the gateway suites run the deploy files and a browser;
# openssl makes the private CA of the HTTPS tests; redis-server and redis-sentinel:
# the Redis store's tests start their own on loopback ports (never the system's service).
# php-monolog: the PSR-3 logger the logging tests plug into AmoClient::setLogger().
PACKAGES=(php-cli php-dev php-xml php-mbstring php-curl php-fpm clang libclang-dev phpunit nginx chromium composer openssl redis-server redis-sentinel php-monolog)
# What the deployment suite needs besides (tests/deploy): the image is built
# with buildah from a bookworm made by debootstrap; the .deb with dpkg-deb.
DEPLOY_PACKAGES=(buildah debootstrap dpkg-dev binutils)
# What `./build.sh bench` needs besides: wrk, the load generator of its php-fpm workload.
BENCH_PACKAGES=(wrk)

ensure_packages() {
    local missing=()
    for p in "${PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        log "missing packages: ${missing[*]} (install them, or run as root on Debian)"
        return 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_release() {
    log "building release extension and emulator"
    cargo build --release --workspace
}

ext_path() { echo "$ROOT/target/release/libamocrm.so"; }

cmd_install() {
    build_release
    local dir ini_dir
    dir=$(php-config --extension-dir)
    install -m 0755 "$(ext_path)" "$dir/amocrm.so"
    ini_dir=/etc/php/$(php-config --version | cut -d. -f1,2)/mods-available
    if [ -d "$ini_dir" ] && command -v phpenmod >/dev/null; then
        printf '; priority=20\nextension=amocrm.so\n' > "$ini_dir/amocrm.ini"
        phpenmod amocrm
    else
        log "no Debian mods-available; add 'extension=amocrm.so' to your php.ini"
    fi
    # The default token folder, private to the web server's user.
    if id www-data >/dev/null 2>&1 && [ ! -d /var/lib/amocrm ]; then
        install -d -m 0700 -o www-data -g www-data /var/lib/amocrm
    fi
    log "installed $dir/amocrm.so"
    php -m | grep -qx amocrm && log "php -m lists amocrm"
}

cmd_test() {
    local long=0 args=()
    # --php X.Y: the suites on another PHP, in a chroot of the Debian release carrying it.
    if [ "${1:-}" = "--php" ]; then
        [ $# -ge 2 ] || { log "--php needs a version, e.g. --php 8.4"; return 2; }
        shift
        exec "$ROOT/tests/php-chroot.sh" "$@"
    fi
    for a in "$@"; do
        if [ "$a" = "--long" ]; then long=1; else args+=("$a"); fi
    done
    set -- "${args[@]+"${args[@]}"}"
    if [ "${1:-}" = "--deploy" ]; then
        shift
        ensure_packages
        build_release
        run_deploy "$@"
        return
    fi
    ensure_packages
    log "cargo fmt --check"
    cargo fmt --all --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
    log "php -l"
    find php tests/php tests/gateway tests/reliability tests/deploy bench -name '*.php' -print0 | xargs -0 -n1 php -l >/dev/null
    log "cargo test"
    cargo test --workspace
    build_release
    export AMOCRM_EXT="$(ext_path)" AMOCRM_EMULATOR="$ROOT/target/release/amocrm-emulator"
    # What the reliability tests measure becomes a report (docs/reliability.md).
    export AMOCRM_RELIABILITY_DIR="$ROOT/target/reliability" AMOCRM_LONG="$long"
    rm -rf "$AMOCRM_RELIABILITY_DIR" && mkdir -p "$AMOCRM_RELIABILITY_DIR"
    # Every suite runs; the step fails if any failed.
    local failed=0
    log "PHPUnit: the extension"
    phpunit --configuration tests/php/phpunit.xml "$@" || failed=1
    ensure_e2e
    log "PHPUnit: the gateway (php -S, nginx + php-fpm, CLI, browser E2E)"
    phpunit --configuration tests/gateway/phpunit.xml "$@" || failed=1
    log "PHPUnit: reliability ($([ "$long" = 1 ] && echo long || echo short) counts)"
    phpunit --configuration tests/reliability/phpunit.xml "$@" || failed=1
    run_fuzz "$long" || failed=1
    local report="$ROOT/target/reliability.md"
    [ "$long" = 1 ] && [ "$failed" = 0 ] && report="$ROOT/docs/reliability.md"
    php tests/reliability/report.php "$AMOCRM_RELIABILITY_DIR" "$report"
    # Last and on its own: the package test changes this machine's PHP while it runs.
    run_deploy "$@" || failed=1
    return "$failed"
}

# The deployment suite (tests/deploy, about a minute; the first run also
# makes the bookworm base image, about 30 s more): the Dockerfile built with
# buildah and its gateway driven against the emulator, then the .deb
# installed with apt-get, used, removed and purged. Root only.
run_deploy() {
    if [ "$(id -u)" -ne 0 ]; then
        log "deployment suite skipped: it needs root (it builds images and installs a package)"
        return 0
    fi
    ensure_packages "${DEPLOY_PACKAGES[@]}"
    export AMOCRM_EXT="$(ext_path)" AMOCRM_EMULATOR="$ROOT/target/release/amocrm-emulator"
    export AMOCRM_DEB
    AMOCRM_DEB=$(packaging/deb/build-deb.sh "$(ext_path)" "$ROOT/target/deb")
    log "PHPUnit: deployment (the image with buildah, the .deb with apt-get)"
    phpunit --configuration tests/deploy/phpunit.xml "$@"
}

# Fuzzing the Rust parsers (fuzz/README.md), after the PHP property tests
# (tests/reliability/*FuzzTest.php) so that the report's section ends with
# the total. `./build.sh test`: the stable harness (the targets' binaries in
# target/release, built with the workspace) for AMOCRM_FUZZ_SECONDS (15) each.
# `--long`: cargo-fuzz (libFuzzer, coverage-guided, AddressSanitizer; installed
# here if missing; nightly flags through RUSTC_BOOTSTRAP) for an hour each,
# growing a corpus in target/fuzz/corpus; without it, the stable harness.
FUZZ_TARGETS=(token_file amo_answer query_encoder)
run_fuzz() {
    local long=$1 failed=0 t secs code started
    php tests/reliability/bin/fuzz.php section
    mkdir -p target/fuzz
    if [ "$long" = 1 ] && { cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked; } \
        && log "cargo fuzz build (every dependency with coverage and AddressSanitizer)" \
        && RUSTC_BOOTSTRAP=1 cargo fuzz build --target-dir target/fuzz/build; then
        secs=${AMOCRM_FUZZ_SECONDS:-3600}
        for t in "${FUZZ_TARGETS[@]}"; do
            log "fuzzing $t: cargo-fuzz for ${secs} s"
            mkdir -p "target/fuzz/corpus/$t" "target/fuzz/artifacts/$t"
            started=$SECONDS code=0
            RUSTC_BOOTSTRAP=1 cargo fuzz run --target-dir target/fuzz/build "$t" "target/fuzz/corpus/$t" "fuzz/corpus/$t" -- \
                -max_total_time="$secs" -timeout=10 -dict="fuzz/dict/$t.dict" -print_final_stats=1 \
                -artifact_prefix="target/fuzz/artifacts/$t/" >"target/fuzz/$t.log" 2>&1 || code=$?
            tail -n 8 "target/fuzz/$t.log" >&2
            php tests/reliability/bin/fuzz.php libfuzzer "$t" "target/fuzz/$t.log" "$((SECONDS - started))" "$code"
            [ "$code" = 0 ] || failed=1
        done
    else
        [ "$long" = 1 ] && log "cargo-fuzz is not available: the stable harness runs instead"
        secs=${AMOCRM_FUZZ_SECONDS:-$([ "$long" = 1 ] && echo 3600 || echo 15)}
        for t in "${FUZZ_TARGETS[@]}"; do
            log "fuzzing $t: stable harness for ${secs} s"
            "target/release/$t" --seconds "$secs" --artifacts "target/fuzz/artifacts/$t" || failed=1
        done
    fi
    php tests/reliability/bin/fuzz.php total
    return "$failed"
}

# The browser E2E's driver: playwright-core from tests/e2e/package-lock.json
# (it drives Debian's chromium; it downloads no browser).
ensure_e2e() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "node and npm (>= 20) are needed for the browser E2E test (tests/e2e)"
        return 1
    fi
    if [ ! -d tests/e2e/node_modules/playwright-core ]; then
        log "npm ci (tests/e2e)"
        (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    fi
}

# The benchmark (bench/README.md): not part of `test`. Builds the release
# workspace first; the extension is loaded with -d extension=, never installed.
cmd_bench() {
    ensure_packages "${BENCH_PACKAGES[@]}"
    build_release
    export AMOCRM_EXT="$(ext_path)" AMOCRM_EMULATOR="$ROOT/target/release/amocrm-emulator"
    log "bench $*"
    php bench/run.php "$@"
}

# The Debian package, with dpkg-deb (packaging/deb/build-deb.sh): the release
# extension for the PHP on PATH, the gateway, the timers and the examples.
cmd_deb() {
    ensure_packages dpkg-dev binutils
    build_release
    log "building the Debian package"
    packaging/deb/build-deb.sh "$(ext_path)" "$ROOT/target/deb"
}

# Installs the built extension unless the installed one is the same file.
install_if_needed() {
    local installed
    installed="$(php-config --extension-dir)/amocrm.so"
    if [ ! -f "$installed" ] || ! cmp -s "$installed" "$(ext_path)" || ! php -m | grep -qx amocrm; then
        if [ "$(id -u)" -eq 0 ]; then
            cmd_install
        else
            log "not root: using the built extension without installing it"
            return 1
        fi
    fi
}

# The main job: the gateway on 127.0.0.1:9095. Without amoCRM credentials in
# php/.env it runs in demo mode against the bundled emulator.
cmd_run() {
    ensure_packages
    build_release
    local ext_args=()
    install_if_needed || ext_args=(--ext "$(ext_path)")
    exec php php/bin/serve.php --emulator "$ROOT/target/release/amocrm-emulator" "${ext_args[@]}"
}

# The release step: one version, moved everywhere it is shown at once.
# Cargo.toml's [package] version is the source; `php --ri amocrm`,
# phpversion('amocrm'), the User-Agent and the .deb take it from there at build
# time. Refuses what is not semver (MAJOR.MINOR.PATCH[-pre]) or not greater than
# the current version, and an empty "Unreleased" section (say what changed first).
# Commits nothing: review the diff, then commit and tag.
semver_re='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?$'
# semver_gt A B: is A greater than B by semver precedence (semver.org, item 11)?
semver_gt() {
    local a=$1 b=$2 i x y LC_ALL=C
    local -a ca cb pa pb
    IFS=. read -r -a ca <<<"${a%%-*}"
    IFS=. read -r -a cb <<<"${b%%-*}"
    for i in 0 1 2; do
        [ "${ca[$i]}" -gt "${cb[$i]}" ] && return 0
        [ "${ca[$i]}" -lt "${cb[$i]}" ] && return 1
    done
    # Same core: a release is above its pre-releases.
    [[ $a == *-* ]] || { [[ $b == *-* ]] && return 0 || return 1; }
    [[ $b == *-* ]] || return 1
    IFS=. read -r -a pa <<<"${a#*-}"
    IFS=. read -r -a pb <<<"${b#*-}"
    for ((i = 0; i < ${#pa[@]} && i < ${#pb[@]}; i++)); do
        x=${pa[$i]} y=${pb[$i]}
        [ "$x" = "$y" ] && continue
        if [[ $x =~ ^[0-9]+$ && $y =~ ^[0-9]+$ ]]; then
            [ "$x" -gt "$y" ] && return 0 || return 1
        fi
        [[ $x =~ ^[0-9]+$ ]] && return 1 # numeric identifiers sort below alphanumeric ones
        [[ $y =~ ^[0-9]+$ ]] && return 0
        [[ $x > $y ]] && return 0 || return 1
    done
    [ ${#pa[@]} -gt ${#pb[@]} ]
}
cargo_version() { sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1; }
cmd_release() {
    local new=${1:-} old today
    [ $# -eq 1 ] || { echo "usage: $0 release X.Y.Z" >&2; return 2; }
    old=$(cargo_version)
    [[ $new =~ $semver_re ]] || { echo "release: '$new' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)" >&2; return 2; }
    semver_gt "$new" "$old" || { echo "release: $new is not greater than the current version $old" >&2; return 2; }
    # What "Unreleased" holds becomes the new version's section.
    awk '/^## \[Unreleased\]/{u=1;next} u&&/^## /{exit} u&&NF{found=1} END{exit !found}' CHANGELOG.md \
        || { echo "release: CHANGELOG.md's Unreleased section is empty: say what changed in $new first" >&2; return 2; }
    today=$(date -u +%F)
    sed -i '/^\[package\]/,/^\[/s/^version = ".*"$/version = "'"$new"'"/' Cargo.toml
    # The lock's entry for this crate (what `cargo update -p amocrm` would write, without the network).
    awk -v v="$new" '/^name = "amocrm"$/{print; getline; if ($0 ~ /^version = /) $0 = "version = \"" v "\""} {print}' \
        Cargo.lock >Cargo.lock.tmp && mv Cargo.lock.tmp Cargo.lock
    sed -i -E 's/^Version [^ ]+ /Version '"$new"' /' README.md
    sed -i -E 's/(from the amocrm extension )[^;]+;/\1'"$new"';/' php/stubs/amocrm.stub.php
    if grep -q '"version"' php/composer.json; then
        sed -i -E 's/^(    "version": )"[^"]*"/\1"'"$new"'"/' php/composer.json
    fi
    sed -i 's/^## \[Unreleased\]$/## [Unreleased]\n\n## ['"$new"'] - '"$today"'/' CHANGELOG.md
    log "version $old -> $new (Cargo.toml, Cargo.lock, README.md, CHANGELOG.md, the stubs' header)"
    log "next: ./build.sh test; git commit -am 'Release $new'; git tag v$new"
}

case "${1:-build}" in
    build) ensure_packages; build_release ;;
    install) ensure_packages; cmd_install ;;
    test) shift; cmd_test "$@" ;;
    deb) cmd_deb ;;
    run) cmd_run ;;
    bench) shift; cmd_bench "$@" ;;
    release) shift; cmd_release "$@" ;;
    *) echo "usage: $0 [build|install|test [--long|--deploy|--php 8.4]|deb|run|bench [--quick]|release X.Y.Z]" >&2; exit 2 ;;
esac
