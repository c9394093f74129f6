#!/bin/bash
# healthcheck [PORT] [PATH]: exits 0 when GET http://127.0.0.1:PORT/PATH answers 200.
#
# Installed as /usr/local/bin/healthcheck in every pixpress runtime image (see
# docker/Dockerfile), used by the images' HEALTHCHECK and by docker-compose.yml.
# The images have no curl or wget: this speaks just enough HTTP/1.1 over bash's
# /dev/tcp. PORT defaults to the port of $HTTP_ADDR (each image sets HTTP_ADDR, and the
# service listens on it); PATH defaults to /health (liveness; /ready would be readiness).
set -u

addr=${HTTP_ADDR:-}
port=${1:-${addr##*:}}
path=${2:-/health}
if [[ ! $port =~ ^[0-9]+$ ]]; then
    echo "healthcheck: no port (give one, or set HTTP_ADDR=host:port)" >&2
    exit 1
fi

if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    echo "healthcheck: nothing listens on 127.0.0.1:$port" >&2
    exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: pixpress-healthcheck\r\nConnection: close\r\n\r\n' \
    "$path" "$port" >&3

status=
IFS= read -r -t 5 status <&3
exec 3<&-
status=${status%$'\r'}
if [[ $status =~ ^HTTP/1\.[01]\ 200([[:space:]]|$) ]]; then
    exit 0
fi
echo "healthcheck: GET $path on port $port answered '${status:-nothing}'" >&2
exit 1
