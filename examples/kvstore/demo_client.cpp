// raft-demo: the client side of scripts/demo. scripts/demo starts and kills
// the raft-kv processes; this binary talks HTTP to them (kv_http_client.hpp's
// blocking client, shared with tests/chaos: one keep-alive connection per
// worker; here it follows 307 redirects to the leader and retries 503 with a
// bounded backoff).
//
//   raft-demo ports N                                  N free localhost ports
//   raft-demo status      --nodes U,U,...              one line per node
//   raft-demo wait-leader --nodes U,U,... [--exclude U] [--timeout S]
//   raft-demo write       --nodes U,U,... --count N [--token T] [--workers W]
//   raft-demo check       --nodes U,U,... --count N [--token T] [--workers W]
//   raft-demo failover    --nodes U,U,... --kill-pid PID --old-leader U
//   raft-demo catchup     --nodes U,U,... --node U [--from N] [--timeout S]
//   raft-demo handover    --nodes U,U,... --node U [--token T] [--timeout S]
//   raft-demo promote     --nodes U,U,... --node U [--timeout S]
//   raft-demo demote      --nodes U,U,... --node U [--timeout S]
//   raft-demo voters      --nodes U,U,... --voters U,U,... [--token T] [--timeout S]
//   (any command but ports) --tls DIR: the nodes are https:// under mutual
//   TLS; trust DIR/ca.pem and present DIR/node.pem with DIR/node.key
//
// Human-readable progress goes to stderr; the one value a script needs (a
// leader URL, a list of ports) goes to stdout. Exit status 0 iff the step's
// check held.
#include "kvstore/kv_http_client.hpp"
#include "raft/http.hpp"

#include <boost/asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using kvstore::Clock;
using kvstore::get_status;
using kvstore::HttpClient;
using kvstore::Method;
using kvstore::parse_url;
using kvstore::Response;
using kvstore::Status;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------- HTTP client

// Key-value calls: follow 307 to the leader, retry 503 (no leader) and
// transport errors with a bounded backoff until the deadline. Puts of a fixed
// value are idempotent, so retrying them is harmless for the demo.
struct KvClient {
  KvClient(std::vector<std::string> n, std::shared_ptr<raft::TLSContext> tls) : nodes(std::move(n)), http(std::move(tls)) {}
  std::vector<std::string> nodes;
  HttpClient http;
  std::mt19937 rng{std::random_device{}()};
  std::string leader;  // last known leader base URL

  std::optional<Response> call(Method method, const std::string& path, const std::string& body,
                               Clock::duration budget = 20s) {
    const auto deadline = Clock::now() + budget;
    std::string base = leader.empty() ? nodes[rng() % nodes.size()] : leader;
    auto backoff = 20ms;
    int redirects = 0;
    while (Clock::now() < deadline) {
      auto url = parse_url(base + path);
      if (!url) return std::nullopt;
      auto per_try = std::min(deadline, Clock::now() + 3s);
      auto r = http.request(method, *url, body, per_try);
      if (r && r->status == 307 && !r->location.empty() && ++redirects < 10) {
        auto loc = parse_url(r->location);
        if (loc) {
          base = loc->base();
          leader = base;
          continue;
        }
      }
      if (r && r->status != 503 && r->status != 504 && r->status != 307) {
        leader = base;
        return r;
      }
      // No leader, timed out, or the node is gone: back off, try another node.
      leader.clear();
      redirects = 0;
      std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - Clock::now()));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
      base = nodes[rng() % nodes.size()];
    }
    return std::nullopt;
  }
};

// ---------------------------------------------------------------- output

const bool kTty = isatty(STDERR_FILENO);
const char* c(const char* code) { return kTty ? code : ""; }
#define GREEN c("\033[32m")
#define RED c("\033[31m")
#define BOLD c("\033[1m")
#define DIM c("\033[2m")
#define RESET c("\033[0m")

void progress(const char* what, std::size_t done, std::size_t total, Clock::time_point t0) {
  const int width = 40;
  const int fill = total ? static_cast<int>(width * done / total) : width;
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double rate = secs > 0 ? done / secs : 0;
  std::string bar(fill, '#');
  bar += std::string(width - fill, '.');
  std::fprintf(stderr, "%s  %s [%s] %4zu/%zu  %6.0f ops/s", kTty ? "\r" : "", what, bar.c_str(), done, total, rate);
  if (!kTty) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// ---------------------------------------------------------------- commands

struct Args {
  std::vector<std::string> nodes;
  std::vector<std::string> voters;  // voters: the nodes to make the voters
  std::string exclude, node, token = "demo", old_leader;
  std::size_t count = 1000, workers = 8;
  double timeout = 20;
  pid_t kill_pid = 0;
  std::uint64_t from = 0;  // catchup: the node's appliedIndex when it was killed
  std::shared_ptr<raft::TLSContext> tls;  // --tls DIR: https:// nodes under mutual TLS
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string key_name(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key-%04zu", i);
  return buf;
}
std::string value_of(std::size_t i, const std::string& token) { return "value-" + std::to_string(i) + "-" + token; }

// Polls every node (but `exclude`) until one says it is the leader.
std::optional<Status> find_leader(const Args& a, const std::string& exclude, Clock::time_point deadline,
                                  std::string* url_out) {
  HttpClient http(a.tls);
  while (Clock::now() < deadline) {
    for (const auto& n : a.nodes) {
      if (n == exclude) continue;
      auto s = get_status(http, n);
      if (s && s->state == "leader") {
        *url_out = n;
        return s;
      }
    }
    std::this_thread::sleep_for(20ms);
  }
  return std::nullopt;
}

int cmd_ports(std::size_t n) {
  net::io_context ioc;
  std::vector<tcp::acceptor> held;
  for (std::size_t i = 0; i < n; ++i) {
    held.emplace_back(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    std::printf("%s%u", i ? " " : "", held.back().local_endpoint().port());
  }
  std::printf("\n");
  return 0;
}

int cmd_status(const Args& a) {
  HttpClient http(a.tls);
  std::fprintf(stderr, "  %s%-24s %-3s %-9s %5s %8s %8s%s\n", DIM, "node", "id", "state", "term", "commit", "applied", RESET);
  for (const auto& n : a.nodes) {
    auto s = get_status(http, n);
    if (!s) {
      std::fprintf(stderr, "  %-24s %s(down)%s\n", n.c_str(), DIM, RESET);
      continue;
    }
    std::fprintf(stderr, "  %-24s %-3llu %s%-9s%s %5llu %8llu %8llu%s\n", n.c_str(), (unsigned long long)s->id,
                 s->state == "leader" ? GREEN : "", s->state.c_str(), RESET, (unsigned long long)s->term,
                 (unsigned long long)s->commit, (unsigned long long)s->applied, s->learner ? "  (learner)" : "");
  }
  return 0;
}

int cmd_wait_leader(const Args& a) {
  const auto t0 = Clock::now();
  std::string url;
  auto s = find_leader(a, a.exclude, t0 + std::chrono::milliseconds(static_cast<long>(a.timeout * 1000)), &url);
  if (!s) {
    std::fprintf(stderr, "  %sno leader within %.0f s%s\n", RED, a.timeout, RESET);
    return 1;
  }
  std::fprintf(stderr, "  leader: %snode %llu%s at %s (term %llu), found in %.0f ms\n", BOLD,
               (unsigned long long)s->id, RESET, url.c_str(), (unsigned long long)s->term, ms_since(t0));
  std::printf("%s\n", url.c_str());
  return 0;
}

// Runs `op(i, client)` for i in [0, count) on `workers` threads, each with its
// own keep-alive connection, drawing a progress bar. Returns the failures.
template <class Op>
std::size_t run_parallel(const Args& a, const char* what, Op op, double* rate) {
  std::atomic<std::size_t> next{0}, done{0}, failed{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < a.workers; ++w) {
    threads.emplace_back([&] {
      KvClient kv(a.nodes, a.tls);
      for (;;) {
        const auto i = next++;
        if (i >= a.count) return;
        if (!op(i, kv)) ++failed;
        ++done;
      }
    });
  }
  while (done < a.count) {
    progress(what, done, a.count, t0);
    std::this_thread::sleep_for(50ms);
  }
  for (auto& t : threads) t.join();
  progress(what, done, a.count, t0);
  std::fprintf(stderr, "\n");
  *rate = a.count / std::chrono::duration<double>(Clock::now() - t0).count();
  return failed;
}

int cmd_write(const Args& a) {
  std::mutex mu;
  std::vector<std::string> errors;
  double rate = 0;
  const auto t0 = Clock::now();
  auto failed = run_parallel(a, "write", [&](std::size_t i, KvClient& kv) {
    auto r = kv.call(Method::put, "/kv/" + key_name(i), value_of(i, a.token));
    if (r && r->status == 204) return true;
    std::lock_guard lk(mu);
    errors.push_back(key_name(i) + ": " + (r ? std::to_string(r->status) + " " + r->body : std::string("no answer")));
    return false;
  }, &rate);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (std::size_t i = 0; i < errors.size() && i < 5; ++i) std::fprintf(stderr, "  %s%s%s\n", RED, errors[i].c_str(), RESET);
  if (failed) {
    std::fprintf(stderr, "  %s%zu of %zu writes failed%s\n", RED, failed, a.count, RESET);
    return 1;
  }
  std::fprintf(stderr, "  %s%zu keys written%s in %.2f s: %s%.0f writes/s%s (%zu clients, each write committed on a majority and fsynced)\n",
               GREEN, a.count, RESET, secs, BOLD, rate, RESET, a.workers);
  std::printf("%.0f\n", rate);
  return 0;
}

int cmd_check(const Args& a) {
  std::mutex mu;
  std::vector<std::string> errors;
  double rate = 0;
  const auto t0 = Clock::now();
  auto failed = run_parallel(a, "read ", [&](std::size_t i, KvClient& kv) {
    auto r = kv.call(Method::get, "/kv/" + key_name(i), "");
    const auto want = value_of(i, a.token);
    if (r && r->status == 200 && r->body == want) return true;
    std::lock_guard lk(mu);
    errors.push_back(key_name(i) + ": want " + want + ", got " +
                     (r ? std::to_string(r->status) + " " + r->body : std::string("no answer")));
    return false;
  }, &rate);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (std::size_t i = 0; i < errors.size() && i < 5; ++i) std::fprintf(stderr, "  %s%s%s\n", RED, errors[i].c_str(), RESET);
  if (failed) {
    std::fprintf(stderr, "  %s%zu of %zu keys wrong or missing%s\n", RED, failed, a.count, RESET);
    return 1;
  }
  std::fprintf(stderr, "  %s%zu of %zu keys read back, every value correct%s in %.2f s (%.0f linearizable reads/s)\n",
               GREEN, a.count, a.count, RESET, secs, rate);
  std::printf("%.0f\n", rate);
  return 0;
}

int cmd_failover(const Args& a) {
  if (a.kill_pid <= 0 || a.old_leader.empty()) {
    std::fprintf(stderr, "raft-demo failover: --kill-pid and --old-leader are required\n");
    return 2;
  }
  HttpClient http(a.tls);
  const auto before = get_status(http, a.old_leader);
  const auto t0 = Clock::now();
  if (::kill(a.kill_pid, SIGKILL) != 0) {
    std::perror("raft-demo: kill");
    return 1;
  }
  std::fprintf(stderr, "  sent SIGKILL to pid %d (the leader, %s)\n", static_cast<int>(a.kill_pid), a.old_leader.c_str());
  std::string url;
  auto s = find_leader(a, a.old_leader, t0 + std::chrono::milliseconds(static_cast<long>(a.timeout * 1000)), &url);
  if (!s) {
    std::fprintf(stderr, "  %sno new leader within %.0f s%s\n", RED, a.timeout, RESET);
    return 1;
  }
  std::fprintf(stderr, "  new leader: %snode %llu%s at %s (term %llu), elected %s%.0f ms%s after the kill\n", BOLD,
               (unsigned long long)s->id, RESET, url.c_str(), (unsigned long long)s->term, BOLD, ms_since(t0), RESET);
  std::printf("%s %.0f %llu\n", url.c_str(), ms_since(t0), (unsigned long long)(before ? before->applied : 0));
  return 0;
}

int cmd_catchup(const Args& a) {
  HttpClient http(a.tls);
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::milliseconds(static_cast<long>(a.timeout * 1000));
  std::uint64_t first = a.from;
  bool seen = a.from != 0;
  while (Clock::now() < deadline) {
    std::string lurl;
    auto leader = find_leader(a, "", std::min(deadline, Clock::now() + 2s), &lurl);
    auto mine = get_status(http, a.node);
    if (leader && mine) {
      if (!seen) {
        first = mine->applied;
        seen = true;
      }
      std::fprintf(stderr, "%s  node %llu appliedIndex %llu / leader commitIndex %llu", kTty ? "\r" : "",
                   (unsigned long long)mine->id, (unsigned long long)mine->applied, (unsigned long long)leader->commit);
      if (!kTty) std::fprintf(stderr, "\n");
      if (mine->applied >= leader->commit && mine->state == "follower") {
        std::fprintf(stderr, "%s  %scaught up%s: appliedIndex %llu -> %llu, %.0f ms after this check began\n",
                     kTty ? "\n" : "", GREEN, RESET, (unsigned long long)first, (unsigned long long)mine->applied, ms_since(t0));
        std::printf("%llu %llu %.0f\n", (unsigned long long)first, (unsigned long long)mine->applied, ms_since(t0));
        return 0;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  std::fprintf(stderr, "\n  %snode %s did not catch up within %.0f s%s\n", RED, a.node.c_str(), a.timeout, RESET);
  return 1;
}

// Asks the leader to hand leadership to node a.node (raft-kv's POST
// /admin/transfer-leadership?to=ID, Log::transfer_leadership), then measures
// how long until that node leads and until a write through it is accepted.
int cmd_handover(const Args& a) {
  HttpClient http(a.tls);
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(a.timeout * 1000));
  auto target = get_status(http, a.node, 2s);
  if (!target || target->id == 0) {
    std::fprintf(stderr, "  %snode %s does not answer with an id%s\n", RED, a.node.c_str(), RESET);
    return 1;
  }
  std::string lurl;
  auto leader = find_leader(a, "", deadline, &lurl);
  if (!leader) {
    std::fprintf(stderr, "  %sno leader within %.0f s%s\n", RED, a.timeout, RESET);
    return 1;
  }
  const auto t0 = Clock::now();
  if (lurl != a.node) {
    auto url = parse_url(lurl + "/admin/transfer-leadership?to=" + std::to_string(target->id));
    auto r = url ? http.request(Method::post, *url, "", std::min(deadline, Clock::now() + 7s)) : std::nullopt;
    if (!r || r->status != 204) {
      std::fprintf(stderr, "  %stransfer refused: %s%s\n", RED,
                   r ? (std::to_string(r->status) + " " + r->body).c_str() : "no answer", RESET);
      return 1;
    }
  }
  std::optional<Status> now;
  while (Clock::now() < deadline) {
    now = get_status(http, a.node);
    if (now && now->state == "leader") break;
    std::this_thread::sleep_for(5ms);
  }
  if (!now || now->state != "leader") {
    std::fprintf(stderr, "  %snode %s is not leader %.0f s after the transfer%s\n", RED, a.node.c_str(), a.timeout, RESET);
    return 1;
  }
  const double led_ms = ms_since(t0);
  KvClient kv(a.nodes, a.tls);
  kv.leader = a.node;
  auto w = kv.call(Method::put, "/kv/handover-" + a.token, "ok", std::max<Clock::duration>(deadline - Clock::now(), 1s));
  if (!w || w->status != 204) {
    std::fprintf(stderr, "  %sno write accepted after the transfer%s\n", RED, RESET);
    return 1;
  }
  const double write_ms = ms_since(t0);
  std::fprintf(stderr, "  leadership handed from %s to %snode %llu%s (term %llu): it led %s%.0f ms%s after the request, "
               "and took a write %.0f ms after it\n", lurl.c_str(), BOLD, (unsigned long long)now->id, RESET,
               (unsigned long long)now->term, BOLD, led_ms, RESET, write_ms);
  std::printf("%.0f %.0f\n", led_ms, write_ms);
  return 0;
}

// Asks the leader to promote learner a.node to voter (raft-kv's POST
// /admin/promote?id=ID, Log::promote_peer), or to demote voter a.node to
// learner (/admin/demote, Log::demote_peer), and checks that the node then
// reports its new role.
int cmd_set_role(const Args& a, bool to_voter) {
  HttpClient http(a.tls);
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(a.timeout * 1000));
  const char* from = to_voter ? "a learner" : "a voter";
  auto target = get_status(http, a.node, 2s);
  if (!target || target->id == 0 || target->learner != to_voter) {
    std::fprintf(stderr, "  %snode %s does not answer as %s%s\n", RED, a.node.c_str(), from, RESET);
    return 1;
  }
  std::string lurl;
  if (!find_leader(a, "", deadline, &lurl)) {
    std::fprintf(stderr, "  %sno leader within %.0f s%s\n", RED, a.timeout, RESET);
    return 1;
  }
  const auto t0 = Clock::now();
  auto url = parse_url(lurl + (to_voter ? "/admin/promote?id=" : "/admin/demote?id=") + std::to_string(target->id));
  auto r = url ? http.request(Method::post, *url, "", deadline) : std::nullopt;
  if (!r || r->status != 204) {
    std::fprintf(stderr, "  %s%s refused: %s%s\n", RED, to_voter ? "promotion" : "demotion",
                 r ? (std::to_string(r->status) + " " + r->body).c_str() : "no answer", RESET);
    return 1;
  }
  const double done_ms = ms_since(t0);
  std::optional<Status> now;
  while (Clock::now() < deadline) {
    now = get_status(http, a.node);
    if (now && now->learner != to_voter) break;
    std::this_thread::sleep_for(5ms);
  }
  if (!now || now->learner == to_voter) {
    std::fprintf(stderr, "  %snode %s still %s after the change committed%s\n", RED, a.node.c_str(), from, RESET);
    return 1;
  }
  std::fprintf(stderr, "  %snode %llu%s %s by %s: committed %s%.0f ms%s after the request\n", BOLD,
               (unsigned long long)now->id, RESET, to_voter ? "promoted to voter" : "demoted to learner", lurl.c_str(),
               BOLD, done_ms, RESET);
  std::printf("%.0f\n", done_ms);
  return 0;
}

// Makes exactly the nodes a.voters the voters, every other member a learner,
// in one change (raft-kv's POST /admin/voters?ids=..., Log::set_voters: joint
// consensus), then checks that every node reports its new role, that a new
// voter leads, and that a write commits under the new majority. The leader
// may be among those left out: it steps down once C_new commits.
int cmd_voters(const Args& a) {
  HttpClient http(a.tls);
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(a.timeout * 1000));
  std::map<std::string, std::uint64_t> id_of;  // every node of a.nodes that answers
  for (const auto& n : a.nodes)
    if (auto s = get_status(http, n, 2s); s && s->id != 0) id_of[n] = s->id;
  std::string ids;
  for (const auto& v : a.voters) {
    if (!id_of.count(v)) {
      std::fprintf(stderr, "  %snode %s is not one of --nodes that answers with an id%s\n", RED, v.c_str(), RESET);
      return 1;
    }
    ids += (ids.empty() ? "" : ",") + std::to_string(id_of[v]);
  }
  std::string lurl;
  if (!find_leader(a, "", deadline, &lurl)) {
    std::fprintf(stderr, "  %sno leader within %.0f s%s\n", RED, a.timeout, RESET);
    return 1;
  }
  const auto t0 = Clock::now();
  auto url = parse_url(lurl + "/admin/voters?ids=" + ids);
  auto r = url ? http.request(Method::post, *url, "", deadline) : std::nullopt;
  if (!r || r->status != 200) {
    std::fprintf(stderr, "  %svoters change refused: %s%s\n", RED,
                 r ? (std::to_string(r->status) + " " + r->body).c_str() : "no answer", RESET);
    return 1;
  }
  const double done_ms = ms_since(t0);
  std::string index = r->body;  // C_new's index, as a line of text
  while (!index.empty() && (index.back() == '\n' || index.back() == '\r')) index.pop_back();
  std::fprintf(stderr, "  %s asked for voters {%s}: C_old,new and C_new committed (C_new at index %s) %s%.0f ms%s after the request\n",
               lurl.c_str(), ids.c_str(), index.c_str(), BOLD, done_ms, RESET);
  // Every node's role as the change says, and a leader among the new voters.
  auto settled = [&](std::string* leader) {
    for (const auto& [n, id] : id_of) {
      auto s = get_status(http, n);
      if (!s) return false;
      const bool voter = std::count(a.voters.begin(), a.voters.end(), n) != 0;
      if (s->learner == voter) return false;
      if (s->state == "leader") *leader = n;
    }
    return !leader->empty() && std::count(a.voters.begin(), a.voters.end(), *leader) != 0;
  };
  std::string nl;
  bool ok = false;
  while (!(ok = settled(&nl)) && Clock::now() < deadline) {
    nl.clear();
    std::this_thread::sleep_for(5ms);
  }
  if (!ok) {
    std::fprintf(stderr, "  %sthe nodes did not all take their new roles under a new voter's lead within %.0f s%s\n", RED,
                 a.timeout, RESET);
    return 1;
  }
  KvClient kv(a.nodes, a.tls);
  kv.leader = nl;
  auto w = kv.call(Method::put, "/kv/voters-" + a.token, "ok", std::max<Clock::duration>(deadline - Clock::now(), 1s));
  if (!w || w->status != 204) {
    std::fprintf(stderr, "  %sno write accepted under the new voters%s\n", RED, RESET);
    return 1;
  }
  std::fprintf(stderr, "  every node in its new role, %s leads, a write committed under the new majority %.0f ms after the request\n",
               nl.c_str(), ms_since(t0));
  std::printf("%.0f %s\n", done_ms, nl.c_str());
  return 0;
}

// --tls DIR: the client side of raft-kv's mutual TLS (as raft-chaos --tls).
std::shared_ptr<raft::TLSContext> tls_client(const std::string& dir) {
  std::string why;
  auto c = kvstore::tls_client_from_dir(dir, &why);
  if (!c) throw std::invalid_argument("--tls " + dir + ": " + why);
  return c;
}

int usage() {
  std::fprintf(stderr,
               "usage: raft-demo ports N\n"
               "       raft-demo status|wait-leader|write|check|failover|catchup|handover|promote|demote|voters --nodes URL,URL,... [options]\n"
               "options: --count N --workers N --token T --exclude URL --timeout S --kill-pid PID --old-leader URL --node URL --from N\n"
               "         --voters URL,URL,...\n"
               "         --tls DIR (https:// nodes: trust DIR/ca.pem, present DIR/node.pem and DIR/node.key)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  try {
    if (cmd == "ports") return argc == 3 ? cmd_ports(std::stoul(argv[2])) : usage();
    Args a;
    for (int i = 2; i < argc; ++i) {
      const std::string k = argv[i];
      if (i + 1 >= argc) return usage();
      const std::string v = argv[++i];
      if (k == "--nodes") a.nodes = split(v);
      else if (k == "--voters") a.voters = split(v);
      else if (k == "--exclude") a.exclude = v;
      else if (k == "--node") a.node = v;
      else if (k == "--token") a.token = v;
      else if (k == "--old-leader") a.old_leader = v;
      else if (k == "--count") a.count = std::stoul(v);
      else if (k == "--workers") a.workers = std::max<std::size_t>(1, std::stoul(v));
      else if (k == "--timeout") a.timeout = std::stod(v);
      else if (k == "--from") a.from = std::stoull(v);
      else if (k == "--kill-pid") a.kill_pid = static_cast<pid_t>(std::stol(v));
      else if (k == "--tls") a.tls = tls_client(v);
      else return usage();
    }
    if (a.nodes.empty()) return usage();
    if (cmd == "status") return cmd_status(a);
    if (cmd == "wait-leader") return cmd_wait_leader(a);
    if (cmd == "write") return cmd_write(a);
    if (cmd == "check") return cmd_check(a);
    if (cmd == "failover") return cmd_failover(a);
    if (cmd == "catchup") return a.node.empty() ? usage() : cmd_catchup(a);
    if (cmd == "handover") return a.node.empty() ? usage() : cmd_handover(a);
    if (cmd == "promote") return a.node.empty() ? usage() : cmd_set_role(a, true);
    if (cmd == "demote") return a.node.empty() ? usage() : cmd_set_role(a, false);
    if (cmd == "voters") return a.voters.empty() ? usage() : cmd_voters(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raft-demo: %s\n", e.what());
    return 2;
  }
  return usage();
}
