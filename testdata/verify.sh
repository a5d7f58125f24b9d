#!/usr/bin/env bash
# Cross-checks every vector under testdata/vectors with the openssl CLI, applying
# the loader's rules independently of the Rust code:
#   * good vectors must show no defect at all (and also pass
#     `openssl verify -attime <now> -purpose sslclient` against the test roots);
#   * bad vectors must show exactly the single defect named in their EXPECT file.
# Also checks that vectors/index.tsv agrees with the certificates.
# Called at the end of regenerate.sh; can be run on its own.
set -euo pipefail

OPENSSL=${OPENSSL:-openssl}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
NOW_RFC3339=2026-06-01T00:00:00Z
NOW=$(date -u -d "$NOW_RFC3339" +%s)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cat pki/ca-rsa/ca.pem pki/ca-p384/ca.pem pki/other-ca/ca.pem >"$WORK/roots.pem"

# passphrase file -> $PW with exactly one trailing "\n" or "\r\n" stripped
read_pass() {
  PW=$(cat "$1"; printf x)
  PW=${PW%x}
  if [[ $PW == *$'\r\n' ]]; then PW=${PW%$'\r\n'}; elif [[ $PW == *$'\n' ]]; then PW=${PW%$'\n'}; fi
}

# defects DIR -> prints the defects found, one per line
defects() {
  local d=$1 f missing=0
  for f in client_cert.pem client_key.pem passphrase; do
    [[ -f $d/$f ]] || { echo MissingFile; missing=1; }
  done
  ((missing)) && return 0
  local cert=$d/client_cert.pem key=$d/client_key.pem
  local cert_ok=0
  if grep -q 'BEGIN CERTIFICATE REQUEST' "$cert"; then
    "$OPENSSL" req -in "$cert" -noout 2>/dev/null && echo NotACertificate || echo InvalidPem
  elif ! "$OPENSSL" x509 -in "$cert" -inform PEM -noout 2>/dev/null; then
    echo InvalidPem
  else
    cert_ok=1
    local text sig alg
    text=$("$OPENSSL" x509 -in "$cert" -noout -text)
    sig=$(awk '/Signature Algorithm:/{print $3; exit}' <<<"$text")
    [[ $sig == sha256WithRSAEncryption || $sig == ecdsa-with-SHA384 ]] || echo UnsupportedSignatureAlgorithm
    alg=$(awk '/Public Key Algorithm:/{print $4; exit}' <<<"$text")
    case $alg in
      rsaEncryption)
        local bits
        bits=$(sed -n 's/.*Public-Key: (\([0-9]*\) bit).*/\1/p' <<<"$text" | head -1)
        ((bits >= 2048)) || echo KeyTooSmall ;;
      id-ecPublicKey)
        grep -q 'NIST CURVE: P-384' <<<"$text" || echo UnsupportedKeyType ;;
      *) echo UnsupportedKeyType ;;
    esac
    local nb na
    nb=$(date -u -d "$("$OPENSSL" x509 -in "$cert" -noout -startdate | cut -d= -f2)" +%s)
    na=$(date -u -d "$("$OPENSSL" x509 -in "$cert" -noout -enddate | cut -d= -f2)" +%s)
    ((NOW <= na)) || echo Expired
    ((NOW >= nb)) || echo NotYetValid
    local ncn
    ncn=$("$OPENSSL" x509 -in "$cert" -noout -subject -nameopt multiline | grep -c 'commonName' || true)
    ((ncn >= 1)) || echo MissingCommonName
    ((ncn <= 1)) || echo MultipleCommonNames
    # a common name with control characters (shown as \XX below 20 or 7F) or bidi controls
    # (U+202A-U+202E, U+2066-U+2069, shown as \U20xx) is refused: it would forge log lines
    "$OPENSSL" x509 -in "$cert" -noout -subject -nameopt multiline,esc_ctrl |
      sed -n 's/^ *commonName *= *//p' |
      grep -Eq '\\(0[0-9A-F]|1[0-9A-F]|7F|U202[A-E]|U206[6-9])' && echo UnsafeCommonName
    if grep -q 'X509v3 Key Usage' <<<"$text"; then
      grep -A1 'X509v3 Key Usage' <<<"$text" | grep -q 'Digital Signature' || echo KeyUsageNotAllowed
    fi
    if grep -q 'X509v3 Extended Key Usage' <<<"$text"; then
      grep -A1 'X509v3 Extended Key Usage' <<<"$text" | grep -q 'TLS Web Client Authentication' || echo ExtendedKeyUsageNotAllowed
    fi
    # what TLS (rustls-webpki 0.103, and so the manager) refuses in a client certificate
    grep -q '^ *Version: 3 (0x2)$' <<<"$text" || echo UnsupportedCertificateVersion
    if grep -q 'X509v3 Basic Constraints' <<<"$text"; then
      grep -A1 'X509v3 Basic Constraints' <<<"$text" | grep -q 'CA:TRUE' && echo CaCertificateAsClient
    fi
    # critical extensions other than the ones webpki processes (src/cert.rs remember_cert_extension)
    grep -E '^ +[^ ].*: critical$' <<<"$text" |
      grep -vE '^ +(X509v3 (Key Usage|Subject Alternative Name|Basic Constraints|Name Constraints|CRL Distribution Points|Extended Key Usage)|CT Precertificate SCTs): critical$' |
      grep -q . && echo UnknownCriticalExtension
    # extensions webpki processes hold one SEQUENCE (keyUsage: a BIT STRING)
    "$OPENSSL" asn1parse -in "$cert" |
      awk '/:X509v3 (Subject Alternative Name|Basic Constraints|Name Constraints|CRL Distribution Points|Extended Key Usage)$/{f=1; next}
           f && /OCTET STRING/{f=0; if ($0 !~ /\[HEX DUMP\]:30/) bad=1}
           END{exit !bad}' && echo InvalidExtension
  fi
  # key
  if grep -q '^-----BEGIN ENCRYPTED PRIVATE KEY-----' "$key"; then
    local objs
    objs=$("$OPENSSL" asn1parse -in "$key" | sed -n 's/.*OBJECT *:\(.*\)$/\1/p' | tr '\n' ' ')
    if ! [[ $objs == PBES2\ * && ($objs == *' PBKDF2 '* || $objs == *' scrypt '*) &&
      $objs =~ (aes-128-cbc|aes-192-cbc|aes-256-cbc|des-ede3-cbc) ]]; then
      echo UnsupportedKeyEncryption
    fi
    # the work bounds of cert-loading's key.rs: PBKDF2 iterations <= 2,000,000; scrypt
    # N*r*p <= 2^22 (and 128*r*(N+p) bytes <= 1 GiB)
    local kdf
    kdf=$("$OPENSSL" asn1parse -in "$key" |
      awk '/:PBKDF2$/{k="pbkdf2"; next} /:scrypt$/{k="scrypt"; next}
           k && /INTEGER/{sub(/.*INTEGER *:/, ""); printf "%s %s\n", k, $0}')
    if [[ -n $kdf ]]; then
      local -a values=()
      while read -r _ hex; do values+=($((16#$hex))); done <<<"$kdf"
      case $kdf in
        pbkdf2*) ((values[0] > 2000000)) && echo UnsupportedKeyEncryption ;;
        scrypt*) ((values[0] * values[1] * values[2] > 4194304 || 128 * values[1] * (values[0] + values[2]) > 1073741824)) &&
          echo UnsupportedKeyEncryption ;;
      esac
    fi
  elif grep -q '^Proc-Type: 4,ENCRYPTED' "$key"; then
    grep -Eq '^DEK-Info: (AES-128-CBC|AES-192-CBC|AES-256-CBC|DES-EDE3-CBC),' "$key" || echo UnsupportedKeyEncryption
  else
    echo UnencryptedKey
  fi
  read_pass "$d/passphrase"
  if [[ -z $PW ]]; then
    echo EmptyPassphrase
  elif ! PW="$PW" "$OPENSSL" pkey -provider legacy -provider default -in "$key" -passin env:PW -pubout -out "$WORK/k.pub" 2>/dev/null; then
    echo WrongPassphrase
  elif ((cert_ok)); then
    "$OPENSSL" x509 -in "$cert" -noout -pubkey >"$WORK/c.pub"
    cmp -s "$WORK/k.pub" "$WORK/c.pub" || echo KeyCertificateMismatch
  fi
}

fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

# real passphrase recorded in COMMANDS.txt must open the key (bad vectors with passphrase defects)
real_pass_opens() {
  local d=$1 rp
  rp=$(grep -- "-out $d/client_key.pem" "$d/COMMANDS.txt" | grep -o 'pass:test-only-passphrase-[0-9]*' | head -1)
  "$OPENSSL" pkey -provider legacy -provider default -in "$d/client_key.pem" -passin "$rp" -noout 2>/dev/null
}

ngood=0 nbad=0
while IFS=$'\t' read -r kind name expect ktype kfmt cn notafter; do
  [[ $kind == kind ]] && continue
  d=vectors/$kind/$name
  [[ -d $d ]] || { bad "$d missing"; continue; }
  [[ -s $d/COMMANDS.txt ]] || bad "$d: no COMMANDS.txt"
  got=$(defects "$d" | sort -u | tr '\n' ' ')
  got=${got% }
  if [[ $kind == good ]]; then
    ngood=$((ngood + 1))
    [[ $expect == ok && -z $got ]] || bad "$d: expected ok, found defects: $got"
    "$OPENSSL" verify -attime "$NOW" -CAfile "$WORK/roots.pem" -untrusted "$d/client_cert.pem" \
      -purpose sslclient "$d/client_cert.pem" >/dev/null 2>&1 || bad "$d: openssl verify failed"
  else
    nbad=$((nbad + 1))
    [[ -f $d/EXPECT ]] && [[ $(cat "$d/EXPECT") == "$expect" ]] || bad "$d: EXPECT file disagrees with index ($expect)"
    [[ $got == "$expect" ]] || bad "$d: expected exactly $expect, found: ${got:-none}"
    case $expect in
      WrongPassphrase | EmptyPassphrase | UnsupportedKeyEncryption)
        real_pass_opens "$d" || bad "$d: the real passphrase does not open the key" ;;
    esac
  fi
  # index columns vs certificate (when the certificate is readable PEM)
  if [[ -f $d/client_cert.pem ]] && "$OPENSSL" x509 -inform PEM -in "$d/client_cert.pem" -noout 2>/dev/null; then
    na=$(date -u -d "$("$OPENSSL" x509 -in "$d/client_cert.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
    [[ $na == "$notafter" ]] || bad "$d: index not_after $notafter != cert $na"
    cns=$("$OPENSSL" x509 -in "$d/client_cert.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p' | paste -sd, -)
    [[ ${cns:--} == "$cn" ]] || bad "$d: index common_name $cn != cert ${cns:--}"
  fi
done <vectors/index.tsv

# every directory is indexed
for d in vectors/good/* vectors/bad/*; do
  grep -q "^$(basename "$(dirname "$d")")	$(basename "$d")	" vectors/index.tsv || bad "$d not in index.tsv"
done

if ((fail)); then
  echo "verify: FAILED" >&2
  exit 1
fi
echo "verify: OK ($ngood good, $nbad bad vectors checked at now=$NOW_RFC3339)"
