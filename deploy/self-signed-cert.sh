#!/bin/sh
# A self-signed certificate for trying the stack (browsers will warn); put a real one
# (fullchain.pem + privkey.pem, e.g. from Let's Encrypt) in deploy/certs/ for production.
#   deploy/self-signed-cert.sh [HOST]     (default: SITE_HOST from .env, else localhost)
set -eu
cd "$(dirname "$0")"
host="${1:-$(sed -n 's/^SITE_HOST=//p' ../.env 2>/dev/null || true)}"
host="${host:-localhost}"
mkdir -p certs
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host" \
    -keyout certs/privkey.pem -out certs/fullchain.pem
echo "deploy/certs/fullchain.pem and privkey.pem written for $host"
