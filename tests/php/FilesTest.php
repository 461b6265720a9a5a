<?php
declare(strict_types=1);

namespace AmoCRM\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

/**
 * files() and entityFiles() against the emulator's drive host: uploads in
 * parts checked by SHA-256 at the emulator, a dropped part resumed, a drive
 * host outside allowed_domains refused, bad input refused before any
 * request, and a 200 MB file in flat memory.
 */
final class FilesTest extends AmoTestCase
{
    private const PART = 4096;

    /** @var list<string> */
    private array $made = [];

    protected function setUp(): void
    {
        parent::setUp();
        $this->seedTokens();
        $this->emu->control('POST', 'drive', ['max_part_size' => self::PART]);
    }

    protected function tearDown(): void
    {
        foreach ($this->made as $f) {
            @chmod($f, 0600);
            is_dir($f) ? @rmdir($f) : @unlink($f);
        }
        parent::tearDown();
    }

    /** A file of $size bytes that are not all alike, in a temp dir; removed after the test. */
    private function file(int $size, string $name = 'upload.bin'): string
    {
        $dir = sys_get_temp_dir() . '/amocrm-files-' . bin2hex(random_bytes(5));
        mkdir($dir, 0700);
        $path = "$dir/$name";
        $this->made[] = $path;
        $this->made[] = $dir;
        $f = fopen($path, 'wb');
        $block = random_bytes(min($size, 65536));
        for ($left = $size; $left > 0; $left -= strlen($block)) {
            fwrite($f, substr($block, 0, min($left, strlen($block))));
        }
        fclose($f);
        return $path;
    }

    private function drive(): array
    {
        return $this->emu->control('GET', 'drive');
    }

    private function stored(string $uuid): array
    {
        foreach ($this->drive()['files'] as $f) {
            if ($f['uuid'] === $uuid) {
                return $f;
            }
        }
        $this->fail("the emulator has no file $uuid");
    }

    /** @return array<string, array{int}> */
    public static function sizes(): array
    {
        return [
            'one byte' => [1],
            'less than a part' => [1000],
            'exactly one part' => [self::PART],
            'one byte over a part' => [self::PART + 1],
            'several parts and a tail' => [self::PART * 5 + 7],
        ];
    }

    /** @dataProvider sizes */
    #[DataProvider('sizes')]
    public function testUploadArrivesWhole(int $size): void
    {
        $path = $this->file($size, 'Отчёт.pdf');
        $file = $this->ok('return AmoClient::getInstance()->files()->upload(getenv("FILE"));', ['FILE' => $path]);
        $this->assertSame('Отчёт.pdf', $file['name']);
        $this->assertSame($size, $file['size']);
        $this->assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/', $file['uuid']);
        $stored = $this->stored($file['uuid']);
        $this->assertSame(hash_file('sha256', $path), $stored['sha256']);
        $this->assertSame((int) ceil($size / self::PART), $stored['parts']);
        $this->assertSame('application/pdf', $stored['content_type']);
        $this->assertSame(1, $this->drive()['stats']['sessions_opened']);
    }

    public function testOptionsNameTypeAndNewVersion(): void
    {
        $path = $this->file(100);
        $r = $this->ok(<<<'PHP'
            $files = AmoClient::getInstance()->files();
            $first = $files->upload(getenv('FILE'), ['file_name' => 'прайс.csv', 'content_type' => 'text/csv; charset=utf-8']);
            $second = $files->upload(getenv('FILE'), ['file_uuid' => $first['uuid'], 'with_preview' => true]);
            return [$first, $second];
            PHP, ['FILE' => $path]);
        [$first, $second] = $r;
        $this->assertSame('прайс.csv', $first['name']);
        $this->assertSame($first['uuid'], $second['uuid']);
        $this->assertNotSame($first['version_uuid'], $second['version_uuid']);
        $stored = $this->stored($first['uuid']);
        $this->assertSame(2, $stored['versions']);
        $this->assertSame('application/octet-stream', $stored['content_type'], 'the second upload named no type: from its name');
    }

    public function testAttachListRenameDetachDelete(): void
    {
        $path = $this->file(self::PART * 2 + 1, 'contract.pdf');
        $r = $this->ok(<<<'PHP'
            $amo = AmoClient::getInstance();
            $lead = $amo->leads()->addOne(['name' => 'С файлом']);
            $file = $amo->files()->upload(getenv('FILE'));
            $files = $amo->entityFiles('leads', $lead['id']);
            $before = $files->get();
            $added = $files->add([$file['uuid']]);
            $listed = $files->get();
            $renamed = $amo->files()->updateOne(['uuid' => $file['uuid'], 'name' => 'договор.pdf']);
            $one = $amo->files()->getOne($file['uuid']);
            $all = [];
            foreach ($amo->files()->iterate(['limit' => 1]) as $f) { $all[] = $f['uuid']; }
            $files->deleteOne($file['uuid']);
            $after = $files->get();
            $amo->files()->deleteOne($file['uuid']);
            return ['uuid' => $file['uuid'], 'before' => $before, 'added' => $added, 'listed' => $listed,
                'renamed' => $renamed['name'], 'one' => $one['name'], 'all' => $all, 'after' => $after,
                'page' => $amo->files()->get(), 'missing' => $amo->files()->getOne('00000000-0000-4000-8000-000000000000')];
            PHP, ['FILE' => $path]);
        $uuid = $r['uuid'];
        $this->assertSame([], $r['before']);
        $this->assertSame([['file_uuid' => $uuid]], $r['added']);
        $this->assertSame([['file_uuid' => $uuid]], $r['listed']);
        $this->assertSame('договор.pdf', $r['renamed']);
        $this->assertSame('договор.pdf', $r['one']);
        $this->assertSame([$uuid], $r['all']);
        $this->assertSame([], $r['after']);
        $this->assertSame([], $r['page'], 'a deleted file leaves the list');
        $this->assertNull($r['missing']);
        $this->assertTrue($this->stored($uuid)['deleted']);
        $this->assertSame([], $this->drive()['entity_files']);
    }

    public function testAMissingLeadAndAnUnknownFileAreAmoCRMsErrors(): void
    {
        $r = $this->fails('AmoApiException', 'AmoClient::getInstance()->entityFiles("leads", 999)->addOne("00000000-0000-4000-8000-000000000000");');
        $this->assertSame(404, $r['code']);
        $lead = $this->ok('return AmoClient::getInstance()->leads()->addOne(["name" => "x"])["id"];');
        $r = $this->fails('AmoValidationException', "AmoClient::getInstance()->entityFiles('leads', $lead)->addOne('00000000-0000-4000-8000-000000000000');");
        $this->assertSame('0.file_uuid', $r['validationErrors'][0]['errors'][0]['path']);
    }

    public function testADroppedPartIsSentAgainNotTheWholeFile(): void
    {
        $path = $this->file(self::PART * 6 + 100);
        $this->emu->control('POST', 'drive', ['drop_part' => 3]);
        $file = $this->ok('return AmoClient::getInstance()->files()->upload(getenv("FILE"));', ['FILE' => $path]);
        $stored = $this->stored($file['uuid']);
        $this->assertSame(hash_file('sha256', $path), $stored['sha256'], 'the file is whole');
        $stats = $this->drive()['stats'];
        $this->assertSame(1, $stats['parts_dropped'], 'the emulator dropped part 3 after storing it');
        $this->assertSame(1, $stats['parts_repeated'], 'part 3 came again');
        $this->assertSame(7, $stats['parts_received'], 'each part was stored once');
        $this->assertSame(1, $stats['sessions_opened'], 'the session was not restarted');
        $this->assertSame(self::PART * 6 + 100, $stats['bytes_received']);
    }

    public function testADriveHostOutsideAllowedDomainsGetsNothing(): void
    {
        $trap = stream_socket_server('tcp://127.0.0.2:0', $errno, $errstr);
        $this->assertNotFalse($trap, "cannot listen on 127.0.0.2: $errstr");
        stream_set_blocking($trap, false);
        $port = (int) substr(strrchr(stream_socket_get_name($trap, false), ':'), 1);
        $path = $this->file(10);
        foreach (["http://127.0.0.2:$port", "http://evil.example:$port", "https://localhost.evil.example"] as $url) {
            $this->emu->control('POST', 'drive', ['drive_url' => $url]);
            $r = $this->fails('AmoConfigException', 'AmoClient::getInstance()->files()->upload(getenv("FILE"));', ['FILE' => $path]);
            $this->assertStringContainsString('allowed_domains', $r['message']);
            $this->assertStringNotContainsString('Bearer', $r['message']);
        }
        $this->assertFalse(@stream_socket_accept($trap, 0), 'nothing connected to the foreign drive host');
        $this->assertSame(0, $this->drive()['stats']['sessions_opened']);
        // Plain http to a host within allowed_domains but not loopback is refused too.
        $this->emu->control('POST', 'drive', ['drive_url' => 'http://drive.localhost.example']);
        $this->fails('AmoConfigException', 'AmoClient::getInstance()->files()->upload(getenv("FILE"));', ['FILE' => $path, 'AMOCRM_ALLOWED_DOMAINS' => 'localhost,example']);
    }

    /** @return array<string, array{string, string}> */
    public static function badInput(): array
    {
        return [
            'missing file' => ['$amo->files()->upload(getenv("DIR") . "/nope.pdf");', 'no such file'],
            'a directory' => ['$amo->files()->upload(getenv("DIR"));', 'is a directory'],
            'an empty file' => ['$amo->files()->upload(getenv("EMPTY"));', 'is empty'],
            'a device' => ['$amo->files()->upload("/dev/zero");', 'not a regular file'],
            'an unknown option' => ['$amo->files()->upload(getenv("EMPTY"), ["name" => "x"]);', 'unknown option `name`'],
            'a bad content type' => ['$amo->files()->upload(getenv("EMPTY"), ["content_type" => "pdf"]);', '`content_type`'],
            'a header in the content type' => ['$amo->files()->upload(getenv("EMPTY"), ["content_type" => "text/plain\r\nX-A: b"]);', '`content_type`'],
            'a bad file_uuid' => ['$amo->files()->upload(getenv("EMPTY"), ["file_uuid" => "../x"]);', '`file_uuid`'],
            'getOne with a bad uuid' => ['$amo->files()->getOne("1/../2");', '`uuid`'],
            'delete with no uuid' => ['$amo->files()->delete([]);', '`uuids`'],
            'delete with a number' => ['$amo->files()->delete([1]);', '`uuids`'],
            'rename without a name' => ['$amo->files()->updateOne(["uuid" => "00000000-0000-4000-8000-000000000000"]);', '`name`'],
            'an entity type files do not attach to' => ['$amo->entityFiles("tasks", 1);', '`entityType`'],
            'entity id 0' => ['$amo->entityFiles("leads", 0);', '`entityId`'],
            'attach a bad uuid' => ['$amo->entityFiles("leads", 1)->add(["x"]);', '`fileUuids`'],
            'files() list with a bad limit' => ['$amo->files()->get(["limit" => 1000]);', '`limit`'],
        ];
    }

    /** @dataProvider badInput */
    #[DataProvider('badInput')]
    public function testBadInputIsRefusedBeforeAnyRequest(string $call, string $says): void
    {
        $dir = dirname($this->file(1));
        $empty = "$dir/empty.txt";
        touch($empty);
        $this->made[] = $empty;
        $before = $this->emu->stats()['requests'];
        $r = $this->fails('AmoConfigException', '$amo = AmoClient::getInstance(); ' . $call, ['DIR' => $dir, 'EMPTY' => $empty]);
        $this->assertStringContainsString($says, $r['message']);
        // The one request between the two counts is the count itself.
        $this->assertSame($before + 1, $this->emu->stats()['requests'], 'no request reached amoCRM or its drive host');
    }

    public function testAnUnreadableFileIsNamed(): void
    {
        if (posix_geteuid() === 0) {
            $this->markTestSkipped('root reads any file');
        }
        $path = $this->file(10);
        chmod($path, 0);
        $r = $this->fails('AmoConfigException', 'AmoClient::getInstance()->files()->upload(getenv("FILE"));', ['FILE' => $path]);
        $this->assertStringContainsString('not readable', $r['message']);
    }

    /**
     * 200 MB in the drive's default parts (512 KiB) from a sparse file: the
     * process's RSS high-water mark grows by less than 4 parts + 16 MiB. One
     * part is read into a buffer, copied once into the request body, and
     * at most one more is in the socket's and the HTTP client's buffers;
     * 16 MiB covers the allocator keeping freed pages and the client's own
     * state. Reading the file whole would add 200 MB.
     */
    public function testA200MbFileUploadsInFlatMemory(): void
    {
        $part = 512 * 1024;
        $size = 200 * 1000 * 1000;
        $this->emu->control('POST', 'drive', ['max_part_size' => $part]);
        $dir = dirname($this->file(1));
        $path = "$dir/big.bin";
        $this->made[] = $path;
        $f = fopen($path, 'wb');
        ftruncate($f, $size);
        // Some bytes that differ, at both ends and in the middle.
        fwrite($f, random_bytes(4096));
        fseek($f, intdiv($size, 2));
        fwrite($f, random_bytes(4096));
        fseek($f, $size - 4096);
        fwrite($f, random_bytes(4096));
        fclose($f);
        $t0 = microtime(true);
        $r = $this->ok(<<<'PHP'
            $hwm = static function (): int {
                preg_match('/^VmHWM:\s+(\d+) kB/m', (string) file_get_contents('/proc/self/status'), $m);
                return (int) $m[1] * 1024;
            };
            $amo = AmoClient::getInstance();
            $amo->account();                   // the HTTP client and its buffers exist
            $before = $hwm();
            $file = $amo->files()->upload(getenv('FILE'));
            return ['file' => $file, 'growth' => $hwm() - $before, 'peak_php' => memory_get_peak_usage()];
            PHP, ['FILE' => $path, 'AMOCRM_RATE_LIMIT' => '0', 'AMOCRM_TIMEOUT' => '30']);
        $seconds = microtime(true) - $t0;
        $this->assertSame($size, $r['file']['size']);
        $stored = $this->stored($r['file']['uuid']);
        $this->assertSame(hash_file('sha256', $path), $stored['sha256']);
        $this->assertSame((int) ceil($size / $part), $stored['parts']);
        $bound = 4 * $part + 16 * 1024 * 1024;
        $this->assertLessThan($bound, $r['growth'], sprintf('RSS grew by %.1f MiB for a 200 MB upload (bound %.1f MiB)', $r['growth'] / 1048576, $bound / 1048576));
        $this->assertLessThan(4 * 1024 * 1024, $r['peak_php'], 'nothing of the file went through PHP memory');
        fwrite(STDERR, sprintf("\n[files] 200 MB in %d parts: RSS +%.1f MiB, %.1f s\n", $stored['parts'], $r['growth'] / 1048576, $seconds));
    }
}
