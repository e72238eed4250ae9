#!/usr/bin/env bash
# Writes a throw-away PKI for the TLS tests into DIR with Debian's openssl: a CA
# (ca.pem), a server certificate for localhost and 127.0.0.1 (server.pem,
# server.key) and a client certificate with common name "trainer-cert"
# (client.pem, client.key), both signed by the CA, valid for a day. Keys are
# made at test time so that none is ever committed.
# Usage: make_test_certificates.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 1 -subj /CN=curvd-test-ca 2>/dev/null

sign() {  # NAME CN EXTENSIONS
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out "$1.pem" -days 1 -extfile "$1.ext" 2>/dev/null
  rm "$1.csr" "$1.ext"
}
sign server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
sign client trainer-cert "extendedKeyUsage=clientAuth"
rm ca.key ca.srl
