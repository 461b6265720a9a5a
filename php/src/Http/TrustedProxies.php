<?php

declare(strict_types=1);

namespace AmoGateway\Http;

use AmoGateway\ConfigError;

/**
 * Who the client is, and whether it came over TLS, when a proxy (a load
 * balancer, a TLS terminator) sits in front of the web server. Only a peer
 * listed in GATEWAY_TRUSTED_PROXIES is believed about X-Forwarded-For and
 * X-Forwarded-Proto; anyone else could write them to dodge the throttle or
 * fake https.
 */
final class TrustedProxies
{
    /** @param list<array{0: string, 1: int}> $networks packed address, prefix length */
    private function __construct(private readonly array $networks)
    {
    }

    /** From a comma-separated list of addresses and CIDR networks (IPv4 or IPv6). */
    public static function parse(string $spec): self
    {
        $networks = [];
        foreach (array_filter(array_map('trim', explode(',', $spec)), 'strlen') as $item) {
            [$address, $bits] = array_pad(explode('/', $item, 2), 2, null);
            $packed = @inet_pton((string) $address);
            $max = $packed === false ? 0 : strlen($packed) * 8;
            if ($packed === false || ($bits !== null && (!preg_match('/^\d{1,3}$/', $bits) || (int) $bits > $max))) {
                throw new ConfigError("GATEWAY_TRUSTED_PROXIES: `$item` is not an IP address or CIDR network (e.g. 10.0.0.0/8, 192.0.2.7)");
            }
            $networks[] = [$packed, $bits === null ? $max : (int) $bits];
        }
        return new self($networks);
    }

    public function trusts(string $address): bool
    {
        $packed = @inet_pton($address);
        if ($packed === false) {
            return false;
        }
        foreach ($this->networks as [$net, $bits]) {
            if (strlen($net) !== strlen($packed)) {
                continue;
            }
            $bytes = intdiv($bits, 8);
            $rest = $bits % 8;
            if (substr($packed, 0, $bytes) !== substr($net, 0, $bytes)) {
                continue;
            }
            $mask = $rest === 0 ? 0 : (0xFF << (8 - $rest)) & 0xFF;
            if ($rest === 0 || (ord($packed[$bytes]) & $mask) === (ord($net[$bytes]) & $mask)) {
                return true;
            }
        }
        return false;
    }

    /**
     * The request as the client sent it: its address is the right-most
     * X-Forwarded-For entry that is not a trusted proxy, and it is secure
     * when the trusted proxy says X-Forwarded-Proto: https.
     */
    public function apply(Request $r): Request
    {
        if (!$this->trusts($r->remoteAddr)) {
            return $r;
        }
        $client = $r->remoteAddr;
        $chain = array_reverse(array_map('trim', explode(',', $r->header('x-forwarded-for') ?? '')));
        foreach ($chain as $hop) {
            if (filter_var($hop, FILTER_VALIDATE_IP) === false) {
                break; // garbage: stop at the last address we can vouch for
            }
            $client = $hop;
            if (!$this->trusts($hop)) {
                break;
            }
        }
        $proto = strtolower(trim(explode(',', $r->header('x-forwarded-proto') ?? '')[0]));
        return $r->withClient($client, $proto === '' ? $r->secure : $proto === 'https');
    }
}
