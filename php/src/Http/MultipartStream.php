<?php

declare(strict_types=1);

namespace AmoGateway\Http;

/**
 * A multipart/form-data body read from a stream in small chunks: the text
 * fields in memory (within $fieldLimit bytes together), each file part
 * written to a private temp file (0600) as it arrives, so that a file of
 * tens of megabytes never sits in PHP memory. The gateway's FPM pool and
 * php -S run with enable_post_data_reading=Off ($_FILES stays empty).
 *
 * The caller removes the temp files (remove()), whatever happened; a
 * failure while parsing removes them itself.
 */
final class MultipartStream
{
    private const CHUNK = 65536;
    /** A part's header block may be at most this long. */
    private const MAX_HEADERS = 8192;
    /** At most this many parts: a form has a few fields and one file. */
    private const MAX_PARTS = 100;

    /** @var array<string, string> text fields by name (the last of a name wins) */
    public array $fields = [];
    /** @var list<array{field: string, filename: string, type: string, path: string, size: int}> */
    public array $files = [];

    private int $fieldBytes = 0;

    private function __construct(
        private readonly string $tempDir,
        private readonly int $fileLimit,
        private readonly int $fieldLimit,
    ) {
    }

    /**
     * Parses $in. 413 when a file is larger than $fileLimit bytes or the
     * fields together larger than $fieldLimit; 400 when the body is not
     * the multipart/form-data its Content-Type says.
     * @param resource $in
     */
    public static function parse($in, string $contentType, string $tempDir, int $fileLimit, int $fieldLimit): self
    {
        if (!preg_match('/;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i', $contentType, $m)) {
            throw HttpError::badInput('body', 'the multipart Content-Type names no boundary', 400);
        }
        $form = new self($tempDir, $fileLimit, $fieldLimit);
        try {
            $form->read($in, "\r\n--" . ($m[1] !== '' ? $m[1] : $m[2]));
        } catch (\Throwable $e) {
            $form->remove();
            throw $e;
        }
        return $form;
    }

    /** Removes every temp file this parse made. */
    public function remove(): void
    {
        foreach ($this->files as $f) {
            @unlink($f['path']);
        }
    }

    /** @param resource $in */
    private function read($in, string $delimiter): void
    {
        // The body starts with the delimiter without its CRLF.
        $buf = "\r\n";
        $state = 'preamble';
        $keep = strlen($delimiter) + 2;
        $part = null;
        $eof = false;
        $more = false;
        while (true) {
            if (!$eof && ($more || strlen($buf) < self::CHUNK + $keep)) {
                $more = false;
                $chunk = fread($in, self::CHUNK);
                if ($chunk === false || $chunk === '') {
                    $eof = feof($in) || $chunk === false;
                    if (!$eof) {
                        continue;
                    }
                } else {
                    $buf .= $chunk;
                }
            }
            if ($state === 'preamble' || $state === 'data') {
                $at = strpos($buf, $delimiter);
                if ($at === false) {
                    // All but a possible start of the delimiter is the part's.
                    $safe = max(0, strlen($buf) - $keep);
                    if ($state === 'data') {
                        $this->append($part, substr($buf, 0, $safe));
                    }
                    $buf = substr($buf, $safe);
                    if ($eof) {
                        throw HttpError::badInput('body', 'the multipart body ended before its closing boundary', 400);
                    }
                    continue;
                }
                if (strlen($buf) < $at + strlen($delimiter) + 2 && !$eof) {
                    $more = true; // the two bytes after the delimiter are not here yet
                    continue;
                }
                if ($state === 'data') {
                    $this->append($part, substr($buf, 0, $at));
                    $this->finish($part);
                    $part = null;
                }
                $after = substr($buf, $at + strlen($delimiter), 2);
                $buf = substr($buf, $at + strlen($delimiter) + 2);
                if ($after === '--') {
                    return; // the epilogue is ignored
                }
                if ($after !== "\r\n") {
                    throw HttpError::badInput('body', 'a multipart boundary is not followed by CRLF', 400);
                }
                if (count($this->files) + count($this->fields) >= self::MAX_PARTS) {
                    throw HttpError::badInput('body', 'more than ' . self::MAX_PARTS . ' parts', 400);
                }
                $state = 'headers';
                continue;
            }
            // headers
            $end = strpos($buf, "\r\n\r\n");
            if ($end === false) {
                if (strlen($buf) > self::MAX_HEADERS || $eof) {
                    throw HttpError::badInput('body', 'a multipart part has no end of its headers', 400);
                }
                $more = true;
                continue;
            }
            $part = $this->open(substr($buf, 0, $end));
            $buf = substr($buf, $end + 4);
            $state = 'data';
        }
    }

    /** @return array{field: string, filename: ?string, type: string, handle: mixed, path: ?string, size: int, data: string} */
    private function open(string $head): array
    {
        $name = null;
        $filename = null;
        $type = 'application/octet-stream';
        foreach (explode("\r\n", $head) as $line) {
            [$k, $v] = array_map('trim', explode(':', $line, 2) + [1 => '']);
            $k = strtolower($k);
            if ($k === 'content-disposition') {
                if (preg_match('/(?:^|;)\s*name="([^"]*)"/i', $v, $m)) {
                    $name = $m[1];
                }
                if (preg_match('/(?:^|;)\s*filename="([^"]*)"/i', $v, $m)) {
                    $filename = $m[1];
                }
            } elseif ($k === 'content-type' && $v !== '') {
                $type = $v;
            }
        }
        if ($name === null) {
            throw HttpError::badInput('body', 'a multipart part has no Content-Disposition name', 400);
        }
        $part = ['field' => $name, 'filename' => $filename, 'type' => $type, 'handle' => null, 'path' => null, 'size' => 0, 'data' => ''];
        if ($filename !== null) {
            $path = tempnam($this->tempDir, 'upload-');
            if ($path === false) {
                throw new \RuntimeException("cannot create a temp file in {$this->tempDir}");
            }
            chmod($path, 0600);
            // Listed at once, so that remove() finds it whatever follows.
            $this->files[] = ['field' => $name, 'filename' => $filename, 'type' => $type, 'path' => $path, 'size' => 0];
            $handle = fopen($path, 'wb');
            if ($handle === false) {
                throw new \RuntimeException("cannot write the temp file $path");
            }
            $part['handle'] = $handle;
            $part['path'] = $path;
        }
        return $part;
    }

    /** @param array<string, mixed> $part */
    private function append(array &$part, string $bytes): void
    {
        if ($bytes === '') {
            return;
        }
        $part['size'] += strlen($bytes);
        if ($part['handle'] !== null) {
            if ($part['size'] > $this->fileLimit) {
                fclose($part['handle']);
                $part['handle'] = null;
                throw new HttpError(413, 'Content Too Large', "a file may be at most {$this->fileLimit} bytes", ['field' => $part['field']]);
            }
            if (fwrite($part['handle'], $bytes) !== strlen($bytes)) {
                throw new \RuntimeException('cannot write the uploaded file to ' . $part['path'] . ' (disk full?)');
            }
            return;
        }
        $this->fieldBytes += strlen($bytes);
        if ($this->fieldBytes > $this->fieldLimit) {
            throw new HttpError(413, 'Content Too Large', "the form's fields may be at most {$this->fieldLimit} bytes");
        }
        $part['data'] .= $bytes;
    }

    /** @param array<string, mixed> $part */
    private function finish(array $part): void
    {
        if ($part['handle'] === null) {
            $this->fields[$part['field']] = $part['data'];
            return;
        }
        if (!fclose($part['handle'])) {
            throw new \RuntimeException('cannot write the uploaded file to ' . $part['path']);
        }
        $last = count($this->files) - 1;
        $this->files[$last]['size'] = $part['size'];
    }
}
