<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Http\Response;

/** The few HTML pages an admin sees (the OAuth flow). */
final class Page
{
    /** @param ?string $account the account the page is about: its links name it */
    public static function render(string $title, string $message, int $status = 200, ?string $detail = null, string $tone = 'info', ?string $account = null): Response
    {
        $q = $account === null || $account === Config::DEFAULT_ACCOUNT ? '' : '?account=' . rawurlencode($account);
        $e = static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
        $color = ['ok' => '#1b7f3b', 'error' => '#b3261e', 'info' => '#334'][$tone] ?? '#334';
        $css = 'body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}'
            . 'h1{color:' . $color . ';font-size:1.6rem}code{background:#f3f3f3;padding:.1rem .3rem}a{color:#0b57d0}';
        $html = '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            . '<title>' . $e($title) . ' — amoCRM gateway</title>'
            . '<style>' . $css . '</style></head><body>'
            . '<h1 id="title">' . $e($title) . '</h1><p id="message">' . $e($message) . '</p>'
            . ($detail !== null ? '<p id="detail"><small>' . $e($detail) . '</small></p>' : '')
            . '<p><a href="' . $e("/oauth/status$q") . '">Token status</a> · <a href="' . $e("/oauth/authorize$q") . '">Authorize again</a></p>'
            . '</body></html>';
        // Nothing but this page's own style may load or run, and no site may frame it.
        return Response::html($html, $status, [
            'Content-Security-Policy' => "default-src 'none'; style-src 'sha256-" . base64_encode(hash('sha256', $css, true)) . "'; "
                . "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            'X-Frame-Options' => 'DENY',
            'Referrer-Policy' => 'no-referrer',
        ]);
    }
}
