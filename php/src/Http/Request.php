<?php

declare(strict_types=1);

namespace AmoGateway\Http;

/** The parts of an HTTP request the gateway uses. */
final class Request
{
    /**
     * @param array<string, string> $headers lower-case names
     * @param array<string, mixed>  $query
     * @param array<string, string> $cookies
     */
    public function __construct(
        public readonly string $method,
        public readonly string $path,
        public readonly array $query = [],
        public readonly array $headers = [],
        public readonly array $cookies = [],
        private readonly ?\Closure $bodyReader = null,
        public readonly string $remoteAddr = '',
        public readonly bool $secure = false,
        private readonly ?\Closure $streamOpener = null,
    ) {
    }

    public static function fromGlobals(): self
    {
        $headers = [];
        foreach ($_SERVER as $k => $v) {
            if (str_starts_with($k, 'HTTP_')) {
                $headers[strtolower(str_replace('_', '-', substr($k, 5)))] = (string) $v;
            }
        }
        foreach (['CONTENT_TYPE' => 'content-type', 'CONTENT_LENGTH' => 'content-length'] as $k => $name) {
            if (isset($_SERVER[$k]) && $_SERVER[$k] !== '') {
                $headers[$name] = (string) $_SERVER[$k];
            }
        }
        if (!isset($headers['authorization']) && isset($_SERVER['PHP_AUTH_USER'])) {
            $headers['authorization'] = 'Basic ' . base64_encode($_SERVER['PHP_AUTH_USER'] . ':' . ($_SERVER['PHP_AUTH_PW'] ?? ''));
        }
        $path = (string) parse_url((string) ($_SERVER['REQUEST_URI'] ?? '/'), PHP_URL_PATH);
        return new self(
            strtoupper((string) ($_SERVER['REQUEST_METHOD'] ?? 'GET')),
            $path === '' ? '/' : $path,
            $_GET,
            $headers,
            array_map('strval', $_COOKIE),
            static function (int $limit): string {
                // The raw bytes: the gateway parses bodies itself (see Http\FormParser),
                // never through PHP's $_POST with its max_input_vars cut.
                $in = fopen('php://input', 'rb');
                $body = $in === false ? '' : (string) stream_get_contents($in, $limit);
                return $body;
            },
            (string) ($_SERVER['REMOTE_ADDR'] ?? ''),
            ($_SERVER['HTTPS'] ?? '') !== '' && ($_SERVER['HTTPS'] ?? '') !== 'off',
            static fn () => fopen('php://input', 'rb'),
        );
    }

    /** The same request from another client address (see TrustedProxies). */
    public function withClient(string $remoteAddr, bool $secure): self
    {
        return new self($this->method, $this->path, $this->query, $this->headers, $this->cookies, $this->bodyReader, $remoteAddr, $secure, $this->streamOpener);
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /** The media type without parameters, lower case. */
    public function contentType(): string
    {
        return strtolower(trim(explode(';', $this->header('content-type') ?? '')[0]));
    }

    /**
     * The body as a stream, for bodies too large to hold (a file upload);
     * 413 at once when Content-Length declares more than $limit bytes.
     * @return resource
     */
    public function bodyStream(int $limit)
    {
        $declared = $this->header('content-length');
        if ($declared !== null && (int) $declared > $limit) {
            throw new HttpError(413, 'Content Too Large', "the body may be at most $limit bytes");
        }
        $in = $this->streamOpener === null ? false : ($this->streamOpener)();
        if ($in === false) {
            $in = fopen('php://memory', 'rb');
        }
        return $in;
    }

    /** The body, refusing more than $limit bytes with 413. */
    public function body(int $limit): string
    {
        $declared = $this->header('content-length');
        if ($declared !== null && (int) $declared > $limit) {
            throw new HttpError(413, 'Content Too Large', "the body may be at most $limit bytes");
        }
        $body = $this->bodyReader === null ? '' : ($this->bodyReader)($limit + 1);
        if (strlen($body) > $limit) {
            throw new HttpError(413, 'Content Too Large', "the body may be at most $limit bytes");
        }
        return $body;
    }
}
