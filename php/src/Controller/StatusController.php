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

    /**
     * GET /ready[?account=]: every configured account (or the one named) is
     * authorized and its token fresh or refreshed just now. 503 when any is
     * not, with the list: one account that needs an admin makes the whole
     * answer 503, on every server (they share the state). With a single
     * account its fields are also at the top level, as before accounts.
     */
    public function ready(?string $only): Response
    {
        $reports = [];
        foreach ($only !== null ? [$only] : $this->config->accounts as $account) {
            $reports[$account] = $this->readiness($account);
        }
        $notReady = array_keys(array_filter($reports, static fn (array $r): bool => $r['status'] !== 'ready'));
        $body = ['status' => $notReady === [] ? 'ready' : 'not_ready'];
        if (count($reports) === 1) {
            $body += array_diff_key(reset($reports), ['status' => true]);
        }
        $body += ['accounts' => $reports, 'not_ready' => $notReady];
        return $notReady === [] ? Response::json($body) : Response::json($body, 503, ['Retry-After' => '60']);
    }

    /** @return array{status: string, expires_in?: int, reason?: string, warning?: string} */
    private function readiness(string $account): array
    {
        $amo = \AmoClient::getInstance($account);
        $status = null;
        // Ready or not, monitoring should see it when the refresh token is running out.
        $warning = static fn (?array $s): array => ($s['warning'] ?? null) !== null ? ['warning' => $s['warning']] : [];
        try {
            $status = $amo->tokenStatus();
            if (!$status['authorized'] || $status['needs_reauthorization']) {
                return ['status' => 'not_ready', 'reason' => (string) $status['reauthorization_reason']];
            }
            $status = $amo->refreshToken(false);
            return ['status' => 'ready', 'expires_in' => $status['expires_in']] + $warning($status);
        } catch (\AmoException $e) {
            Log::write("503 for GET /ready: account $account: " . get_class($e) . ': ' . $e->getMessage());
            return ['status' => 'not_ready', 'reason' => get_class($e) . ': ' . $e->getTitle()] + $warning($status);
        }
    }

    /** GET /oauth/status[?account=] (admin) */
    public function oauthStatus(string $account): Response
    {
        return Response::json(['account' => $account] + \AmoClient::getInstance($account)->tokenStatus());
    }

    /**
     * GET /metrics (admin): Prometheus text format. Every amocrm_* sample is
     * labelled with its account, one series per configured account; the
     * counters are host-wide (every process), per account. An account whose
     * state cannot be read has amocrm_status_error 1 and no counters.
     */
    public function metrics(): Response
    {
        $series = [];
        $sample = static function (string $name, string $labels, int|string $value) use (&$series): void {
            $series[$name][$labels] = $value;
        };
        foreach ($this->config->accounts as $account) {
            $amo = \AmoClient::getInstance($account);
            $a = 'account="' . $account . '"'; // account names are [a-z0-9_-]: nothing to escape
            try {
                $status = $amo->tokenStatus();
                $m = $amo->metrics();
                $error = 0;
            } catch (\AmoException $e) {
                Log::write("/metrics: account $account: " . get_class($e) . ': ' . $e->getMessage());
                $status = $m = null;
                $error = 1;
            }
            $sample('amocrm_authorized', $a, (int) ($status !== null && $status['authorized'] && !$status['needs_reauthorization']));
            $sample('amocrm_token_expires_in_seconds', $a, (int) ($status['expires_in'] ?? 0));
            $sample('amocrm_refresh_token_expires_in_seconds', $a, (int) ($status['refresh_expires_in'] ?? 0));
            $sample('amocrm_token_warning', $a, (int) (($status['warning'] ?? null) !== null));
            $sample('amocrm_status_error', $a, $error);
            if ($m === null) {
                continue;
            }
            $sample('amocrm_refreshes_total', $a, $m['refreshes']);
            $sample('amocrm_refresh_failures_total', $a, $m['refresh_failures']);
            foreach ($m['api_calls'] ?: ['200' => 0] as $code => $n) {
                $sample('amocrm_api_calls_total', $a . ',status="' . $code . '"', $n);
            }
            $sample('amocrm_rate_limited_total', $a, $m['rate_limited']);
            $sample('amocrm_rate_limit_waits_total', $a, $m['rate_limit_waits']);
            $sample('amocrm_rate_limit_wait_seconds_total', $a, sprintf('%.3F', $m['rate_limit_wait_ms'] / 1000));
            $sample('amocrm_retries_total', $a, $m['retries']);
            $sample('amocrm_relocations_total', $a, $m['relocations']);
        }
        $spool = new Spool($this->config);
        $sample('gateway_webhooks_pending', '', $spool->count('pending'));
        $sample('gateway_webhooks_failed', '', $spool->count('failed'));
        $help = [
            'amocrm_authorized' => ['gauge', 'Whether a usable token pair is stored (1) or an admin must authorize (0).'],
            'amocrm_token_expires_in_seconds' => ['gauge', 'Seconds until the access token expires (it is refreshed before).'],
            'amocrm_refresh_token_expires_in_seconds' => ['gauge', 'Seconds until the refresh token dies unused (keepalive resets it).'],
            'amocrm_token_warning' => ['gauge', 'Whether the pair is overdue for renewal or its refresh token dies within 30 days (1): see /oauth/status.'],
            'amocrm_status_error' => ['gauge', 'Whether the account\'s token state could not be read (1): the gateway\'s error log says why.'],
            'amocrm_refreshes_total' => ['counter', 'Token refreshes done by this host.'],
            'amocrm_refresh_failures_total' => ['counter', 'Token refreshes that failed.'],
            'amocrm_api_calls_total' => ['counter', 'amoCRM API answers by HTTP status ("error": no answer).'],
            'amocrm_rate_limited_total' => ['counter', 'amoCRM answers 429 Too Many Requests.'],
            'amocrm_rate_limit_waits_total' => ['counter', 'Requests that waited for the account\'s shared 7-per-second budget.'],
            'amocrm_rate_limit_wait_seconds_total' => ['counter', 'Time spent waiting for the account\'s shared budget.'],
            'amocrm_retries_total' => ['counter', 'Requests sent again after a 429, a refused connection or an idempotent failure.'],
            'amocrm_relocations_total' => ['counter', 'Times the account\'s subdomain changed and its new host was stored.'],
            'gateway_webhooks_pending' => ['gauge', 'Webhook deliveries stored but not yet handled (all accounts).'],
            'gateway_webhooks_failed' => ['gauge', 'Webhook deliveries whose handler failed (run webhooks:replay; all accounts).'],
        ];
        $lines = [];
        foreach ($help as $name => [$type, $text]) {
            if (!isset($series[$name])) {
                continue; // a counter no account could report
            }
            $lines[] = "# HELP $name $text";
            $lines[] = "# TYPE $name $type";
            foreach ($series[$name] as $labels => $value) {
                $lines[] = $name . ($labels === '' ? '' : '{' . $labels . '}') . ' ' . $value;
            }
        }
        return Response::text(implode("\n", $lines) . "\n", 200, 'text/plain; version=0.0.4; charset=utf-8');
    }
}
