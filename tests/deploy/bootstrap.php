<?php
declare(strict_types=1);

// The deployment suite (./build.sh test --deploy): the container image built
// with buildah and driven against the emulator, and the Debian package
// installed on this machine with apt-get, then removed and purged. Both need
// root; the package test changes the machine's PHP while it runs, so this
// suite runs on its own, after every other.
require __DIR__ . '/../php/support/Emulator.php';
foreach (['Proc', 'HttpResponse', 'HttpClient'] as $class) {
    require __DIR__ . "/../gateway/support/$class.php";
}

foreach (['AMOCRM_EXT', 'AMOCRM_EMULATOR', 'AMOCRM_DEB'] as $var) {
    $path = getenv($var);
    if ($path === false || !is_file($path)) {
        fwrite(STDERR, "$var must name the built file (./build.sh test --deploy sets it)\n");
        exit(2);
    }
}
if (posix_geteuid() !== 0) {
    fwrite(STDERR, "the deployment suite installs a package and builds images: run it as root\n");
    exit(2);
}
