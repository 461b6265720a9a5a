#!/bin/sh
# amocrm-cron: the cron lines of php/deploy/cron as one loop, for a
# container of its own (compose.yaml's `cron` service, run as www-data).
# The keepalive every hour (it refreshes only a pair older than 30 days; not
# due, it is a stat), the webhook replay every 10 minutes. A failure is
# logged (stdout: `docker compose logs cron`) and the loop goes on.
set -u
gateway=/usr/share/amocrm-gateway/bin/amocrm
round=0
while :; do
    if [ $((round % 6)) -eq 0 ]; then
        php "$gateway" keepalive --all-accounts --max-age=30 || echo "amocrm-cron: keepalive exited $? (2: an account needs an admin at /oauth/authorize)"
    fi
    php "$gateway" webhooks:replay || echo "amocrm-cron: webhooks:replay exited $?"
    round=$((round + 1))
    sleep 600
done
