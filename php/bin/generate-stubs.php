<?php
/**
 * Writes php/stubs/amocrm.stub.php from the loaded extension's own reflection,
 * so the stubs declare exactly what the extension exposes. Docblocks come
 * from the table below; a class or method without one fails the generator.
 *
 *   php -d extension=target/release/libamocrm.so php/bin/generate-stubs.php > php/stubs/amocrm.stub.php
 */
declare(strict_types=1);

if (!extension_loaded('amocrm')) {
    fwrite(STDERR, "load the extension first: php -d extension=…/libamocrm.so " . $argv[0] . "\n");
    exit(2);
}

const DOCS = [
    'AmoClient' => "The amoCRM / Kommo client. One per PHP process: every handle from getInstance()\nshares the token lifecycle (load, cross-process lock, refresh) and the HTTP\nconnections, which stay open across PHP-FPM requests.\n\nConfiguration comes from configure(), else AMOCRM_<KEY> environment variables,\nelse php.ini amocrm.<key>; see the README for the keys.",
    'AmoClient::getInstance' => "Returns a handle to the process-wide client, creating it on first use.\n\n@throws AmoConfigException when a configuration value is invalid",
    'AmoClient::configure' => "Sets configuration keys for this process. Call before first use; repeating\nthe same options (as every FPM request does) is a no-op.\n\n@param array<string, string|int|bool|list<string>> \$options e.g. ['client_id' => '…', 'token_path' => '/var/lib/amocrm/tokens.json']\n@throws AmoConfigException naming an unknown key or an invalid value, or when other options were already in use",
    'AmoClient::authorizationUrl' => "The amoCRM consent page to send an admin to.\n\n@param string \$state an unguessable value bound to the admin's browser, checked on callback\n@param string \$mode 'post_message' or 'popup'\n@throws AmoConfigException",
    'AmoClient::exchangeCode' => "Exchanges the OAuth callback's code for a token pair and stores it. The\nreferer is checked against allowed_domains before any network I/O.\n\n@return array{authorized: bool, mode: string, base_domain: ?string, expires_at: ?int, expires_in: ?int, updated_at: ?int, refresh_expires_at: ?int, token_path: ?string}\n@throws AmoConfigException for a referer outside allowed_domains (nothing is sent)\n@throws AmoAuthException when amoCRM refuses the code\n@throws AmoTransportException|AmoStorageException|AmoApiException",
    'AmoClient::tokenStatus' => "The token status; never a token or the secret.\n\n@return array{authorized: bool, mode: string, base_domain: ?string, expires_at: ?int, expires_in: ?int, updated_at: ?int, refresh_expires_at: ?int, token_path: ?string}\n@throws AmoStorageException when the token file cannot be read or is corrupt",
    'AmoClient::refreshToken' => "Refreshes under the cross-process lock: always when \$force, otherwise only\nwithin refresh_margin of expiry. Returns the token status.\n\n@return array{authorized: bool, mode: string, base_domain: ?string, expires_at: ?int, expires_in: ?int, updated_at: ?int, refresh_expires_at: ?int, token_path: ?string}\n@throws AmoAuthException when amoCRM refuses the refresh token (re-authorize)\n@throws AmoTransportException when amoCRM cannot be reached (the stored pair is kept)\n@throws AmoStorageException|AmoConfigException|AmoApiException",
    'AmoClient::request' => "Sends a request to amoCRM's API with a fresh token and returns the decoded\nJSON as arrays, or null for 204 (an empty list or a missing id). A 401 is\nretried once with a newer or refreshed token, same method and body.\n\n@param string \$method GET, POST, PATCH, PUT or DELETE\n@param string \$path e.g. '/api/v4/leads'\n@param array<string, mixed>|null \$query e.g. ['filter' => ['id' => [1, 2]], 'with' => ['contacts'], 'page' => 2]\n@param mixed \$body arrays and scalars, sent as JSON\n@return array<mixed>|null\n@throws AmoAuthException|AmoValidationException|AmoRateLimitException|AmoTransportException|AmoApiException|AmoStorageException|AmoConfigException",
    'AmoClient::withContextUser' => "A handle that sends X-Context-User-ID, so the token acts as that user.\n\n@throws AmoConfigException for an id that is not positive",
    'AmoClient::getContextUser' => "The user id this handle sends as X-Context-User-ID, or null.",
    'AmoClient::panicForTest' => "For the test suite: panics inside Rust when AMOCRM_TEST_HOOKS=1 is in the\nenvironment, to prove a panic becomes a PHP \\Error and the process goes on.\n\n@throws AmoConfigException when AMOCRM_TEST_HOOKS=1 is not set",
    'AmoException' => "Base of every exception the extension throws. The accessors match the\nofficial library's AmoCRMApiException, so catch blocks port by renaming.",
    'AmoException::getTitle' => "amoCRM's title for the error (or a short label), '' when none.",
    'AmoException::getDescription' => "amoCRM's detail or hint, or an excerpt of a body that was not JSON; '' when none.",
    'AmoException::getErrorCode' => "The HTTP status, or 0 when no answer came.",
    'AmoException::getValidationErrors' => "amoCRM's validation-errors list (400), [] when none.\n\n@return list<array{request_id: string, errors: list<array{code: string, path: string, detail: string}>}>",
    'AmoException::getLastRequestInfo' => "What was sent and what came back; never a token or the secret.\n\n@return array{method?: string, url?: string, status?: int, request_id?: ?string}",
    'AmoAuthException' => "Not authorized, the refresh token was refused (re-authorize), or 401 twice.",
    'AmoValidationException' => "amoCRM answered 400 with validation-errors; see getValidationErrors().",
    'AmoRateLimitException' => "amoCRM answered 429, or 403 with its account-block page.",
    'AmoTransportException' => "Connect, TLS, timeout or a dropped connection; no usable answer came.",
    'AmoConfigException' => "A configuration key or an argument is invalid; the message names it.",
    'AmoStorageException' => "The token file or its lock cannot be read or written; the message names the path.",
    'AmoApiException' => "Any other non-2xx answer, or an answer that cannot be understood.",
];

function doc(string $key, string $indent): string
{
    if (!isset(DOCS[$key])) {
        fwrite(STDERR, "no docblock for $key: add one to " . __FILE__ . "\n");
        exit(1);
    }
    $lines = explode("\n", DOCS[$key]);
    $out = "$indent/**\n";
    foreach ($lines as $l) {
        $out .= rtrim("$indent * $l") . "\n";
    }
    return $out . "$indent */\n";
}

function type(?ReflectionType $t): string
{
    return $t === null ? '' : ((string) $t) . ' ';
}

function param(ReflectionParameter $p): string
{
    $s = type($p->getType()) . '$' . $p->getName();
    if ($p->isOptional()) {
        $s .= ' = ' . ($p->isDefaultValueAvailable() ? var_export($p->getDefaultValue(), true) : 'null');
    }
    return str_replace(['NULL', 'false', 'true'], ['null', 'false', 'true'], $s);
}

$ext = new ReflectionExtension('amocrm');
$classes = $ext->getClasses();
// Base classes first, then alphabetical: a stable order for the drift test.
uksort($classes, static function (string $a, string $b) use ($classes): int {
    $depth = static function (ReflectionClass $c): int {
        $d = 0;
        while ($c = $c->getParentClass()) {
            $d++;
        }
        return $d;
    };
    return [$depth($classes[$a]), $a] <=> [$depth($classes[$b]), $b];
});

echo "<?php\n\n";
echo "// Generated by php/bin/generate-stubs.php from the amocrm extension " . phpversion('amocrm') . "; do not edit.\n";
echo "// IDE stubs: the extension declares these classes natively.\n\n";
foreach ($classes as $name => $class) {
    echo doc($name, '');
    $parent = $class->getParentClass();
    echo "class $name" . ($parent ? ' extends \\' . $parent->getName() : '') . "\n{\n";
    foreach ($class->getProperties() as $prop) {
        if ($prop->getDeclaringClass()->getName() !== $name) {
            continue;
        }
        echo "    protected \$" . $prop->getName() . " = null;\n";
    }
    $methods = array_filter($class->getMethods(), static fn ($m) => $m->getDeclaringClass()->getName() === $name);
    usort($methods, static fn ($a, $b) => [!$a->isStatic(), $a->getName()] <=> [!$b->isStatic(), $b->getName()]);
    foreach ($methods as $m) {
        if ($m->isConstructor()) {
            // The extension refuses `new AmoClient()`: use getInstance().
            echo "\n    private function __construct() {}\n";
            continue;
        }
        echo "\n" . doc("$name::" . $m->getName(), '    ');
        $params = implode(', ', array_map('param', $m->getParameters()));
        $ret = $m->hasReturnType() ? ': ' . $m->getReturnType() : '';
        echo '    public ' . ($m->isStatic() ? 'static ' : '') . 'function ' . $m->getName() . "($params)$ret {}\n";
    }
    echo "}\n\n";
}
