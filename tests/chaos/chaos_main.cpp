// raft-chaos: process-level fault test of raft-kv (issue 7, DESIGN 7).
//
//   raft-chaos [--duration S] [--seed N] [--clients N] [--nodes N] [--keys N]
//              [--bin PATH] [--keep] [--op-timeout-ms N] [--think-ms N]
//              [--snapshot-entries N] [--checker-timeout S] [--tls DIR]
//
// Starts N raft-kv processes with --test-faults on 127.0.0.1 (free ports, a
// temporary directory), runs concurrent clients doing random PUT/GET/CAS/
// DELETE on a small key set against random nodes, while the nemesis (this
// process's main thread, so that every child is forked by one long-lived
// thread: PR_SET_PDEATHSIG is per thread) injects one fault at a time:
// SIGKILL + restart, SIGSTOP/SIGCONT, symmetric partitions through
// POST /test/block (one node isolated, or a 2/3 split), then heals; or it
// replaces a member: removes it through the leader (POST /raft/leave), kills
// it, wipes its directory and starts a fresh node at the same URL that joins
// again (a new id, a new join token, the state from the others); or it
// hands leadership to a random member (POST /admin/transfer-leadership); or
// it demotes a member (the leader half the time) to learner and, after a
// while of client traffic, promotes it again (POST /admin/demote, /promote),
// or does the same by joint consensus (POST /admin/voters), with five nodes
// half the time for two members at once.
//
// Each client thread records every operation with steady-clock invoke and
// complete times. A definite answer becomes a definite operation; a timeout,
// a connection error after the request may have been sent, or an answer that
// does not say whether the write happened (504, 500, 503 other than "no
// leader") becomes an indeterminate one, and the thread continues under a
// NEW client id (a client that gave up on a request is a different client
// as far as sequential order goes, and the checker requires per-client
// operations not to overlap).
//
// Retries inside one operation are only made when they cannot apply a write
// twice: a failed connect (nothing was sent), a 307 (raft-kv redirects before
// proposing anything), a 503 "no leader" (also before proposing). GETs change
// nothing and are retried on any error until the operation's deadline.
//
// At the end: heal everything, SIGKILL every node at once and restart them
// all (a whole-cluster power cut), wait until a leader exists and every
// node's appliedIndex equals its commitIndex, then read every key (these
// reads must succeed). The history goes to DIR/history.txt (raft-lincheck
// format) and through lincheck::check with a budget; anything but
// "linearizable" fails the run, an inconclusive result included.
//
// No acknowledged write is lost: every acknowledged write is a definite
// operation in the history, and the final reads come after every other
// operation in real time, after a crash of every node. If the cluster lost an
// acknowledged write (or resurrected an overwritten value), some final read
// (or a read during the run) would return a value no linearization can
// explain, and the checker would report not_linearizable. So "linearizable"
// includes "no acknowledged write lost".
#include "linearizability.hpp"

#include "kvstore/kv_http_client.hpp"
#include "raft/http.hpp"

#include <boost/asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace net = boost::asio;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using kvstore::Clock;
using kvstore::get_status;
using kvstore::HttpClient;
using kvstore::Method;
using kvstore::parse_url;
using kvstore::Status;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------- HTTP client

// The client (Url, HttpClient with its `sent` report, Status) is
// examples/kvstore/kv_http_client.hpp, shared with raft-demo.

// Percent-encodes a key or value for a URL path or query.
std::string pct(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

// ---------------------------------------------------------------- processes

constexpr int kMaxNodes = 16;
std::atomic<pid_t> g_pids[kMaxNodes];

void on_fatal_signal(int sig) {
  for (auto& p : g_pids) {
    const pid_t pid = p.load();
    if (pid > 0) {
      ::kill(pid, SIGCONT);
      ::kill(pid, SIGKILL);
    }
  }
  ::_exit(128 + sig);
}

struct Options {
  double duration = 90;
  std::uint64_t seed = 0;
  // keys: 0 = one key per 3 s of run (at least 10), so that each key's
  // sub-history stays at a few hundred ops with a handful of indeterminate
  // writes whatever the duration: the checker is exponential in the
  // indeterminate writes that overlap on one key, and a 10-minute run on 10
  // keys (10k ops, ~100 indeterminate per key) exhausts its budget.
  int clients = 8, nodes = 5, keys = 0;
  std::string bin;
  bool keep = false;
  int op_timeout_ms = 2000, think_ms = 20;
  std::uint64_t snapshot_entries = 500;
  double checker_timeout = 300;
  // --tls DIR: every node serves and talks over mutual TLS with DIR's
  // ca.pem, node.pem and node.key (a certificate for 127.0.0.1), and the
  // clients and the nemesis present the same certificate.
  std::string tls_dir;
  bool lease_reads = false;  // raft-kv --lease-reads on every node
  std::shared_ptr<raft::TLSContext> tls;  // the clients' side of it
};

class Cluster {
 public:
  Cluster(const Options& o, fs::path dir) : o_(o), dir_(std::move(dir)) {
    net::io_context ioc;
    std::vector<tcp::acceptor> held;  // all bound at once: distinct ports
    for (int i = 0; i < o.nodes; ++i) {
      held.emplace_back(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
      ports_.push_back(held.back().local_endpoint().port());
      urls_.push_back((o.tls ? "https" : "http") + std::string("://127.0.0.1:") + std::to_string(ports_.back()));
    }
    pids_.assign(o.nodes, 0);
    stopped_.assign(o.nodes, false);
    joins_.assign(o.nodes, "");
  }
  ~Cluster() { kill_all(); }

  const std::vector<std::string>& urls() const { return urls_; }
  int size() const { return static_cast<int>(urls_.size()); }
  bool running(int i) const { return pids_[i] > 0; }

  // `join`: the member to join through; remembered, so that a node killed
  // before its join completed asks again on restart instead of initializing
  // a cluster of its own (raft-kv ignores --join once it has an id).
  void start(int i, const std::string& join_via = "") {
    if (!join_via.empty()) joins_[i] = join_via;
    const std::string& join = joins_[i];
    const std::string d = (dir_ / ("n" + std::to_string(i + 1))).string();
    const std::string log = (dir_ / ("n" + std::to_string(i + 1) + ".log")).string();
    std::vector<std::string> args{o_.bin, "--dir", d, "--listen", "127.0.0.1:" + std::to_string(ports_[i]),
                                  "--test-faults", "--snapshot-entries", std::to_string(o_.snapshot_entries)};
    if (!join.empty()) {
      args.push_back("--join");
      args.push_back(join);
    }
    if (o_.lease_reads) args.push_back("--lease-reads");
    if (o_.tls) {
      const fs::path t = o_.tls_dir;
      args.insert(args.end(), {"--tls-cert", (t / "node.pem").string(), "--tls-key", (t / "node.key").string(),
                               "--tls-ca", (t / "ca.pem").string(), "--tls-client-certs"});
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pids_[i] = pid;
    g_pids[i] = pid;
    stopped_[i] = false;
  }

  void kill9(int i) {
    if (pids_[i] <= 0) return;
    ::kill(pids_[i], SIGKILL);
    ::kill(pids_[i], SIGCONT);
    int st = 0;
    ::waitpid(pids_[i], &st, 0);  // SIGKILL cannot be ignored: bounded
    pids_[i] = 0;
    g_pids[i] = 0;
    stopped_[i] = false;
  }
  void pause(int i) {
    if (pids_[i] > 0 && ::kill(pids_[i], SIGSTOP) == 0) stopped_[i] = true;
  }
  void resume(int i) {
    if (pids_[i] > 0) ::kill(pids_[i], SIGCONT);
    stopped_[i] = false;
  }
  // Reaps a node that exited on its own (it should not): returns its status.
  std::optional<int> exited(int i) {
    if (pids_[i] <= 0) return std::nullopt;
    int st = 0;
    if (::waitpid(pids_[i], &st, WNOHANG) == pids_[i]) {
      pids_[i] = 0;
      g_pids[i] = 0;
      return st;
    }
    return std::nullopt;
  }
  void kill_all() {
    for (int i = 0; i < size(); ++i) kill9(i);
  }
  // Deletes node i's data (it must not be running).
  void wipe(int i) {
    std::error_code ec;
    fs::remove_all(dir_ / ("n" + std::to_string(i + 1)), ec);
  }

  std::optional<std::uint64_t> node_id(int i) {
    HttpClient c(o_.tls);
    auto s = get_status(c, urls_[i], 500ms);
    if (!s || s->id == 0) return std::nullopt;
    return s->id;
  }
  // Removes member `id` through the leader; true once the removal is known
  // to have committed: a 200, or "node not found" (the leader checks that
  // its latest configuration is committed before it looks the id up, so the
  // committed configuration lacks the id: an earlier attempt whose answer
  // was lost removed it).
  bool remove_member(std::uint64_t id, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    while (Clock::now() < deadline) {
      auto l = leader(std::min<Clock::duration>(2s, deadline - Clock::now()));
      if (!l) continue;
      HttpClient c(o_.tls);
      auto url = parse_url(urls_[*l] + "/raft/leave?id=" + std::to_string(id));
      auto r = c.request(Method::post, *url, "", std::min(deadline, Clock::now() + 5s));
      if (r && r->status == 200) return true;
      if (r && r->body.find("node not found") != std::string::npos) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  // Asks the leader to hand leadership to member `id`; true on 204 (it
  // stepped down). Best effort: a leader change meanwhile is a "no".
  bool transfer_leadership(std::uint64_t id) {
    auto l = leader(2s);
    if (!l) return false;
    HttpClient c(o_.tls);
    auto url = parse_url(urls_[*l] + "/admin/transfer-leadership?to=" + std::to_string(id));
    auto r = c.request(Method::post, *url, "", Clock::now() + 7s);
    return r && r->status == 204;
  }

  // Asks the leader to demote member `id` to learner (voter = false) or to
  // promote it to voter, retrying while there is no leader, a change is
  // still committing, or leadership moves, until `budget` has passed; true
  // once done (204).
  bool set_role(std::uint64_t id, bool voter, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    const std::string path = voter ? "/admin/promote?id=" : "/admin/demote?id=";
    while (Clock::now() < deadline) {
      if (auto l = leader(2s)) {
        HttpClient c(o_.tls);
        auto url = parse_url(urls_[*l] + path + std::to_string(id));
        auto r = c.request(Method::post, *url, "", std::min(deadline, Clock::now() + 7s));
        if (r && r->status == 204) return true;
      }
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  // Asks the leader to make exactly `ids` the voters in one change
  // (POST /admin/voters, Log::set_voters: joint consensus), retrying as
  // set_role does; true once done (200).
  bool set_voters(const std::vector<std::uint64_t>& ids, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    std::string list;
    for (auto id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
    while (Clock::now() < deadline) {
      if (auto l = leader(2s)) {
        HttpClient c(o_.tls);
        auto url = parse_url(urls_[*l] + "/admin/voters?ids=" + list);
        auto r = c.request(Method::post, *url, "", std::min(deadline, Clock::now() + 7s));
        if (r && r->status == 200) return true;
      }
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  // Makes node i drop its traffic to `peers` (empty: heal). Best effort.
  bool block(int i, const std::vector<int>& peers) {
    std::string list;
    for (int p : peers) list += (list.empty() ? "" : ",") + pct(urls_[p]);
    auto url = parse_url(urls_[i] + "/test/block?peers=" + list);
    HttpClient c(o_.tls);
    auto r = c.request(Method::post, *url, "", Clock::now() + 1s);
    return r && r->status == 204;
  }
  void heal_network() {
    for (int i = 0; i < size(); ++i)
      if (running(i) && !stopped_[i]) block(i, {});
  }
  // Symmetric cut between the groups a and b.
  void partition(const std::vector<int>& a, const std::vector<int>& b) {
    for (int i : a) block(i, b);
    for (int i : b) block(i, a);
  }

  std::optional<int> leader(Clock::duration budget = 2s) {
    const auto deadline = Clock::now() + budget;
    HttpClient c(o_.tls);
    while (Clock::now() < deadline) {
      for (int i = 0; i < size(); ++i) {
        if (!running(i) || stopped_[i]) continue;
        c.reset();
        auto s = get_status(c, urls_[i], 300ms);
        if (s && s->state == "leader") return i;
      }
      std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
  }

  // Polls until node i answers /raft/status with a non-zero id.
  bool wait_member(int i, Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    HttpClient c(o_.tls);
    while (Clock::now() < deadline) {
      if (exited(i)) return false;
      auto s = get_status(c, urls_[i], 500ms);
      if (s && s->id != 0) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // Polls until a leader exists and every node's appliedIndex equals the
  // leader's commitIndex (and its own).
  bool wait_converged(Clock::duration budget, std::string* why) {
    const auto deadline = Clock::now() + budget;
    HttpClient c(o_.tls);
    while (Clock::now() < deadline) {
      std::vector<Status> st;
      bool all = true;
      for (int i = 0; i < size() && all; ++i) {
        c.reset();
        auto s = get_status(c, urls_[i], 500ms);
        if (!s) all = false;
        else st.push_back(*s);
      }
      if (all) {
        auto l = std::find_if(st.begin(), st.end(), [](const Status& s) { return s.state == "leader"; });
        if (l != st.end() && std::all_of(st.begin(), st.end(), [&](const Status& s) {
              return s.applied == l->commit && s.commit == l->commit;
            }))
          return true;
        *why = "";
        for (auto& s : st)
          *why += "node " + std::to_string(s.id) + " " + s.state + " commit " + std::to_string(s.commit) +
                  " applied " + std::to_string(s.applied) + "; ";
      } else {
        *why = "a node does not answer";
      }
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

 private:
  const Options& o_;
  fs::path dir_;
  std::vector<unsigned short> ports_;
  std::vector<std::string> urls_;
  std::vector<pid_t> pids_;
  std::vector<bool> stopped_;
  std::vector<std::string> joins_;
};

// ---------------------------------------------------------------- clients

const auto g_t0 = Clock::now();
std::int64_t now_us() { return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - g_t0).count(); }

std::atomic<std::uint64_t> g_next_client{1};
std::atomic<bool> g_stop{false};
std::atomic<std::uint64_t> g_ops{0}, g_unknown{0}, g_unexpected{0};
std::mutex g_err_mu;
std::vector<std::string> g_errors;

void note_unexpected(const std::string& what) {
  ++g_unexpected;
  std::lock_guard lk(g_err_mu);
  if (g_errors.size() < 20) g_errors.push_back(what);
}

class Client {
 public:
  Client(const std::vector<std::string>& nodes, std::uint64_t seed, std::shared_ptr<raft::TLSContext> tls)
      : nodes_(nodes), rng_(seed), tls_(std::move(tls)) {}

  std::mt19937_64& rng() { return rng_; }
  std::uint64_t id() const { return id_; }
  void new_id() {
    id_ = g_next_client++;
    for (auto& [_, c] : pool_) c.reset();
  }

  // Performs one operation within `timeout`, returns it as recorded.
  lincheck::Operation run(lincheck::Kind kind, const std::string& key, const std::string& value,
                          const std::optional<std::string>& prev, Clock::duration timeout) {
    using lincheck::Outcome;
    lincheck::Operation op;
    op.client = id_;
    op.kind = kind;
    op.key = key;
    op.value = value;
    op.prev = prev;
    const bool is_get = kind == lincheck::Kind::get;
    const Method method = kind == lincheck::Kind::get ? Method::get
                          : kind == lincheck::Kind::del ? Method::del
                                                        : Method::put;
    std::string path = "/kv/" + pct(key);
    if (kind == lincheck::Kind::cas) path += "?prev=" + (prev ? pct(*prev) : std::string());
    std::string body = (kind == lincheck::Kind::put || kind == lincheck::Kind::cas) ? value : std::string();

    op.invoke = now_us();
    const auto deadline = Clock::now() + timeout;
    std::string base = nodes_[rng_() % nodes_.size()];
    auto finish = [&](Outcome o, std::optional<std::string> read = std::nullopt) {
      op.outcome = o;
      op.read = std::move(read);
      op.complete = o == Outcome::unknown ? lincheck::kInfinity : now_us();
      if (o == Outcome::unknown) ++g_unknown;
      ++g_ops;
      return op;
    };
    for (int hop = 0; hop < 32 && Clock::now() < deadline; ++hop) {
      auto url = parse_url(base + path);
      bool sent = false;
      auto r = pool_.try_emplace(base, tls_).first->second.request(method, *url, body, deadline, &sent);
      auto another = [&](Clock::duration pause) {
        const auto left = deadline - Clock::now();
        if (left > 0s) std::this_thread::sleep_for(std::min<Clock::duration>(pause, left));
        base = nodes_[rng_() % nodes_.size()];
      };
      if (!r) {
        if (!sent || is_get) {  // nothing reached a server, or a read: safe to retry
          another(20ms);
          continue;
        }
        return finish(Outcome::unknown);
      }
      if (r->status == 307) {  // raft-kv redirects before proposing: safe
        auto loc = parse_url(r->location);
        if (!loc) {
          note_unexpected("bad Location " + r->location);
          return finish(Outcome::unknown);
        }
        base = loc->base();
        continue;
      }
      if (r->status == 503 && r->body.rfind("no leader", 0) == 0) {  // before proposing: safe
        another(50ms);
        continue;
      }
      switch (kind) {
        case lincheck::Kind::get:
          if (r->status == 200) return finish(Outcome::ok, r->body);
          if (r->status == 404) return finish(Outcome::ok, std::nullopt);
          if (r->status >= 500) {
            another(20ms);
            continue;
          }
          break;
        case lincheck::Kind::put:
        case lincheck::Kind::del:
          if (r->status == 204) return finish(Outcome::ok);
          if (r->status >= 500) return finish(Outcome::unknown);
          break;
        case lincheck::Kind::cas:
          if (r->status == 204) return finish(Outcome::ok);
          if (r->status == 412) return finish(Outcome::fail);
          if (r->status >= 500) return finish(Outcome::unknown);
          break;
      }
      note_unexpected("unexpected " + std::to_string(r->status) + " " + r->body + " for " + path);
      return finish(Outcome::unknown);
    }
    return finish(Outcome::unknown);
  }

 private:
  const std::vector<std::string>& nodes_;
  std::mt19937_64 rng_;
  std::uint64_t id_ = g_next_client++;
  std::shared_ptr<raft::TLSContext> tls_;
  std::map<std::string, HttpClient> pool_;
};

std::string key_name(int k) { return "k" + std::to_string(k); }

// The last value each key was seen with (racy on purpose: only a hint that
// makes compare-and-set succeed often).
struct Hints {
  std::mutex mu;
  std::map<std::string, std::optional<std::string>> last;
  std::optional<std::string> get(const std::string& k) {
    std::lock_guard lk(mu);
    auto it = last.find(k);
    return it == last.end() ? std::nullopt : it->second;
  }
  void set(const std::string& k, std::optional<std::string> v) {
    std::lock_guard lk(mu);
    last[k] = std::move(v);
  }
};

void client_loop(const Options& o, const std::vector<std::string>& nodes, int index, Hints& hints,
                 std::vector<lincheck::Operation>& out) {
  Client c(nodes, o.seed * 1000003 + static_cast<std::uint64_t>(index), o.tls);
  std::uint64_t seq = 0;
  auto& rng = c.rng();
  while (!g_stop) {
    const std::string key = key_name(static_cast<int>(rng() % static_cast<std::uint64_t>(o.keys)));
    const auto dice = rng() % 100;
    const std::string value = "c" + std::to_string(c.id()) + "." + std::to_string(++seq);
    lincheck::Operation op;
    const auto timeout = std::chrono::milliseconds(o.op_timeout_ms);
    if (dice < 40) {
      op = c.run(lincheck::Kind::get, key, "", std::nullopt, timeout);
      if (op.outcome == lincheck::Outcome::ok) hints.set(key, op.read);
    } else if (dice < 65) {
      op = c.run(lincheck::Kind::put, key, value, std::nullopt, timeout);
      if (op.outcome == lincheck::Outcome::ok) hints.set(key, value);
    } else if (dice < 90) {
      std::optional<std::string> prev = rng() % 5 == 0 ? std::nullopt : hints.get(key);
      op = c.run(lincheck::Kind::cas, key, value, prev, timeout);
      if (op.outcome == lincheck::Outcome::ok) hints.set(key, value);
    } else {
      op = c.run(lincheck::Kind::del, key, "", std::nullopt, timeout);
      if (op.outcome == lincheck::Outcome::ok) hints.set(key, std::nullopt);
    }
    out.push_back(op);
    if (op.outcome == lincheck::Outcome::unknown) c.new_id();
    if (o.think_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (2 * o.think_ms + 1)));
  }
}

// ---------------------------------------------------------------- nemesis

struct FaultCounts {
  int kill = 0, kill_leader = 0, pause = 0, isolate = 0, split = 0, replace = 0, transfer = 0, demote = 0, joint = 0;
  int total() const { return kill + pause + isolate + split + replace + transfer + demote + joint; }
};

// Sleeps up to `d`, returning early when the run's end comes (polled).
void nap(Clock::duration d, Clock::time_point end) {
  const auto until = std::min(Clock::now() + d, end);
  while (Clock::now() < until) std::this_thread::sleep_for(std::min<Clock::duration>(50ms, until - Clock::now()));
}

void nemesis(Cluster& cl, const Options& o, Clock::time_point end, FaultCounts& fc) {
  std::mt19937_64 rng(o.seed);
  auto ms = [&](int lo, int hi) { return std::chrono::milliseconds(lo + static_cast<int>(rng() % (hi - lo + 1))); };
  const int n = cl.size();
  while (Clock::now() < end) {
    nap(ms(500, 2000), end);  // quiet
    if (Clock::now() >= end) break;
    for (int i = 0; i < n; ++i)
      if (auto st = cl.exited(i)) {
        note_unexpected("node " + std::to_string(i + 1) + " exited on its own (status " + std::to_string(*st) + ")");
        cl.start(i);
      }
    const auto dice = rng() % 100;
    // Half of the node faults hit the leader, the most interesting target.
    auto pick = [&] {
      if (rng() % 2 == 0)
        if (auto l = cl.leader(1s)) return *l;
      return static_cast<int>(rng() % n);
    };
    if (dice < 25) {
      const int v = pick();
      std::printf("  [nemesis] t=%5.1fs SIGKILL node %d\n", now_us() / 1e6, v + 1);
      cl.kill9(v);
      ++fc.kill;
      nap(ms(200, 3000), end + 0s);
      cl.start(v);
    } else if (dice < 47) {
      const int v = pick();
      // Shorter than the clients' op timeout: ops in flight at a paused
      // leader mostly complete, keeping indeterminate ops rare.
      const auto d = ms(200, std::max(300, o.op_timeout_ms * 6 / 10));
      std::printf("  [nemesis] t=%5.1fs SIGSTOP node %d for %lld ms\n", now_us() / 1e6, v + 1,
                  static_cast<long long>(d.count()));
      cl.pause(v);
      ++fc.pause;
      nap(d, end + 0s);
      cl.resume(v);
    } else if (dice < 69) {
      const int v = pick();
      std::vector<int> rest;
      for (int i = 0; i < n; ++i)
        if (i != v) rest.push_back(i);
      std::printf("  [nemesis] t=%5.1fs isolate node %d\n", now_us() / 1e6, v + 1);
      cl.partition({v}, rest);
      ++fc.isolate;
      nap(ms(500, 3000), end);
      cl.heal_network();
    } else if (dice < 83) {
      std::vector<int> all(n);
      for (int i = 0; i < n; ++i) all[i] = i;
      std::shuffle(all.begin(), all.end(), rng);
      const int cut = n / 2;
      std::vector<int> a(all.begin(), all.begin() + cut), b(all.begin() + cut, all.end());
      std::string desc;
      for (int i : a) desc += std::to_string(i + 1);
      desc += " | ";
      for (int i : b) desc += std::to_string(i + 1);
      std::printf("  [nemesis] t=%5.1fs split %s\n", now_us() / 1e6, desc.c_str());
      cl.partition(a, b);
      ++fc.split;
      nap(ms(500, 3000), end);
      cl.heal_network();
    } else if (dice < 89) {
      // Leadership handed to a random member (raft-kv's admin endpoint,
      // Log::transfer_leadership) while the clients keep going.
      const int v = static_cast<int>(rng() % n);
      const auto id = cl.node_id(v);
      if (!id) continue;
      std::printf("  [nemesis] t=%5.1fs transfer leadership to node %d (id %llu): %s\n", now_us() / 1e6, v + 1,
                  static_cast<unsigned long long>(*id), cl.transfer_leadership(*id) ? "done" : "not done");
      ++fc.transfer;
    } else if (dice < 95) {
      // A member (the leader half the time: it steps down, handing over)
      // made a learner for a while, then a voter again (Log::demote_peer,
      // promote_peer through raft-kv's admin endpoints) while the clients
      // keep going. With three nodes the two voters left make every
      // majority meanwhile.
      const int v = pick();
      const auto id = cl.node_id(v);
      if (!id) continue;
      if (rng() % 2 == 0) {
        // The same by joint consensus (Log::set_voters, POST /admin/voters):
        // the voters become the others in one change, then all again. With
        // five or more nodes, half the time a second member is left out in
        // the same change: two voters go at once, which no single-server
        // change can do.
        int w = v;
        if (n >= 5 && rng() % 2 == 0) w = (v + 1 + static_cast<int>(rng() % (n - 1))) % n;
        std::vector<std::uint64_t> all, others;
        for (int i = 0; i < n; ++i) {
          const auto x = cl.node_id(i);
          if (!x) break;
          all.push_back(*x);
          if (i != v && i != w) others.push_back(*x);
        }
        if (static_cast<int>(all.size()) != n) continue;
        const bool out = cl.set_voters(others, 10s);
        const std::string left_out =
            w == v ? "node " + std::to_string(v + 1) : "nodes " + std::to_string(v + 1) + " and " + std::to_string(w + 1);
        std::printf("  [nemesis] t=%5.1fs voters without %s (%zu of %d voters): %s\n", now_us() / 1e6, left_out.c_str(),
                    others.size(), n, out ? "done" : "not done");
        ++fc.joint;
        if (!out) continue;
        nap(ms(500, 3000), end + 0s);
        const bool back = cl.set_voters(all, 30s);
        std::printf("  [nemesis] t=%5.1fs voters all again: %s\n", now_us() / 1e6, back ? "done" : "not done");
        if (!back) note_unexpected(left_out + " not voters again within 30 s");
        continue;
      }
      const bool demoted = cl.set_role(*id, false, 10s);
      std::printf("  [nemesis] t=%5.1fs demote node %d (id %llu): %s\n", now_us() / 1e6, v + 1,
                  static_cast<unsigned long long>(*id), demoted ? "done" : "not done");
      ++fc.demote;
      if (!demoted) continue;
      nap(ms(500, 3000), end + 0s);
      const bool promoted = cl.set_role(*id, true, 30s);
      std::printf("  [nemesis] t=%5.1fs promote node %d (id %llu) again: %s\n", now_us() / 1e6, v + 1,
                  static_cast<unsigned long long>(*id), promoted ? "done" : "not done");
      // Left a learner, the cluster would lose its fault tolerance for the
      // rest of the run: the promotion must go through once faults stop.
      if (!promoted) note_unexpected("node " + std::to_string(v + 1) + " not promoted again within 30 s");
    } else {
      // Replace a member (the leader half the time: it removes itself and
      // steps down). Its data is wiped only once the removal is known to
      // have committed: a voter that lost its state could break safety.
      const int v = pick();
      const auto id = cl.node_id(v);
      if (!id) continue;  // not answering (or not joined yet): another time
      std::printf("  [nemesis] t=%5.1fs replace node %d (id %llu)\n", now_us() / 1e6, v + 1,
                  static_cast<unsigned long long>(*id));
      std::fflush(stdout);
      if (!cl.remove_member(*id, 10s)) {
        note_unexpected("removing node " + std::to_string(v + 1) + " (id " + std::to_string(*id) +
                        ") did not complete in 10 s on a healthy cluster");
        continue;
      }
      cl.kill9(v);
      cl.wipe(v);
      int via = static_cast<int>(rng() % n);
      while (via == v) via = static_cast<int>(rng() % n);
      cl.start(v, cl.urls()[via]);
      ++fc.replace;
      if (!cl.wait_member(v, 20s)) {
        note_unexpected("node " + std::to_string(v + 1) + " did not join again within 20 s after its removal");
      } else if (auto nid = cl.node_id(v)) {
        std::printf("  [nemesis] t=%5.1fs node %d joined again as id %llu\n", now_us() / 1e6, v + 1,
                    static_cast<unsigned long long>(*nid));
        if (*nid == *id) note_unexpected("a wiped node was given its removed id back");
      }
    }
    std::fflush(stdout);
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: raft-chaos [--duration S] [--seed N] [--clients N] [--nodes N] [--keys N] [--bin PATH]\n"
               "                  [--keep] [--op-timeout-ms N] [--think-ms N] [--snapshot-entries N]\n"
               "                  [--checker-timeout S] [--tls DIR] [--lease-reads]\n");
  return 2;
}

int run(Options& o) {
  const fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "raft-chaos.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    return fs::path(tmpl);
  }();
  std::printf("raft-chaos: seed %llu, %d nodes, %d clients, %d keys, %.0f s, op timeout %d ms,%s%s dir %s\n",
              static_cast<unsigned long long>(o.seed), o.nodes, o.clients, o.keys, o.duration, o.op_timeout_ms,
              o.tls ? " mutual TLS," : "", o.lease_reads ? " lease reads," : "", dir.c_str());
  std::fflush(stdout);
  bool ok = false;
  {
    Cluster cl(o, dir);
    const auto& urls = cl.urls();
    // Set up: node 1 initializes, the others join one by one.
    cl.start(0);
    if (!cl.wait_member(0, 30s) || !cl.leader(30s)) {
      std::printf("FAIL: node 1 did not come up as leader (see %s/n1.log)\n", dir.c_str());
      return 1;
    }
    for (int i = 1; i < o.nodes; ++i) {
      cl.start(i, urls[0]);
      if (!cl.wait_member(i, 30s)) {
        std::printf("FAIL: node %d did not join (see %s/n%d.log)\n", i + 1, dir.c_str(), i + 1);
        return 1;
      }
    }
    std::printf("raft-chaos: cluster of %d up\n", o.nodes);
    std::fflush(stdout);

    // The run.
    Hints hints;
    std::vector<std::vector<lincheck::Operation>> per_client(o.clients);
    std::vector<std::thread> threads;
    for (int c = 0; c < o.clients; ++c)
      threads.emplace_back([&, c] { client_loop(o, urls, c, hints, per_client[c]); });
    const auto start = Clock::now();
    const auto end = start + std::chrono::milliseconds(static_cast<long long>(o.duration * 1000));
    FaultCounts fc;
    std::thread reporter([&] {
      auto next = start + 10s;
      while (!g_stop) {
        if (Clock::now() >= next) {
          std::printf("  [progress] t=%5.1fs ops %llu (indeterminate %llu)\n", now_us() / 1e6,
                      static_cast<unsigned long long>(g_ops.load()), static_cast<unsigned long long>(g_unknown.load()));
          std::fflush(stdout);
          next += 10s;
        }
        std::this_thread::sleep_for(100ms);
      }
    });
    nemesis(cl, o, end, fc);
    g_stop = true;
    for (auto& t : threads) t.join();
    reporter.join();

    // Heal, then a whole-cluster crash and restart.
    for (int i = 0; i < o.nodes; ++i) cl.resume(i);
    cl.heal_network();
    std::printf("raft-chaos: clients stopped; SIGKILL all nodes and restart them\n");
    std::fflush(stdout);
    cl.kill_all();
    for (int i = 0; i < o.nodes; ++i) cl.start(i);
    std::string why;
    bool converged = cl.wait_converged(60s, &why);
    if (!converged) std::printf("FAIL: no convergence within 60 s after the restart: %s\n", why.c_str());

    // Final reads: must all succeed.
    std::vector<lincheck::Operation> history;
    for (auto& v : per_client) history.insert(history.end(), v.begin(), v.end());
    int final_failed = 0;
    if (converged) {
      Client reader(urls, o.seed ^ 0x5eed, o.tls);
      for (int k = 0; k < o.keys; ++k) {
        auto op = reader.run(lincheck::Kind::get, key_name(k), "", std::nullopt, 10s);
        if (op.outcome != lincheck::Outcome::ok) {
          ++final_failed;
          reader.new_id();
          continue;
        }
        history.push_back(op);
      }
      if (final_failed) std::printf("FAIL: %d final reads did not succeed\n", final_failed);
    }

    // The check.
    std::size_t unknown = 0;
    for (auto& op : history) unknown += op.outcome == lincheck::Outcome::unknown;
    {
      std::ofstream hf(dir / "history.txt");
      hf << "# raft-lincheck history v1\n# raft-chaos seed " << o.seed << "\n";
      lincheck::write_history(hf, history);
    }
    lincheck::Budget budget;
    budget.max_time = std::chrono::milliseconds(static_cast<long long>(o.checker_timeout * 1000));
    const auto c0 = Clock::now();
    const auto res = lincheck::check(history, budget);
    const double check_s = std::chrono::duration<double>(Clock::now() - c0).count();

    std::printf("\nraft-chaos summary (seed %llu)\n", static_cast<unsigned long long>(o.seed));
    std::printf("  operations: %zu (%zu indeterminate), %d keys, %d clients, %llu client ids\n", history.size(), unknown,
                o.keys, o.clients, static_cast<unsigned long long>(g_next_client.load() - 1));
    std::printf(
        "  faults: %d (SIGKILL+restart %d, SIGSTOP/SIGCONT %d, isolate %d, split %d, replace %d, transfer %d, demote+promote %d, "
        "joint voter changes %d) + final full restart\n",
        fc.total(), fc.kill, fc.pause, fc.isolate, fc.split, fc.replace, fc.transfer, fc.demote, fc.joint);
    std::printf("  checker: %.2f s, %llu steps, %zu keys: %s\n", check_s, static_cast<unsigned long long>(res.steps),
                res.keys_checked, std::string(lincheck::to_string(res.verdict)).c_str());
    if (!res.explanation.empty()) std::printf("  key %s: %s\n", res.key.c_str(), res.explanation.c_str());
    if (g_unexpected) {
      std::printf("  unexpected answers: %llu\n", static_cast<unsigned long long>(g_unexpected.load()));
      for (auto& e : g_errors) std::printf("    %s\n", e.c_str());
    }
    ok = converged && final_failed == 0 && res.ok() && g_unexpected == 0;
    std::printf("  verdict: %s\n", ok ? "PASS" : "FAIL");
    std::printf("  history: %s\n", (dir / "history.txt").c_str());
  }  // Cluster's destructor kills every node.
  if (ok && !o.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::printf("raft-chaos: kept %s\n", dir.c_str());
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.seed = static_cast<std::uint64_t>(std::random_device{}()) ^
           static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  o.seed %= 1000000000ULL;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--keep") {
        o.keep = true;
        continue;
      }
      if (a == "--lease-reads") {
        o.lease_reads = true;
        continue;
      }
      if (a == "-h" || a == "--help") {
        usage();
        return 0;
      }
      if (i + 1 >= argc) return usage();
      const std::string v = argv[++i];
      if (a == "--duration") o.duration = std::stod(v);
      else if (a == "--seed") o.seed = std::stoull(v);
      else if (a == "--clients") o.clients = std::stoi(v);
      else if (a == "--nodes") o.nodes = std::stoi(v);
      else if (a == "--keys") o.keys = std::stoi(v);
      else if (a == "--bin") o.bin = v;
      else if (a == "--op-timeout-ms") o.op_timeout_ms = std::stoi(v);
      else if (a == "--think-ms") o.think_ms = std::stoi(v);
      else if (a == "--snapshot-entries") o.snapshot_entries = std::stoull(v);
      else if (a == "--checker-timeout") o.checker_timeout = std::stod(v);
      else if (a == "--tls") o.tls_dir = v;
      else return usage();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raft-chaos: bad argument: %s\n", e.what());
    return usage();
  }
  if (o.keys == 0) o.keys = std::max(10, static_cast<int>(o.duration / 3));
  if (o.nodes < 3 || o.nodes > kMaxNodes || o.clients < 1 || o.keys < 1 || o.op_timeout_ms < 100) return usage();
  if (o.bin.empty()) o.bin = (fs::read_symlink("/proc/self/exe").parent_path() / "raft-kv").string();
  if (!fs::exists(o.bin)) {
    std::fprintf(stderr, "raft-chaos: %s not found (use --bin)\n", o.bin.c_str());
    return 2;
  }
  if (!o.tls_dir.empty()) {
    std::string why;
    o.tls = kvstore::tls_client_from_dir(o.tls_dir, &why);
    if (!o.tls) {
      std::fprintf(stderr, "raft-chaos: --tls %s: %s\n", o.tls_dir.c_str(), why.c_str());
      return 2;
    }
  }
  std::signal(SIGINT, on_fatal_signal);
  std::signal(SIGTERM, on_fatal_signal);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raft-chaos: %s\n", e.what());
    return 1;
  }
}
