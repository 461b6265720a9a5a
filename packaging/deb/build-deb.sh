#!/usr/bin/env bash
# Builds php-amocrm_<version>_<arch>.deb with dpkg-deb from a built extension
# (./build.sh deb calls this after the release build).
#
#   packaging/deb/build-deb.sh <libamocrm.so> <output dir>
#
# The package, for the PHP whose php-config is on PATH (Debian's PHP 8.2 on
# bookworm):
#   /usr/lib/php/<api>/amocrm.so                    the extension (php-config --extension-dir)
#   /etc/php/<ver>/mods-available/amocrm.ini        enabled for every SAPI on install (phpenmod)
#   /usr/share/amocrm-gateway/                      the gateway (php/ without deploy/ and stubs/);
#                                                   its .env is /etc/amocrm-gateway/gateway.env
#   /lib/systemd/system/amocrm-gateway-*.{service,timer}  the keepalive and the webhook replay
#   /usr/share/doc/php-amocrm/examples/             nginx site, php-fpm pool, cron, .env example
#   /var/lib/amocrm (www-data, 0700)                made by postinst; kept on remove, gone on purge
set -euo pipefail

SO=${1:?usage: build-deb.sh <libamocrm.so> <output dir>}
OUT=${2:?usage: build-deb.sh <libamocrm.so> <output dir>}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# The one version number: the amocrm crate's, as `php --ri amocrm` shows it.
VERSION=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 \
    | php -r '$m = json_decode(stream_get_contents(STDIN), true);
              foreach ($m["packages"] as $p) { if ($p["name"] === "amocrm") { echo $p["version"]; exit(0); } }
              exit(1);')
ARCH=$(dpkg --print-architecture)
EXT_DIR=$(php-config --extension-dir)
PHP_API=$(php-config --phpapi)
PHP_VERSION=$(php-config --version | cut -d. -f1,2)
PKG=php-amocrm
DEB="$OUT/${PKG}_${VERSION}_${ARCH}.deb"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
R="$STAGE/root"

# The extension, stripped as Debian's packages are (the debug symbols are
# not shipped), and its ini.
install -d "$R$EXT_DIR" "$R/etc/php/$PHP_VERSION/mods-available"
install -m 0644 "$SO" "$R$EXT_DIR/amocrm.so"
strip --strip-unneeded "$R$EXT_DIR/amocrm.so"
printf '; configuration for php amocrm module\n; priority=20\nextension=amocrm.so\n' \
    > "$R/etc/php/$PHP_VERSION/mods-available/amocrm.ini"

# The gateway: code only (not the development server nor the stub generator). Its .env is the admin's, in /etc; its data (and the
# token file) in /var/lib/amocrm (GATEWAY_DATA_DIR in the example .env).
G="$R/usr/share/amocrm-gateway"
install -d "$G"
(cd "$ROOT/php" && tar -c bin/amocrm config public src composer.json .env.example) \
    | tar -C "$G" -x
chmod 0755 "$G/bin/amocrm"
# Without GATEWAY_ENV_FILE the gateway reads <its folder>/.env.
ln -s /etc/amocrm-gateway/gateway.env "$G/.env"
# Its default data dir (<its folder>/var, with the token file) is the token folder.
ln -s /var/lib/amocrm "$G/var"
install -d -m 0755 "$R/etc/amocrm-gateway"

# The deploy examples with the package's paths for the checkout's.
D="$R/usr/share/doc/$PKG"
install -d "$D/examples"
to_package_paths() { sed -f "$ROOT/packaging/package-paths.sed" "$1"; }
for f in nginx-site.conf php-fpm-pool.conf cron; do
    to_package_paths "$ROOT/php/deploy/$f" > "$D/examples/$f"
done
sed -e 's|^#GATEWAY_DATA_DIR=.*|GATEWAY_DATA_DIR=/var/lib/amocrm|' \
    -e 's|^#AMOCRM_TOKEN_PATH=.*|#AMOCRM_TOKEN_PATH=/var/lib/amocrm/tokens.json|' \
    "$ROOT/php/.env.example" > "$D/examples/gateway.env.example"
install -m 0644 "$HERE/examples-README.md" "$D/examples/README.md"
if [ -f "$ROOT/LICENSE" ]; then
    { printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: amocrm\n\nFiles: *\nLicense: MIT\n'; sed 's/^$/./; s/^/ /' "$ROOT/LICENSE"; } > "$D/copyright"
else
    printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: amocrm\n\nFiles: *\nLicense: MIT\n' > "$D/copyright"
fi
[ -f "$ROOT/CHANGELOG.md" ] && install -m 0644 "$ROOT/CHANGELOG.md" "$D/CHANGELOG.md"

# The timers (the cron file's two lines as systemd units).
install -d "$R/lib/systemd/system"
install -m 0644 "$ROOT"/packaging/systemd/amocrm-gateway-*.service "$ROOT"/packaging/systemd/amocrm-gateway-*.timer \
    "$R/lib/systemd/system/"

# Control: the PHP API it was built for, as Debian's PHP extension packages
# depend on it (phpapi-<id>); the libraries the .so links (dpkg-shlibdeps).
SHLIBS=$(cd "$STAGE" && mkdir -p debian && printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG" "$PKG" > debian/control \
    && dpkg-shlibdeps -O "$R$EXT_DIR/amocrm.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
install -d "$R/DEBIAN"
cat > "$R/DEBIAN/control" <<EOF
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: amocrm maintainers <root@localhost>
Section: php
Priority: optional
Depends: ${SHLIBS:+$SHLIBS, }phpapi-$PHP_API, php$PHP_VERSION-common, php-common, php-cli
Recommends: php-fpm
Suggests: nginx
Installed-Size: $(du -sk --exclude=DEBIAN "$R" | cut -f1)
Description: amoCRM / Kommo client for PHP whose OAuth tokens never need a human
 A PHP extension (written in Rust) that owns the whole amoCRM token
 lifecycle: one refresh for the whole host under a lock, an atomic private
 token file, keep-alive connections to amoCRM across requests, and every
 amoCRM v4 list as a service of plain PHP arrays.
 .
 Also the gateway between websites and amoCRM (/usr/share/amocrm-gateway),
 its keepalive and webhook-replay timers, and nginx/php-fpm examples.
EOF
printf '/etc/php/%s/mods-available/amocrm.ini\n' "$PHP_VERSION" > "$R/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    sed "s/@PHP_VERSION@/$PHP_VERSION/g" "$HERE/$s" > "$R/DEBIAN/$s"
    chmod 0755 "$R/DEBIAN/$s"
done

mkdir -p "$OUT"
rm -f "$OUT/${PKG}_"*"_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$R" "$DEB" >/dev/null
echo "$DEB"
