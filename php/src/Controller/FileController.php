<?php

declare(strict_types=1);

namespace AmoGateway\Controller;

use AmoGateway\Config;
use AmoGateway\Http\HttpError;
use AmoGateway\Http\MultipartStream;
use AmoGateway\Http\Request;
use AmoGateway\Http\Response;
use AmoGateway\Log;
use AmoGateway\Storage\FileStore;

/** A file from a website form, stored on amoCRM's drive and attached to a lead. */
final class FileController
{
    /** @param string $account the account of the caller's API key: every call goes to it */
    public function __construct(private readonly Config $config, private readonly string $account)
    {
    }

    /**
     * POST /api/leads/{id}/files: one file in a multipart/form-data body,
     * spooled to a private temp file (never held in memory), uploaded in
     * the drive host's parts and attached to the lead. 201 with its uuid,
     * name and size; the temp file is removed whatever happens.
     */
    public function upload(Request $r, int $leadId): Response
    {
        if ($r->contentType() !== 'multipart/form-data') {
            throw new HttpError(415, 'Unsupported Media Type', 'post the file as multipart/form-data (a form with <input type="file">)');
        }
        // The file, plus what a form carries besides (its other fields, the part headers).
        $in = $r->bodyStream($this->config->fileMaxBytes + $this->config->maxBody);
        $amo = \AmoClient::getInstance($this->account);
        // Before the body is read: a file for no lead would stay on the drive.
        if ($amo->leads()->getOne($leadId) === null) {
            throw new HttpError(404, 'Not Found', "no lead $leadId in amoCRM");
        }
        $dir = $this->config->dataDir . '/uploads';
        FileStore::ensureDir($dir);
        $form = MultipartStream::parse($in, (string) $r->header('content-type'), $dir, $this->config->fileMaxBytes, $this->config->maxBody);
        try {
            if (count($form->files) !== 1) {
                throw HttpError::badInput('file', $form->files === [] ? 'the form has no file (a part with a filename)' : 'one file per request');
            }
            $part = $form->files[0];
            if ($part['size'] === 0) {
                throw HttpError::badInput('file', 'the file is empty');
            }
            $file = $amo->files()->upload($part['path'], ['file_name' => self::fileName($part['filename']), 'content_type' => self::mediaType($part['type'])]);
            try {
                $amo->entityFiles('leads', $leadId)->addOne($file['uuid']);
            } catch (\AmoException $e) {
                Log::write("file {$file['uuid']} is on amoCRM's drive, attaching it to lead $leadId failed: " . get_class($e) . ': ' . $e->getMessage());
                throw $e;
            }
            return Response::json([
                'uuid' => $file['uuid'],
                'version_uuid' => $file['version_uuid'] ?? null,
                'name' => $file['name'] ?? null,
                'size' => $file['size'] ?? $part['size'],
                'lead_id' => $leadId,
            ], 201);
        } finally {
            $form->remove();
        }
    }

    /** The name the browser sent, as a file name amoCRM can show: no path, no control characters. */
    private static function fileName(string $sent): string
    {
        $name = basename(str_replace('\\', '/', $sent));
        $name = trim((string) preg_replace('/[\x00-\x1F\x7F]/', '', $name));
        if (preg_match('//u', $name) !== 1) {
            $name = (string) preg_replace('/[\x80-\xFF]/', '_', $name); // not UTF-8: what the browser meant is unknown
        }
        if (strlen($name) > 255) {
            $name = substr($name, 0, 255);
            while (preg_match('//u', $name) !== 1) {
                $name = substr($name, 0, -1); // a character cut in two
            }
        }
        return $name === '' || $name === '.' || $name === '..' ? 'file' : $name;
    }

    /** The part's media type when it is one, else application/octet-stream. */
    private static function mediaType(string $sent): string
    {
        $type = strtolower(trim(explode(';', $sent)[0]));
        return preg_match('#^[a-z0-9!\#$&^_.+-]+/[a-z0-9!\#$&^_.+-]+$#', $type) ? $type : 'application/octet-stream';
    }
}
