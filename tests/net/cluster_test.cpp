// Real clusters over 127.0.0.1: raft::Log + HTTPTransport + raft::Server with
// real files and real time (elections in tens of milliseconds). Every wait is
// a bounded wait on a condition.
#include <raft/http.hpp>
#include <raft/log.hpp>

#include "eventually.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

namespace raft::test {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

class CountingFsm final : public FSM {
 public:
  void must_apply(const LogEntry& e) override {
    std::lock_guard lk(mu_);
    if (e.type == LogEntryType::command) data_.push_back(e.data);
    index_ = e.index;
  }
  std::uint64_t index() override { return 0; }  // in memory: replay after restart
  result<std::uint64_t> snapshot(Writer& w) override {
    std::lock_guard lk(mu_);
    ++snapshots;
    std::string out;
    for (auto& d : data_) encode_entry(out, {LogEntryType::command, 0, 0, d});
    if (auto r = write_all(w, out); !r) return r.error();
    return index_;
  }
  result<void> restore(Reader& r) override {
    std::vector<std::string> data;
    LogEntryDecoder dec(r);
    LogEntry e;
    for (;;) {
      auto ok = dec.decode(e);
      if (!ok) return ok.error();
      if (!*ok) break;
      data.push_back(e.data);
    }
    std::lock_guard lk(mu_);
    data_ = std::move(data);
    return {};
  }
  std::atomic<int> snapshots{0};
  std::vector<std::string> data() {
    std::lock_guard lk(mu_);
    return data_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> data_;
  std::uint64_t index_ = 0;
};

// Lets the Server exist (and know its port) before the Log that needs the URL.
class LateService final : public Service {
 public:
  void set(Service* s) {
    std::lock_guard lk(mu_);
    target_ = s;
  }
  std::uint64_t cluster_id() const override { return t() ? t()->cluster_id() : 0; }
  Status status() const override { return t() ? t()->status() : Status{}; }
  void handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) override {
    if (!t()) return h(errc::closed);
    t()->handle_join(req, std::move(h));
  }
  void handle_leave(std::uint64_t id, Handler_fn<void> h) override {
    if (!t()) return h(errc::closed);
    t()->handle_leave(id, std::move(h));
  }
  void handle_heartbeat(const HeartbeatRequest& r, Handler_fn<HeartbeatResponse> h) override {
    if (!t()) return h(errc::closed);
    t()->handle_heartbeat(r, std::move(h));
  }
  void handle_vote(const VoteRequest& r, Handler_fn<VoteResponse> h) override {
    if (!t()) return h(errc::closed);
    t()->handle_vote(r, std::move(h));
  }
  void handle_ack(const AckRequest& r, Handler_fn<void> h) override {
    if (!t()) return h(errc::closed);
    t()->handle_ack(r, std::move(h));
  }
  void handle_read_index(const ReadIndexRequest& r, Handler_fn<std::uint64_t> h) override {
    if (!t()) return h(errc::closed);
    t()->handle_read_index(r, std::move(h));
  }
  void handle_stream(const StreamRequest& r, std::shared_ptr<StreamWriter> w) override {
    if (!t()) return w->finish(errc::closed);
    t()->handle_stream(r, std::move(w));
  }

 private:
  Service* t() const {
    std::lock_guard lk(mu_);
    return target_;
  }
  mutable std::mutex mu_;
  Service* target_ = nullptr;
};

struct Node {
  std::string dir, url;
  std::uint16_t port = 0;
  LateService late;
  std::unique_ptr<Handler> handler;
  std::unique_ptr<Server> server;
  std::unique_ptr<HTTPTransport> transport;
  CountingFsm fsm;
  std::unique_ptr<Log> log;
};

class RealCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("raft-net-" + std::to_string(::getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    threads_.emplace_back([this] { storage_io_.run(); });
  }
  void TearDown() override {
    for (auto& n : nodes_) stop(*n);
    work_.reset();
    storage_work_.reset();
    io_.stop();
    storage_io_.stop();
    for (auto& t : threads_) t.join();
    nodes_.clear();
    std::filesystem::remove_all(root_);
  }

  // `token`: the node's HandlerOptions/HTTPTransportOptions::auth_token.
  Node& add(const std::string& token = {}) {
    auto n = std::make_unique<Node>();
    n->dir = (root_ / ("n" + std::to_string(nodes_.size() + 1))).string();
    n->handler = std::make_unique<Handler>(n->late, HandlerOptions{token});
    n->server = std::make_unique<Server>(io_.get_executor(), *n->handler, server_options());
    auto port = n->server->listen("127.0.0.1", 0);
    EXPECT_TRUE(port);
    n->port = *port;
    n->url = (server_tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(n->port);
    HTTPTransportOptions to;
    to.request_timeout_ms = 500;
    to.connect_timeout_ms = 300;
    to.auth_token = token;
    to.tls = client_tls_;
    n->transport = std::make_unique<HTTPTransport>(io_.get_executor(), to);
    nodes_.push_back(std::move(n));
    start(*nodes_.back());
    return *nodes_.back();
  }
  void start(Node& n) {
    LogOptions o;
    o.url = n.url;
    o.fsm = &n.fsm;
    o.transport = n.transport.get();
    o.executor = io_.get_executor();
    o.storage_executor = storage_io_.get_executor();
    o.election_timeout = 150ms;
    o.heartbeat_interval = 30ms;
    o.reconnect_timeout = 20ms;
    o.lease_reads = lease_reads_;
    n.log = std::make_unique<Log>(o);
    ASSERT_TRUE(n.log->open(n.dir));
    n.late.set(n.log.get());
  }
  void stop(Node& n) {
    n.late.set(nullptr);
    if (n.log) (void)n.log->close();
    n.log.reset();
  }
  ServerOptions server_options() const {
    ServerOptions so;
    so.tls = server_tls_;
    return so;
  }
  void restart_server(Node& n) {
    n.server = std::make_unique<Server>(io_.get_executor(), *n.handler, server_options());
    ASSERT_TRUE(n.server->listen("127.0.0.1", n.port));
  }
  Node* leader() {
    for (auto& n : nodes_)
      if (n->log && n->log->state() == State::leader) return n.get();
    return nullptr;
  }
  // Forms a cluster of `count` nodes by initialize + join (through node 1),
  // each with the auth token `token` (none if empty).
  void form(std::size_t count, const std::string& token = {}) {
    auto& first = add(token);
    ASSERT_TRUE(first.log->initialize());
    for (std::size_t i = 1; i < count; ++i) {
      auto& n = add(token);
      auto r = n.log->join(first.url);
      ASSERT_TRUE(r) << r.error().message();
    }
    ASSERT_TRUE(eventually([&] {
      for (auto& n : nodes_)
        if (n->log->config().nodes.size() != count || n->log->applied_index() < count) return false;
      return true;
    }, 10s));
  }
  std::uint64_t apply_via_leader(const std::string& cmd) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      Node* l = nullptr;
      eventually([&] { return (l = leader()) != nullptr; }, 5s);
      if (!l) continue;
      auto r = l->log->apply(cmd, 2s);
      if (r) return *r;
    }
    ADD_FAILURE() << "apply never succeeded: " << cmd;
    return 0;
  }
  // Each acknowledged write is seen by a read_barrier() asked next, of the
  // leader or of a follower (which asks the leader over POST /raft/readIndex
  // and waits for its own FSM): every running node in turn, 60 times. The
  // number of reads a follower answered.
  int reads_see_every_acknowledged_write() {
    int follower_reads = 0;
    for (int i = 0; i < 60; ++i) {
      const std::string cmd = "w" + std::to_string(i);
      const std::uint64_t index = apply_via_leader(cmd);
      EXPECT_NE(index, 0u);
      Node& n = *nodes_[static_cast<std::size_t>(i) % nodes_.size()];
      if (!n.log) continue;
      const bool follower = n.log->state() != State::leader;
      auto r = n.log->read_barrier(2s);
      if (!r && r.error() == errc::not_leader) continue;  // leadership moved: asked again next round
      EXPECT_TRUE(r) << r.error().message();
      if (!r) return follower_reads;
      EXPECT_GE(*r, index);
      auto d = n.fsm.data();
      EXPECT_FALSE(d.empty());
      if (!d.empty()) {
        EXPECT_EQ(d.back(), cmd);
      }
      if (follower) ++follower_reads;
    }
    return follower_reads;
  }
  bool all_have(std::size_t n_cmds, std::chrono::milliseconds limit = 15s) {
    return eventually([&] {
      for (auto& n : nodes_)
        if (n->log && n->fsm.data().size() < n_cmds) return false;
      return true;
    }, limit);
  }

  // TLS for the nodes added next (mutual TLS when the server asks for it):
  // https:// URLs, a Server that speaks only TLS, a transport that presents
  // client_tls_'s certificate.
  std::shared_ptr<TLSContext> server_tls_, client_tls_;
  bool lease_reads_ = false;  // LogOptions::lease_reads for the nodes started next
  std::filesystem::path root_;
  net::io_context io_;
  net::io_context storage_io_{1};
  net::executor_work_guard<net::io_context::executor_type> work_{io_.get_executor()};
  net::executor_work_guard<net::io_context::executor_type> storage_work_{storage_io_.get_executor()};
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_F(RealCluster, ThreeNodesFormByInitializeAndJoinAndReplicate) {
  form(3);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(nodes_[i]->log->id(), i + 1);
  for (int i = 0; i < 100; ++i) apply_via_leader("c" + std::to_string(i));
  ASSERT_TRUE(all_have(100));
  for (auto& n : nodes_) {
    auto d = n->fsm.data();
    for (int i = 0; i < 100; ++i) ASSERT_EQ(d[i], "c" + std::to_string(i));
  }
}

// A cluster with a shared secret (every request carries it: joins, streams,
// acks, heartbeats, votes) forms, replicates and elects a new leader as any;
// a node without the secret is refused at its join with errc::unauthorized.
TEST_F(RealCluster, SharedSecretGuardsTheCluster) {
  ASSERT_NO_FATAL_FAILURE(form(3, "the-secret"));
  for (int i = 0; i < 20; ++i) apply_via_leader("s" + std::to_string(i));
  ASSERT_TRUE(all_have(20));
  auto& stranger = add("not-the-secret");
  auto r = stranger.log->join(nodes_[0]->url);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthorized);
  EXPECT_EQ(stranger.log->id(), 0u);
  EXPECT_EQ(leader()->log->config().nodes.size(), 3u);
  Node* old = leader();
  ASSERT_NE(old, nullptr);
  stop(*old);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }, 10s));
  EXPECT_NE(apply_via_leader("after"), 0u);
}

// Mutual TLS (testdata/tls): every node's server asks for a certificate
// signed by the cluster's CA and every transport presents one. The cluster
// forms, replicates over streams (acks on their TLS connections) and elects
// a new leader; a node whose certificate another CA signed cannot join.
TEST_F(RealCluster, MutualTLSClusterReplicatesAndRefusesAStranger) {
  const std::string d = RAFT_TLS_TESTDATA;
  TLSOptions o;
  o.certificate_chain_file = d + "/node.pem";
  o.private_key_file = d + "/node.key";
  o.ca_file = d + "/ca.pem";
  o.require_client_certificate = true;
  server_tls_ = *TLSContext::server(o);
  o.require_client_certificate = false;
  client_tls_ = *TLSContext::client(o);
  ASSERT_NO_FATAL_FAILURE(form(3));
  for (auto& n : nodes_) EXPECT_EQ(n->url.rfind("https://", 0), 0u);
  for (int i = 0; i < 50; ++i) apply_via_leader("t" + std::to_string(i));
  ASSERT_TRUE(all_have(50));
  Node* old = leader();
  ASSERT_NE(old, nullptr);
  stop(*old);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr && leader() != old; }, 10s));
  EXPECT_NE(apply_via_leader("after"), 0u);
  o.certificate_chain_file = d + "/rogue.pem";
  o.private_key_file = d + "/rogue.key";
  client_tls_ = *TLSContext::client(o);
  auto& stranger = add();
  auto r = stranger.log->join(leader()->url);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::transport_error);
  EXPECT_EQ(stranger.log->id(), 0u);
  EXPECT_EQ(leader()->log->config().nodes.size(), 3u);
}

// Revocation while running: every member's server and transport take a CRL
// that revokes node 3's certificate (set_tls). Node 3's open connections
// (its stream, kept-alive calls) are closed and new ones refused, so it
// learns nothing more, leading or not when it happens; the other two elect
// or keep a leader among themselves and commit.
TEST_F(RealCluster, AMemberRevokedWhileRunningIsCutOffAndTheOthersCommit) {
  const std::string d = RAFT_TLS_TESTDATA;
  auto contexts = [&](const std::string& cert, const std::string& crl) {
    TLSOptions o;
    o.certificate_chain_file = d + "/" + cert + ".pem";
    o.private_key_file = d + "/" + cert + ".key";
    o.ca_file = d + "/ca.pem";
    o.crl_file = d + "/" + crl;
    o.require_client_certificate = true;
    auto server = TLSContext::server(o);
    o.require_client_certificate = false;
    auto client = TLSContext::client(o);
    EXPECT_TRUE(server && client);
    return std::pair{server ? *server : nullptr, client ? *client : nullptr};
  };
  std::tie(server_tls_, client_tls_) = contexts("node", "ca-empty.crl");
  auto& first = add();
  ASSERT_TRUE(first.log->initialize());
  ASSERT_TRUE(add().log->join(first.url));
  std::tie(server_tls_, client_tls_) = contexts("revoked", "ca-empty.crl");  // not revoked yet
  Node& third = add();
  ASSERT_TRUE(third.log->join(first.url));
  for (int i = 0; i < 20; ++i) apply_via_leader("before" + std::to_string(i));
  ASSERT_TRUE(all_have(20));

  auto [server_now, client_now] = contexts("node", "ca.crl");
  for (std::size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(nodes_[i]->server->set_tls(server_now));
    ASSERT_TRUE(nodes_[i]->transport->set_tls(client_now));
  }
  const std::size_t third_had = third.fsm.data().size();
  for (int i = 0; i < 30; ++i) apply_via_leader("after" + std::to_string(i));
  ASSERT_TRUE(eventually([&] {
    return nodes_[0]->fsm.data().size() >= 20 + 30 && nodes_[1]->fsm.data().size() >= 20 + 30;
  }, 10s));
  Node* l = leader();
  ASSERT_NE(l, nullptr);
  EXPECT_NE(l, &third);
  // Node 3 got at most what was on its stream as the CRL came in (the
  // checks run on each connection's strand, just after set_tls), and from
  // then on nothing.
  const std::size_t third_got = third.fsm.data().size();
  EXPECT_LT(third_got, 20u + 30u) << "had " << third_had;
  for (int i = 0; i < 10; ++i) apply_via_leader("later" + std::to_string(i));
  ASSERT_TRUE(eventually([&] {
    return nodes_[0]->fsm.data().size() >= 60 && nodes_[1]->fsm.data().size() >= 60;
  }, 10s));
  EXPECT_EQ(third.fsm.data().size(), third_got);
}

// Reads over real HTTP heartbeats: each acknowledged write is seen by a
// read_barrier() asked next, of any node in turn.
TEST_F(RealCluster, ReadBarrierSeesEveryAcknowledgedWrite) {
  form(3);
  EXPECT_GE(reads_see_every_acknowledged_write(), 20);
}

// The same with LogOptions::lease_reads: most reads are answered by the
// leader's lease (heartbeats every 30 ms, a lease of 123 ms), and each
// still sees every write acknowledged before it. Then the leader stops:
// the new one (elected once the followers' refusals for the old leader's
// lease have run out) reads as well.
TEST_F(RealCluster, LeaseReadsSeeEveryAcknowledgedWrite) {
  lease_reads_ = true;
  form(3);
  EXPECT_GE(reads_see_every_acknowledged_write(), 20);
  std::uint64_t by_lease = 0;
  for (auto& n : nodes_) by_lease += n->log->status().reads_by_lease;
  EXPECT_GE(by_lease, 20u) << "few reads answered by lease";
  Node* l = leader();
  ASSERT_NE(l, nullptr);
  stop(*l);
  EXPECT_GE(reads_see_every_acknowledged_write(), 10);
}

// Log::snapshot(), the blocking call, on the leader and on a follower of a
// real cluster: each snapshots what its FSM applied, and the cluster goes on.
TEST_F(RealCluster, SnapshotOnDemandOnAnyMember) {
  form(3);
  std::uint64_t last = 0;
  for (int i = 0; i < 20; ++i) ASSERT_NE(last = apply_via_leader("p" + std::to_string(i)), 0u);
  for (auto& n : nodes_) {
    ASSERT_TRUE(n->log->wait(last, 2s));
    auto r = n->log->snapshot();
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_GE(*r, last);
    EXPECT_LE(*r, n->log->applied_index());
    const auto s = n->fsm.snapshots.load();
    EXPECT_GE(s, 1);
  }
  EXPECT_NE(apply_via_leader("after"), 0u);
}

// Leadership transfer over HTTP (timeoutNow=1, transfer=1): the chosen
// follower leads next, with every acknowledged write.
TEST_F(RealCluster, LeadershipTransferMakesTheChosenFollowerLeader) {
  form(3);
  for (int i = 0; i < 20; ++i) ASSERT_NE(apply_via_leader("t" + std::to_string(i)), 0u);
  Node* l = leader();
  ASSERT_NE(l, nullptr);
  Node* target = nullptr;
  for (auto& n : nodes_)
    if (n.get() != l) target = n.get();
  ASSERT_NE(target, nullptr);
  auto r = l->log->transfer_leadership(target->log->id(), 5s);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(eventually([&] { return target->log->state() == State::leader; }, 5s));
  const std::uint64_t index = apply_via_leader("after");
  ASSERT_NE(index, 0u);
  ASSERT_TRUE(all_have(21));
}

TEST_F(RealCluster, FiveNodesSurviveTheLossOfTheLeader) {
  form(5);
  for (int i = 0; i < 20; ++i) apply_via_leader("a" + std::to_string(i));
  Node* old = leader();
  ASSERT_NE(old, nullptr);
  old->server->stop();
  stop(*old);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }, 10s));
  for (int i = 20; i < 40; ++i) apply_via_leader("a" + std::to_string(i));
  ASSERT_TRUE(all_have(40));
}

TEST_F(RealCluster, RestartedNodeCatchesUp) {
  form(3);
  Node* f = nullptr;
  for (auto& n : nodes_)
    if (n->log->state() != State::leader) f = n.get();
  stop(*f);
  for (int i = 0; i < 50; ++i) apply_via_leader("r" + std::to_string(i));
  start(*f);
  ASSERT_TRUE(all_have(50));
  EXPECT_EQ(f->fsm.data().back(), "r49");
}

TEST_F(RealCluster, PartitionedFollowerCatchesUpThroughTheStream) {
  form(3);
  Node* f = nullptr;
  for (auto& n : nodes_)
    if (n->log->state() != State::leader) f = n.get();
  // Its server stops: the leader cannot reach it, nor it the others' streams
  // (its own transport still works, but nobody answers it as leader).
  f->server->stop();
  for (int i = 0; i < 200; ++i) apply_via_leader("p" + std::to_string(i));
  restart_server(*f);
  ASSERT_TRUE(all_have(200, 20s));
  EXPECT_EQ(f->fsm.data().back(), "p199");
}

}  // namespace
}  // namespace raft::test
