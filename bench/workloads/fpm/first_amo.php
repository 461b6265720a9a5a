<?php

declare(strict_types=1);

// (d) the first API call in a freshly forked FPM worker (pm.max_requests = 1),
// AmoClient over HTTPS with ca_file: getInstance() and one call, timed inside
// the script. The configuration is the pool's php_admin_value[amocrm.*].

$t0 = hrtime(true);
$account = AmoClient::getInstance()->request('GET', '/api/v4/account');
$us = (hrtime(true) - $t0) / 1e3;

header('Content-Type: application/json');
echo json_encode(['us' => $us, 'pid' => getmypid(), 'opcache' => (opcache_get_status(false)['opcache_enabled'] ?? false) === true, 'ok' => is_int($account['id'] ?? null)]);
