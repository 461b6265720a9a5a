<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\Config;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\Response;
use AmoGateway\Storage\FileStore;

/**
 * Reference data for websites (pipelines, fields, users), cached so that site
 * traffic does not spend amoCRM's 7 requests per second. One worker fetches
 * while the others wait for its answer.
 */
final class InfoController
{
    private const ENTITIES = ['leads', 'contacts', 'companies', 'customers'];

    /** @param string $account the account of the caller's API key: its own cache, its own calls */
    public function __construct(private readonly Config $config, private readonly string $account)
    {
    }

    public function show(string $what, ?string $entity): Response
    {
        if ($entity !== null && !in_array($entity, self::ENTITIES, true)) {
            throw new HttpError(404, 'Not Found', "custom fields exist for " . implode(', ', self::ENTITIES) . ", not `$entity`");
        }
        $name = str_replace('/', '-', $what) . '.json';
        $fetch = function () use ($what, $entity): array {
            $amo = \AmoClient::getInstance($this->account);
            return match (true) {
                $what === 'account' => $amo->account(['amojo_id', 'task_types', 'users_groups', 'datetime_settings']),
                $what === 'pipelines' => iterator_to_array($amo->pipelines()->iterate(), false),
                $what === 'users' => iterator_to_array($amo->users()->iterate(['limit' => 250]), false),
                default => iterator_to_array($amo->customFields((string) $entity)->iterate(['limit' => 250]), false),
            };
        };
        $ttl = $this->config->infoCacheTtl;
        if ($ttl === 0) {
            return Response::json($fetch(), 200, ['X-Cache' => 'BYPASS']);
        }
        // A folder per account: one account's cache never answers another's request.
        $cache = new FileStore($this->config->dataDir . '/cache/' . $this->account);
        $fresh = static fn (?array $hit): bool => $hit !== null && ($hit['at'] ?? 0) + $ttl > time();
        $hit = $cache->read($name);
        if ($fresh($hit)) {
            return Response::json($hit['data'], 200, ['X-Cache' => 'HIT']);
        }
        return $cache->locked($name, function () use ($cache, $name, $fresh, $fetch): Response {
            $hit = $cache->read($name);
            if ($fresh($hit)) {
                return Response::json($hit['data'], 200, ['X-Cache' => 'HIT']);
            }
            $data = $fetch();
            $cache->write($name, ['at' => time(), 'data' => $data]);
            return Response::json($data, 200, ['X-Cache' => 'MISS']);
        });
    }
}
