# php/deploy/'s checkout paths → the installed gateway's (the Debian package
# and the container image put it in the same places). Used by
# packaging/deb/build-deb.sh, the Dockerfile and docker/nginx-site.conf.
s#/srv/amocrm-gateway/php/\.env#/etc/amocrm-gateway/gateway.env#g
s#/srv/amocrm-gateway/php#/usr/share/amocrm-gateway#g
s#/srv/amocrm-gateway#/usr/share/amocrm-gateway#g
