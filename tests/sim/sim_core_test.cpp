// Unit tests of the simulator's own machinery: the network fault model,
// stream semantics, clock drift, the FSM's snapshots, trace determinism, and
// the invariant checker fed with hand-made violating histories.
#include "sim_core.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <gtest/gtest.h>

namespace raft::sim {
namespace {

using namespace std::chrono_literals;

// A Service that records what it receives and answers at once.
class FakeService final : public Service {
 public:
  std::uint64_t cluster = 0;
  int heartbeats = 0, votes = 0, acks = 0, joins = 0, read_indexes = 0;
  std::string leader_url;
  bool refuse_join = false;
  std::vector<std::shared_ptr<StreamWriter>> writers;
  std::vector<StreamRequest> stream_reqs;

  std::uint64_t cluster_id() const override { return cluster; }
  Status status() const override {
    Status s;
    s.leader_url = leader_url;
    return s;
  }
  void handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) override {
    const std::string& url = req.url;
    ++joins;
    if (refuse_join) return h(result<JoinResponse>(boost::system::in_place_error, make_error_code(errc::not_leader)));
    JoinResponse r;
    r.id = 7;
    r.config.nodes.push_back({7, url});
    h(r);
  }
  void handle_leave(std::uint64_t, Handler_fn<void> h) override { h(result<void>()); }
  void handle_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) override {
    ++heartbeats;
    HeartbeatResponse r;
    r.term = req.term;
    r.index = req.commit_index;
    h(r);
  }
  void handle_vote(const VoteRequest& req, Handler_fn<VoteResponse> h) override {
    ++votes;
    VoteResponse r;
    r.term = req.term;
    h(r);
  }
  void handle_ack(const AckRequest&, Handler_fn<void> h) override {
    ++acks;
    h(result<void>());
  }
  void handle_read_index(const ReadIndexRequest&, Handler_fn<std::uint64_t> h) override {
    ++read_indexes;
    h(std::uint64_t{0});
  }
  void handle_stream(const StreamRequest& req, std::shared_ptr<StreamWriter> w) override {
    stream_reqs.push_back(req);
    writers.push_back(std::move(w));
  }
};

struct Rig {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  VirtualClock clock;
  std::string trace_text;
  Trace trace{clock};
  SimNetwork net;
  FakeService svc[3];

  explicit Rig(std::uint64_t seed = 1, bool capture = true) : net(io, clock, Rng(seed), trace) {
    if (capture) trace.capture(&trace_text);
    for (int i = 0; i < 3; ++i) {
      net.add_node("sim://n" + std::to_string(i));
      net.attach(i, &svc[i]);
    }
  }
  // Polls and fires timers until `until` (virtual) or nothing is left.
  void run_for(Clock::duration d) {
    const auto end = clock.now() + d;
    for (int steps = 0; steps < 1'000'000; ++steps) {
      io.poll();
      auto next = clock.next_deadline();
      if (!next || *next > end) break;
      clock.fire_next();
    }
    io.poll();
  }
};

TEST(Rng, SameSeedSameSequence) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(Rng(42).next(), c.next());
  Rng r(5);
  for (int i = 0; i < 1000; ++i) {
    auto v = r.range(3, 9);
    EXPECT_GE(v, 3u);
    EXPECT_LE(v, 9u);
  }
}

TEST(SimNetwork, RequestIsDeliveredAfterADelayAndAnsweredOnce) {
  Rig rig;
  int answers = 0;
  rig.net.transport(0).heartbeat("sim://n1", {.term = 3, .commit_index = 9, .leader_id = 1},
                                 [&](result<HeartbeatResponse> r) {
                                   ASSERT_TRUE(r);
                                   EXPECT_EQ(r->term, 3u);
                                   ++answers;
                                 });
  rig.io.poll();
  EXPECT_EQ(rig.svc[1].heartbeats, 0);  // not synchronous
  rig.run_for(5s);
  EXPECT_EQ(rig.svc[1].heartbeats, 1);
  EXPECT_EQ(answers, 1);  // the client timeout does not answer twice
}

TEST(SimNetwork, CutLinkLosesTheRequestAndTheCallerTimesOut) {
  Rig rig;
  rig.net.set_link(0, 1, false);
  std::error_code got;
  int answers = 0;
  rig.net.transport(0).request_vote("sim://n1", {.term = 2}, [&](result<VoteResponse> r) {
    ++answers;
    got = r ? std::error_code{} : r.error();
  });
  rig.run_for(5s);
  EXPECT_EQ(rig.svc[1].votes, 0);
  EXPECT_EQ(answers, 1);
  EXPECT_EQ(got, make_error_code(errc::transport_error));
}

TEST(SimNetwork, OneWayLinkLosesOnlyTheReply) {
  Rig rig;
  rig.net.set_link(1, 0, false);  // 0 -> 1 works, 1 -> 0 is cut
  std::error_code got;
  rig.net.transport(0).request_vote("sim://n1", {.term = 2},
                                    [&](result<VoteResponse> r) { got = r ? std::error_code{} : r.error(); });
  rig.run_for(5s);
  EXPECT_EQ(rig.svc[1].votes, 1);  // the voter saw it
  EXPECT_EQ(got, make_error_code(errc::transport_error));
}

TEST(SimNetwork, PartitionAndBridge) {
  Rig rig;
  rig.net.partition({0});
  EXPECT_FALSE(rig.net.link(0, 1));
  EXPECT_FALSE(rig.net.link(2, 0));
  EXPECT_TRUE(rig.net.link(1, 2));
  rig.net.heal();
  rig.net.bridge({0}, {2}, 1);
  EXPECT_FALSE(rig.net.link(0, 2));
  EXPECT_TRUE(rig.net.link(0, 1));
  EXPECT_TRUE(rig.net.link(1, 2));
  rig.net.isolate(1);
  EXPECT_FALSE(rig.net.link(0, 1));
  EXPECT_FALSE(rig.net.link(1, 2));
}

TEST(SimNetwork, DuplicatedRequestIsAnsweredOnce) {
  Rig rig;
  NetFaults f;
  f.dup_ppm = 1'000'000;
  rig.net.set_faults(f);
  int answers = 0;
  rig.net.transport(0).heartbeat("sim://n2", {.term = 1}, [&](result<HeartbeatResponse>) { ++answers; });
  rig.run_for(5s);
  EXPECT_EQ(rig.svc[2].heartbeats, 2);
  EXPECT_EQ(answers, 1);
}

TEST(SimNetwork, CrashedCallerNeverHearsBack) {
  Rig rig;
  int answers = 0;
  rig.net.transport(0).ack("sim://n1", {.id = 1, .term = 1, .index = 1}, [&](result<void>) { ++answers; });
  rig.net.detach(0);
  rig.run_for(5s);
  EXPECT_EQ(rig.svc[1].acks, 1);
  EXPECT_EQ(answers, 0);
}

TEST(SimNetwork, RequestToDeadNodeIsRefused) {
  Rig rig;
  rig.net.detach(2);
  std::error_code got;
  rig.net.transport(0).heartbeat("sim://n2", {}, [&](result<HeartbeatResponse> r) { got = r ? std::error_code{} : r.error(); });
  rig.run_for(100ms);
  EXPECT_EQ(got, make_error_code(errc::transport_error));
}

TEST(SimNetwork, ClusterIdMismatchIsRefused) {
  Rig rig;
  rig.svc[1].cluster = 5;
  rig.net.transport(0).set_cluster_id(6);
  std::error_code got;
  rig.net.transport(0).heartbeat("sim://n1", {}, [&](result<HeartbeatResponse> r) { got = r ? std::error_code{} : r.error(); });
  rig.run_for(5s);
  EXPECT_EQ(got, make_error_code(errc::cluster_id_mismatch));
  EXPECT_EQ(rig.svc[1].heartbeats, 0);
}

TEST(SimNetwork, JoinFollowsTheLeaderHint) {
  Rig rig;
  rig.svc[1].refuse_join = true;
  rig.svc[1].leader_url = "sim://n2";
  std::uint64_t id = 0;
  rig.net.transport(0).join("sim://n1", JoinRequest{"sim://n0", 0}, [&](result<JoinResponse> r) {
    ASSERT_TRUE(r);
    id = r->id;
  });
  rig.run_for(5s);
  EXPECT_EQ(rig.svc[1].joins, 1);
  EXPECT_EQ(rig.svc[2].joins, 1);
  EXPECT_EQ(id, 7u);
}

// Follower 0 reads from leader 1.
struct StreamRig : Rig {
  std::string received;
  std::vector<std::function<void()>> pending_more;
  bool auto_more = true;
  int ends = 0;
  std::error_code end_ec;
  std::shared_ptr<StreamHandle> handle;

  explicit StreamRig(std::uint64_t seed = 1) : Rig(seed) {
    StreamCallbacks cb;
    cb.on_data = [this](std::string_view b, std::function<void()> more) {
      EXPECT_EQ(ends, 0);
      received.append(b);
      if (auto_more) more();
      else pending_more.push_back(std::move(more));
    };
    cb.on_end = [this](std::error_code ec) {
      ++ends;
      end_ec = ec;
    };
    handle = net.transport(0).read_from("sim://n1", {.id = 1, .term = 4, .index = 2, .log_term = 1}, std::move(cb));
    run_for(1s);
  }
  StreamWriter& w() { return *svc[1].writers.at(0); }
};

TEST(SimStream, BytesArriveInOrderDespiteRandomDelays) {
  NetFaults f;
  f.delay_max = 50ms;
  StreamRig rig(3);
  rig.net.set_faults(f);
  ASSERT_EQ(rig.svc[1].writers.size(), 1u);
  EXPECT_EQ(rig.svc[1].stream_reqs[0].term, 4u);
  // Write 200 chunks, each after the previous one's done.
  std::string expect;
  int i = 0;
  std::function<void(std::error_code)> next = [&](std::error_code ec) {
    ASSERT_FALSE(ec);
    if (i == 200) return;
    std::string chunk = fmt::format("<{}>", i++);
    expect += chunk;
    rig.w().write(chunk, next);
  };
  next({});
  rig.run_for(60s);
  EXPECT_EQ(rig.received, expect);
  rig.w().finish({});
  rig.run_for(1s);
  EXPECT_EQ(rig.ends, 1);
  EXPECT_FALSE(rig.end_ec);
}

TEST(SimStream, BackPressureHoldsBytesUntilMore) {
  StreamRig rig;
  rig.auto_more = false;
  int done = 0;
  rig.w().write("a", [&](std::error_code ec) { EXPECT_FALSE(ec); ++done; });
  rig.run_for(1s);
  EXPECT_EQ(rig.received, "a");
  EXPECT_EQ(done, 1);  // handed on
  rig.w().write("b", [&](std::error_code ec) { EXPECT_FALSE(ec); ++done; });
  rig.run_for(1s);
  EXPECT_EQ(rig.received, "a");  // the reader has not asked for more
  EXPECT_EQ(done, 1);
  ASSERT_EQ(rig.pending_more.size(), 1u);
  rig.pending_more[0]();
  rig.pending_more[0]();  // a second call is harmless
  rig.run_for(1s);
  EXPECT_EQ(rig.received, "ab");
  EXPECT_EQ(done, 2);
}

TEST(SimStream, CutLinkBreaksTheWholeStreamAtBothEnds) {
  StreamRig rig;
  std::vector<std::error_code> dones;
  rig.w().write("abc", [&](std::error_code ec) { dones.push_back(ec); });
  rig.run_for(1s);
  rig.w().write("def", [&](std::error_code ec) { dones.push_back(ec); });
  rig.net.set_link(1, 0, false);  // one way is enough to kill a TCP connection
  rig.run_for(1s);
  EXPECT_EQ(rig.received, "abc");
  EXPECT_EQ(rig.ends, 1);
  EXPECT_EQ(rig.end_ec, make_error_code(errc::transport_error));
  ASSERT_EQ(dones.size(), 2u);
  EXPECT_FALSE(dones[0]);
  EXPECT_EQ(dones[1], make_error_code(errc::transport_error));
  // Later writes fail too.
  std::error_code later;
  rig.w().write("ghi", [&](std::error_code ec) { later = ec; });
  rig.run_for(1s);
  EXPECT_TRUE(later);
  EXPECT_EQ(rig.net.open_streams(), 0u);
}

TEST(SimStream, LostPacketBreaksTheStreamNeverLosesBytesInTheMiddle) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    StreamRig rig(seed);
    NetFaults f;
    f.drop_ppm = 100'000;
    f.delay_max = 30ms;
    rig.net.set_faults(f);
    if (rig.svc[1].writers.empty()) continue;  // the connect was lost
    std::string sent;
    int i = 0;
    std::function<void(std::error_code)> next = [&](std::error_code ec) {
      if (ec || i == 100) return;
      std::string chunk = fmt::format("<{}>", i++);
      sent += chunk;
      rig.w().write(chunk, next);
    };
    next({});
    rig.run_for(60s);
    // What arrived is a prefix of what was sent, and the break was reported.
    EXPECT_EQ(sent.substr(0, rig.received.size()), rig.received) << "seed " << seed;
    if (rig.received.size() < sent.size()) {
      EXPECT_EQ(rig.ends, 1) << "seed " << seed;
    }
  }
}

TEST(SimStream, BreakIsReportedToABusyReaderOnlyWhenItReadsAgain) {
  StreamRig rig;
  rig.auto_more = false;
  rig.w().write("x", [](std::error_code) {});
  rig.run_for(1s);
  rig.net.isolate(1);
  rig.run_for(1s);
  EXPECT_EQ(rig.ends, 0);
  rig.pending_more.at(0)();
  rig.run_for(1s);
  EXPECT_EQ(rig.ends, 1);
}

TEST(SimStream, CrashedLeaderEndsTheFollowersStream) {
  StreamRig rig;
  rig.net.detach(1);
  rig.run_for(1s);
  EXPECT_EQ(rig.ends, 1);
  EXPECT_TRUE(rig.end_ec);
}

TEST(SimStream, CrashedFollowerFailsTheLeadersWritesAndHearsNothing) {
  StreamRig rig;
  rig.net.detach(0);
  std::error_code got;
  rig.w().write("x", [&](std::error_code ec) { got = ec; });
  rig.run_for(1s);
  EXPECT_TRUE(got);
  EXPECT_EQ(rig.ends, 0);
  EXPECT_EQ(rig.received, "");
}

TEST(SimStream, CancelEndsTheStream) {
  StreamRig rig;
  rig.handle->cancel();
  rig.run_for(1s);
  EXPECT_EQ(rig.ends, 1);
  EXPECT_EQ(rig.end_ec, make_error_code(errc::canceled));
  std::error_code got;
  rig.w().write("x", [&](std::error_code ec) { got = ec; });
  rig.run_for(1s);
  EXPECT_TRUE(got);
}

TEST(SimStream, FinishWithErrorBeforeAnyByteReportsTheError) {
  StreamRig rig;
  rig.w().finish(make_error_code(errc::stale_term));
  rig.run_for(1s);
  EXPECT_EQ(rig.ends, 1);
  EXPECT_EQ(rig.end_ec, make_error_code(errc::stale_term));
}

TEST(SimStream, ConnectToADeadLeaderFails) {
  Rig rig;
  rig.net.detach(1);
  int ends = 0;
  StreamCallbacks cb;
  cb.on_data = [](std::string_view, std::function<void()>) { ADD_FAILURE(); };
  cb.on_end = [&](std::error_code ec) {
    EXPECT_TRUE(ec);
    ++ends;
  };
  auto h = rig.net.transport(0).read_from("sim://n1", {}, std::move(cb));
  rig.run_for(2s);
  EXPECT_EQ(ends, 1);
}

TEST(DriftClock, ScalesTimersAndNow) {
  VirtualClock base;
  DriftClock fast(base, 1250), slow(base, 800);
  int f = 0, s = 0;
  fast.after(1000ms, [&] { ++f; });
  slow.after(1000ms, [&] { ++s; });
  base.advance(800ms);
  EXPECT_EQ(f, 1);
  EXPECT_EQ(s, 0);
  base.advance(450ms);
  EXPECT_EQ(s, 1);
  EXPECT_EQ(fast.now().time_since_epoch(), std::chrono::microseconds(1562500));
  slow.after(10ms, [&] { ++s; });
  slow.kill();
  base.advance(1s);
  EXPECT_EQ(s, 1);
}

// Same seed: byte-identical trace; another seed: another trace.
std::string random_workload(std::uint64_t seed) {
  Rig rig(seed);
  Rng r(seed);
  rig.net.set_faults(NetFaults::unreliable(r, 500ms));
  for (int i = 0; i < 300; ++i) {
    const int from = static_cast<int>(r.below(3)), to = static_cast<int>(r.below(3));
    rig.net.transport(from).heartbeat("sim://n" + std::to_string(to), {.term = static_cast<std::uint64_t>(i)},
                                      [](result<HeartbeatResponse>) {});
    if (r.one_in(50)) rig.net.isolate(static_cast<int>(r.below(3)));
    if (r.one_in(40)) rig.net.heal();
    rig.run_for(std::chrono::milliseconds(r.below(30)));
  }
  rig.run_for(10s);
  return rig.trace_text;
}

TEST(Trace, SameSeedGivesByteIdenticalTrace) {
  const auto a = random_workload(11), b = random_workload(11), c = random_workload(12);
  EXPECT_GT(a.size(), 1000u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// ---- the checker, fed with hand-made histories ----

struct CheckRig {
  VirtualClock clock;
  Trace trace{clock};
  Checker c{trace};
};

LogEntry cmd(std::uint64_t i, std::uint64_t t, std::string d) {
  return LogEntry{LogEntryType::command, i, t, std::move(d)};
}

TEST(Checker, TwoLeadersInOneTermIsAViolation) {
  CheckRig r;
  r.c.leader(0, 1, 5, 0);
  r.c.leader(0, 1, 5, 0);
  EXPECT_FALSE(r.c.failed());
  r.c.leader(1, 2, 5, 0);
  ASSERT_TRUE(r.c.failed());
  EXPECT_NE(r.c.violations()[0].find("election safety"), std::string::npos);
}

TEST(Checker, DifferentEntriesAppliedAtOneIndexIsAViolation) {
  CheckRig r;
  r.c.applied(0, cmd(1, 1, "a"));
  r.c.applied(1, cmd(1, 1, "a"));
  EXPECT_FALSE(r.c.failed());
  r.c.applied(2, cmd(1, 2, "b"));
  ASSERT_TRUE(r.c.failed());
  EXPECT_NE(r.c.violations()[0].find("state machine safety"), std::string::npos);
}

TEST(Checker, AGapOrRepeatInAppliesIsAViolation) {
  CheckRig r;
  r.c.applied(0, cmd(1, 1, "a"));
  r.c.applied(0, cmd(3, 1, "c"));
  EXPECT_TRUE(r.c.failed());
  CheckRig r2;
  r2.c.applied(0, cmd(1, 1, "a"));
  r2.c.applied(0, cmd(1, 1, "a"));
  EXPECT_TRUE(r2.c.failed());
}

TEST(Checker, RestartMayReplayTheSameEntriesButNotOthers) {
  CheckRig r;
  r.c.applied(0, cmd(1, 1, "a"));
  r.c.applied(0, cmd(2, 1, "b"));
  r.c.restarted(0);
  r.c.applied(0, cmd(1, 1, "a"));
  r.c.applied(0, cmd(2, 1, "b"));
  EXPECT_FALSE(r.c.failed());
  r.c.restarted(0);
  r.c.restored(0, 2, {cmd(1, 1, "a"), cmd(2, 1, "B")});
  EXPECT_TRUE(r.c.failed());
}

TEST(Checker, DecreasingTermOrCommitIsAViolation) {
  CheckRig r;
  r.c.begin_pass();
  r.c.observe(0, 3, 5, 4);
  r.c.restarted(0);
  r.c.observe(0, 3, 0, 0);  // commit and applied are volatile across restarts
  EXPECT_FALSE(r.c.failed());
  r.c.observe(0, 2, 0, 0);
  EXPECT_TRUE(r.c.failed());
  CheckRig r2;
  r2.c.observe(0, 3, 5, 4);
  r2.c.observe(0, 3, 4, 4);
  EXPECT_TRUE(r2.c.failed());
  CheckRig r3;
  r3.c.observe(0, 3, 5, 6);  // applied beyond commit
  EXPECT_TRUE(r3.c.failed());
}

TEST(Checker, LeaderMissingEntriesCommittedBeforeItsTermIsAViolation) {
  CheckRig r;
  r.c.begin_pass();
  r.c.observe(0, 1, 10, 10);
  r.c.begin_pass();
  r.c.observe(1, 2, 3, 3);  // term 2 starts after index 10 committed
  r.c.leader(1, 2, 2, 7);
  ASSERT_TRUE(r.c.failed());
  EXPECT_NE(r.c.violations()[0].find("leader completeness"), std::string::npos);
}

TEST(Checker, AppliedEntryDifferentFromTheReportedApplyResultIsAViolation) {
  CheckRig r;
  r.c.apply_succeeded(2, "x");
  r.c.applied(0, cmd(1, 1, "a"));
  r.c.applied(0, cmd(2, 1, "y"));
  EXPECT_TRUE(r.c.failed());
}

TEST(Checker, LeaderCommittingAPreviousTermEntryByCountingIsAViolation) {
  CheckRig r;
  r.c.applied(0, cmd(1, 1, "a"));
  r.c.leader_commit(1, 3, 2);  // leader of term 3 commits index 2...
  r.c.leader_commit(1, 3, 1);  // ...and index 1, of term 1: known at once
  EXPECT_TRUE(r.c.failed());
  CheckRig r2;
  r2.c.leader_commit(1, 3, 2);
  r2.c.applied(0, cmd(1, 1, "a"));
  r2.c.applied(0, cmd(2, 2, "b"));  // index 2 turns out to be of term 2
  EXPECT_TRUE(r2.c.failed());
  CheckRig r3;
  r3.c.leader_commit(1, 2, 2);
  r3.c.applied(0, cmd(1, 1, "a"));
  r3.c.applied(0, cmd(2, 2, "b"));
  EXPECT_FALSE(r3.c.failed());
}

TEST(SimFsm, SnapshotRestoresTheSameEntries) {
  CheckRig r;
  SimFsm a(r.c, 0), b(r.c, 1);
  a.must_apply(LogEntry{LogEntryType::initialize, 1, 1, ""});
  a.must_apply(cmd(2, 1, "hello"));
  a.must_apply(LogEntry{LogEntryType::nop, 3, 2, ""});
  std::string snap;
  StringWriter w(snap);
  auto idx = a.snapshot(w);
  ASSERT_TRUE(idx);
  EXPECT_EQ(*idx, 3u);
  StringReader rd(snap);
  ASSERT_TRUE(b.restore(rd));
  EXPECT_EQ(b.index(), 3u);
  EXPECT_EQ(b.entries(), a.entries());
  b.must_apply(cmd(4, 2, "next"));
  EXPECT_FALSE(r.c.failed());
}

}  // namespace
}  // namespace raft::sim
