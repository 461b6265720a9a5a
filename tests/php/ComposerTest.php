<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\TestCase;

/** The gateway's composer.json: `composer dump-autoload` works offline and its autoloader finds every class. */
final class ComposerTest extends TestCase
{
    public function testDumpAutoloadWorksOfflineAndLoadsTheGateway(): void
    {
        $dir = sys_get_temp_dir() . '/amocrm-composer-' . bin2hex(random_bytes(4));
        $src = dirname(__DIR__, 2) . '/php';
        exec('cp -r ' . escapeshellarg($src) . ' ' . escapeshellarg($dir) . ' && rm -rf ' . escapeshellarg("$dir/vendor") . ' ' . escapeshellarg("$dir/var"));
        try {
            exec('cd ' . escapeshellarg($dir) . ' && COMPOSER_HOME=' . escapeshellarg("$dir/.composer")
                . ' COMPOSER_DISABLE_NETWORK=1 composer dump-autoload --no-interaction 2>&1', $out, $rc);
            $this->assertSame(0, $rc, implode("\n", $out));
            $this->assertFileExists("$dir/vendor/autoload.php");
            $classes = [];
            foreach (new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator("$dir/src")) as $f) {
                if ($f->getExtension() === 'php' && $f->getFilename() !== 'autoload.php') {
                    $classes[] = 'AmoGateway\\' . str_replace(['/', '.php'], ['\\', ''], substr($f->getPathname(), strlen("$dir/src/")));
                }
            }
            $check = 'require ' . var_export("$dir/src/autoload.php", true) . '; foreach (' . var_export($classes, true)
                . ' as $c) { if (!class_exists($c) && !interface_exists($c)) { echo "missing $c\n"; exit(1); } } echo "ok";';
            exec(PHP_BINARY . ' -n -r ' . escapeshellarg($check) . ' 2>&1', $loaded, $rc);
            $this->assertSame(['ok'], $loaded);
            $this->assertGreaterThan(15, count($classes));
        } finally {
            exec('rm -rf ' . escapeshellarg($dir));
        }
    }
}
