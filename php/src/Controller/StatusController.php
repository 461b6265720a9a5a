<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\Config;
use AmoGateway\Http\Response;
use AmoGateway\Log;
use AmoGateway\Webhook\Spool;

/** Health, readiness, the token status and Prometheus metrics. */
final class StatusController
{
    public function __construct(private readonly Config $config)
    {
    }

    /** GET /health: the process answers; no amoCRM call. */
    public static function health(): Response
    {
        return Response::json(['status' => 'ok']);
    }

    /** GET /ready: authorized, and the token is fresh or was refreshed just now. */
    public function ready(): Response
    {
        $amo = \AmoClient::getInstance();
        $status = null;
        // Ready or not, monitoring should see it when the refresh token is running out.
        $warning = static fn (?array $s): array => ($s['warning'] ?? null) !== null ? ['warning' => $s['warning']] : [];
        try {
            $status = $amo->tokenStatus();
            if (!$status['authorized'] || $status['needs_reauthorization']) {
                return Response::json(['status' => 'not_ready', 'reason' => $status['reauthorization_reason']], 503, ['Retry-After' => '60']);
            }
            $status = $amo->refreshToken(false);
            return Response::json(['status' => 'ready', 'expires_in' => $status['expires_in']] + $warning($status));
        } catch (\AmoException $e) {
            Log::write('503 for GET /ready: ' . get_class($e) . ': ' . $e->getMessage());
            return Response::json(['status' => 'not_ready', 'reason' => get_class($e) . ': ' . $e->getTitle()] + $warning($status),
                503, ['Retry-After' => '60']);
        }
    }

    /** GET /oauth/status (admin) */
    public function oauthStatus(): Response
    {
        return Response::json(\AmoClient::getInstance()->tokenStatus());
    }

    /** GET /metrics (admin): Prometheus text format, host-wide counters. */
    public function metrics(): Response
    {
        $amo = \AmoClient::getInstance();
        $status = $amo->tokenStatus();
        $m = $amo->metrics();
        $spool = new Spool($this->config);
        $lines = [];
        $metric = static function (string $name, string $type, string $help, array $samples) use (&$lines): void {
            $lines[] = "# HELP $name $help";
            $lines[] = "# TYPE $name $type";
            foreach ($samples as $labels => $value) {
                $lines[] = $name . ($labels === '' ? '' : '{' . $labels . '}') . ' ' . $value;
            }
        };
        $metric('amocrm_authorized', 'gauge', 'Whether a usable token pair is stored (1) or an admin must authorize (0).',
            ['' => (int) ($status['authorized'] && !$status['needs_reauthorization'])]);
        $metric('amocrm_token_expires_in_seconds', 'gauge', 'Seconds until the access token expires (it is refreshed before).',
            ['' => (int) ($status['expires_in'] ?? 0)]);
        $metric('amocrm_refresh_token_expires_in_seconds', 'gauge', 'Seconds until the refresh token dies unused (keepalive resets it).',
            ['' => (int) ($status['refresh_expires_in'] ?? 0)]);
        $metric('amocrm_token_warning', 'gauge', 'Whether the pair is overdue for renewal or its refresh token dies within 30 days (1): see /oauth/status.',
            ['' => (int) ($status['warning'] !== null)]);
        $metric('amocrm_refreshes_total', 'counter', 'Token refreshes done by this host.', ['' => $m['refreshes']]);
        $metric('amocrm_refresh_failures_total', 'counter', 'Token refreshes that failed.', ['' => $m['refresh_failures']]);
        $calls = [];
        foreach ($m['api_calls'] as $code => $n) {
            $calls['status="' . $code . '"'] = $n;
        }
        $metric('amocrm_api_calls_total', 'counter', 'amoCRM API answers by HTTP status ("error": no answer).', $calls ?: ['status="200"' => 0]);
        $metric('amocrm_rate_limited_total', 'counter', 'amoCRM answers 429 Too Many Requests.', ['' => $m['rate_limited']]);
        $metric('amocrm_rate_limit_waits_total', 'counter', 'Requests that waited for the shared 7-per-second budget.', ['' => $m['rate_limit_waits']]);
        $metric('amocrm_rate_limit_wait_seconds_total', 'counter', 'Time spent waiting for the shared budget.', ['' => sprintf('%.3F', $m['rate_limit_wait_ms'] / 1000)]);
        $metric('amocrm_retries_total', 'counter', 'Requests sent again after a 429, a refused connection or an idempotent failure.', ['' => $m['retries']]);
        $metric('gateway_webhooks_pending', 'gauge', 'Webhook deliveries stored but not yet handled.', ['' => $spool->count('pending')]);
        $metric('gateway_webhooks_failed', 'gauge', 'Webhook deliveries whose handler failed (run webhooks:replay).', ['' => $spool->count('failed')]);
        return Response::text(implode("\n", $lines) . "\n", 200, 'text/plain; version=0.0.4; charset=utf-8');
    }
}
