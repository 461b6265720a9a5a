<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

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

    public function testWritesAreAtomicAndPrivate(): void
    {
        $this->seedTokens(-5);
        chmod($this->tokenPath, 0644);
        $this->ok("return AmoClient::getInstance()->refreshToken();");
        $this->assertSame(0600, fileperms($this->tokenPath) & 0777);
        $left = array_values(array_diff(scandir($this->dir), ['.', '..']));
        sort($left);
        $this->assertSame(['tokens.json', 'tokens.json.lock', 'tokens.json.metrics', 'tokens.json.ratelimit'], $left, 'no temp files are left behind');
    }
}
