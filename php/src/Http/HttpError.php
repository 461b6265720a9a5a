<?php

declare(strict_types=1);

namespace AmoGateway\Http;

/** An error answer, rendered as a problem document (RFC 9457). */
final class HttpError extends \RuntimeException
{
    /** @param array<string, mixed> $extra  e.g. ['field' => 'contact.email'] */
    public function __construct(
        public readonly int $status,
        public readonly string $title,
        string $detail = '',
        public readonly array $extra = [],
        /** @var array<string, string> */
        public readonly array $headers = [],
    ) {
        parent::__construct($detail);
    }

    public static function badInput(string $field, string $detail, int $status = 422): self
    {
        return new self($status, $status === 400 ? 'Bad Request' : 'Unprocessable Content', $detail, ['field' => $field]);
    }

    public function toResponse(): Response
    {
        $body = ['type' => 'about:blank', 'title' => $this->title, 'status' => $this->status];
        if ($this->getMessage() !== '') {
            $body['detail'] = $this->getMessage();
        }
        $response = Response::json($body + $this->extra, $this->status, $this->headers);
        return $response->withHeader('Content-Type', 'application/problem+json');
    }
}
