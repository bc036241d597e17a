#!/usr/bin/env bash
# raft-kv end to end over mutual TLS (ctest kv.tls_smoke): two nodes on
# 127.0.0.1 with tests/net/testdata/tls's certificates; a write through one
# is read at the other; a client without a member's certificate and a plain
# HTTP client get nothing; POST /admin/snapshot answers with the snapshot's
# index and writes it; SIGHUP reloads renewed certificate files (and keeps
# the old ones when the new ones do not load); a certificate of the
# members' CA is served until a CRL that revokes it is loaded by SIGHUP,
# and an out-of-date CRL is not loaded; POST /admin/voters makes node 2
# the only voter in one change (joint consensus); a missing PEM file stops
# raft-kv with its name. Node 2's key is encrypted (--tls-key-password-file);
# without its passphrase raft-kv stops with the key file's name rather than
# asking on a terminal.
# Bounded: every wait is a loop of at most 10 s; every process is killed on
# exit.
set -euo pipefail
kv=$1
tls=$2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}
read -r p1 p2 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
member=(--cacert "$tls/ca.pem" --cert "$tls/node.pem" --key "$tls/node.key")
c() { curl -sS --max-time 5 "$@"; }
# Node 1 reads copies, which the SIGHUP check below replaces.
mkdir "$work/certs"
cp "$tls/node.pem" "$tls/node.key" "$work/certs/"
cp "$tls/ca-empty.crl" "$work/certs/crl.pem"
flags1=(--tls-cert "$work/certs/node.pem" --tls-key "$work/certs/node.key" --tls-ca "$tls/ca.pem" --tls-client-certs
  --tls-crl "$work/certs/crl.pem" --snapshot-entries 0 --quiet)

"$kv" --dir "$work/1" --listen "127.0.0.1:$p1" "${flags1[@]}" >"$work/1.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do c "${member[@]}" "https://127.0.0.1:$p1/raft/ping" >/dev/null 2>&1 && break; sleep 0.1; done
c "${member[@]}" "https://127.0.0.1:$p1/raft/ping" >/dev/null || fail "node 1 does not answer over TLS"
echo raft-test-passphrase >"$work/passphrase"
"$kv" --dir "$work/2" --listen "127.0.0.1:$p2" --join "https://127.0.0.1:$p1" --tls-cert "$tls/node.pem" \
  --tls-key "$tls/node-encrypted.key" --tls-key-password-file "$work/passphrase" --tls-ca "$tls/ca.pem" \
  --tls-client-certs --snapshot-entries 0 --quiet >"$work/2.log" 2>&1 &
pids+=($!)

code=$(c "${member[@]}" -X PUT --data v1 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$p1/kv/a") || true
[ "$code" = 204 ] || fail "PUT through node 1 answered $code"
got=""
for _ in $(seq 100); do
  got=$(c "${member[@]}" "https://127.0.0.1:$p2/kv/a" 2>/dev/null) && [ "$got" = v1 ] && break
  sleep 0.1
done
[ "$got" = v1 ] || fail "node 2 never read a=v1 (got '$got')"

if out=$(c --cacert "$tls/ca.pem" "https://127.0.0.1:$p1/kv/a" 2>&1); then
  fail "a client without a certificate was answered: $out"
fi
if out=$(c "http://127.0.0.1:$p1/kv/a" 2>&1); then fail "plain HTTP was answered: $out"; fi
case "$out" in *v1*) fail "plain HTTP got the value" ;; esac

index=$(c "${member[@]}" -X POST "https://127.0.0.1:$p2/admin/snapshot")
[[ "$index" =~ ^[0-9]+$ ]] && [ "$index" -ge 2 ] || fail "POST /admin/snapshot answered '$index'"
ls "$work/2/snapshots" | grep -q . || fail "no snapshot file in $work/2/snapshots"
code=$(c "${member[@]}" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$p2/admin/snapshot") || true
[ "$code" = 405 ] || fail "GET /admin/snapshot answered $code"
got=$(c "${member[@]}" "https://127.0.0.1:$p2/kv/a")
[ "$got" = v1 ] || fail "after the snapshot node 2 reads '$got'"

# SIGHUP: node 1 takes a certificate for another name, which curl refuses
# (it checks the name 127.0.0.1); then files that do not load, which change
# nothing; then its own again.
hup() {  # expected-line-count pattern
  kill -HUP "${pids[0]}"
  for _ in $(seq 100); do [ "$(grep -c "$2" "$work/1.log")" -ge "$1" ] && return 0; sleep 0.1; done
  fail "node 1 did not log '$2' $1 times after SIGHUP"
}
cp "$tls/othername.pem" "$work/certs/node.pem"
cp "$tls/othername.key" "$work/certs/node.key"
hup 1 "TLS certificates reloaded"
if out=$(c "${member[@]}" "https://127.0.0.1:$p1/kv/a" 2>&1); then
  fail "after SIGHUP node 1 still presents a certificate for 127.0.0.1: $out"
fi
echo "not PEM" >"$work/certs/node.pem"
hup 1 "keeping the current certificates"
cp "$tls/node.pem" "$tls/node.key" "$work/certs/"
hup 2 "TLS certificates reloaded"
got=$(c "${member[@]}" "https://127.0.0.1:$p1/kv/a") || fail "node 1 refused after its certificate came back"
[ "$got" = v1 ] || fail "node 1 reads '$got' after the reloads"

# Revocation: `revoked` (the members' CA, the right name) is a member until
# node 1 loads a CRL that revokes it; a CRL out of date is not loaded.
revoked=(--cacert "$tls/ca.pem" --cert "$tls/revoked.pem" --key "$tls/revoked.key")
got=$(c "${revoked[@]}" "https://127.0.0.1:$p1/kv/a") || fail "a certificate not yet revoked was refused"
[ "$got" = v1 ] || fail "a certificate not yet revoked reads '$got'"
# A connection the revoked certificate opened before is closed at its next
# request; a member's connection opened before goes on.
python3 - "$p1" "$tls" "$work" "${pids[0]}" <<'PY' || fail "open connections across the CRL's reload"
import os, signal, socket, ssl, sys, time
port, tls, work, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def connect(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(f"{tls}/ca.pem")
    ctx.load_cert_chain(f"{tls}/{name}.pem", f"{tls}/{name}.key")
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")
def get(s):  # the status line of a GET /kv/a on s, or None when s is cut
    try:
        s.sendall(b"GET /kv/a HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            got = s.recv(4096)
            if not got: return None
            data += got
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
        while len(body) < length: body += s.recv(4096)
        return head.split(b"\r\n")[0].decode()
    except (OSError, ssl.SSLError):
        return None
revoked, member = connect("revoked"), connect("node")
assert get(revoked) == "HTTP/1.1 200 OK", "not revoked yet"
assert get(member) == "HTTP/1.1 200 OK"
with open(f"{tls}/ca.crl", "rb") as src, open(f"{work}/certs/crl.pem", "wb") as dst: dst.write(src.read())
os.kill(pid, signal.SIGHUP)
for _ in range(100):
    if open(f"{work}/1.log").read().count("TLS certificates reloaded") >= 3: break
    time.sleep(0.1)
else:
    sys.exit("no reload after SIGHUP")
r = get(revoked)
assert r is None, f"the revoked certificate's open connection was answered: {r}"
r = get(member)
assert r == "HTTP/1.1 200 OK", f"the member's open connection: {r}"
PY
if out=$(c "${revoked[@]}" "https://127.0.0.1:$p1/kv/a" 2>&1); then fail "a revoked certificate was answered: $out"; fi
cp "$tls/ca-expired.crl" "$work/certs/crl.pem"
hup 2 "keeping the current certificates"
grep -q "crl.pem.*out of date" "$work/1.log" || fail "node 1 did not say why it kept the old CRL"
if out=$(c "${revoked[@]}" "https://127.0.0.1:$p1/kv/a" 2>&1); then fail "the revoked certificate came back: $out"; fi
got=$(c "${member[@]}" "https://127.0.0.1:$p1/kv/a") || fail "node 1 refused a member after the out-of-date CRL"
[ "$got" = v1 ] || fail "node 1 reads '$got' after the CRL reloads"

# POST /admin/voters (Log::set_voters): node 2 becomes the only voter in one
# change and node 1, the leader, a learner that steps down; a write through
# node 2 is then read at node 1.
for bad in "ids=x" "ids=2," "ids=" "ids=2,9"; do
  code=$(c "${member[@]}" -X POST -o /dev/null -w '%{http_code}' "https://127.0.0.1:$p1/admin/voters?$bad") || true
  case "$bad:$code" in *9:404 | *:400) ;; *) fail "POST /admin/voters?$bad answered $code" ;; esac
done
index=$(c "${member[@]}" -X POST "https://127.0.0.1:$p1/admin/voters?ids=2") || fail "POST /admin/voters?ids=2 failed"
[[ "$index" =~ ^[0-9]+$ ]] || fail "POST /admin/voters?ids=2 answered '$index'"
code=""
for _ in $(seq 100); do
  code=$(c "${member[@]}" -X PUT --data v2 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$p2/kv/b" 2>/dev/null) &&
    [ "$code" = 204 ] && break
  sleep 0.1
done
[ "$code" = 204 ] || fail "PUT through node 2, now the only voter, answered $code"
got=$(c "${member[@]}" "https://127.0.0.1:$p1/kv/b") || fail "node 1, now a learner, refused a read"
[ "$got" = v2 ] || fail "node 1, now a learner, reads b='$got'"
c "${member[@]}" "https://127.0.0.1:$p1/raft/status" | grep -q '"learner":true' || fail "node 1 is no learner"

set +e
out=$("$kv" --dir "$work/3" --listen 127.0.0.1:1 --tls-cert "$work/missing.pem" --tls-key "$tls/node.key" 2>&1)
rc=$?
set -e
[ $rc = 2 ] || fail "a missing certificate file: exit $rc"
case "$out" in *missing.pem*) ;; *) fail "a missing certificate file: '$out' does not name it" ;; esac
set +e
out=$(timeout 10 "$kv" --dir "$work/4" --listen 127.0.0.1:1 --tls-cert "$tls/node.pem" \
  --tls-key "$tls/node-encrypted.key" 2>&1 </dev/null)
rc=$?
set -e
[ $rc = 2 ] || fail "an encrypted key without its passphrase: exit $rc"
case "$out" in *node-encrypted.key*private_key_password*) ;; *) fail "an encrypted key without its passphrase: '$out'" ;; esac
set +e
out=$("$kv" --dir "$work/5" --listen 127.0.0.1:1 --tls-cert "$tls/node.pem" --tls-key "$tls/node.key" \
  --tls-crl "$tls/ca.crl" 2>&1)
rc=$?
set -e
[ $rc = 2 ] || fail "--tls-crl without --tls-ca: exit $rc"
case "$out" in *"--tls-crl needs --tls-ca"*) ;; *) fail "--tls-crl without --tls-ca: '$out'" ;; esac
echo "raft-kv over mutual TLS: ok"
