#!/bin/sh
# amocrm-healthcheck [PATH]: asks the gateway in this container for PATH
# (/health by default, or /ready) straight over FastCGI, without a web
# server; exit 0 on a 200. The image's HEALTHCHECK and compose.yaml use it.
set -eu
path=${1:-/health}
listen=${FPM_LISTEN:-9000}
case "$listen" in
    *:*) addr=$listen ;;
    /*) addr=$listen ;;
    *) addr=127.0.0.1:$listen ;;
esac
answer=$(REQUEST_METHOD=GET REQUEST_URI="$path" SCRIPT_NAME=/index.php \
    SCRIPT_FILENAME=/usr/share/amocrm-gateway/public/index.php \
    SERVER_NAME=localhost SERVER_PORT=80 REMOTE_ADDR=127.0.0.1 SERVER_PROTOCOL=HTTP/1.1 \
    cgi-fcgi -bind -connect "$addr" 2>/dev/null) || exit 1
# PHP-FPM sends a Status header for every status but 200.
if printf '%s\n' "$answer" | grep -qi '^Status:'; then
    printf '%s\n' "$answer" | grep -i '^Status:' >&2
    exit 1
fi
exit 0
