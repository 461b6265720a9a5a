<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** request(): methods, query encoding, bodies, 204, secrets. */
final class RequestTest extends AmoTestCase
{
    public function testCreateListGetPatchRoundTrip(): void
    {
        $pair = $this->seedTokens();
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $created = $amo->request('POST', '/api/v4/leads', [], [
                ['name' => 'Сделка с сайта', 'price' => 1500, 'request_id' => 'form-1'],
                ['name' => 'second', 'price' => 0],
                ['name' => 'third'],
            ])['_embedded']['leads'];
            $ids = array_column($created, 'id');
            $page = $amo->request('GET', '/api/v4/leads', ['filter' => ['id' => [$ids[0], $ids[2]]], 'order' => ['id' => 'asc']]);
            $one = $amo->request('GET', "/api/v4/leads/{$ids[1]}");
            $patched = $amo->request('PATCH', "/api/v4/leads/{$ids[1]}", [], ['price' => 99]);
            $missing = $amo->request('GET', '/api/v4/leads/999999999');
            $empty = $amo->request('GET', '/api/v4/leads', ['query' => 'no such lead anywhere']);
            return [
                'request_ids' => array_column($created, 'request_id'),
                'filtered' => array_column($page['_embedded']['leads'], 'name'),
                'one' => [$one['name'], $one['price']],
                'patched' => $patched['id'] === $ids[1],
                'again' => $amo->request('GET', "/api/v4/leads/{$ids[1]}")['price'],
                'missing' => $missing,
                'empty' => $empty,
            ];
            PHP);
        $this->assertSame(['form-1', '1', '2'], $r['request_ids']);
        $this->assertSame(['Сделка с сайта', 'third'], $r['filtered']);
        $this->assertSame(['second', 0], $r['one']);
        $this->assertTrue($r['patched']);
        $this->assertSame(99, $r['again']);
        $this->assertNull($r['missing'], '204 on a missing id is null, not an error');
        $this->assertNull($r['empty'], '204 on an empty list is null');
    }

    public function testPaginationLinks(): void
    {
        $this->seedTokens();
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $items = [];
            for ($i = 0; $i < 7; $i++) { $items[] = ['name' => "lead $i"]; }
            $amo->request('POST', '/api/v4/leads', [], $items);
            $p1 = $amo->request('GET', '/api/v4/leads', ['limit' => 3, 'page' => 1]);
            $p3 = $amo->request('GET', '/api/v4/leads', ['limit' => 3, 'page' => 3]);
            return [count($p1['_embedded']['leads']), isset($p1['_links']['next']), $p1['_page'], count($p3['_embedded']['leads']), isset($p3['_links']['next'])];
            PHP);
        $this->assertSame([3, true, 1, 1, false], $r);
    }

    public function testBadArgumentsAreNamed(): void
    {
        $this->seedTokens();
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->request('FETCH', '/api/v4/leads');");
        $this->assertStringContainsString('`method`', $e['message']);
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->request('GET', 'https://evil.example.com/api/v4/leads');");
        $this->assertStringContainsString('`path`', $e['message']);
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->request('POST', '/api/v4/leads', [], [['price' => NAN]]);");
        $this->assertStringContainsString('`body`', $e['message']);
        $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->request('POST', '/api/v4/leads', [], [new \\stdClass()]);");
        $this->assertStringContainsString('`body`', $e['message']);
        $this->assertSame([], $this->emu->stats()['api_calls'], 'nothing was sent');
    }

    public function testContextUserHandle(): void
    {
        $this->seedTokens();
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $as = $amo->withContextUser(1001);
            return [$amo->getContextUser(), $as->getContextUser(), $as->request('GET', '/api/v4/account')['id']];
            PHP);
        $this->assertSame([null, 1001, 31000001], $r);
        $e = $this->fails('AmoConfigException', 'AmoClient::getInstance()->withContextUser(0);');
        $this->assertStringContainsString('`userId`', $e['message']);
    }

    public function testSecretsNeverReachOutputStatusOrErrors(): void
    {
        $pair = $this->seedTokens(-5);
        $r = PhpProcess::run(<<<'PHP'
            $amo = AmoClient::getInstance();
            $amo->request('GET', '/api/v4/account');
            var_dump($amo, $amo->tokenStatus());
            print_r($amo);
            phpinfo(INFO_GENERAL | INFO_CONFIGURATION | INFO_MODULES); // not ENVIRONMENT/VARIABLES: PHP prints env vars there itself
            try { $amo->request('GET', '/api/v4/nothing-here'); } catch (AmoException $e) { echo $e, "\n"; var_dump($e); }
            return 'done';
            PHP, array_diff_key($this->env(), ['AMOCRM_CLIENT_SECRET' => 1]), ['amocrm.client_secret' => self::CLIENT_SECRET]);
        $this->assertSame('done', $r['result']['result'] ?? null, $r['err']);
        $stored = $this->storedPair();
        foreach ([$pair['access_token'], $pair['refresh_token'], $stored['access_token'], $stored['refresh_token'], self::CLIENT_SECRET] as $secret) {
            $this->assertStringNotContainsString($secret, $r['out'] . $r['err']);
        }
    }
}
