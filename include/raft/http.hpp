// The HTTP transport (DESIGN section 4): raft over HTTP/1.1 on Boost.Beast.
//
// * HTTPTransport — the client side of raft::Transport: one small keep-alive
//   pool per peer (host:port), a deadline on every call, leader hints followed
//   on join/leave, X-Raft-Error mapped back to raft::errc.
// * Handler       — serves /raft/* for one raft::Service (normally a Log).
// * Server        — a ready listener: its own acceptor, a strand per
//   connection, every limit a named setting in ServerOptions.
// * To serve /raft/* from your own Beast server on the same port, include
//   "raft/http_beast.hpp" (opt-in: that header pulls in Beast).
//
// Beast and Asio internals stay in src/http/; this header only needs the
// executor type.
//
// Threading: nothing here blocks the caller or creates threads. Completion
// handlers and Service calls run on strands of the executor given at
// construction (any thread of it).
#pragma once

#include "raft/error.hpp"
#include "raft/transport.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace raft {

// The wire protocol's version (raft::kProtocolVersion, raft/transport.hpp)
// goes with every request and response in X-Raft-Protocol. A message
// without the header is version 1 (builds before the header; curl).
//
// A Server serves a request of any version in [kMinProtocolVersion,
// kProtocolVersion] and answers in that same version; it refuses one of
// another version with errc::unsupported_protocol (400) before reading its
// cluster id or parameters, naming its own newest version. An HTTPTransport
// speaks kProtocolVersion to a peer until a refusal names an older version
// it also speaks; it then repeats the call in that version at once and
// keeps speaking it to that peer until a call to it fails or its
// connection closes (it may be restarting on a newer build), or at most
// HTTPTransportOptions::protocol_recheck_ms; then it tries its own again.
// A reply in a version it does not speak is
// errc::unsupported_protocol, its body and headers unread: builds that
// share no version stop talking, loudly, instead of misreading each other.
// See docs/design-notes.md, "Protocol version".

// TLS for peer traffic (PEM files; OpenSSL through Boost.Asio's ssl layer).
// A cluster that uses it gives its members https:// URLs: the transport
// speaks TLS to https:// peers (plain HTTP to http:// ones), and a Server
// with a TLSContext speaks only TLS.
struct TLSOptions {
  // This side's certificate (leaf first, then intermediates) and its key.
  // Required for a server; for a client, the certificate it presents when
  // the server asks for one (mutual TLS). Both or neither.
  std::string certificate_chain_file;
  std::string private_key_file;
  // The CAs that sign the other side's certificates. Empty: the system's
  // default store (a client), no client certificates accepted (a server).
  std::string ca_file;
  // Client: the server's certificate must name the URL's host (a DNS name
  // in its subject alternative names, or the IP address when the URL holds
  // one). Turn off only where every certificate the CA signs is a member's.
  bool verify_peer_name = true;
  // Server: every client must present a certificate signed by ca_file
  // (mutual TLS): only holders of a member's key can join, vote or stream.
  // Needs ca_file.
  bool require_client_certificate = false;
  // The passphrase of an encrypted private_key_file (PEM, e.g. made by
  // `openssl pkey -aes256`); empty for a key in the clear. Used once, while
  // the context is made (it is not kept), and never asked for on a terminal:
  // an encrypted key without it is errc::tls_error.
  std::string private_key_password;
  // Certificate revocation lists (PEM, any number in one file) from the CAs
  // in ca_file: a peer whose certificate one of them revokes is refused at
  // the handshake, as an untrusted one is. Needs ca_file. Each must be signed
  // by a CA in ca_file and current (its next update still ahead) when the
  // context is made, or errc::tls_error. Checked for the peer's own
  // certificate (not its intermediates), and strictly: once crl_file is set,
  // a peer whose issuer has no CRL in it is refused, and so is every peer
  // once the CRL's next update passes. Load a new one before then: a new
  // TLSContext handed to Server::set_tls and HTTPTransport::set_tls, which
  // also close the open connections of the peers it refuses (raft-kv does
  // it on SIGHUP).
  std::string crl_file;
};

// The loaded form of TLSOptions, shared by any number of transports and
// servers (and the connections they open). Made once at start-up: a file
// that cannot be read or a key that does not match its certificate is
// errc::tls_error, with OpenSSL's reason and the file in `why` if given.
class TLSContext {
 public:
  static result<std::shared_ptr<TLSContext>> server(const TLSOptions& o, std::string* why = nullptr);
  static result<std::shared_ptr<TLSContext>> client(const TLSOptions& o, std::string* why = nullptr);
  ~TLSContext();
  TLSContext(const TLSContext&) = delete;
  TLSContext& operator=(const TLSContext&) = delete;

  bool is_server() const noexcept;

  struct Impl;  // defined in src/http/tls.cpp
  Impl& impl() const noexcept { return *impl_; }

 private:
  friend struct TLSContextMaker;
  explicit TLSContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct HTTPTransportOptions {
  // Time allowed for the TCP connect (name resolution included).
  std::uint64_t connect_timeout_ms = 1000;
  // Time allowed for one request: writing it and reading the whole reply,
  // counted from the moment a connection is in hand. Per hop on redirects.
  std::uint64_t request_timeout_ms = 2000;
  // A stream is cut (on_end(errc::timeout)) when no byte arrives for this
  // long while the consumer is waiting for data. 0 = never: an idle leader
  // legitimately sends nothing; the Log's election timer is the liveness
  // check. Time the consumer spends before calling more() never counts.
  std::uint64_t stream_idle_timeout_ms = 0;
  // Idle keep-alive connections kept per host:port.
  std::size_t max_idle_connections_per_host = 4;
  // Limits on replies; a reply over a limit is errc::transport_error.
  std::size_t response_header_limit_bytes = 16 * 1024;
  std::size_t response_body_limit_bytes = 16 * 1024 * 1024;
  // Bytes read from the socket per step of a stream (the size of the buffer
  // handed to StreamCallbacks::on_data at most).
  std::size_t stream_read_buffer_bytes = 256 * 1024;
  // X-Raft-Leader-URL hops followed by join/leave before giving up with
  // errc::not_leader.
  int max_redirects = 3;
  // Send acks on the stream's own connection when the leader agrees (the
  // X-Raft-Ack-Channel header): one 17-byte write per ack instead of a
  // POST /raft/ack and its reply. The leader's side is always on; turn this
  // off only if something between the nodes (a proxy) cannot carry bytes
  // upstream while a response streams. Either way acks may also go by POST
  // (before the stream is up, or while a channel write is in flight).
  bool ack_channel = true;
  // Sent with every request as `Authorization: Bearer <token>` when not
  // empty: the cluster's shared secret (HandlerOptions::auth_token). A peer
  // that refuses it answers 401, errc::unauthorized (not retried by join).
  std::string auth_token;
  // For https:// peer URLs (TLSContext::client). Without it a call to an
  // https:// URL fails with errc::tls_error. A failed handshake (an
  // untrusted or misnamed certificate) is errc::transport_error, like a
  // failed connect; connect_timeout_ms covers the handshake too.
  std::shared_ptr<TLSContext> tls;
  // After a peer refused kProtocolVersion and was spoken to in its older
  // version, try kProtocolVersion again after this long (one refused round
  // trip each time, while the peer is old), or sooner, once a call to it
  // fails or a connection to it closes (a peer restarted on a newer
  // build). 0: at every call.
  std::uint64_t protocol_recheck_ms = 30'000;
};

class HTTPTransport final : public Transport {
 public:
  explicit HTTPTransport(boost::asio::any_io_executor ex, HTTPTransportOptions opts = {});
  // Closes idle pooled connections. Calls in flight keep what they need
  // alive and still complete (typically with an error).
  ~HTTPTransport() override;
  HTTPTransport(const HTTPTransport&) = delete;
  HTTPTransport& operator=(const HTTPTransport&) = delete;

  void set_cluster_id(std::uint64_t id) override;
  // Replaces HTTPTransportOptions::tls, e.g. with renewed certificates or
  // a new CRL: connections opened from now on use `tls`; idle pooled https
  // connections are dropped; calls in flight keep theirs, and so do streams
  // but those from a server whose certificate `tls` would refuse (revoked,
  // or of a CA it no longer trusts), which end with errc::tls_error.
  // errc::invalid_argument for null, errc::tls_error for a server context.
  result<void> set_tls(std::shared_ptr<TLSContext> tls);
  void join(const std::string& url, const JoinRequest& req, Handler_fn<JoinResponse> h) override;
  void leave(const std::string& url, std::uint64_t id, Handler_fn<void> h) override;
  void heartbeat(const std::string& url, const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) override;
  void request_vote(const std::string& url, const VoteRequest& req, Handler_fn<VoteResponse> h) override;
  void ack(const std::string& url, const AckRequest& req, Handler_fn<void> h) override;
  void read_index(const std::string& url, const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) override;
  std::shared_ptr<StreamHandle> read_from(const std::string& url, const StreamRequest& req,
                                          StreamCallbacks cb) override;

  // Connections opened so far (tests use it to observe keep-alive reuse).
  std::uint64_t connections_opened() const noexcept;

  struct Impl;  // defined in src/http/transport.cpp

 private:
  std::shared_ptr<Impl> impl_;
};

// Limits and timeouts of the server side. Every one is enforced per
// connection; a client over a limit gets a 4xx (when an answer is still
// possible) and the connection is closed.
struct ServerOptions {
  // Request line plus headers. Over it: 431 and close.
  std::size_t header_limit_bytes = 8 * 1024;
  // Request body (raft requests carry none). Over it: 413 and close.
  std::size_t body_limit_bytes = 64 * 1024;
  // Concurrent connections; beyond it new connections are closed at once.
  std::size_t max_connections = 256;
  // A keep-alive connection waiting for the first byte of its next request
  // is closed after this long.
  std::uint64_t idle_timeout_ms = 60'000;
  // A request must be complete this long after its first byte arrived: a
  // client trickling bytes (slowloris) is cut off.
  std::uint64_t read_timeout_ms = 10'000;
  // Each response write and each stream chunk write must complete within
  // this long; a peer that stops reading is disconnected instead of making
  // the server buffer.
  std::uint64_t write_timeout_ms = 10'000;
  // With a TLSContext::server, every connection starts with a TLS handshake
  // (within read_timeout_ms); a client that fails it is disconnected.
  // Without one, plain HTTP. serve_raft_request ignores this: there the
  // application's own server owns the connection.
  std::shared_ptr<TLSContext> tls;
};

// Serves /raft/* for one Service. Stateless apart from the reference: one
// Handler may back any number of Servers and hooked connections. The
// Service must outlive every connection served through this Handler.
//
// Endpoints (DESIGN 4): GET /raft/ping, POST /raft/join?url=U[&id=N],
// POST /raft/leave?id=N, POST /raft/heartbeat?term&commitIndex&leaderID,
// POST /raft/vote?term&candidateID&lastLogIndex&lastLogTerm,
// POST /raft/ack?id&term&index, GET /raft/stream?id&term&index&logTerm
// (with X-Raft-Ack-Channel: 1 the stream's connection also carries the
// follower's acks: docs/design-notes.md),
// GET /raft/status (JSON), GET /raft/metrics (Prometheus text).
// Bad parameters: 400 with the seed's X-Raft-Error texts ("invalid term"...).
// Service errors: X-Raft-Error: <errc message> and 421 (not leader, with
// X-Raft-Leader-URL), 403 (cluster id mismatch), 503 (no leader), 500 else;
// 401 (unauthorized) without HandlerOptions::auth_token when one is set.
// Protocol refusals (stale term, already voted...) are answers: 200 with
// X-Raft-Error next to the X-Raft-Term/X-Raft-Index headers.
struct HandlerOptions {
  // When not empty, every /raft/* request but GET /raft/ping must carry
  // `Authorization: Bearer <auth_token>`, else 401 (X-Raft-Error:
  // unauthorized) and nothing is done: without it, anything that can reach
  // the port can remove members (POST /raft/leave) or join. Give every
  // member the same token, and the same to its HTTPTransportOptions. The
  // token crosses the network in clear text: a private network, or TLS
  // in front, keeps it secret.
  std::string auth_token;
};

class Handler {
 public:
  explicit Handler(Service& service, HandlerOptions opts = {});
  ~Handler();
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;

  Service& service() const noexcept;
  // Whether an Authorization header value carries HandlerOptions::auth_token
  // (always true without one): for an application's own endpoints that
  // should be guarded like /raft/* (raft-kv's /admin/*).
  bool authorizes(std::string_view authorization) const noexcept;

  struct Impl;  // defined in src/http/server.cpp
  Impl& impl() const noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A listener serving one Handler. All work runs on strands of `ex`.
class Server {
 public:
  Server(boost::asio::any_io_executor ex, Handler& handler, ServerOptions opts = {});
  // stop()s. Connections still open hold what they need; the Handler and
  // its Service must outlive them (stop() closes them promptly).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. Port 0 picks an ephemeral port; the result
  // is the actual port. Call once.
  result<std::uint16_t> listen(const std::string& host, std::uint16_t port);
  // Closes the acceptor and every open connection (streams end with an
  // error on their StreamWriter). Idempotent; safe from any thread.
  void stop();
  // Replaces ServerOptions::tls, e.g. with renewed certificates or a new
  // CRL: connections accepted from now on handshake with `tls`; open ones
  // keep theirs, except those whose client `tls` would refuse (a certificate
  // it revokes or whose CA it no longer trusts, or none where it now
  // requires one), which are closed. Only for a Server that speaks TLS
  // (errc::invalid_argument otherwise, or for null); errc::tls_error for a
  // client context. Safe from any thread.
  result<void> set_tls(std::shared_ptr<TLSContext> tls);

  std::size_t connection_count() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace raft
