<?php
declare(strict_types=1);

// Runs the snippet file named in argv[1] and prints one JSON line describing
// its outcome; the snippet can use $amo (a lazily made AmoClient handle).
$describe = static function (\Throwable $e): array {
    $d = ['ok' => false, 'class' => get_class($e), 'message' => $e->getMessage(), 'code' => $e->getCode()];
    if ($e instanceof AmoException) {
        $d += [
            'title' => $e->getTitle(),
            'description' => $e->getDescription(),
            'errorCode' => $e->getErrorCode(),
            'validationErrors' => $e->getValidationErrors(),
            'lastRequestInfo' => $e->getLastRequestInfo(),
        ];
    }
    return $d;
};
try {
    $result = (static function (string $file) {
        return require $file;
    })($argv[1]);
    echo "\n", json_encode(['ok' => true, 'result' => $result], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
} catch (\Throwable $e) {
    echo "\n", json_encode($describe($e), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
}
