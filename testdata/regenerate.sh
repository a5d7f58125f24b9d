#!/usr/bin/env bash
# Regenerates ALL test vectors under testdata/ with the real `openssl` CLI (3.0+).
#
#   bash testdata/regenerate.sh          (works from any working directory)
#
# Deletes and recreates testdata/pki and testdata/vectors. Every command that
# produces a file is echoed into a COMMANDS.txt before it runs, so each vector
# directory documents exactly how its files were made. All commands are run with
# testdata/ as the working directory, so paths in COMMANDS.txt are relative to it.
#
# EVERYTHING HERE IS TEST-ONLY: the keys, the unencrypted CA keys and all
# passphrases are published in this repository and must never be trusted.
set -euo pipefail

OPENSSL=${OPENSSL:-openssl}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

rm -rf pki vectors
mkdir -p pki/ext pki/leaf-keys pki/leaf-certs vectors/good vectors/bad

CNF=pki/openssl-ca.cnf
INDEX=vectors/index.tsv
printf 'kind\tname\texpect\tkey_type\tkey_format\tcommon_name\tnot_after\n' >"$INDEX"

# Fixed dates (GeneralizedTime-style input accepted by `openssl ca`).
CA_START=20240101000000Z
CA_END=20400101000000Z
START=20250101000000Z
END=20360101000000Z

# ---------------------------------------------------------------------------
# Command logging helpers
# ---------------------------------------------------------------------------
LOG=/dev/null

q() { # shell-quote one argument readably
  local a=$1
  if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$a"
  else
    printf "'%s'" "${a//\'/\'\\\'\'}"
  fi
}

# run CMD ARGS... : log the command line to $LOG, then execute it.
run() {
  local line="" a
  for a in "$@"; do line+="$(q "$a") "; done
  printf '%s\n' "${line% }" >>"$LOG"
  if ! "$@" 2>"$WORK/stderr"; then
    echo "FAILED: ${line% }" >&2
    cat "$WORK/stderr" >&2
    return 1
  fi
}

# sh_run 'shell text' : log a shell snippet (redirections, printf, cat ...), then eval it.
sh_run() {
  printf '%s\n' "$1" >>"$LOG"
  eval "$1"
}

note() { printf '# %s\n' "$*" >>"$LOG"; }

# ---------------------------------------------------------------------------
# Configuration files
# ---------------------------------------------------------------------------
ca_section() { # section-name dir
  cat <<EOF

[ $1 ]
dir              = $2
database         = \$dir/db/index.txt
serial           = \$dir/db/serial
new_certs_dir    = \$dir/db/newcerts
certificate      = \$dir/ca.pem
private_key      = \$dir/ca.key
default_md       = sha256
default_days     = 365
policy           = policy_anything
unique_subject   = no
preserve         = yes
email_in_dn      = no
copy_extensions  = none
EOF
}

{
  cat <<'EOF'
# TEST-ONLY minimal OpenSSL configuration written by testdata/regenerate.sh.
# Used with `openssl req -config` and `openssl ca -config ... -name <section>`.
# Paths are relative to testdata/.

[ req ]
distinguished_name = req_dn
prompt             = no
string_mask        = utf8only

[ req_dn ]
CN = unused (overridden by -subj)

[ ca ]
default_ca = ca_rsa

[ policy_anything ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = optional
emailAddress           = optional
EOF
  ca_section ca_rsa pki/ca-rsa
  ca_section ca_p384 pki/ca-p384
  ca_section intermediate_rsa pki/intermediate-rsa
  ca_section other_ca pki/other-ca
} >"$CNF"

# Extension profiles (no section header: `openssl ca -extfile` uses the default section).
cat >pki/ext/root-ca.cnf <<'EOF'
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
EOF
cat >pki/ext/intermediate-ca.cnf <<'EOF'
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
cat >pki/ext/leaf-rsa.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
cat >pki/ext/leaf-ec.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
cat >pki/ext/leaf-no-ku-eku.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
cat >pki/ext/leaf-ku-keycertsign-only.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, keyCertSign
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
cat >pki/ext/leaf-eku-serverauth-only.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF

# Profiles that TLS (rustls/webpki, and so the manager) refuses in a client certificate.
cat >pki/ext/leaf-basic-constraints-ca-true.cnf <<'EOF'
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, digitalSignature, keyCertSign
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
cat >pki/ext/leaf-critical-certificate-policies.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
certificatePolicies    = critical, 1.3.6.1.4.1.55555.1.1
EOF
cat >pki/ext/leaf-eku-any-only.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = anyExtendedKeyUsage
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
# subjectAltName (2.5.29.17) whose value is an ASN.1 NULL instead of a SEQUENCE of names
cat >pki/ext/leaf-san-malformed.cnf <<'EOF'
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
2.5.29.17              = DER:05:00
EOF

# ---------------------------------------------------------------------------
# Test CAs
# ---------------------------------------------------------------------------
LOG=pki/COMMANDS.txt
cat >"$LOG" <<'EOF'
# Commands that produced the TEST-ONLY PKI in this directory (run from testdata/).
# pki/openssl-ca.cnf and pki/ext/*.cnf are written verbatim by regenerate.sh.
# CA keys are deliberately UNENCRYPTED: test-only, never trust them.
# Intermediate *.csr files and db/newcerts/ are deleted at the end of regenerate.sh.
EOF

# mk_ca DIR SECTION SUBJ MD ISSUER_SECTION(or self) EXTFILE SERIAL GENPKEY-ARGS...
mk_ca() {
  local dir=$1 section=$2 subj=$3 md=$4 issuer=$5 ext=$6 serial=$7
  shift 7
  note "---- $dir ----"
  sh_run "mkdir -p pki/$dir/db/newcerts && : > pki/$dir/db/index.txt && echo $serial > pki/$dir/db/serial"
  run "$OPENSSL" genpkey "$@" -out "pki/$dir/ca.key"
  run "$OPENSSL" req -new -config "$CNF" -key "pki/$dir/ca.key" -subj "$subj" -out "pki/$dir/ca.csr"
  if [[ $issuer == self ]]; then
    run "$OPENSSL" ca -config "$CNF" -name "$section" -batch -notext -selfsign \
      -keyfile "pki/$dir/ca.key" -md "$md" -startdate "$CA_START" -enddate "$CA_END" \
      -extfile "pki/ext/$ext.cnf" -in "pki/$dir/ca.csr" -out "pki/$dir/ca.pem"
  else
    run "$OPENSSL" ca -config "$CNF" -name "$issuer" -batch -notext \
      -md "$md" -startdate "$CA_START" -enddate "$CA_END" \
      -extfile "pki/ext/$ext.cnf" -in "pki/$dir/ca.csr" -out "pki/$dir/ca.pem"
  fi
}

RSA3072=(-algorithm RSA -pkeyopt rsa_keygen_bits:3072)
P384=(-algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve)
P256=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve)

mk_ca ca-rsa ca_rsa "/O=Test/CN=Test-Only Root CA RSA" sha256 self root-ca 1000 "${RSA3072[@]}"
mk_ca ca-p384 ca_p384 "/O=Test/CN=Test-Only Root CA P-384" sha384 self root-ca 2000 "${P384[@]}"
mk_ca intermediate-rsa intermediate_rsa "/O=Test/CN=Test-Only Intermediate CA RSA" sha256 ca_rsa intermediate-ca 3000 "${RSA3072[@]}"
mk_ca other-ca other_ca "/O=Unrelated Test/CN=Test-Only Unrelated Root CA" sha256 self root-ca 4000 "${RSA3072[@]}"

# ---------------------------------------------------------------------------
# Shared leaf keys and certificates (each with its own command log)
# ---------------------------------------------------------------------------
declare -A CERT_KEY CERT_END

leaf_key() { # NAME GENPKEY-ARGS...
  local name=$1
  shift
  LOG="$WORK/key-$name.log"
  note "---- shared leaf key pki/leaf-keys/$name.key (unencrypted, TEST-ONLY) ----"
  run "$OPENSSL" genpkey "$@" -out "pki/leaf-keys/$name.key"
}

# leaf_cert NAME KEY CA_SECTION SUBJ START END EXT MD
#   EXT "-" means no extension file at all: `openssl ca` then makes an X.509 v1 certificate.
leaf_cert() {
  local name=$1 key=$2 ca=$3 subj=$4 start=$5 end=$6 ext=$7 md=$8
  local extfile=(-extfile "pki/ext/$ext.cnf")
  [[ $ext == - ]] && extfile=()
  CERT_KEY[$name]=$key
  CERT_END[$name]="${end:0:4}-${end:4:2}-${end:6:2}T${end:8:2}:${end:10:2}:${end:12:2}Z"
  LOG="$WORK/cert-$name.log"
  note "---- shared leaf certificate pki/leaf-certs/$name.pem ----"
  run "$OPENSSL" req -new -utf8 -config "$CNF" -key "pki/leaf-keys/$key.key" -subj "$subj" -out "pki/leaf-certs/$name.csr"
  run "$OPENSSL" ca -config "$CNF" -name "$ca" -batch -notext -md "$md" \
    -startdate "$start" -enddate "$end" "${extfile[@]}" \
    -in "pki/leaf-certs/$name.csr" -out "pki/leaf-certs/$name.pem"
}

H1=/O=Test/CN=host1.example

leaf_key rsa3072-a "${RSA3072[@]}"
leaf_key rsa3072-b "${RSA3072[@]}"
leaf_key rsa3072-renew-later "${RSA3072[@]}"
leaf_key rsa3072-renew-other "${RSA3072[@]}"
leaf_key rsa3072-renew-earlier "${RSA3072[@]}"
leaf_key rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
leaf_key rsa4096 -algorithm RSA -pkeyopt rsa_keygen_bits:4096
leaf_key rsa1024 -algorithm RSA -pkeyopt rsa_keygen_bits:1024
leaf_key p384-a "${P384[@]}"
leaf_key p384-b "${P384[@]}"
leaf_key p384-renew-later "${P384[@]}"
leaf_key p384-renew-other "${P384[@]}"
leaf_key p256 "${P256[@]}"
leaf_key ed25519 -algorithm ED25519

leaf_cert rsa3072-host1 rsa3072-a ca_rsa "$H1" $START $END leaf-rsa sha256
leaf_cert rsa3072-b-host1 rsa3072-b ca_rsa "$H1" $START $END leaf-rsa sha256
leaf_cert rsa3072-host1-no-ku-eku rsa3072-a ca_rsa "$H1" $START $END leaf-no-ku-eku sha256
leaf_cert rsa3072-host1-via-intermediate rsa3072-b intermediate_rsa "$H1" $START $END leaf-rsa sha256
leaf_cert rsa3072-host1-other-ca rsa3072-a other_ca "$H1" $START $END leaf-rsa sha256
leaf_cert rsa2048-host1 rsa2048 ca_rsa "$H1" $START $END leaf-rsa sha256
leaf_cert rsa4096-host1 rsa4096 ca_rsa "$H1" $START $END leaf-rsa sha256
leaf_cert p384-host1 p384-a ca_p384 "$H1" $START $END leaf-ec sha384
leaf_cert p384-b-host1 p384-b ca_p384 "$H1" $START $END leaf-ec sha384
# renewal candidates
leaf_cert rsa3072-host1-renew-later rsa3072-renew-later ca_rsa "$H1" 20260101000000Z 20370101000000Z leaf-rsa sha256
leaf_cert rsa3072-host2-renew-other rsa3072-renew-other ca_rsa /O=Test/CN=host2.example $START $END leaf-rsa sha256
leaf_cert rsa3072-host1-renew-earlier rsa3072-renew-earlier ca_rsa "$H1" $START 20300101000000Z leaf-rsa sha256
leaf_cert p384-host1-renew-later p384-renew-later ca_p384 "$H1" 20260101000000Z 20370101000000Z leaf-ec sha384
leaf_cert p384-host2-renew-other p384-renew-other ca_p384 /O=Test/CN=host2.example $START $END leaf-ec sha384
# defective certificates
leaf_cert rsa3072-host1-sha1 rsa3072-a ca_rsa "$H1" $START $END leaf-rsa sha1
leaf_cert rsa3072-host1-sha384 rsa3072-a ca_rsa "$H1" $START $END leaf-rsa sha384
leaf_cert p384-host1-ecdsa-sha256 p384-a ca_p384 "$H1" $START $END leaf-ec sha256
leaf_cert p256-host1 p256 ca_p384 "$H1" $START $END leaf-ec sha384
leaf_cert ed25519-host1 ed25519 ca_rsa "$H1" $START $END leaf-ec sha256
leaf_cert rsa1024-host1 rsa1024 ca_rsa "$H1" $START $END leaf-rsa sha256
leaf_cert rsa3072-host1-expired rsa3072-a ca_rsa "$H1" 20200101000000Z 20210101000000Z leaf-rsa sha256
leaf_cert rsa3072-host1-not-yet-valid rsa3072-a ca_rsa "$H1" 20300101000000Z 20400101000000Z leaf-rsa sha256
leaf_cert rsa3072-no-cn rsa3072-a ca_rsa /O=Test $START $END leaf-rsa sha256
leaf_cert rsa3072-two-cns rsa3072-a ca_rsa /O=Test/CN=host1.example/CN=host1b.example $START $END leaf-rsa sha256
# ESC [2J (clear screen), BEL and U+202E (right-to-left override) in the common name
leaf_cert rsa3072-cn-control rsa3072-a ca_rsa "/O=Test/CN=host1.example"$'\033[2J\a\xe2\x80\xae'"lmth.exe" $START $END leaf-rsa sha256
leaf_cert rsa3072-host1-ku-keycertsign rsa3072-a ca_rsa "$H1" $START $END leaf-ku-keycertsign-only sha256
leaf_cert rsa3072-host1-eku-serverauth rsa3072-a ca_rsa "$H1" $START $END leaf-eku-serverauth-only sha256
# refused by TLS (rustls/webpki), so by the manager
leaf_cert rsa3072-host1-x509-v1 rsa3072-a ca_rsa "$H1" $START $END - sha256
leaf_cert rsa3072-host1-critical-policies rsa3072-a ca_rsa "$H1" $START $END leaf-critical-certificate-policies sha256
leaf_cert rsa3072-host1-ca-true rsa3072-a ca_rsa "$H1" $START $END leaf-basic-constraints-ca-true sha256
leaf_cert rsa3072-host1-eku-any rsa3072-a ca_rsa "$H1" $START $END leaf-eku-any-only sha256
leaf_cert rsa3072-host1-san-malformed rsa3072-a ca_rsa "$H1" $START $END leaf-san-malformed sha256

# ---------------------------------------------------------------------------
# Vector helpers
# ---------------------------------------------------------------------------
PASS_N=0
DIR=""
KIND=""
NAME=""

next_pass() { PASS_N=$((PASS_N + 1)); PASS="test-only-passphrase-$PASS_N"; }

# begin KIND NAME [EXPECT]
begin() {
  KIND=$1 NAME=$2
  DIR="vectors/$KIND/$NAME"
  mkdir -p "$DIR"
  LOG="$DIR/COMMANDS.txt"
  {
    echo "# Exact commands that produced the files in $DIR"
    echo "# (run from testdata/ by regenerate.sh). TEST-ONLY material."
    echo "# CA material (pki/ca-*, pki/intermediate-rsa, pki/other-ca): see pki/COMMANDS.txt."
  } >"$LOG"
  if [[ $# -ge 3 ]]; then
    printf '%s\n' "$3" >"$DIR/EXPECT"
    echo "# EXPECT: $3" >>"$LOG"
  fi
}

uses_key() { cat "$WORK/key-$1.log" >>"$LOG"; }
uses_cert() { cat "$WORK/cert-$1.log" >>"$LOG"; }

note_own() { echo "# ---- files of this vector ----" >>"$LOG"; }

# cert_plain CERTNAME : client_cert.pem = the shared leaf certificate
cert_plain() { sh_run "cp pki/leaf-certs/$1.pem $DIR/client_cert.pem"; }

# write_pass TEXT [printf-format]
write_pass() {
  local fmt=${2:-'%s\n'}
  sh_run "printf $(q "$fmt") $(q "$1") > $DIR/passphrase"
}

# encryption variants; KEY PASS EXTRA...
enc_pkcs8() {
  local key=$1 pass=$2
  shift 2
  run "$OPENSSL" pkcs8 -topk8 -in "pki/leaf-keys/$key.key" "$@" -passout "pass:$pass" -out "$DIR/client_key.pem"
}
enc_trad_rsa() { # KEY PASS CIPHER-FLAG
  run "$OPENSSL" rsa -in "pki/leaf-keys/$1.key" -traditional "$3" -passout "pass:$2" -out "$DIR/client_key.pem"
  grep -q '^Proc-Type: 4,ENCRYPTED' "$DIR/client_key.pem"
  grep -q '^DEK-Info: ' "$DIR/client_key.pem"
}
enc_trad_ec() { # KEY PASS CIPHER-FLAG
  run "$OPENSSL" ec -in "pki/leaf-keys/$1.key" "$3" -passout "pass:$2" -out "$DIR/client_key.pem"
  grep -q '^-----BEGIN EC PRIVATE KEY-----' "$DIR/client_key.pem"
  grep -q '^Proc-Type: 4,ENCRYPTED' "$DIR/client_key.pem"
  grep -q '^DEK-Info: ' "$DIR/client_key.pem"
}

# index EXPECT KEY_TYPE KEY_FORMAT COMMON_NAME NOT_AFTER
index() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$KIND" "$NAME" "$1" "$2" "$3" "$4" "$5" >>"$INDEX"; }

PBES2=(-v2 aes-256-cbc -v2prf hmacWithSHA256)
FMT_DEFAULT=pkcs8-pbes2-pbkdf2-sha256-aes256-cbc

# simple_good NAME CERT KEY_TYPE KEY_FORMAT ENC_FN ENC_ARGS...
#   builds a good vector from a shared cert + its key with a fresh passphrase.
simple() {
  local kind=$1 name=$2 expect=$3 cert=$4 ktype=$5 kfmt=$6 cn=$7 fn=$8
  shift 8
  local key=${CERT_KEY[$cert]}
  if [[ $kind == good ]]; then begin good "$name"; else begin bad "$name" "$expect"; fi
  uses_key "$key"
  uses_cert "$cert"
  note_own
  cert_plain "$cert"
  next_pass
  write_pass "$PASS"
  "$fn" "$key" "$PASS" "$@"
  index "$expect" "$ktype" "$kfmt" "$cn" "${CERT_END[$cert]}"
}

# ---------------------------------------------------------------------------
# GOOD vectors
# ---------------------------------------------------------------------------
R=rsa3072-sha256
for prf in sha1 sha224 sha256 sha384 sha512; do
  simple good "$R-pkcs8-pbes2-aes256-pbkdf2-$prf" ok rsa3072-host1 rsa3072 \
    "pkcs8-pbes2-pbkdf2-$prf-aes256-cbc" host1.example enc_pkcs8 -v2 aes-256-cbc -v2prf "hmacWith${prf^^}"
done
simple good "$R-pkcs8-pbes2-aes256-scrypt" ok rsa3072-host1 rsa3072 pkcs8-pbes2-scrypt-aes256-cbc host1.example \
  enc_pkcs8 -v2 aes-256-cbc -scrypt -scrypt_N 16384 -scrypt_r 8 -scrypt_p 1
# name-part:key_format-part:openssl-cipher
for c in aes128:aes128-cbc:aes-128-cbc aes192:aes192-cbc:aes-192-cbc des3:des-ede3-cbc:des-ede3-cbc; do
  IFS=: read -r vn fmt cipher <<<"$c"
  simple good "$R-pkcs8-pbes2-$vn-pbkdf2-sha256" ok rsa3072-host1 rsa3072 \
    "pkcs8-pbes2-pbkdf2-sha256-$fmt" host1.example enc_pkcs8 -v2 "$cipher" -v2prf hmacWithSHA256
done
for c in aes-128-cbc:aes128 aes-192-cbc:aes192 aes-256-cbc:aes256 des-ede3-cbc:des3; do
  simple good "$R-traditional-${c#*:}" ok rsa3072-host1 rsa3072 "traditional-${c%%:*}" host1.example \
    enc_trad_rsa "-${c#*:}"
done
simple good "rsa2048-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256" ok rsa2048-host1 rsa2048 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple good "rsa4096-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256" ok rsa4096-host1 rsa4096 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"

P=p384-ecdsa-sha384
simple good "$P-pkcs8-pbes2-aes256-pbkdf2-sha256" ok p384-host1 p384 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple good "$P-pkcs8-pbes2-aes256-scrypt" ok p384-host1 p384 pkcs8-pbes2-scrypt-aes256-cbc host1.example \
  enc_pkcs8 -v2 aes-256-cbc -scrypt -scrypt_N 16384 -scrypt_r 8 -scrypt_p 1
simple good "$P-pkcs8-pbes2-des3-pbkdf2-sha256" ok p384-host1 p384 pkcs8-pbes2-pbkdf2-sha256-des-ede3-cbc host1.example \
  enc_pkcs8 -v2 des-ede3-cbc -v2prf hmacWithSHA256
for c in aes-256-cbc:aes256 aes-128-cbc:aes128 des-ede3-cbc:des3; do
  simple good "$P-traditional-${c#*:}" ok p384-host1 p384 "traditional-${c%%:*}" host1.example enc_trad_ec "-${c#*:}"
done

# no keyUsage / extendedKeyUsage at all (allowed: the rules only apply when present)
simple good "$R-no-keyusage-no-eku-pkcs8-pbes2-aes256-pbkdf2-sha256" ok rsa3072-host1-no-ku-eku rsa3072 $FMT_DEFAULT host1.example \
  enc_pkcs8 "${PBES2[@]}"

# chain: leaf signed by intermediate-rsa; client_cert.pem = leaf + intermediate
begin good "$R-chain-intermediate-pkcs8-pbes2-aes256-pbkdf2-sha256"
uses_key rsa3072-b
uses_cert rsa3072-host1-via-intermediate
note_own
sh_run "cat pki/leaf-certs/rsa3072-host1-via-intermediate.pem pki/intermediate-rsa/ca.pem > $DIR/client_cert.pem"
next_pass
write_pass "$PASS"
enc_pkcs8 rsa3072-b "$PASS" "${PBES2[@]}"
index ok rsa3072 $FMT_DEFAULT host1.example "${CERT_END[rsa3072-host1-via-intermediate]}"

# leaf issued by the unrelated CA (passes the load rules; for trust-anchor tests)
simple good "$R-issued-by-other-ca-pkcs8-pbes2-aes256-pbkdf2-sha256" ok rsa3072-host1-other-ca rsa3072 $FMT_DEFAULT host1.example \
  enc_pkcs8 "${PBES2[@]}"

# passphrase file variants
pass_variant() { # NAME PASSPHRASE PRINTF-FORMAT
  begin good "$R-pkcs8-pbes2-aes256-pbkdf2-sha256-$1"
  uses_key rsa3072-a
  uses_cert rsa3072-host1
  note_own
  cert_plain rsa3072-host1
  write_pass "$2" "$3"
  enc_pkcs8 rsa3072-a "$2" "${PBES2[@]}"
  index ok rsa3072 $FMT_DEFAULT host1.example "${CERT_END[rsa3072-host1]}"
}
next_pass; pass_variant passphrase-crlf "$PASS" '%s\r\n'
next_pass; pass_variant passphrase-no-newline "$PASS" '%s'
next_pass; pass_variant passphrase-utf8-spaces "tëst ønly pässphrase ✓ 日本 $PASS_N" '%s\n'

# renewal candidates (all valid at now = 2026-06-01T00:00:00Z)
simple good "renewal-same-cn-later-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256" ok rsa3072-host1-renew-later rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple good "renewal-same-cn-later-p384-pkcs8-pbes2-aes256-pbkdf2-sha256" ok p384-host1-renew-later p384 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple good "renewal-other-cn-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256" ok rsa3072-host2-renew-other rsa3072 $FMT_DEFAULT host2.example enc_pkcs8 "${PBES2[@]}"
simple good "renewal-other-cn-p384-pkcs8-pbes2-aes256-pbkdf2-sha256" ok p384-host2-renew-other p384 $FMT_DEFAULT host2.example enc_pkcs8 "${PBES2[@]}"
simple good "renewal-same-cn-earlier-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256" ok rsa3072-host1-renew-earlier rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"

# ---------------------------------------------------------------------------
# BAD vectors
# ---------------------------------------------------------------------------
unenc_pkcs8() { run "$OPENSSL" pkcs8 -topk8 -nocrypt -in "pki/leaf-keys/$1.key" -out "$DIR/client_key.pem"; }
unenc_trad() {
  run "$OPENSSL" rsa -in "pki/leaf-keys/$1.key" -traditional -out "$DIR/client_key.pem"
  grep -q '^-----BEGIN RSA PRIVATE KEY-----' "$DIR/client_key.pem"
  ! grep -q 'Proc-Type' "$DIR/client_key.pem"
}
simple bad unencrypted-key-pkcs8 UnencryptedKey rsa3072-host1 rsa3072 pkcs8-unencrypted host1.example unenc_pkcs8
simple bad unencrypted-key-traditional-rsa UnencryptedKey rsa3072-host1 rsa3072 traditional-unencrypted host1.example unenc_trad

simple bad signature-sha1-with-rsa UnsupportedSignatureAlgorithm rsa3072-host1-sha1 rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad signature-sha384-with-rsa UnsupportedSignatureAlgorithm rsa3072-host1-sha384 rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad signature-ecdsa-sha256-p384-key UnsupportedSignatureAlgorithm p384-host1-ecdsa-sha256 p384 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad key-type-p256 UnsupportedKeyType p256-host1 p256 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad key-type-ed25519 UnsupportedKeyType ed25519-host1 ed25519 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad key-too-small-rsa1024 KeyTooSmall rsa1024-host1 rsa1024 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"

# wrong passphrase: file differs from the real passphrase by exactly one character
wrong_pass() { # NAME KEY_FORMAT WRONG_TEXT PRINTF-FMT ENC_FN ENC_ARGS...
  local name=$1 kfmt=$2 wrong=$3 fmt=$4 fn=$5
  shift 5
  begin bad "$name" WrongPassphrase
  uses_key rsa3072-a
  uses_cert rsa3072-host1
  note_own
  cert_plain rsa3072-host1
  note "real passphrase used to encrypt the key: $PASS ; the passphrase file holds a different one"
  write_pass "$wrong" "$fmt"
  "$fn" rsa3072-a "$PASS" "$@"
  index WrongPassphrase rsa3072 "$kfmt" host1.example "${CERT_END[rsa3072-host1]}"
}
next_pass; wrong_pass wrong-passphrase-pkcs8 $FMT_DEFAULT "${PASS%?}X" '%s\n' enc_pkcs8 "${PBES2[@]}"
next_pass; wrong_pass wrong-passphrase-traditional traditional-aes-256-cbc "${PASS%?}X" '%s\n' enc_trad_rsa -aes256
next_pass; wrong_pass passphrase-trailing-spaces $FMT_DEFAULT "$PASS  " '%s\n' enc_pkcs8 "${PBES2[@]}"

empty_pass() { # NAME PRINTF-FMT
  begin bad "$1" EmptyPassphrase
  uses_key rsa3072-a
  uses_cert rsa3072-host1
  note_own
  cert_plain rsa3072-host1
  next_pass
  note "key encrypted with passphrase $PASS ; the passphrase file is empty after stripping one trailing newline"
  sh_run "printf '$2' > $DIR/passphrase"
  enc_pkcs8 rsa3072-a "$PASS" "${PBES2[@]}"
  index EmptyPassphrase rsa3072 $FMT_DEFAULT host1.example "${CERT_END[rsa3072-host1]}"
}
empty_pass empty-passphrase-zero-bytes ''
empty_pass empty-passphrase-newline-only '\n'

# key of another certificate (same CN, same CA, different key pair)
mismatch() { # NAME CERT OTHER_KEY KEY_TYPE
  begin bad "$1" KeyCertificateMismatch
  uses_key "$3"
  uses_cert "$2"
  note_own
  note "client_key.pem is $3, NOT the key of certificate $2 (which is ${CERT_KEY[$2]})"
  cert_plain "$2"
  next_pass
  write_pass "$PASS"
  enc_pkcs8 "$3" "$PASS" "${PBES2[@]}"
  index KeyCertificateMismatch "$4" $FMT_DEFAULT host1.example "${CERT_END[$2]}"
}
mismatch key-certificate-mismatch-rsa rsa3072-host1 rsa3072-b rsa3072
mismatch key-certificate-mismatch-p384 p384-host1 p384-b p384

simple bad expired Expired rsa3072-host1-expired rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad not-yet-valid NotYetValid rsa3072-host1-not-yet-valid rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad missing-common-name MissingCommonName rsa3072-no-cn rsa3072 $FMT_DEFAULT - enc_pkcs8 "${PBES2[@]}"
simple bad multiple-common-names MultipleCommonNames rsa3072-two-cns rsa3072 $FMT_DEFAULT host1.example,host1b.example enc_pkcs8 "${PBES2[@]}"
simple bad common-name-control-characters UnsafeCommonName rsa3072-cn-control rsa3072 $FMT_DEFAULT 'host1.example\1B[2J\07\U202Elmth.exe' enc_pkcs8 "${PBES2[@]}"
simple bad key-usage-keycertsign-only KeyUsageNotAllowed rsa3072-host1-ku-keycertsign rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad extended-key-usage-serverauth-only ExtendedKeyUsageNotAllowed rsa3072-host1-eku-serverauth rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"

# malformed certificate files; key + passphrase are fine
bad_cert_file() { # NAME EXPECT   (client_cert.pem is written by the caller)
  begin bad "$1" "$2"
  uses_key rsa3072-a
  uses_cert rsa3072-host1
  note_own
  next_pass
  write_pass "$PASS"
  enc_pkcs8 rsa3072-a "$PASS" "${PBES2[@]}"
}
G=pki/leaf-certs/rsa3072-host1.pem

bad_cert_file pem-truncated-certificate InvalidPem
note "truncated: first half of the PEM bytes (cut in the middle of a base64 line, no END line)"
sh_run "head -c \$(( \$(wc -c < $G) / 2 )) $G > $DIR/client_cert.pem"
index InvalidPem rsa3072 $FMT_DEFAULT - -

bad_cert_file pem-base64-garbage InvalidPem
note "BEGIN/END CERTIFICATE lines around text that is not valid base64"
sh_run "printf '%s\n' '-----BEGIN CERTIFICATE-----' 'MIIE*this is not base64!!!@@@%%%###' '~~~~ garbage garbage garbage ~~~~' '-----END CERTIFICATE-----' > $DIR/client_cert.pem"
index InvalidPem rsa3072 $FMT_DEFAULT - -

bad_cert_file certificate-der-not-pem InvalidPem
run "$OPENSSL" x509 -in "$G" -outform DER -out "$DIR/client_cert.pem"
index InvalidPem rsa3072 $FMT_DEFAULT - -

bad_cert_file certificate-is-csr NotACertificate
note "client_cert.pem holds a CERTIFICATE REQUEST for the same key"
run "$OPENSSL" req -new -config "$CNF" -key pki/leaf-keys/rsa3072-a.key -subj "$H1" -out "$DIR/client_cert.pem"
index NotACertificate rsa3072 $FMT_DEFAULT - -

# unsupported key encryption schemes
simple bad key-encryption-traditional-camellia256 UnsupportedKeyEncryption rsa3072-host1 rsa3072 traditional-camellia-256-cbc host1.example \
  enc_trad_rsa -camellia256
grep -q '^DEK-Info: CAMELLIA-256-CBC,' "$DIR/client_key.pem"
# Blowfish needs OpenSSL's legacy provider
begin bad key-encryption-traditional-bf-cbc UnsupportedKeyEncryption
uses_key rsa3072-a; uses_cert rsa3072-host1; note_own
cert_plain rsa3072-host1
next_pass; write_pass "$PASS"
run "$OPENSSL" rsa -provider legacy -provider default -in pki/leaf-keys/rsa3072-a.key -traditional -bf -passout "pass:$PASS" -out "$DIR/client_key.pem"
grep -q '^DEK-Info: BF-CBC,' "$DIR/client_key.pem"
index UnsupportedKeyEncryption rsa3072 traditional-bf-cbc host1.example "${CERT_END[rsa3072-host1]}"

simple bad key-encryption-pkcs8-pbes1-sha1-3des UnsupportedKeyEncryption rsa3072-host1 rsa3072 pkcs8-pbes1-pbe-sha1-3des host1.example \
  enc_pkcs8 -v1 PBE-SHA1-3DES
simple bad key-encryption-pkcs8-pbes1-md5-des UnsupportedKeyEncryption rsa3072-host1 rsa3072 pkcs8-pbes1-pbe-md5-des host1.example \
  enc_pkcs8 -provider legacy -provider default -v1 PBE-MD5-DES
# Over the key-derivation work bounds (cert-loading's key.rs): scrypt N*r*p and PBKDF2 iterations.
simple bad key-encryption-scrypt-work-over-limit UnsupportedKeyEncryption rsa3072-host1 rsa3072 pkcs8-pbes2-scrypt-p33-aes256-cbc host1.example \
  enc_pkcs8 -v2 aes-256-cbc -scrypt -scrypt_N 16384 -scrypt_r 8 -scrypt_p 33
simple bad key-encryption-pbkdf2-iterations-over-limit UnsupportedKeyEncryption rsa3072-host1 rsa3072 pkcs8-pbes2-pbkdf2-sha256-2000001-aes256-cbc host1.example \
  enc_pkcs8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 2000001

# missing files
missing() { # NAME FILE
  simple bad "$1" MissingFile rsa3072-host1 rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
  note "then removed $2 (this case is about the missing file)"
  sh_run "rm $DIR/$2"
  if [[ $2 == client_cert.pem ]]; then # no certificate: no common_name / not_after
    sed -i '$ s/\thost1\.example\t[^\t]*$/\t-\t-/' "$INDEX"
  fi
}
missing missing-passphrase-file passphrase
missing missing-key-file client_key.pem
missing missing-certificate-file client_cert.pem

# certificates that TLS (rustls/webpki, and so the manager) refuses: checkcerts refuses them first
simple bad x509-v1 UnsupportedCertificateVersion rsa3072-host1-x509-v1 rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad unknown-critical-extension UnknownCriticalExtension rsa3072-host1-critical-policies rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad basic-constraints-ca-true CaCertificateAsClient rsa3072-host1-ca-true rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad extended-key-usage-any-only ExtendedKeyUsageNotAllowed rsa3072-host1-eku-any rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"
simple bad subject-alt-name-malformed InvalidExtension rsa3072-host1-san-malformed rsa3072 $FMT_DEFAULT host1.example enc_pkcs8 "${PBES2[@]}"

# ---------------------------------------------------------------------------
# Cleanup of CA bookkeeping not needed in the repository
# ---------------------------------------------------------------------------
# (*.csr are intermediates; newcerts/ holds duplicate copies of issued certificates)
rm -rf pki/*/db/newcerts pki/*/db/*.old pki/*/*.csr

echo "regenerated: $(($(wc -l <"$INDEX") - 1)) vectors ($(grep -c '^good' "$INDEX") good, $(grep -c '^bad' "$INDEX") bad)"
if [[ -f "$HERE/verify.sh" ]]; then
  bash "$HERE/verify.sh"
fi
