<?php

declare(strict_types=1);

/*
 * The side-by-side benchmark of issue 10: each workload through AmoClient and
 * through a hand-written PHP curl baseline, against the amoCRM emulator,
 * alternating the two. Writes bench/results.md and prints the table; exits 1
 * when a row misses its target. Run by `./build.sh bench [--quick]`; see
 * bench/README.md.
 *
 *   php bench/run.php [--quick] [--only=a,b,c,d,e,f] [--out=FILE]
 *
 * A full run of every workload writes bench/results.md; --quick or --only
 * write target/bench-results-{quick,partial}.md instead.
 *
 * Environment: AMOCRM_EXT (the extension), AMOCRM_EMULATOR (the emulator's
 * binary); by default target/release/ of this checkout.
 */

namespace AmoBench;

use AmoBench\Workload\FirstCall;
use AmoBench\Workload\FpmRoute;
use AmoBench\Workload\LeadPages;
use AmoBench\Workload\Limiter;
use AmoBench\Workload\RefreshStorm;
use AmoBench\Workload\SmallCalls;

foreach (['Service', 'Command', 'Summary', 'Php', 'Emulator', 'TlsFront', 'WebStack', 'Machine', 'Row', 'Section', 'Report', 'Context',
    'Workload/SmallCalls', 'Workload/LeadPages', 'Workload/FpmRoute', 'Workload/FirstCall', 'Workload/RefreshStorm', 'Workload/Limiter'] as $f) {
    require __DIR__ . "/lib/$f.php";
}

$opts = getopt('', ['quick', 'only:', 'out:', 'help']);
if (isset($opts['help'])) {
    fwrite(STDOUT, "usage: php bench/run.php [--quick] [--only=a,b,c,d,e,f] [--out=FILE]\n");
    exit(0);
}
$quick = isset($opts['quick']);
$only = isset($opts['only']) ? explode(',', (string) $opts['only']) : ['a', 'b', 'c', 'd', 'e', 'f'];
$root = dirname(__DIR__);
// A full run of every workload is the one bench/results.md shows.
$out = (string) ($opts['out'] ?? (!$quick && $only === ['a', 'b', 'c', 'd', 'e', 'f'] ? "$root/bench/results.md" : "$root/target/bench-results-" . ($quick ? 'quick' : 'partial') . '.md'));
$ext = getenv('AMOCRM_EXT') ?: "$root/target/release/libamocrm.so";
$emulatorBin = getenv('AMOCRM_EMULATOR') ?: "$root/target/release/amocrm-emulator";
foreach ([$ext, $emulatorBin, WebStack::NGINX, WebStack::FPM, '/usr/bin/wrk', TlsFront::SYSTEM_BUNDLE] as $needed) {
    if (!is_file($needed)) {
        fwrite(STDERR, "missing $needed (./build.sh bench builds and installs what the bench needs)\n");
        exit(2);
    }
}

$started = microtime(true);
$dir = sys_get_temp_dir() . '/amocrm-bench-' . bin2hex(random_bytes(4));
mkdir($dir, 0700);
$emulator = new Emulator($emulatorBin, "$dir/emulator.log");
$c = new Context($root, $dir, $ext, $quick, new Php($ext, $dir), $emulator);
$report = new Report();
$emulatorNote = '';
// Ctrl-C or a SIGTERM stops what the bench started (servers run in sessions of their own).
pcntl_async_signals(true);
foreach ([SIGINT, SIGTERM] as $signal) {
    pcntl_signal($signal, static function () use ($c, $emulator, $dir): void {
        $c->web?->stop();
        $c->tls?->stop();
        $emulator->stop();
        fwrite(STDERR, "interrupted (work files kept in $dir)\n");
        exit(130);
    });
}
$code = 0;
try {
    Context::log('seeding the emulator: 250 contacts, 250 leads with custom fields');
    $c->leadIds = LeadPages::seed($emulator, $c->pair['access_token']);
    if (in_array('a', $only, true)) {
        $report->add((new SmallCalls($c))->run());
    }
    if (in_array('b', $only, true)) {
        $pages = new LeadPages($c);
        $report->add($pages->run());
        $emulatorNote = $pages->emulatorNote;
    }
    if (array_intersect(['c', 'd'], $only) !== []) {
        Context::log('starting the HTTPS front (private CA), nginx and php-fpm');
        $c->tls = new TlsFront("$dir/tls", $emulator->port);
        $c->web = FpmRoute::startWebStack($c);
        if (in_array('c', $only, true)) {
            $report->add((new FpmRoute($c))->run());
        }
        if (in_array('d', $only, true)) {
            $report->add((new FirstCall($c))->run());
        }
        $errors = $c->web->phpErrors();
        if ($errors !== '') {
            throw new \RuntimeException("the PHP servers logged errors:\n$errors");
        }
        $c->web->stop();
        $c->tls->stop();
    }
    if (in_array('e', $only, true)) {
        $report->add((new RefreshStorm($c))->run());
    }
    if (in_array('f', $only, true)) {
        $report->add((new Limiter($c))->run());
    }
} catch (\Throwable $e) {
    fwrite(STDERR, "bench failed: " . get_class($e) . ': ' . $e->getMessage() . "\n" . $e->getTraceAsString() . "\n(work files kept in $dir)\n");
    $code = 2;
} finally {
    $c->web?->stop();
    $c->tls?->stop();
    $emulator->stop();
}
if ($code !== 0) {
    exit($code);
}

$seconds = microtime(true) - $started;
$machine = Machine::describe($root, $ext);
file_put_contents($out, $report->markdown($machine, $quick ? 'quick' : 'full', $seconds, $emulatorNote));
exec('rm -rf ' . escapeshellarg($dir));

echo "\n" . $report->table() . "\n";
printf("%d s; written to %s\n", (int) round($seconds), $out);
$misses = $report->misses();
if ($misses !== []) {
    echo "\nTargets missed:\n";
    foreach ($misses as $r) {
        echo "  ($r->id) $r->workload: AmoClient $r->amo vs baseline $r->baseline — target $r->target\n";
    }
    exit(1);
}
echo "Every row meets its target.\n";
