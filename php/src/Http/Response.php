<?php

declare(strict_types=1);

namespace AmoGateway\Http;

final class Response
{
    /** @param array<string, string> $headers */
    public function __construct(
        public readonly int $status = 200,
        public readonly string $body = '',
        public readonly array $headers = [],
        /** @var list<string> */
        public readonly array $cookies = [],
    ) {
    }

    /** @param array<string, string> $headers */
    public static function json(mixed $data, int $status = 200, array $headers = []): self
    {
        $body = json_encode($data, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRETTY_PRINT | JSON_THROW_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION);
        return new self($status, $body . "\n", ['Content-Type' => 'application/json'] + $headers);
    }

    /** @param array<string, string> $headers */
    public static function html(string $html, int $status = 200, array $headers = []): self
    {
        return new self($status, $html, ['Content-Type' => 'text/html; charset=utf-8'] + $headers);
    }

    public static function text(string $text, int $status = 200, string $type = 'text/plain; charset=utf-8'): self
    {
        return new self($status, $text, ['Content-Type' => $type]);
    }

    public static function redirect(string $location): self
    {
        return new self(302, '', ['Location' => $location]);
    }

    public function withHeader(string $name, string $value): self
    {
        return new self($this->status, $this->body, [$name => $value] + $this->headers, $this->cookies);
    }

    public function withCookie(string $setCookie): self
    {
        return new self($this->status, $this->body, $this->headers, [...$this->cookies, $setCookie]);
    }

    /** Sends the answer; for HEAD, everything but the body. */
    public function send(bool $head = false): void
    {
        http_response_code($this->status);
        header_remove('X-Powered-By');
        header('X-Content-Type-Options: nosniff');
        header('Cache-Control: no-store');
        foreach ($this->headers as $name => $value) {
            header("$name: $value");
        }
        foreach ($this->cookies as $cookie) {
            header("Set-Cookie: $cookie", false);
        }
        if (!$head) {
            echo $this->body;
        }
    }
}
