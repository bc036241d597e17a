// A small blocking HTTP/1.1 client for talking to raft-kv from tools and
// tests: raft-demo (scripts/demo) and raft-chaos (tests/chaos) share it.
//
// Synchronous on purpose: each caller thread owns its HttpClient (one
// keep-alive connection, a private io_context) and every call has a deadline,
// so a stopped (SIGSTOP), killed or partitioned node cannot hang the caller.
// Beast and Asio stay in kv_http_client.cpp (pimpl): the users' translation
// units do not pay for them. https:// URLs go over TLS with a
// raft::TLSContext::client (raft-chaos --tls runs raft-kv over mutual TLS).
//
// No redirect following or retries here: when a request may be retried
// depends on the caller (raft-chaos must never send a write twice once any
// byte of it may have reached a server; the demo's fixed-value PUTs are
// idempotent), so request() reports what happened and the caller decides.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace raft {
class TLSContext;
}

namespace kvstore {

using Clock = std::chrono::steady_clock;

// "http[s]://HOST:PORT[/TARGET]". HOST must be an IP literal (no name lookup).
struct Url {
  std::string scheme, host, port, target;  // scheme "http" or "https"; target "/" when the URL has no path
  bool tls() const { return scheme == "https"; }
  std::string base() const { return scheme + "://" + host + ":" + port; }
};

// nullopt unless `s` starts with "http://" or "https://" and has a ":PORT".
std::optional<Url> parse_url(const std::string& s);

enum class Method { get, put, post, del };

struct Response {
  int status = 0;
  std::string body, location;  // location: the Location header, "" if none
};

// One keep-alive connection at a time, to whichever node the last request
// went to (a request to another scheme, host or port reconnects). Not
// thread-safe: one HttpClient per thread.
class HttpClient {
 public:
  // `tls` (a raft::TLSContext::client; its certificate, if any, is presented
  // to servers that ask for one) is for https:// URLs, whose server
  // certificate must then name the URL's IP address. Without it an https://
  // request throws std::invalid_argument: a caller's mistake, not a fault.
  explicit HttpClient(std::shared_ptr<raft::TLSContext> tls = nullptr);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `body` (PUT and POST only) to url.target and reads the response,
  // all by `deadline`. nullopt on any transport error or when the deadline
  // passes; the connection is then dropped. If `sent` is given, *sent says
  // whether any byte of the request may have reached the server: false means
  // the request certainly had no effect (it failed before the first write).
  std::optional<Response> request(Method method, const Url& url, const std::string& body,
                                  Clock::time_point deadline, bool* sent = nullptr);

  // Drops the connection (the next request connects anew).
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GET /raft/status (raft::http's JSON) as the tools need it. Missing or
// non-integer numbers read as 0, missing strings as "".
struct Status {
  std::uint64_t id = 0, term = 0, leader_id = 0;
  std::uint64_t commit = 0, applied = 0, last = 0;  // commitIndex, appliedIndex, lastIndex
  std::string state;                                // "leader", "follower", ...
  std::string leader_url;                           // leaderURL
  bool learner = false;                             // a non-voting member
};

// nullopt unless `json` is a JSON object.
std::optional<Status> parse_status(const std::string& json);

// GET node + "/raft/status" within `budget` on `c`; nullopt unless it answers
// 200 with a JSON object. `node` is a base URL ("http://127.0.0.1:8001").
std::optional<Status> get_status(HttpClient& c, const std::string& node,
                                 Clock::duration budget = std::chrono::milliseconds(500));

// The client side of raft-kv's mutual TLS from a directory laid out as
// tests/net/testdata/tls: trusts DIR/ca.pem, presents DIR/node.pem with
// DIR/node.key (raft-demo --tls, raft-chaos --tls). nullptr with the reason
// in `why` if a file does not load.
std::shared_ptr<raft::TLSContext> tls_client_from_dir(const std::string& dir, std::string* why);

}  // namespace kvstore
