<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\Accounts;
use AmoGateway\App;
use AmoGateway\Config;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Page;
use AmoGateway\Storage\FileStore;

/**
 * Connects an account of the gateway to an amoCRM account: consent page, then
 * the callback. The account travels in the state: `<account>.<random>`, sent
 * to amoCRM and bound to the admin's browser by a cookie per account, signed
 * with GATEWAY_SECRET over the account, the random part and the time. The
 * callback believes the account only when that cookie matches.
 */
final class OAuthController
{
    private const COOKIE = 'amocrm_oauth_state';
    private const STATE_TTL = 1200; // amoCRM's codes live 20 minutes

    public function __construct(private readonly Config $config)
    {
    }

    /** The state cookie of an account: one per account, so that an admin may connect several at once. */
    private static function cookieName(string $account): string
    {
        return $account === Config::DEFAULT_ACCOUNT ? self::COOKIE : self::COOKIE . '_' . $account;
    }

    /** GET /oauth/authorize[?account=]: a fresh state bound to this browser, then amoCRM's consent page. */
    public function authorize(Request $r, string $account): Response
    {
        $random = bin2hex(random_bytes(16));
        $issued = (string) time();
        $cookie = $random . '.' . $issued . '.' . $this->sign($account, $random, $issued);
        $url = \AmoClient::getInstance($account)->authorizationUrl($account . '.' . $random, 'post_message');
        return Response::redirect($url)->withCookie(self::cookieName($account) . '=' . $cookie . '; Path=/oauth; Max-Age=' . self::STATE_TTL
            . '; HttpOnly; SameSite=Lax' . ($r->secure ? '; Secure' : ''));
    }

    /** GET /oauth/callback: amoCRM sends the admin back here with code and referer. */
    public function callback(Request $r): Response
    {
        $q = $r->query;
        $state = is_string($q['state'] ?? null) ? $q['state'] : '';
        // The account part of the state only says which cookie to look at;
        // that cookie's signature covers the account.
        $account = preg_match('/^([a-z0-9][a-z0-9_-]{0,31})\.[0-9a-f]{32}$/', $state, $m) && $this->config->hasAccount($m[1]) ? $m[1] : null;
        $cookieName = self::cookieName($account ?? Config::DEFAULT_ACCOUNT);
        $clear = $cookieName . '=; Path=/oauth; Max-Age=0; HttpOnly; SameSite=Lax';
        $page = static fn (string $title, string $message, int $status, ?string $detail = null, string $tone = 'error'): Response
            => Page::render($title, $message, $status, $detail, $tone, $account)->withCookie($clear);
        $stateOk = $account !== null && $this->stateMatches($account, $r->cookies[$cookieName] ?? '', $state);
        if (($q['error'] ?? '') === 'access_denied') {
            return $page('Access was denied', 'The amoCRM account owner refused access. Nothing changed: the gateway keeps its current tokens.', 200);
        }
        if (!$stateOk) {
            return $page('Authorization refused', 'The state does not match the one this browser was given (an old or forged link). Start again at /oauth/authorize.', 400);
        }
        $code = is_string($q['code'] ?? null) ? $q['code'] : '';
        $referer = is_string($q['referer'] ?? null) ? $q['referer'] : '';
        if ($code === '' || $referer === '') {
            return $page('Authorization refused', 'amoCRM did not send a code and a referer.', 400);
        }
        $held = $this->heldElsewhere($account, $referer, $page);
        if ($held !== null) {
            return $held;
        }
        if (!$this->claim($state)) {
            return $page('Authorization refused', 'This authorization link was already used (a replayed or reloaded callback); nothing was sent to amoCRM. Start again at /oauth/authorize.', 400);
        }
        return $this->exchange($account, $code, $referer, $page, 'Start again at /oauth/authorize.');
    }

    /**
     * GET /oauth/callback with no state, from amoCRM's servers, while
     * `amocrm exchange-api-key` holds a window open for the referer (see
     * ApiKeyWindow, which the router took before calling this): the code
     * amoCRM sent for an API-key exchange.
     */
    public function apiKeyCallback(string $account, string $code, string $referer): Response
    {
        $page = static fn (string $title, string $message, int $status, ?string $detail = null, string $tone = 'error'): Response
            => Page::render($title, $message, $status, $detail, $tone, $account);
        return $this->heldElsewhere($account, $referer, $page)
            ?? $this->exchange($account, $code, $referer, $page, 'Run `amocrm exchange-api-key` again.');
    }

    /**
     * Two accounts of the gateway on one amoCRM account would each spend
     * amoCRM's 7 requests per second, and their pairs would revoke each
     * other: refused before amoCRM is asked (the code is not spent).
     */
    private function heldElsewhere(string $account, string $referer, \Closure $page): ?Response
    {
        $holder = Accounts::holderOf($this->config, $referer, $account);
        return $holder === null ? null : $page('Authorization refused', "This amoCRM account is already connected as the gateway's account `$holder`; "
            . "nothing was sent to amoCRM and `$account` was not changed. Log in to amoCRM as the account meant for `$account` and start again.", 409);
    }

    private function exchange(string $account, string $code, string $referer, \Closure $page, string $again): Response
    {
        try {
            $status = \AmoClient::getInstance($account)->exchangeCode($code, $referer);
        } catch (\AmoConfigException $e) {
            return $page('Authorization refused', 'The account host in the callback is not an allowed amoCRM domain; nothing was sent to it.', 400, $e->getMessage());
        } catch (\AmoAuthException $e) {
            return $page('Authorization refused', "amoCRM refused the authorization code. $again", 400, $e->getDescription() ?: $e->getTitle());
        }
        $until = gmdate('Y-m-d H:i', (int) $status['expires_at']) . ' UTC';
        return $page('Connected', "The gateway's account `$account` is connected to {$status['base_domain']}. The access token is valid until $until and renews itself; nobody needs to touch it again.", 200, null, 'ok');
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

    private function sign(string $account, string $random, string $issued): string
    {
        return hash_hmac('sha256', "$account\0$random\0$issued", $this->config->secret);
    }

    /** The cookie is the account's, signed, fresh, and holds the random part of the state. */
    private function stateMatches(string $account, string $cookie, string $state): bool
    {
        $parts = explode('.', $cookie);
        if (count($parts) !== 3) {
            return false;
        }
        [$random, $issued, $mac] = $parts;
        $signed = hash_equals($this->sign($account, $random, $issued), $mac);
        $fresh = preg_match('/^\d{1,12}$/', $issued) === 1 && time() - (int) $issued <= self::STATE_TTL;
        return $signed && $fresh && hash_equals($account . '.' . $random, $state);
    }
}
