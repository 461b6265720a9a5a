<?php

declare(strict_types=1);

namespace AmoGateway\Webhook;

use AmoGateway\Config;
use AmoGateway\Http\Body;
use AmoGateway\Http\FormParser;
use AmoGateway\Storage\FileStore;

/**
 * Webhook deliveries on disk: pending/ (stored before amoCRM gets its 200),
 * done/ (parsed, every handler succeeded), failed/ (the body could not be
 * parsed, or a handler threw; replayable).
 *
 * A delivery file is JSON: {"id","account","received_at","remote_addr","content_type",
 * "body" (the raw bytes when they are UTF-8) or "body_base64" (when they are
 * not), and once dispatched "parsed", "errors", "failed_at"}. Parsing always
 * starts again from the stored bytes.
 */
final class Spool
{
    public function __construct(private readonly Config $config)
    {
    }

    private function dir(string $state): string
    {
        $dir = $this->config->dataDir . '/webhooks/' . $state;
        FileStore::ensureDir($dir);
        return $dir;
    }

    /** Stores the raw body as received, with the account it came for; returns the delivery id. */
    public function store(string $body, string $contentType, string $remoteAddr, string $account = Config::DEFAULT_ACCOUNT): string
    {
        $id = sprintf('%.6F', microtime(true)) . '-' . bin2hex(random_bytes(4));
        $this->save('pending', ['id' => $id, 'account' => $account, 'received_at' => time(), 'remote_addr' => $remoteAddr,
            'content_type' => self::printable($contentType) ? $contentType : ''] + self::bodyField($body));
        return $id;
    }

    /** Parses one stored delivery and runs the handlers on it; moves it to done/ or failed/. */
    public function dispatch(string $id, string $from = 'pending'): bool
    {
        $path = $this->dir($from) . "/$id.json";
        $delivery = json_decode((string) @file_get_contents($path), true);
        if (!is_array($delivery)) {
            return false;
        }
        unset($delivery['errors'], $delivery['failed_at'], $delivery['parsed']);
        $delivery['account'] ??= Config::DEFAULT_ACCOUNT; // stored before deliveries named their account
        $body = self::bodyBytes($delivery);
        $errors = [];
        try {
            $delivery['parsed'] = self::parse($body, (string) ($delivery['content_type'] ?? ''));
        } catch (\UnexpectedValueException $e) {
            $errors[] = 'parse: ' . $e->getMessage();
        }
        if ($errors === []) {
            foreach ($this->config->webhookHandlers as $spec) {
                try {
                    self::handler($spec)->handle(['body' => $body] + array_diff_key($delivery, ['body_base64' => 1]));
                } catch (\Throwable $e) {
                    $errors[] = "$spec: " . $e->getMessage();
                }
            }
        }
        $to = $errors === [] ? 'done' : 'failed';
        if ($errors !== []) {
            $delivery['errors'] = $errors;
            $delivery['failed_at'] = time();
        }
        $this->save($to, $delivery);
        if ($to !== $from) {
            @unlink($path);
        }
        return $errors === [];
    }

    /**
     * The body as amoCRM sends it (a form with bracketed names), or JSON;
     * parsed without PHP's max_input_vars and nesting cuts (FormParser).
     * @return array<mixed>
     */
    public static function parse(string $body, string $contentType): array
    {
        $type = strtolower(trim(explode(';', $contentType)[0]));
        if ($type === 'application/json' || str_ends_with($type, '+json')) {
            try {
                $data = json_decode($body, true, Body::JSON_DEPTH, JSON_THROW_ON_ERROR);
            } catch (\JsonException $e) {
                throw new \UnexpectedValueException('the JSON body is not valid: ' . $e->getMessage());
            }
            if (!is_array($data)) {
                throw new \UnexpectedValueException('the JSON body is not an object or a list');
            }
            return $data;
        }
        return $type === 'multipart/form-data' ? FormParser::multipart($body, $contentType) : FormParser::urlencoded($body);
    }

    /**
     * Replays failed deliveries, and pending ones older than a minute (their
     * worker died before dispatching) — or every pending one with $all; only
     * those of $account when named.
     * Returns [ok, still failing].
     * @return array{0: int, 1: int}
     */
    public function replay(bool $all = false, ?string $account = null): array
    {
        $this->removeDeadTempFiles();
        $ok = $failed = 0;
        foreach (['failed' => 0, 'pending' => $all ? 0 : 60] as $state => $minAge) {
            foreach (glob($this->dir($state) . '/*.json') ?: [] as $file) {
                if (time() - (int) filemtime($file) < $minAge) {
                    continue;
                }
                if ($account !== null && (json_decode((string) @file_get_contents($file), true)['account'] ?? Config::DEFAULT_ACCOUNT) !== $account) {
                    continue;
                }
                $this->dispatch(basename($file, '.json'), $state) ? $ok++ : $failed++;
            }
        }
        return [$ok, $failed];
    }

    /**
     * A worker killed while writing a delivery leaves its temp file (the
     * delivery itself is the .json the rename makes, or amoCRM's retry). A
     * write takes milliseconds: a temp file a minute old is dead.
     */
    private function removeDeadTempFiles(): void
    {
        foreach (['pending', 'done', 'failed'] as $state) {
            foreach (glob($this->dir($state) . '/*.tmp.*') ?: [] as $tmp) {
                if (time() - (int) @filemtime($tmp) > 60) {
                    @unlink($tmp);
                }
            }
        }
    }

    public function count(string $state): int
    {
        return count(glob($this->dir($state) . '/*.json') ?: []);
    }

    /** @param array<string, mixed> $delivery */
    private function save(string $state, array $delivery): void
    {
        FileStore::writeAtomic($this->dir($state) . '/' . $delivery['id'] . '.json',
            json_encode($delivery, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR));
    }

    /** @return array{body: string}|array{body_base64: string} JSON holds UTF-8 only: other bytes go in base64, losslessly. */
    private static function bodyField(string $body): array
    {
        return preg_match('//u', $body) === 1 ? ['body' => $body] : ['body_base64' => base64_encode($body)];
    }

    /** @param array<string, mixed> $delivery */
    private static function bodyBytes(array $delivery): string
    {
        return isset($delivery['body_base64'])
            ? (string) base64_decode((string) $delivery['body_base64'], true)
            : (string) ($delivery['body'] ?? '');
    }

    private static function printable(string $s): bool
    {
        return strlen($s) <= 255 && preg_match('/^[\x20-\x7E]*$/', $s) === 1;
    }

    private static function handler(string $spec): Handler
    {
        [$kind, $arg] = explode(':', $spec, 2);
        return match ($kind) {
            'jsonl' => new JsonLinesHandler($arg),
            'class' => class_exists($arg) && is_subclass_of($arg, Handler::class)
                ? new $arg()
                : throw new \RuntimeException("handler class $arg does not exist or does not implement " . Handler::class),
        };
    }
}
