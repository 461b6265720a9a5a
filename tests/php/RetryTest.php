<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/** Retries that never duplicate: what may be sent again, and what never is. */
final class RetryTest extends AmoTestCase
{
    private const FAST = ['AMOCRM_RETRY_BACKOFF_MS' => '10'];

    protected function setUp(): void
    {
        parent::setUp();
        $this->seedTokens();
    }

    private function leadCount(): int
    {
        return count($this->emu->control('GET', 'leads'));
    }

    public function testAGetAnsweredWith502IsRetried(): void
    {
        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 502, 'content_type' => 'text/html', 'body' => '<html>502 Bad Gateway</html>', 'times' => 2]);
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];", self::FAST));
        $this->assertSame(2, $this->emu->stats()['faults']['respond']);
    }

    public function testRetriesAreBounded(): void
    {
        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'respond', 'status' => 503, 'body' => 'down']);
        $e = $this->fails('AmoApiException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", self::FAST + ['AMOCRM_MAX_RETRIES' => '2']);
        $this->assertSame(503, $e['errorCode']);
        $this->assertSame(3, $this->emu->stats()['faults']['respond'], 'the first try and two retries');
    }

    public function testAPostAnsweredWith502IsNotResent(): void
    {
        $this->emu->fault(['path' => '/api/v4/leads', 'method' => 'POST', 'action' => 'respond', 'status' => 502, 'body' => '<html>502</html>', 'times' => 1]);
        $e = $this->fails('AmoApiException', "AmoClient::getInstance()->leads()->addOne(['name' => 'once']);", self::FAST);
        $this->assertSame(502, $e['errorCode']);
        $this->assertSame(1, $this->emu->stats()['faults']['respond']);
    }

    public function testAPostWhoseConnectionDropsAfterSendingIsNotRepeated(): void
    {
        // The GET opens a keep-alive connection; the POST goes over it, amoCRM
        // reads it whole and the connection dies without an answer.
        $this->emu->fault(['path' => '/api/v4/leads', 'method' => 'POST', 'action' => 'drop', 'times' => 1]);
        $e = $this->fails('AmoTransportException', <<<'PHP'
            $amo = AmoClient::getInstance();
            $amo->request('GET', '/api/v4/account');
            $amo->leads()->addOne(['name' => 'must not be created twice']);
            PHP, self::FAST);
        $this->assertStringContainsString('not sent again', $e['message']);
        $stats = $this->emu->stats();
        $this->assertSame(1, $stats['faults']['drop']);
        $this->assertSame(1, $stats['api_requests_by_method']['POST'] ?? null, 'exactly one POST reached the emulator');
    }

    public function testAPostWhoseAnswerIsCutOffIsNotRepeated(): void
    {
        // Here amoCRM did create the lead: a resend would create a second one.
        $this->emu->fault(['path' => '/api/v4/leads', 'method' => 'POST', 'action' => 'truncate', 'times' => 1]);
        $this->fails('AmoTransportException', "AmoClient::getInstance()->leads()->addOne(['name' => 'once']);", self::FAST);
        $this->assertSame(1, $this->leadCount());
    }

    public function testAGetWhoseConnectionDropsIsRetried(): void
    {
        $this->emu->fault(['path' => '/api/v4/account', 'action' => 'drop', 'times' => 1]);
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];", self::FAST));
        $this->assertSame(1, $this->emu->stats()['faults']['drop']);
    }

    /** A PATCH whose answer was lost may have been applied: it is not applied a second time. */
    public function testAPatchThatMayHaveArrivedIsNotSentAgain(): void
    {
        $id = $this->ok("return AmoClient::getInstance()->leads()->addOne(['name' => 'x'])['id'];");
        $this->emu->fault(['path' => "/api/v4/leads/$id", 'method' => 'PATCH', 'action' => 'truncate', 'times' => 1]);
        $e = $this->fails('AmoTransportException', "AmoClient::getInstance()->leads()->updateOne(['id' => $id, 'price' => 777]);", self::FAST);
        $this->assertStringContainsString('may have reached amoCRM', $e['message']);
        $this->assertSame(1, $this->emu->stats()['api_requests_by_method']['PATCH'], 'sent once');
        $this->assertSame(777, $this->ok("return AmoClient::getInstance()->leads()->getOne($id)['price'];"), 'applied once');
        // A PATCH that never left (connection refused, a 429) is still sent again.
        $this->emu->fault(['path' => "/api/v4/leads/$id", 'method' => 'PATCH', 'action' => 'respond', 'status' => 429, 'content_type' => 'text/html', 'body' => '<html>429</html>', 'times' => 1]);
        $this->assertSame($id, $this->ok("return AmoClient::getInstance()->leads()->updateOne(['id' => $id, 'price' => 778]);", self::FAST)['id']);
    }
}
