<?php
declare(strict_types=1);

namespace AmoCRM\Tests\Gateway;

/** Many accounts under nginx + php-fpm (php/deploy, 4 workers). */
final class AccountsNginxFpmTest extends AccountsTestCase
{
    use OnNginxFpm;

    public function testTenAccountsTogetherRefreshOncePerExpiryAndHoldTheRateLimit(): void
    {
        $this->figures('ten accounts, nginx + php-fpm', $this->tenAccountsUnderLoad(3));
    }
}
