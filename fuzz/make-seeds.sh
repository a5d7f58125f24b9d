#!/usr/bin/env bash
# Rebuilds the seed corpora (corpus/<target>/seed-*) from the committed test vectors and the
# documented examples of docs/protocol.md. Run from anywhere; idempotent.
set -euo pipefail
cd "$(dirname "$0")"
separator=$'\n=====8<=====\n'
rm -f corpus/*/seed-*
mkdir -p corpus/certificate_loading corpus/agent_conf corpus/silent_file corpus/manager_response

# certificate_loading: client_cert.pem, client_key.pem and passphrase of every vector.
for vector in ../testdata/vectors/good/* ../testdata/vectors/bad/*; do
  name="seed-$(basename "$(dirname "$vector")")-$(basename "$vector")"
  {
    cat "$vector/client_cert.pem" 2>/dev/null || true
    printf '%s' "$separator"
    cat "$vector/client_key.pem" 2>/dev/null || true
    printf '%s' "$separator"
    cat "$vector/passphrase" 2>/dev/null || true
  } > "corpus/certificate_loading/$name"
done

# agent_conf: what register_host writes, an administrator's edits, and broken values.
conf=corpus/agent_conf
printf '%s\n' '# CTE agent configuration, written by register_host.' \
  '# Keys are documented in docs/protocol.md (agent.conf section).' \
  'URL=https://cm.example.com:8443' 'CLIENT_ID=5f0c2a4e-0d7e-4c1b-9a53-3b8f1c2d4e5f' \
  'CLIENT_NAME=host1' 'EXTERNAL_CERT_DIR=/root/cert_files' \
  'CM_CA_FILE=/opt/vormetric/DataSecurityExpert/agent/vmd/etc/cm-ca.pem' \
  'RENEW_DAYS_BEFORE_EXPIRY=60' 'RENEW_RETRY_HOURS=24' 'RENEW_STAGGER_HOURS=48' \
  'STATUS_INTERVAL_MINUTES=60' 'LOG_UPLOAD_LEVEL=WARNING' > "$conf/seed-register-host"
printf '%s\r\n' '; windows style' 'URL = "https://[::1]:443/api"' 'CLIENT_ID=c1' \
  'CM_FINGERPRINT=AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89' \
  'LOG_UPLOAD_LEVEL=none' 'CUSTOM_KEY = kept value' > "$conf/seed-fingerprint-crlf"
printf '\xef\xbb\xbfURL=https://cm\nCLIENT_ID=a\nCLIENT_ID=b\nCM_CA_FILE="/etc/cm ca.pem"\nRENEW_DAYS_BEFORE_EXPIRY=-5\nRENEW_STAGGER_HOURS=99999999999\n' > "$conf/seed-bom-duplicates-bad-numbers"
printf 'URL=https://cm\nthis is not a setting\n' > "$conf/seed-syntax-error"
printf 'QUOTED=""value""\nSPACED=  "  padded  "\nEMPTY=\nEQUALS=a=b=c\n' > "$conf/seed-quotes"

# silent_file: the public keys, as the product's silent installs use them.
silent=corpus/silent_file
printf '%s\n' 'SERVER_HOSTNAME=cm.example.com:8443' 'REG_TOKEN=test-only-token-0123456789' \
  'AGENT_HOST_NAME=host1' 'HOST_DESC=web server' 'EXTERNAL_CERT_DIR=/root/cert_files' \
  'CM_CA_FILE=/root/cm-ca.pem' 'AGENT_USEIP=no' 'HOST_PROFILE=default' > "$silent/seed-full"
printf '%s\r\n' 'SERVER_IP=192.0.2.10' 'REG_TOKEN="test-only-quoted-token"' \
  'CM_FINGERPRINT=abababababababababababababababababababababababababababababababab' > "$silent/seed-ip-crlf"
printf 'REG_TOKEN=\nSERVER_HOSTNAME\n' > "$silent/seed-broken"

# manager_response: two bytes (status - 100, big-endian) then the body.
response() { # status name body
  local offset=$(( $1 - 100 ))
  { printf "\\x$(printf %02x $((offset / 256)))\\x$(printf %02x $((offset % 256)))"; printf '%s' "$3"; } \
    > "corpus/manager_response/seed-$1-$2"
}
response 201 client-record '{"id":"5f0c2a4e-0d7e-4c1b-9a53-3b8f1c2d4e5f","uri":"kylo:kylo:naboo:clients:host1","name":"host1","hostname":"host1","description":"web","state":"active","client_metadata":{"client_type":"CTE"},"common_name":"host1.example","cert_fingerprint":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","cert_not_after":"2027-01-01T00:00:00Z","ca_id":"c1","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}'
response 200 renewed '{"id":"u1","name":"h","state":"active","common_name":"h.example","cert_fingerprint":"ab","cert_not_after":"2037-01-01T00:00:00Z","previous_cert_fingerprint":"cd"}'
response 200 token '{"jwt":"opaque","duration":300,"token_type":"Bearer","client_id":"u1"}'
response 201 upload '{"accepted":3}'
response 200 fingerprint '{"fingerprint":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","algorithm":"sha256"}'
response 401 error '{"code":5,"codeDesc":"NCERRUnauthorizedAccess","message":"Invalid Client","requestID":"a1"}'
response 403 common-name '{"code":403,"codeDesc":"NCERRCommonNameMismatch","message":"common name differs: current \"a\", new \"b\"","requestID":"r"}'
response 200 error-body '{"code":5,"codeDesc":"NCERRInternal","message":"oops"}'
response 502 html '<html><body><h1>502 Bad Gateway</h1></body></html>'
response 200 wrong-types '{"id":5,"name":["x"],"jwt":null,"accepted":-1,"fingerprint":{}}'
response 200 truncated '{"id":"u1","name":"h","sta'
