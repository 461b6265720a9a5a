# The gateway's image: php-fpm 8.2 with the amocrm extension enabled and the
# gateway in /usr/share/amocrm-gateway (where the Debian package puts it).
# compose.yaml runs it with nginx, the cron loop and Redis.
#
#   docker build -t amocrm-gateway .
#
# Base images are build arguments. Both stages are Debian bookworm with its
# PHP 8.2, so the extension built in the first loads in the second.
# Without registry access (the test here), both bases are a local bookworm
# image (docker/base-image.sh) and PREBUILT_EXT names an extension built on
# the host (`target/prebuilt/amocrm.so`; .dockerignore lets only it through).
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG PHP_IMAGE=docker.io/library/debian:bookworm-slim

# ---- the extension, with the Rust toolchain and PHP's headers
FROM ${RUST_IMAGE} AS build
ARG PREBUILT_EXT=
WORKDIR /src
COPY . .
RUN set -eu; \
    if [ -n "$PREBUILT_EXT" ]; then \
        install -D -m 0644 "$PREBUILT_EXT" /out/amocrm.so; \
    else \
        apt-get update; \
        apt-get install -y --no-install-recommends php8.2-dev clang libclang-dev; \
        cargo build --release --locked -p amocrm; \
        install -D -m 0644 target/release/libamocrm.so /out/amocrm.so; \
    fi; \
    strip --strip-unneeded /out/amocrm.so 2>/dev/null || true

# ---- the gateway on php-fpm
FROM ${PHP_IMAGE}
RUN set -eu; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        php8.2-fpm php8.2-cli ca-certificates libfcgi-bin; \
    rm -rf /var/lib/apt/lists/*

# The extension, enabled for every SAPI as the Debian package does it.
COPY --from=build /out/amocrm.so /tmp/amocrm.so
RUN set -eu; \
    install -m 0644 /tmp/amocrm.so "$(php -r 'echo ini_get("extension_dir");')/amocrm.so"; \
    rm /tmp/amocrm.so; \
    printf '; priority=20\nextension=amocrm.so\n' > /etc/php/8.2/mods-available/amocrm.ini; \
    phpenmod amocrm; \
    php -m | grep -qx amocrm

# The gateway: code only. Its .env comes from outside (compose mounts it at
# /etc/amocrm-gateway/gateway.env); its data and token file live in
# /var/lib/amocrm, the volume.
COPY php/bin/amocrm /usr/share/amocrm-gateway/bin/amocrm
COPY php/config /usr/share/amocrm-gateway/config
COPY php/public /usr/share/amocrm-gateway/public
COPY php/src /usr/share/amocrm-gateway/src
COPY php/composer.json php/.env.example /usr/share/amocrm-gateway/
COPY php/deploy/php-fpm-pool.conf packaging/package-paths.sed /tmp/
COPY docker/healthcheck.sh /usr/local/bin/amocrm-healthcheck
COPY docker/cron.sh /usr/local/bin/amocrm-cron
RUN set -eu; \
    ln -s /etc/amocrm-gateway/gateway.env /usr/share/amocrm-gateway/.env; \
    ln -s /var/lib/amocrm /usr/share/amocrm-gateway/var; \
    install -d -m 0755 /etc/amocrm-gateway; \
    install -d -m 0700 -o www-data -g www-data /var/lib/amocrm; \
    # The pool of php/deploy/, with the installed paths, on TCP (FPM_LISTEN,
    # 9000 by default) and logging to the container's stderr.
    rm -f /etc/php/8.2/fpm/pool.d/www.conf; \
    sed -f /tmp/package-paths.sed \
        -e 's#^listen = .*#listen = ${FPM_LISTEN}#' \
        -e '/^listen\.\(owner\|group\|mode\)/d' \
        -e 's#^php_admin_value\[error_log\] = .*#php_admin_value[error_log] = /proc/self/fd/2#' \
        /tmp/php-fpm-pool.conf > /etc/php/8.2/fpm/pool.d/amocrm-gateway.conf; \
    sed -i -e 's#^error_log = .*#error_log = /proc/self/fd/2#' -e 's#^pid = .*#; pid: none in a container#' \
        /etc/php/8.2/fpm/php-fpm.conf; \
    rm /tmp/php-fpm-pool.conf /tmp/package-paths.sed; \
    FPM_LISTEN=9000 php-fpm8.2 -t

ENV FPM_LISTEN=9000
VOLUME /var/lib/amocrm
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["amocrm-healthcheck", "/health"]
CMD ["php-fpm8.2", "--nodaemonize", "--force-stderr"]
