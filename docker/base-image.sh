#!/usr/bin/env bash
# docker/base-image.sh: prints the name of a local Debian bookworm image
# (localhost/amocrm-base:bookworm-YYYYMM), made with debootstrap and
# imported into buildah's storage (/var/lib/containers/storage) if this
# month's is not there yet — for building the Dockerfile where no registry
# can be reached (its RUST_IMAGE and PHP_IMAGE build arguments). Needs root,
# debootstrap and buildah; about 30 s once a month.
set -euo pipefail
TAG="localhost/amocrm-base:bookworm-$(date -u +%Y%m)"
if buildah inspect --type image "$TAG" >/dev/null 2>&1; then
    echo "$TAG"
    exit 0
fi
ROOTFS=$(mktemp -d /var/tmp/amocrm-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian >&2
# The sources of Debian's own bookworm-slim image: updates and security too.
rm -f "$ROOTFS/etc/apt/sources.list"
cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
ctr=$(buildah from scratch)
mnt=$(buildah mount "$ctr")
tar -C "$ROOTFS" -c . | tar -C "$mnt" -x
buildah umount "$ctr" >/dev/null
buildah config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
buildah commit --rm "$ctr" "$TAG" >&2
# Earlier months' images go.
buildah images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/amocrm-base:' | grep -vx "$TAG" \
    | xargs -r buildah rmi >/dev/null 2>&1 || true
echo "$TAG"
