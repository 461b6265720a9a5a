<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

/**
 * Issue 7.3: amoCRM reached through a corporate TLS proxy or a private CA.
 * `ca_file` adds a PEM bundle to the trusted roots, and the system's trust
 * store (SSL_CERT_FILE here) is honoured; without either, the unknown CA is
 * refused.
 */
final class TlsTest extends AmoTestCase
{
    private TlsFront $tls;

    protected function setUp(): void
    {
        parent::setUp();
        $this->tls = new TlsFront($this->dir . '/tls', $this->emu->port);
    }

    protected function tearDown(): void
    {
        $this->tls->stop();
        exec('rm -rf ' . escapeshellarg($this->dir . '/tls'));
        parent::tearDown();
    }

    /** HTTPS to the proxy: plain http is off, the account host is localhost:<nginx port>. */
    private function https(array $extra = []): array
    {
        return $extra + ['AMOCRM_INSECURE_HTTP' => '0'];
    }

    private function seedHttpsTokens(int $expiresIn): void
    {
        $this->seedTokens($expiresIn);
        $pair = $this->storedPair();
        $pair['base_domain'] = 'localhost:' . $this->tls->port;
        file_put_contents($this->tokenPath, json_encode($pair));
    }

    public function testAnUnknownCaIsRefused(): void
    {
        $this->seedHttpsTokens(3600);
        $e = $this->fails('AmoTransportException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $this->https());
        $this->assertMatchesRegularExpression('/certificate|UnknownIssuer/i', $e['message']);
        $this->assertSame([], $this->emu->stats()['api_calls'], 'nothing passed the TLS handshake');
    }

    public function testCaFileIsTrustedForApiCallsAndRefreshes(): void
    {
        $this->seedHttpsTokens(-60); // expired: the refresh goes over HTTPS too
        $env = $this->https(['AMOCRM_CA_FILE' => $this->tls->caFile]);
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];", $env));
        $this->assertSame(1, $this->emu->tokenCalls('refresh_token/ok'));
        $this->assertSame(1, $this->emu->stats()['api_calls']['200'] ?? 0);
    }

    public function testTheSystemTrustStoreIsHonoured(): void
    {
        $this->seedHttpsTokens(3600);
        $this->assertSame(31000001, $this->ok("return AmoClient::getInstance()->request('GET', '/api/v4/account')['id'];",
            $this->https(['SSL_CERT_FILE' => $this->tls->caFile])));
    }

    public function testABadCaFileIsNamed(): void
    {
        $this->seedHttpsTokens(3600);
        $garbage = $this->dir . '/not-a-bundle.pem';
        file_put_contents($garbage, "this is not PEM\n");
        foreach ([$this->dir . '/missing.pem' => 'cannot read', $garbage => 'PEM', 'relative/ca.pem' => 'absolute'] as $file => $fault) {
            $e = $this->fails('AmoConfigException', "AmoClient::getInstance()->request('GET', '/api/v4/account');", $this->https(['AMOCRM_CA_FILE' => $file]));
            $this->assertStringContainsString('`ca_file`', $e['message'], $file);
            $this->assertStringContainsString($fault, $e['message'], $file);
        }
    }
}
