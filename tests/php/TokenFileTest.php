<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

/** The token file: formats, faults, atomic private writes. */
final class TokenFileTest extends AmoTestCase
{
    public function testMissingFileSaysToAuthorize(): void
    {
        $e = $this->fails('AmoAuthException', "AmoClient::getInstance()->request('GET', '/api/v4/account');");
        $this->assertStringContainsString('/oauth/authorize', $e['message']);
        $this->assertStringContainsString($this->tokenPath, $e['message']);
        $status = $this->ok('return AmoClient::getInstance()->tokenStatus();');
        $this->assertFalse($status['authorized']);
    }

    public function testCorruptFilesNameThePathAndTheFault(): void
    {
        foreach ([
            '' => 'empty',
            '{"access_token": "abc", "refresh_tok' => 'not valid JSON',
            '"just a string"' => 'not a JSON object',
            '{"access_token":"a","refresh_token":"r","expires_at":"tomorrow","base_domain":"localhost"}' => '`expires_at`',
            '{"access_token":"a","expires_at":1,"base_domain":"localhost"}' => '`refresh_token` is missing',
            // Issue 7.4: a token that cannot go into a header is a corrupt file, not a failed API call.
            '{"access_token":"a\\r\\nX-Injected: 1","refresh_token":"r","expires_at":1,"base_domain":"localhost"}' => '`access_token` holds a character',
        ] as $content => $fault) {
            file_put_contents($this->tokenPath, $content);
            $e = $this->fails('AmoStorageException', "AmoClient::getInstance()->request('GET', '/api/v4/account');");
            $this->assertStringContainsString($this->tokenPath, $e['message']);
            $this->assertStringContainsString($fault, $e['message']);
            $this->assertSame($content, file_get_contents($this->tokenPath), 'a corrupt file is left for the admin to inspect');
        }
    }

    public function testUnreadableFileIsAStorageError(): void
    {
        mkdir($this->tokenPath);
        $e = $this->fails('AmoStorageException', "AmoClient::getInstance()->tokenStatus();");
        $this->assertStringContainsString($this->tokenPath, $e['message']);
        rmdir($this->tokenPath);
    }

    public function testOfficialLibraryFormatIsReadAndSavedInOurs(): void
    {
        $t = $this->emu->mintTokens();
        file_put_contents($this->tokenPath, json_encode([
            'accessToken' => $t['access_token'], 'refreshToken' => $t['refresh_token'],
            'expires' => time() - 10, 'baseDomain' => $this->emu->referer(),
        ]));
        $account = $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account');");
        $this->assertSame(31000001, $account['id']);
        $pair = $this->storedPair();
        $this->assertSame(['access_token', 'refresh_token', 'expires_at', 'base_domain', 'updated_at'], array_keys($pair));
        $this->assertNotSame($t['refresh_token'], $pair['refresh_token']);
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'));
    }

    /**
     * Issue 7.4: every path that writes a pair checks it as a refresh answer is
     * checked, refuses naming the fault, and changes nothing.
     * @return array<string, array{0: array<string, mixed>, 1: string}>
     */
    public static function badPairs(): array
    {
        $pair = static fn (array $over): array => $over + ['access_token' => 'eyJ0.eyJ1.sig', 'refresh_token' => 'def50200aa',
            'expires_at' => time() + 3600, 'base_domain' => 'localhost:1', 'updated_at' => time()];
        return [
            'CR/LF in the access token' => [$pair(['access_token' => "eyJ0\r\nX-Injected: 1"]), '`access_token` holds a character'],
            'a NUL in the refresh token' => [$pair(['refresh_token' => "def50200\0aa"]), '`refresh_token` holds a character'],
            'a space' => [$pair(['access_token' => 'Bearer eyJ0']), '`access_token` holds a character'],
            'a 5 MB token' => [$pair(['access_token' => str_repeat('a', 5 << 20)]), 'larger than 64 KiB'],
            'a 9 KB token' => [$pair(['access_token' => str_repeat('a', 9000)]), '`access_token` is longer than 8192 bytes'],
            'expires in 1970' => [$pair(['expires_at' => 60]), '`expires_at`'],
            'expires in 50 years' => [$pair(['expires_at' => time() + 50 * 365 * 86400]), '`expires_at`'],
            'obtained in the future' => [$pair(['updated_at' => time() + 30 * 86400]), '`updated_at`'],
            'a foreign account host' => [$pair(['base_domain' => 'amocrm.ru.evil.com']), 'allowed_domains'],
        ];
    }

    /** @dataProvider badPairs */
    #[DataProvider('badPairs')]
    public function testImportRefusesAPairThatCouldNotWork(array $pair, string $fault): void
    {
        $seeded = $this->seedTokens();
        $before = file_get_contents($this->tokenPath);
        $e = $this->fails('AmoConfigException', 'return AmoClient::getInstance()->importTokens(json_decode(' . var_export(json_encode($pair), true) . ', true));');
        $this->assertStringContainsString($fault, $e['message']);
        $this->assertLessThan(300, strlen($e['message']), 'the message names the fault, not the value');
        $this->assertSame($before, file_get_contents($this->tokenPath), 'nothing was stored');
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];"), 'the stored pair still works');
        $this->assertSame($seeded['access_token'], $this->storedPair()['access_token']);
    }

    /** Issue 7.4: a refresh answer that cannot be used is refused the same way, and the old pair is kept. */
    public function testARefreshAnswerWithAnUnusableTokenIsNotStored(): void
    {
        $this->seedTokens(-60);
        $before = file_get_contents($this->tokenPath);
        foreach ([
            ['access_token' => "eyJ0\r\nX-Injected: 1", 'refresh_token' => 'def50200bb', 'expires_in' => 86400],
            ['access_token' => 'eyJ0', 'refresh_token' => 'def50200 bb', 'expires_in' => 86400],
            ['access_token' => 'eyJ0', 'refresh_token' => 'def50200bb', 'expires_in' => 400 * 365 * 86400],
        ] as $answer) {
            $this->emu->fault(['path' => '/oauth2/access_token', 'action' => 'respond', 'status' => 200,
                'body' => $answer + ['token_type' => 'Bearer'], 'times' => 1]);
            $e = $this->fails('AmoApiException', "AmoClient::getInstance()->request('GET', '/api/v4/account');");
            $this->assertStringContainsString("amoCRM's token answer cannot be used", $e['message']);
            $this->assertSame($before, file_get_contents($this->tokenPath));
        }
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];"), 'the kept pair refreshes once amoCRM answers sanely');
    }

    public function testWritesAreAtomicAndPrivate(): void
    {
        $this->seedTokens(-5);
        chmod($this->tokenPath, 0644);
        $this->ok("return AmoClient::getInstance()->refreshToken();");
        $this->assertSame(0600, fileperms($this->tokenPath) & 0777);
        $left = array_values(array_diff(scandir($this->dir), ['.', '..']));
        sort($left);
        $this->assertSame(['tokens.json', 'tokens.json.lock', 'tokens.json.shm'], $left, 'no temp files are left behind');
    }
}
