#!/usr/bin/env bash
# Regenerates the test certificates (tests/net/tls_test.cpp, cluster_test.cpp).
# EC P-256 keys, valid for 100 years from generation, for 127.0.0.1 only.
# Test material: these keys are public; never use them for anything else.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
ca() {  # name subject
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$1.key" -out "$1.pem" \
    -days $days -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() {  # name ca san
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days $days \
    -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
crl() {  # out ca validity [certificate to revoke...]
  local out=$1 ca=$2 valid=$3; shift 3
  : > crl.index
  printf '[ca]\ndefault_ca=d\n[d]\ndatabase=crl.index\ndefault_md=sha256\n' > crl.cnf
  for c in "$@"; do openssl ca -config crl.cnf -keyfile "$ca.key" -cert "$ca.pem" -revoke "$c.pem" 2>/dev/null; done
  # shellcheck disable=SC2086  # $valid is several options
  openssl ca -config crl.cnf -keyfile "$ca.key" -cert "$ca.pem" -gencrl $valid -out "$out" 2>/dev/null
  rm -f crl.index* crl.cnf
}
ca ca "raft test CA"
ca rogue-ca "another CA"
leaf node ca "IP:127.0.0.1,DNS:localhost"          # a member: server and client certificate
leaf rogue rogue-ca "IP:127.0.0.1,DNS:localhost"   # right name, wrong CA
leaf othername ca "IP:10.11.12.13,DNS:elsewhere"   # right CA, wrong name
leaf revoked ca "IP:127.0.0.1,DNS:localhost"       # right CA and name, but revoked by ca.crl
# CRLs (TLSOptions::crl_file): ca's revoking `revoked`, ca's revoking
# nothing, one out of date since 2020, and the other CA's (revoking nothing).
crl ca.crl ca "-crldays $days" revoked
crl ca-empty.crl ca "-crldays $days"
crl ca-expired.crl ca "-crl_lastupdate 20200101000000Z -crl_nextupdate 20200102000000Z"
crl rogue-ca.crl rogue-ca "-crldays $days"
# node.key encrypted (TLSOptions::private_key_password)
openssl pkey -in node.key -aes256 -passout pass:raft-test-passphrase -out node-encrypted.key
rm -f ./*.srl
