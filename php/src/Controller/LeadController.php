<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\Config;
use AmoGateway\Http\Body;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Lead\LeadMapper;
use AmoGateway\Storage\FileStore;

/** Leads from websites: create (lead + contact + company in one call), read, move. */
final class LeadController
{
    public function __construct(private readonly Config $config)
    {
    }

    /** POST /api/leads */
    public function create(Request $r): Response
    {
        $input = Body::parse($r, $this->config->maxBody);
        $key = $r->header('idempotency-key');
        if ($key === null || $key === '') {
            return $this->createNow($input);
        }
        if (strlen($key) > 255) {
            throw HttpError::badInput('Idempotency-Key', 'the Idempotency-Key header may be at most 255 characters', 400);
        }
        // Keyed by the API key too, so two clients cannot see each other's answers.
        $store = new FileStore($this->config->dataDir . '/idempotency');
        $name = hash('sha256', ($r->header('authorization') ?? '') . "\0" . $key) . '.json';
        $fingerprint = hash('sha256', json_encode($input, JSON_THROW_ON_ERROR));
        return $store->locked($name, function () use ($store, $name, $fingerprint, $input): Response {
            $seen = $store->read($name);
            if ($seen !== null && ($seen['at'] ?? 0) + $this->config->idempotencyTtl > time()) {
                if ($seen['fingerprint'] !== $fingerprint) {
                    throw HttpError::badInput('Idempotency-Key', 'this Idempotency-Key was used with a different body');
                }
                return Response::json($seen['body'], $seen['status'], ['Idempotent-Replayed' => 'true']);
            }
            $response = $this->createNow($input);
            $store->write($name, ['at' => time(), 'fingerprint' => $fingerprint, 'status' => $response->status,
                'body' => json_decode($response->body, true)]);
            return $response;
        });
    }

    /** @param array<string, mixed> $input */
    private function createNow(array $input): Response
    {
        $item = (new LeadMapper($this->config))->complexItem($input);
        $amo = \AmoClient::getInstance();
        [$created] = $amo->leads()->addComplex([$item['lead']]);
        $noteId = null;
        if ($item['comment'] !== null) {
            try {
                $noteId = $amo->notes('leads')->addOne(['entity_id' => $created['id'], 'note_type' => 'common',
                    'params' => ['text' => $item['comment']]])['id'] ?? null;
            } catch (\AmoException $e) {
                // The lead exists: answer 201 and say the comment is missing,
                // rather than invite a retry that would create a second lead.
                error_log('amocrm gateway: lead ' . $created['id'] . ' created, its comment note failed: ' . $e->getMessage());
            }
        }
        return Response::json([
            'id' => $created['id'],
            'contact_id' => $created['contact_id'] ?? null,
            'company_id' => $created['company_id'] ?? null,
            'merged' => (bool) ($created['merged'] ?? false),
            'note_id' => $noteId,
        ], 201, ['Location' => '/api/leads/' . $created['id']]);
    }

    /** GET /api/leads/{id} */
    public function show(int $id): Response
    {
        $lead = \AmoClient::getInstance()->leads()->getOne($id, ['contacts']);
        if ($lead === null) {
            throw new HttpError(404, 'Not Found', "no lead $id in amoCRM");
        }
        return Response::json($lead);
    }

    /** PATCH /api/leads/{id}: move to a status, rename, reprice, retag, set mapped fields. */
    public function update(Request $r, int $id): Response
    {
        $input = Body::parse($r, $this->config->maxBody, false);
        $allowed = ['name', 'price', 'status_id', 'pipeline_id', 'responsible_user_id', 'tags', 'fields'];
        foreach (array_keys($input) as $k) {
            if (!in_array($k, $allowed, true)) {
                throw HttpError::badInput((string) $k, "`$k` cannot be changed here; allowed: " . implode(', ', $allowed));
            }
        }
        if ($input === []) {
            throw HttpError::badInput('body', 'nothing to change');
        }
        $patch = ['id' => $id];
        foreach (['price' => 0, 'status_id' => 1, 'pipeline_id' => 1, 'responsible_user_id' => 1] as $k => $min) {
            if (array_key_exists($k, $input)) {
                if (!is_int($input[$k]) || $input[$k] < $min) {
                    throw HttpError::badInput($k, "$k must be a whole number of at least $min");
                }
                $patch[$k] = $input[$k];
            }
        }
        if (array_key_exists('name', $input)) {
            if (!is_string($input['name']) || trim($input['name']) === '' || strlen($input['name']) > 1020) {
                throw HttpError::badInput('name', 'name must be non-empty text');
            }
            $patch['name'] = trim($input['name']);
        }
        if (array_key_exists('tags', $input)) {
            $tags = $input['tags'];
            if (!is_array($tags) || !array_is_list($tags) || array_filter($tags, static fn ($t) => !is_string($t))) {
                throw HttpError::badInput('tags', 'tags must be a list of names');
            }
            $patch['tags_to_add'] = array_map(static fn (string $t) => ['name' => $t], $tags);
        }
        if (array_key_exists('fields', $input)) {
            $mapped = (new LeadMapper($this->config))->complexItem(['name' => 'x', 'fields' => $input['fields']]);
            if (isset($mapped['lead']['custom_fields_values'])) {
                $patch['custom_fields_values'] = $mapped['lead']['custom_fields_values'];
            }
        }
        return Response::json(\AmoClient::getInstance()->leads()->updateOne($patch));
    }
}
