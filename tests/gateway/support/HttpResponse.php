<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/** One HTTP answer as a client sees it. */
final class HttpResponse
{
    /**
     * @param array<string, list<string>> $headers lower-case names
     */
    public function __construct(
        public string $method,
        public string $url,
        public int $status,
        public array $headers,
        public string $body,
        public float $seconds,
    ) {
    }

    /** The last value of a header, or null. */
    public function header(string $name): ?string
    {
        $v = $this->headers[strtolower($name)] ?? [];
        return $v ? $v[count($v) - 1] : null;
    }

    /** The body decoded as JSON (arrays), or null. */
    public function json(): mixed
    {
        return json_decode($this->body, true);
    }

    public function contentType(): string
    {
        return strtolower(trim(explode(';', (string) $this->header('content-type'))[0]));
    }

    /** For assertion messages. */
    public function describe(): string
    {
        $h = [];
        foreach ($this->headers as $k => $vs) {
            foreach ($vs as $v) {
                $h[] = "$k: $v";
            }
        }
        return sprintf("%s %s → %d\n%s\n\n%s", $this->method, $this->url, $this->status, implode("\n", $h), substr($this->body, 0, 3000));
    }
}
