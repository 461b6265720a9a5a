<?php

declare(strict_types=1);

namespace AmoGateway;

use AmoGateway\Controller\AdminController;
use AmoGateway\Controller\FileController;
use AmoGateway\Controller\InfoController;
use AmoGateway\Controller\LeadController;
use AmoGateway\Controller\OAuthController;
use AmoGateway\Controller\StatusController;
use AmoGateway\Controller\WebhookController;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Storage\FileStore;

/** Bootstrap and routing: one instance per PHP request. */
final class App
{
    /** @var list<\Closure(): void> work to do after the answer was sent */
    private static array $deferred = [];
    /** The account this request works on, once the route knows it (for messages and the log). */
    private static ?string $account = null;

    private function __construct(private readonly ?Config $config, private readonly ?ConfigError $configError)
    {
    }

    public static function fromEnvironment(): self
    {
        try {
            $config = Config::load();
            self::configureClient($config);
            return new self($config, null);
        } catch (ConfigError $e) {
            return new self(null, $e);
        } catch (\AmoConfigException $e) {
            return new self(null, new ConfigError($e->getMessage()));
        }
    }

    /** At most this many accounts are kept alive after one answer (see keepAlive()). */
    public const KEEPALIVE_PER_REQUEST = 10;

    /**
     * Hands each account's AMOCRM_* keys to the extension (the same options
     * on every request: one comparison per account after the first). A
     * refusal names the .env key that set the value.
     */
    public static function configureClient(#[\SensitiveParameter] Config $config): void
    {
        foreach ($config->amocrm as $account => $options) {
            if (in_array($options['store'] ?? 'file', ['', 'file'], true)) {
                // The extension would make an account's token folder with the
                // umask's mode, owned by whoever ran first (root, for a CLI
                // run); the gateway's folders are private, owned like the
                // folder they are in. Made: a stat per account and request.
                FileStore::ensureDirLikeParent(dirname($options['token_path']));
            }
            try {
                \AmoClient::configure($options, $account);
            } catch (\AmoConfigException $e) {
                throw new ConfigError($config->explainClientError($account, $e->getMessage()));
            }
        }
    }

    /**
     * After an answer: renews the pair of every configured account that is
     * past keepalive_days (not due: a stat each), so that an account with no
     * traffic of its own never lets its refresh token die. With more than
     * KEEPALIVE_PER_REQUEST accounts, a window of that many from a random
     * start: every account is reached within a few requests, and no answer
     * is followed by more than that many checks. An account not authorized
     * has nothing to keep alive (/ready and /metrics say so): not logged.
     */
    public static function keepAlive(Config $config): void
    {
        $accounts = $config->accounts;
        $n = count($accounts);
        if ($n > self::KEEPALIVE_PER_REQUEST) {
            $start = random_int(0, $n - 1);
            $accounts = array_slice([...array_slice($accounts, $start), ...array_slice($accounts, 0, $start)], 0, self::KEEPALIVE_PER_REQUEST);
        }
        foreach ($accounts as $account) {
            try {
                \AmoClient::getInstance($account)->keepAlive();
            } catch (\AmoAuthException) {
                // not authorized, or its refresh token was refused: an admin's job
            } catch (\Throwable $e) {
                Log::write("keepalive of account $account failed: " . get_class($e) . ': ' . $e->getMessage());
            }
        }
    }

    /**
     * The account a request names in `?account=` (admin routes): `default`
     * when it names none. 400 for a value that is not an account name, 404
     * for an account that is not configured.
     */
    public static function accountParam(Request $r, Config $c): string
    {
        return self::$account = self::queryAccount($r, $c);
    }

    private static function queryAccount(Request $r, Config $c): string
    {
        $given = $r->query['account'] ?? null;
        if ($given === null || $given === '') {
            if (!$c->hasAccount(Config::DEFAULT_ACCOUNT)) {
                throw HttpError::badInput('account', 'name the account: ?account=<one of GATEWAY_ACCOUNTS>', 400);
            }
            return Config::DEFAULT_ACCOUNT;
        }
        if (!is_string($given) || !preg_match(Config::ACCOUNT_NAME, $given)) {
            throw HttpError::badInput('account', 'not an account name (1 to 32 lower-case letters, digits, _ and -)', 400);
        }
        if (!$c->hasAccount($given)) {
            throw new HttpError(404, 'Not Found', "no account `$given` is configured (GATEWAY_ACCOUNTS)", ['field' => 'account']);
        }
        return $given;
    }

    /** Runs after the answer was sent (after fastcgi_finish_request() under FPM). */
    public static function defer(\Closure $task): void
    {
        self::$deferred[] = $task;
    }

    public static function runDeferred(): void
    {
        while ($task = array_shift(self::$deferred)) {
            try {
                $task();
            } catch (\Throwable $e) {
                Log::write('deferred task failed: ' . get_class($e) . ': ' . $e->getMessage());
            }
        }
    }

    public function handle(Request $request): Response
    {
        self::$account = null;
        try {
            if ($this->config === null) {
                // The specifics (the key, the .env path) go to the log only:
                // anyone may call /health.
                Log::write('configuration: ' . ($this->configError?->getMessage() ?? 'invalid'));
                return (new HttpError(500, 'Gateway misconfigured', 'the gateway\'s configuration is invalid; its error log names the key'))->toResponse();
            }
            $request = $this->config->trustedProxies->apply($request);
            // Whatever the request, after the answer: a pair past the keepalive
            // age is renewed, so that even a gateway whose only traffic is an
            // uptime monitor never lets its refresh token die (a cron job is
            // a thing an admin forgets to install). Not due: a stat.
            $config = $this->config;
            self::defer(static fn () => self::keepAlive($config));
            return $this->route($request, $this->config);
        } catch (HttpError $e) {
            if ($e->status >= 500) {
                self::logFailure($request, $e->status, $e->title . ': ' . $e->getMessage());
            }
            return $e->toResponse();
        } catch (\AmoException $e) {
            $error = self::amoError($e, self::$account);
            if ($error->status >= 500) {
                self::logFailure($request, $error->status, get_class($e) . ': ' . $e->getMessage());
            }
            return $error->toResponse();
        } catch (\Throwable $e) {
            self::logFailure($request, 500, get_class($e) . ': ' . $e->getMessage() . ' at ' . $e->getFile() . ':' . $e->getLine());
            return (new HttpError(500, 'Internal Server Error', 'the gateway failed; see its error log'))->toResponse();
        }
    }

    /** Every 5xx leaves its cause in the log (the extension's messages carry no token). */
    private static function logFailure(Request $r, int $status, string $cause): void
    {
        $account = self::$account !== null && self::$account !== Config::DEFAULT_ACCOUNT ? ' (account ' . self::$account . ')' : '';
        Log::write("$status for {$r->method} " . Log::path($r->path) . "$account: $cause");
    }

    private function route(Request $r, Config $c): Response
    {
        // HEAD is GET without the body (Response::send leaves it out).
        $m = $r->method === 'HEAD' ? 'GET' : $r->method;
        $p = $r->path;
        $auth = new Auth($c);
        if ($p === '/health') {
            return StatusController::health();
        }
        if ($p === '/ready') {
            return (new StatusController($c))->ready(($r->query['account'] ?? '') === '' ? null : self::accountParam($r, $c));
        }
        if (preg_match('#^/webhooks/amocrm/([^/]+)$#', $p, $x)) {
            self::only($m, 'POST');
            $account = self::$account = $auth->webhook($r, $x[1]);
            return (new WebhookController($c))->receive($r, $account);
        }
        if (in_array($p, ['/oauth/authorize', '/oauth/callback', '/oauth/status', '/metrics'], true)) {
            self::only($m, 'GET');
            // The code amoCRM's servers send after an API-key exchange comes
            // without the admin credential: taken only while the admin's
            // `amocrm exchange-api-key` holds a window open for its referer.
            [$code, $referer] = [$r->query['code'] ?? null, $r->query['referer'] ?? null];
            if ($p === '/oauth/callback' && $m === 'GET' && !isset($r->query['state']) && is_string($code) && $code !== ''
                && is_string($referer) && ($account = ApiKeyWindow::take($c, $referer)) !== null) {
                self::$account = $account;
                return (new OAuthController($c))->apiKeyCallback($account, $code, $referer);
            }
            $auth->admin($r);
            return match ($p) {
                '/oauth/authorize' => (new OAuthController($c))->authorize($r, self::accountParam($r, $c)),
                // HEAD is safe: it must not spend amoCRM's single-use code (or the state).
                '/oauth/callback' => $r->method === 'HEAD'
                    ? Page::render('Authorization', 'A HEAD request does not exchange the code: open this address with GET.')
                    : (new OAuthController($c))->callback($r),
                '/oauth/status' => (new StatusController($c))->oauthStatus(self::accountParam($r, $c)),
                '/metrics' => (new StatusController($c))->metrics(),
            };
        }
        if ($p === '/admin' || $p === '/admin/webhooks/replay') {
            self::only($m, $p === '/admin' ? 'GET' : 'POST');
            $auth->admin($r);
            $account = self::$account = self::accountParam($r, $c);
            $admin = new AdminController($c);
            return $p === '/admin' ? $admin->page($r, $account) : $admin->replay($r, $account);
        }
        if (str_starts_with($p, '/api/')) {
            // The API key names its account: every /api/* route works on that account only.
            $caller = $auth->apiKey($r);
            self::$account = $caller->account;
            if ($p === '/api/leads') {
                self::only($m, 'POST');
                return (new LeadController($c, $caller->account))->create($r, $caller->id);
            }
            if (preg_match('#^/api/leads/(\d{1,18})$#', $p, $x)) {
                self::only($m, 'GET', 'PATCH');
                $leads = new LeadController($c, $caller->account);
                return $m === 'GET' ? $leads->show((int) $x[1]) : $leads->update($r, (int) $x[1]);
            }
            if (preg_match('#^/api/leads/(\d{1,18})/files$#', $p, $x)) {
                self::only($m, 'POST');
                return (new FileController($c, $caller->account))->upload($r, (int) $x[1]);
            }
            if (preg_match('#^/api/info/(account|pipelines|users|custom-fields/([a-z]+))$#', $p, $x)) {
                self::only($m, 'GET');
                return (new InfoController($c, $caller->account))->show($x[1], $x[2] ?? null);
            }
        }
        // The path may be the webhook URL with something appended: never echo its secret.
        throw new HttpError(404, 'Not Found', "no route for $m " . Log::path($p));
    }

    private static function only(string $method, string ...$allowed): void
    {
        if (!in_array($method, $allowed, true)) {
            $allow = in_array('GET', $allowed, true) ? [...$allowed, 'HEAD'] : $allowed;
            throw new HttpError(405, 'Method Not Allowed', 'use ' . implode(' or ', $allow), [], ['Allow' => implode(', ', $allow)]);
        }
    }

    /**
     * What an API client sees when amoCRM fails: never a token, never the secret.
     * @param ?string $account the request's account, named where an admin must act
     */
    public static function amoError(\AmoException $e, ?string $account = null): HttpError
    {
        $authorize = $account === null || $account === Config::DEFAULT_ACCOUNT
            ? 'amoCRM is not authorized; an admin must authorize at /oauth/authorize'
            : "amoCRM is not authorized for account `$account`; an admin must authorize at /oauth/authorize?account=$account";
        return match (true) {
            $e instanceof \AmoValidationException => new HttpError(422, 'amoCRM refused the data', $e->getDescription() ?: $e->getTitle(), ['errors' => $e->getValidationErrors()]),
            $e instanceof \AmoRateLimitException => $e->getErrorCode() === 403
                ? new HttpError(503, 'amoCRM blocked the account', 'amoCRM blocked the account for exceeding its request rate; try later', [], ['Retry-After' => '600'])
                : new HttpError(503, 'amoCRM rate limit', 'amoCRM is rate-limiting requests; try again shortly', [], ['Retry-After' => '2']),
            $e instanceof \AmoAuthException => new HttpError(503, 'amoCRM is not authorized', $authorize, [], ['Retry-After' => '60']),
            // A bad argument (an id) is the caller's; anything else is this
            // gateway's configuration (a ca_file it cannot read): the log has it.
            $e instanceof \AmoConfigException => $e->getTitle() === 'Invalid argument'
                ? new HttpError(400, 'Bad Request', $e->getMessage())
                : new HttpError(500, 'Gateway misconfigured', 'the gateway\'s configuration is invalid; its error log names the key'),
            $e instanceof \AmoStorageException => new HttpError(500, 'Token storage failed', 'the gateway cannot read or write its token file; see the server log'),
            default => new HttpError(502, 'amoCRM failed', $e->getTitle() !== '' ? $e->getTitle() : 'amoCRM did not answer usably', ['amocrm_status' => $e->getErrorCode()]),
        };
    }
}
