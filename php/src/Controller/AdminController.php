<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\Config;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Log;
use AmoGateway\Webhook\Spool;

/**
 * GET /admin: the gateway's health at a glance for the admin, in one HTML
 * page with no script and no external asset: the connection, the tokens'
 * remaining lives, the last refreshes, API calls per minute over 24 hours
 * (an inline SVG drawn here from the extension's ring), rate-limit waits,
 * the webhook queue with a replay button, and what to do when something is
 * wrong. POST /admin/webhooks/replay replays the failed deliveries.
 *
 * The admin credential is Basic, which a browser sends by itself: the
 * replay form carries a token that must match a SameSite=Strict cookie set
 * with the page (a double submit), so another site cannot post it.
 */
final class AdminController
{
    private const CSRF_COOKIE = 'amocrm_admin_csrf';
    /** amoCRM's lifetimes, the bars' full lengths. */
    private const ACCESS_LIFE = 86400;
    private const REFRESH_LIFE = 90 * 86400;
    /** Status classes of the chart, in drawing order, with their colours. */
    private const SERIES = ['2xx' => '#1b7f3b', '4xx' => '#b26a00', '429' => '#7b1fa2', '5xx' => '#b3261e', 'error' => '#555'];

    public function __construct(private readonly Config $config)
    {
    }

    public function page(Request $r, string $account): Response
    {
        $amo = \AmoClient::getInstance($account);
        $problems = [];
        $status = $metrics = $history = null;
        try {
            $status = $amo->tokenStatus();
            $metrics = $amo->metrics();
            $history = $amo->history();
        } catch (\AmoException $e) {
            Log::write("admin page: account $account: " . get_class($e) . ': ' . $e->getMessage());
            $problems[] = 'The token state cannot be read (' . $e->getTitle() . '): the gateway\'s error log says why.';
        }
        $spool = new Spool($this->config);
        $token = $this->csrfToken($r);
        $e = self::escaper();
        $q = $account === Config::DEFAULT_ACCOUNT ? '' : '?account=' . rawurlencode($account);

        $connected = $status !== null && $status['authorized'] && !$status['needs_reauthorization'];
        if ($status !== null && !$connected) {
            $problems[] = $status['authorized']
                ? 'amoCRM refused the refresh token: ' . $status['reauthorization_reason'] . '.'
                : 'The gateway is not connected to amoCRM yet.';
        }
        if (($status['warning'] ?? null) !== null) {
            $problems[] = $status['warning'];
        }
        $failed = $spool->count('failed');
        if ($failed > 0) {
            $problems[] = "$failed webhook deliveries failed: fix their handler, then replay them below.";
        }

        $body = '<h1>amoCRM gateway</h1>'
            . $this->accountsNav($account)
            . '<section id="connection"><h2>Connection</h2>'
            . '<p id="connected" class="' . ($connected ? 'ok' : 'bad') . '">'
            . ($connected ? 'Connected to <b id="base-domain">' . $e((string) $status['base_domain']) . '</b>' : 'Not connected')
            . ' <small>(account <code>' . $e($account) . '</code>, ' . $e((string) ($status['mode'] ?? '?')) . ' tokens)</small></p>'
            . ($status !== null && $status['authorized'] ? self::lives($status) : '')
            . '</section>'
            . '<section id="problems"><h2>What to do</h2>'
            . ($problems === []
                ? '<p class="ok">Nothing: tokens renew themselves.</p>'
                : '<ul>' . implode('', array_map(static fn (string $p): string => '<li>' . $e($p) . '</li>', $problems)) . '</ul>')
            . '<p><a id="reauthorize" href="' . $e("/oauth/authorize$q") . '">Authorize again</a> (an amoCRM admin logs in and allows access; the old pair is replaced)'
            . ' · <a href="' . $e("/oauth/status$q") . '">token status (JSON)</a> · <a href="/metrics">metrics</a></p></section>'
            . self::refreshes($history['refreshes'] ?? [])
            . self::chart($history['minutes'] ?? [], time())
            . self::limits($metrics, $history['minutes'] ?? [])
            . '<section id="webhooks"><h2>Webhook queue</h2>'
            . '<p>Pending: <b id="pending">' . $spool->count('pending') . '</b> · failed: <b id="failed">' . $failed . '</b>'
            . $this->replayedNote($r) . '</p>'
            . '<form method="post" action="' . $e("/admin/webhooks/replay$q") . '">'
            . '<input type="hidden" name="csrf" value="' . $e($token) . '">'
            . '<button id="replay" type="submit"' . ($failed === 0 ? ' disabled' : '') . '>Replay failed deliveries</button></form></section>';
        return $this->respond('amoCRM gateway', $body)
            ->withCookie(self::CSRF_COOKIE . '=' . $token . '; Path=/admin; HttpOnly; SameSite=Strict' . ($r->secure ? '; Secure' : ''));
    }

    /** POST /admin/webhooks/replay: the failed deliveries of the account, then back to the page. */
    public function replay(Request $r, string $account): Response
    {
        $sent = \AmoGateway\Http\FormParser::urlencoded($r->body(4096))['csrf'] ?? '';
        $cookie = $r->cookies[self::CSRF_COOKIE] ?? '';
        if (!is_string($sent) || $cookie === '' || !hash_equals($cookie, $sent)) {
            throw new HttpError(403, 'Forbidden', 'the form is stale or came from another site: reload /admin and press the button again');
        }
        [$ok, $failed] = (new Spool($this->config))->replay(false, $account);
        Log::write("admin: webhooks replayed for account $account: $ok delivered, $failed still failing");
        $q = ['replayed' => "$ok,$failed"] + ($account === Config::DEFAULT_ACCOUNT ? [] : ['account' => $account]);
        return new Response(303, '', ['Location' => '/admin?' . http_build_query($q)]);
    }

    /** The page's form token: the browser's cookie while it is well-formed, else a new one. */
    private function csrfToken(Request $r): string
    {
        $have = $r->cookies[self::CSRF_COOKIE] ?? '';
        return preg_match('/^[0-9a-f]{32}$/', $have) === 1 ? $have : bin2hex(random_bytes(16));
    }

    private function replayedNote(Request $r): string
    {
        $v = $r->query['replayed'] ?? null;
        if (!is_string($v) || preg_match('/^(\d{1,9}),(\d{1,9})$/', $v, $m) !== 1) {
            return '';
        }
        return ' · <span id="replayed">replayed: ' . $m[1] . ' delivered, ' . $m[2] . ' still failing</span>';
    }

    private function accountsNav(string $current): string
    {
        if (count($this->config->accounts) < 2) {
            return '';
        }
        $e = self::escaper();
        $links = array_map(static fn (string $a): string => $a === $current
            ? '<b>' . $e($a) . '</b>'
            : '<a href="' . $e('/admin?account=' . rawurlencode($a)) . '">' . $e($a) . '</a>', $this->config->accounts);
        return '<nav>Accounts: ' . implode(' · ', $links) . '</nav>';
    }

    /** @param array<string, mixed> $status */
    private static function lives(array $status): string
    {
        $bar = static function (string $id, string $what, ?int $left, int $full): string {
            $left = max(0, (int) $left);
            $days = $left >= 86400 ? sprintf('%.1f days', $left / 86400) : sprintf('%.1f hours', $left / 3600);
            return '<p><label for="' . $id . '">' . $what . ': ' . $days . ' left</label><br>'
                . '<meter id="' . $id . '" min="0" max="' . $full . '" low="' . intdiv($full, 10) . '" optimum="' . $full . '" value="' . min($left, $full) . '"></meter></p>';
        };
        if ($status['mode'] === 'long_lived') {
            return $bar('access-life', 'Long-lived token', $status['expires_in'], max(1, (int) $status['expires_in']));
        }
        return $bar('access-life', 'Access token (renewed before it ends)', $status['expires_in'], self::ACCESS_LIFE)
            . $bar('refresh-life', 'Refresh token (dies unused after 90 days; keepalive renews it)', $status['refresh_expires_in'], self::REFRESH_LIFE);
    }

    /** @param list<array{at: int, outcome: string, reason: string}> $refreshes newest first */
    private static function refreshes(array $refreshes): string
    {
        $e = self::escaper();
        $rows = '';
        foreach ($refreshes as $x) {
            $rows .= '<tr class="' . ($x['outcome'] === 'ok' ? 'ok' : 'bad') . '"><td>' . gmdate('Y-m-d H:i:s', (int) $x['at']) . ' UTC</td>'
                . '<td>' . $e((string) $x['outcome']) . '</td><td>' . $e((string) ($x['reason'] ?? '')) . '</td></tr>';
        }
        return '<section id="refreshes"><h2>Last refreshes</h2>'
            . ($rows === '' ? '<p>None recorded yet.</p>' : '<table><tr><th>when</th><th>outcome</th><th>why</th></tr>' . $rows . '</table>')
            . '</section>';
    }

    /**
     * API calls per minute over the last 24 hours: one polyline per status
     * class, 1440 points each (a minute without calls is 0).
     *
     * @param list<array<string, int>> $minutes
     */
    private static function chart(array $minutes, int $now): string
    {
        $end = intdiv($now, 60) * 60;
        $start = $end - 1439 * 60;
        $counts = [];
        $total = array_fill_keys(array_keys(self::SERIES), 0);
        foreach ($minutes as $m) {
            $at = (int) ($m['at'] ?? 0);
            if ($at < $start || $at > $end) {
                continue;
            }
            foreach (self::SERIES as $k => $_) {
                $n = (int) ($m[$k] ?? 0);
                $counts[$k][intdiv($at - $start, 60)] = $n;
                $total[$k] += $n;
            }
        }
        $max = 1;
        foreach ($counts as $series) {
            $max = max($max, ...array_values($series));
        }
        [$w, $h] = [720, 160];
        $svg = '<svg id="calls-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' . ($w + 40) . ' ' . ($h + 20) . '" role="img" aria-label="API calls per minute, last 24 hours">'
            . '<line x1="40" y1="' . $h . '" x2="' . ($w + 40) . '" y2="' . $h . '" stroke="#999"/>'
            . '<text x="36" y="10" text-anchor="end" font-size="10">' . $max . '</text><text x="36" y="' . $h . '" text-anchor="end" font-size="10">0</text>'
            . '<text x="40" y="' . ($h + 14) . '" font-size="10">' . gmdate('M j, H:i', $start) . ' UTC</text>'
            . '<text x="' . ($w + 40) . '" y="' . ($h + 14) . '" text-anchor="end" font-size="10">' . gmdate('M j, H:i', $end) . ' UTC</text>';
        $legend = '';
        foreach (self::SERIES as $k => $color) {
            $points = [];
            for ($i = 0; $i < 1440; $i++) {
                $points[] = sprintf('%.1f,%.1f', 40 + $i * $w / 1439, $h - ($counts[$k][$i] ?? 0) * ($h - 4) / $max);
            }
            $svg .= '<polyline class="series" data-status="' . $k . '" fill="none" stroke="' . $color . '" stroke-width="1" points="' . implode(' ', $points) . '"/>';
            $legend .= '<li data-status="' . $k . '"><svg width="10" height="10"><rect width="10" height="10" fill="' . $color . '"/></svg> ' . $k . ': <b>' . $total[$k] . '</b></li>';
        }
        return '<section id="calls"><h2>API calls per minute, last 24 hours</h2>' . $svg . '</svg>'
            . '<ul class="legend">' . $legend . '</ul></section>';
    }

    /**
     * @param ?array<string, mixed> $m
     * @param list<array<string, int>> $minutes
     */
    private static function limits(?array $m, array $minutes): string
    {
        if ($m === null) {
            return '';
        }
        $waits = array_sum(array_map(static fn (array $x): int => (int) ($x['waits'] ?? 0), $minutes));
        $waitMs = array_sum(array_map(static fn (array $x): int => (int) ($x['wait_ms'] ?? 0), $minutes));
        return '<section id="limits"><h2>Rate limit</h2><p>'
            . 'Waits for the 7-per-second budget in the last 24 hours: <b id="rate-limit-waits-24h">' . $waits . '</b>'
            . sprintf(' (%.1f s)', $waitMs / 1000)
            . ' · since the start: <b id="rate-limit-waits">' . (int) $m['rate_limit_waits'] . '</b>'
            . sprintf(' (%.1f s)', $m['rate_limit_wait_ms'] / 1000)
            . ' · 429 answers: <b id="rate-limited">' . (int) $m['rate_limited'] . '</b>'
            . ' · retries: ' . (int) $m['retries']
            . ' · refreshes: ' . (int) $m['refreshes'] . ' (' . (int) $m['refresh_failures'] . ' failed)'
            . '</p><p><small>Counted on this host since its token folder was set up.</small></p></section>';
    }

    private function respond(string $title, string $body): Response
    {
        $css = 'body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}'
            . 'h1{font-size:1.5rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}.ok{color:#1b7f3b}.bad{color:#b3261e}'
            . 'meter{width:100%;height:1.1rem}table{border-collapse:collapse}td,th{padding:.15rem .6rem;text-align:left;border-bottom:1px solid #eee}'
            . 'svg#calls-chart{width:100%;height:auto;background:#fafafa}.legend{list-style:none;padding:0;display:flex;gap:1rem}'
            . 'code{background:#f3f3f3;padding:.1rem .3rem}a{color:#0b57d0}';
        $e = self::escaper();
        $html = '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            . '<title>' . $e($title) . '</title><style>' . $css . '</style></head><body>' . $body . '</body></html>';
        // No script at all; this page's own style; forms post only here; no framing.
        return Response::html($html, 200, [
            'Content-Security-Policy' => "default-src 'none'; style-src 'sha256-" . base64_encode(hash('sha256', $css, true)) . "'; "
                . "img-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            'X-Frame-Options' => 'DENY',
            'Referrer-Policy' => 'no-referrer',
        ]);
    }

    /** @return \Closure(string): string */
    private static function escaper(): \Closure
    {
        return static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    }
}
