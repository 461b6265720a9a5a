<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/** The edges (issue 7) again under nginx + php-fpm from php/deploy/: several workers share the counts and records. */
final class NginxFpmEdgesTest extends GatewayEdgesTestCase
{
    use OnNginxFpm;
}
