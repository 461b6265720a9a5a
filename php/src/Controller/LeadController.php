<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\Config;
use AmoGateway\Http\Body;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Lead\Idempotency;
use AmoGateway\Lead\LeadMapper;
use AmoGateway\Log;

/** Leads from websites: create (lead + contact + company in one call), read, move. */
final class LeadController
{
    /** Leads created since an unknown outcome that the search looks at, at most (5 pages of 250). */
    private const SEARCH_PAGES = 5;
    /** Seconds before the first attempt the search starts: clock skew between this host and amoCRM. */
    private const SEARCH_MARGIN = 600;

    /** @param string $account the account of the caller's API key: every call goes to it */
    public function __construct(private readonly Config $config, private readonly string $account)
    {
    }

    private function amo(): \AmoClient
    {
        return \AmoClient::getInstance($this->account);
    }

    /**
     * POST /api/leads
     * @param string $client who calls (ApiCaller::$id): Idempotency-Key records are theirs alone
     */
    public function create(Request $r, string $client): Response
    {
        $item = (new LeadMapper($this->config))->complexItem(Body::parse($r, $this->config->maxBody));
        $key = $r->header('idempotency-key');
        if ($key === null || $key === '') {
            return $this->createNow($item, null);
        }
        // The canonical input: the mapped item, whatever the key order or the body's format.
        $fingerprint = hash('sha256', json_encode($item, JSON_THROW_ON_ERROR));
        return (new Idempotency($this->config, $client, $key))->run(
            $fingerprint,
            fn (string $marker): Response => $this->createNow($item, $marker),
            fn (string $marker, int $since): ?Response => $this->findCreated($item, $marker, $since),
        );
    }

    /** @param array{lead: array<string, mixed>, comment: ?string} $item */
    private function createNow(array $item, ?string $marker): Response
    {
        $lead = $item['lead'];
        if ($marker !== null) {
            $lead['_embedded']['tags'][] = ['name' => $marker];
        }
        [$created] = $this->amo()->leads()->addComplex([$lead]);
        return $this->created($created['id'], $created['contact_id'] ?? null, $created['company_id'] ?? null,
            (bool) ($created['merged'] ?? false), $this->addComment($created['id'], $item['comment']));
    }

    /**
     * The lead an earlier attempt created, found by its marker tag among the
     * leads created since (the comment note is added now: that attempt failed
     * before it). 503 when there are too many leads to look through.
     * @param array{lead: array<string, mixed>, comment: ?string} $item
     */
    private function findCreated(array $item, string $marker, int $since): ?Response
    {
        $leads = $this->amo()->leads();
        for ($page = 1; $page <= self::SEARCH_PAGES; $page++) {
            $found = $leads->get(['filter' => ['created_at' => ['from' => $since - self::SEARCH_MARGIN]], 'with' => ['contacts'], 'limit' => 250, 'page' => $page]);
            foreach ($found as $lead) {
                foreach ($lead['_embedded']['tags'] ?? [] as $tag) {
                    if (($tag['name'] ?? null) === $marker) {
                        // `merged` is not known any more: null, not a guess.
                        return $this->created($lead['id'], $lead['_embedded']['contacts'][0]['id'] ?? null,
                            $lead['_embedded']['companies'][0]['id'] ?? null, null, $this->addComment($lead['id'], $item['comment']));
                    }
                }
            }
            if (count($found) < 250) {
                return null;
            }
        }
        throw new HttpError(503, 'amoCRM outcome unknown', 'more than ' . (self::SEARCH_PAGES * 250) . " leads were created since the first attempt; look for tag $marker in amoCRM. Nothing was created.", [], ['Retry-After' => '60']);
    }

    private function addComment(int $leadId, ?string $comment): ?int
    {
        if ($comment === null) {
            return null;
        }
        try {
            return $this->amo()->notes('leads')->addOne(['entity_id' => $leadId, 'note_type' => 'common',
                'params' => ['text' => $comment]])['id'] ?? null;
        } catch (\AmoException $e) {
            // The lead exists: answer 201 and say the comment is missing,
            // rather than invite a retry that would create a second lead.
            Log::write("lead $leadId created, its comment note failed: " . get_class($e) . ': ' . $e->getMessage());
            return null;
        }
    }

    private function created(int $id, ?int $contactId, ?int $companyId, ?bool $merged, ?int $noteId): Response
    {
        return Response::json(['id' => $id, 'contact_id' => $contactId, 'company_id' => $companyId, 'merged' => $merged, 'note_id' => $noteId],
            201, ['Location' => '/api/leads/' . $id]);
    }

    /** GET /api/leads/{id} */
    public function show(int $id): Response
    {
        $lead = $this->amo()->leads()->getOne($id, ['contacts']);
        if ($lead === null) {
            throw new HttpError(404, 'Not Found', "no lead $id in amoCRM");
        }
        return Response::json($lead);
    }

    /** PATCH /api/leads/{id}: move to a status, rename, reprice, tag, set mapped lead fields. */
    public function update(Request $r, int $id): Response
    {
        $patch = (new LeadMapper($this->config))->patch($id, Body::parse($r, $this->config->maxBody, false));
        $leads = $this->amo()->leads();
        try {
            return Response::json($leads->updateOne($patch));
        } catch (\AmoValidationException | \AmoApiException $e) {
            // amoCRM refuses a PATCH of a missing lead as bad input: say 404.
            $refused = $e->getErrorCode() >= 400 && $e->getErrorCode() < 500;
            if ($refused && $leads->getOne($id) === null) {
                throw new HttpError(404, 'Not Found', "no lead $id in amoCRM");
            }
            throw $e;
        }
    }
}
