<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\App;
use AmoGateway\Config;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Page;
use AmoGateway\Storage\FileStore;

/** Connects the gateway to an amoCRM account: consent page, then the callback. */
final class OAuthController
{
    private const COOKIE = 'amocrm_oauth_state';
    private const STATE_TTL = 1200; // amoCRM's codes live 20 minutes

    public function __construct(private readonly Config $config)
    {
    }

    /** GET /oauth/authorize: a fresh state bound to this browser, then amoCRM's consent page. */
    public function authorize(Request $r): Response
    {
        $state = bin2hex(random_bytes(16));
        $issued = (string) time();
        $cookie = $state . '.' . $issued . '.' . $this->sign($state . '.' . $issued);
        $url = \AmoClient::getInstance()->authorizationUrl($state, 'post_message');
        return Response::redirect($url)->withCookie(self::COOKIE . '=' . $cookie . '; Path=/oauth; Max-Age=' . self::STATE_TTL
            . '; HttpOnly; SameSite=Lax' . ($r->secure ? '; Secure' : ''));
    }

    /** GET /oauth/callback: amoCRM sends the admin back here with code and referer. */
    public function callback(Request $r): Response
    {
        $clear = self::COOKIE . '=; Path=/oauth; Max-Age=0; HttpOnly; SameSite=Lax';
        $q = $r->query;
        $stateOk = $this->stateMatches($r->cookies[self::COOKIE] ?? '', is_string($q['state'] ?? null) ? $q['state'] : '');
        if (($q['error'] ?? '') === 'access_denied') {
            return Page::render('Access was denied', 'The amoCRM account owner refused access. Nothing changed: the gateway keeps its current tokens.', 200, null, 'error')->withCookie($clear);
        }
        if (!$stateOk) {
            return Page::render('Authorization refused', 'The state does not match the one this browser was given (an old or forged link). Start again at /oauth/authorize.', 400, null, 'error')->withCookie($clear);
        }
        $code = is_string($q['code'] ?? null) ? $q['code'] : '';
        $referer = is_string($q['referer'] ?? null) ? $q['referer'] : '';
        if ($code === '' || $referer === '') {
            return Page::render('Authorization refused', 'amoCRM did not send a code and a referer.', 400, null, 'error')->withCookie($clear);
        }
        if (!$this->claim((string) $q['state'])) {
            return Page::render('Authorization refused', 'This authorization link was already used (a replayed or reloaded callback); nothing was sent to amoCRM. Start again at /oauth/authorize.', 400, null, 'error')->withCookie($clear);
        }
        try {
            $status = \AmoClient::getInstance()->exchangeCode($code, $referer);
        } catch (\AmoConfigException $e) {
            return Page::render('Authorization refused', 'The account host in the callback is not an allowed amoCRM domain; nothing was sent to it.', 400, $e->getMessage(), 'error')->withCookie($clear);
        } catch (\AmoAuthException $e) {
            return Page::render('Authorization refused', 'amoCRM refused the authorization code. Start again at /oauth/authorize.', 400, $e->getDescription() ?: $e->getTitle(), 'error')->withCookie($clear);
        }
        $until = gmdate('Y-m-d H:i', (int) $status['expires_at']) . ' UTC';
        return Page::render('Connected', "The gateway is connected to {$status['base_domain']}. The access token is valid until $until and renews itself; nobody needs to touch it again.", 200, null, 'ok')->withCookie($clear);
    }

    /**
     * Marks a state used, once for all workers: the exclusive create of a
     * file named after it succeeds for exactly one callback. The files are
     * swept once their state could no longer pass stateMatches() anyway.
     */
    private function claim(string $state): bool
    {
        $store = new FileStore($this->config->dataDir . '/oauth-states');
        $path = $store->dir() . '/' . hash('sha256', $state) . '.used';
        $f = FileStore::openPrivate($path, 'x');
        if ($f === false) {
            clearstatcache(true, $path);
            if (file_exists($path)) {
                return false;
            }
            throw new \RuntimeException("cannot create $path");
        }
        fclose($f);
        App::defer(static fn () => $store->sweepEvery(600, self::STATE_TTL + 60));
        return true;
    }

    private function sign(string $data): string
    {
        return hash_hmac('sha256', $data, $this->config->secret);
    }

    private function stateMatches(string $cookie, string $state): bool
    {
        $parts = explode('.', $cookie);
        if (count($parts) !== 3) {
            return false;
        }
        [$expected, $issued, $mac] = $parts;
        $signed = hash_equals($this->sign($expected . '.' . $issued), $mac);
        $fresh = preg_match('/^\d{1,12}$/', $issued) === 1 && time() - (int) $issued <= self::STATE_TTL;
        return $signed && $fresh && hash_equals($expected, $state);
    }
}
