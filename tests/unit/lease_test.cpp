// Reads by lease (LogOptions::lease_reads, Raft thesis §6.4.1): a leader
// answers read_index() without a heartbeat round while a majority of voters
// answered a heartbeat it sent less than a lease ago, and the voters refuse
// the votes that would let another leader be elected meanwhile. One test per
// rule, each checked to fail with its rule taken out.
#include "unit/cluster_helpers.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace raft::test {
namespace {

void with_lease(LogOptions& o) { o.lease_reads = true; }

// election_timeout * (1 - d) / (1 + d) with the defaults: 500 ms, d = 0.1.
constexpr auto kLease = std::chrono::microseconds(409'090);

result<std::uint64_t> read_index(LocalCluster& c, LocalNode& n) {
  return c.call<std::uint64_t>([&](auto h) { n.log->start_read_index({}, std::move(h)); });
}

// Asks `n` directly, as a candidate of `term` with a log longer than anyone's.
result<VoteResponse> ask_vote(LocalCluster& c, LocalNode& n, std::uint64_t term, std::uint64_t candidate,
                              bool pre_vote = false) {
  const VoteRequest req{term, candidate, 1'000'000, term - 1, pre_vote};
  return c.call<VoteResponse>([&](auto h) { n.log->handle_vote(req, std::move(h)); });
}

// Runs for exactly `d` of virtual time (LocalNetwork::run_for stops at the
// last timer before the end).
void run_exactly(LocalCluster& c, Clock::duration d) {
  const auto end = c.net.clock.now() + d;
  c.net.run_for(d);
  if (c.net.clock.now() < end) c.net.clock.advance(end - c.net.clock.now());
  c.net.io.poll();
  c.net.io.restart();
}

// Runs until a heartbeat tick of the leader has been sent and answered (the
// local network delivers at once): its lease starts now.
void fresh_heartbeat_round(LocalCluster& c) {
  const auto sent = c.net.heartbeats_sent;
  ASSERT_TRUE(c.net.run_until([&] { return c.net.heartbeats_sent >= sent + 2; }, 1s));
}

// From a heartbeat round answered now, with no answer after it: a read just
// before `lease` has passed is answered by lease; one just after is not,
// until heartbeats are answered again and its own round confirms it.
void expect_lease_of(LocalCluster& c, LocalNode& l, Clock::duration lease) {
  fresh_heartbeat_round(c);
  for (auto* f : c.others(&l)) c.net.drop_heartbeats_to.insert(f->url);
  run_exactly(c, lease - 2ms);
  ASSERT_EQ(l.log->state(), State::leader);
  const auto before = l.log->status().reads_by_lease;
  ASSERT_TRUE(read_index(c, l));
  EXPECT_EQ(l.log->status().reads_by_lease, before + 1);
  run_exactly(c, 4ms);
  ASSERT_EQ(l.log->state(), State::leader);  // check-quorum: a full election timeout
  std::optional<result<std::uint64_t>> late;
  l.log->start_read_index({}, [&](result<std::uint64_t> x) { late = x; });
  c.net.run_for(10ms);
  EXPECT_FALSE(late.has_value()) << "answered after the lease ended, with no heartbeat answered";
  c.net.drop_heartbeats_to.clear();
  ASSERT_TRUE(c.net.run_until([&] { return late.has_value(); }, 1s));
  ASSERT_TRUE(*late) << late->error().message();
  EXPECT_EQ(l.log->status().reads_by_lease, before + 1);
}

TEST(Lease, ALeaderReadsWithoutAHeartbeatRoundWithinItsLease) {
  auto c = three_node_cluster(with_lease);
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const auto w = apply_writes(*c, *l, 3);
  ASSERT_NE(w, 0u);
  const auto sent = c->net.heartbeats_sent;
  auto r = read_index(*c, *l);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GE(*r, w);
  EXPECT_EQ(c->net.heartbeats_sent, sent) << "a heartbeat round was sent for a read within the lease";
  EXPECT_EQ(l->log->status().reads_by_lease, 1u);
  EXPECT_EQ(l->log->status().reads_as_leader, 1u);
  // A follower's read costs one request to the leader, which answers by lease.
  auto* f = c->others(l)[0];
  auto fr = read_index(*c, *f);
  ASSERT_TRUE(fr) << fr.error().message();
  EXPECT_GE(*fr, w);
  EXPECT_EQ(c->net.heartbeats_sent, sent);
  EXPECT_EQ(l->log->status().reads_by_lease, 2u);
}

TEST(Lease, WithoutLeaseReadsEveryReadTakesARound) {
  auto c = three_node_cluster();
  auto* l = c->leader();
  ASSERT_TRUE(l);
  const auto sent = c->net.heartbeats_sent;
  auto r = read_index(*c, *l);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GT(c->net.heartbeats_sent, sent);
  EXPECT_EQ(l->log->status().reads_by_lease, 0u);
}

// The lease runs from when the heartbeats were sent, and is shorter than an
// election timeout by the clock-drift margin: just before its end a read is
// answered by lease; just after, only a heartbeat round answers it.
TEST(Lease, TheLeaseEndsAnElectionTimeoutLessTheDriftMarginAfterTheLastAnsweredHeartbeat) {
  auto c = three_node_cluster(with_lease);
  auto* l = c->leader();
  ASSERT_TRUE(l);
  ASSERT_TRUE(c->apply(*l, "x"));
  expect_lease_of(*c, *l, kLease);
}

// A majority counts: one follower answering (with the leader, 2 of 3) keeps
// the lease (none answering ends it: the test above).
TEST(Lease, OneAnsweringFollowerOfTwoKeepsTheLease) {
  auto c = three_node_cluster(with_lease);
  auto* l = c->leader();
  ASSERT_TRUE(l);
  ASSERT_TRUE(c->apply(*l, "x"));
  c->net.drop_heartbeats_to.insert(c->others(l)[0]->url);
  run_exactly(*c, 2 * kLease);
  ASSERT_EQ(l->log->state(), State::leader);
  ASSERT_TRUE(read_index(*c, *l));
  EXPECT_EQ(l->log->status().reads_by_lease, 1u);
}

// A new leader knows which entries are committed only once one of its own
// term commits (§5.4.2): until then no lease answers, however many
// heartbeats were answered.
TEST(Lease, NoLeaseBeforeAnEntryOfTheLeadersTermCommits) {
  auto c = three_node_cluster(with_lease);
  auto* old = c->leader();
  ASSERT_TRUE(old);
  ASSERT_TRUE(c->apply(*old, "before"));
  c->net.hold_acks = true;  // the new leader's Nop cannot commit
  c->net.down[old->url] = true;
  auto* l = leader_among(*c, c->others(old));
  ASSERT_TRUE(l);
  fresh_heartbeat_round(*c);
  std::optional<result<std::uint64_t>> r;
  l->log->start_read_index({}, [&](result<std::uint64_t> x) { r = x; });
  c->net.run_for(50ms);
  EXPECT_FALSE(r.has_value()) << "answered before an entry of the new term committed";
  c->net.release_acks();
  ASSERT_TRUE(c->net.run_until([&] { return r.has_value(); }, 5s));
  ASSERT_TRUE(*r) << r->error().message();
  EXPECT_EQ(*r, l->log->commit_index());
}

// While it leads, a leader with lease reads grants no vote of a later term
// (but a transfer's): its own answer counts in its lease. Check-quorum ends
// its leadership once it lost its majority.
TEST(Lease, ALeaderGrantsNoVoteWhileItLeads) {
  for (bool lease : {false, true}) {
    auto c = three_node_cluster(lease ? with_lease : std::function<void(LogOptions&)>{});
    auto* l = c->leader();
    ASSERT_TRUE(l);
    run_exactly(*c, 600ms);  // long after its open(): only its leading holds the vote
    ASSERT_EQ(l->log->state(), State::leader);
    const auto term = l->log->term();
    const auto v = ask_vote(*c, *l, term + 1, 3);
    ASSERT_TRUE(v) << v.error().message();
    if (lease) {
      EXPECT_FALSE(v->granted()) << "a leader with lease reads voted for another candidate";
      EXPECT_EQ(l->log->state(), State::leader);
      EXPECT_EQ(l->log->term(), term);
    } else {
      EXPECT_TRUE(v->granted()) << "the contrast: without lease reads a leader votes for a later term";
    }
  }
}

// A node just opened does not know when it last answered a leader, which
// may count that answer in its lease: it grants no vote (nor pre-vote) for
// an election timeout after open().
TEST(Lease, ARestartedVoterGrantsNoVoteForAnElectionTimeout) {
  for (auto fault : {LogOptions::Fault::none, LogOptions::Fault::lease_votes_after_restart}) {
    auto c = three_node_cluster(with_lease);
    auto* l = c->leader();
    ASSERT_TRUE(l);
    auto* f = c->others(l)[0];
    const auto term = f->log->term();
    c->crash(*f);
    c->start(*f, fault);
    auto pre = ask_vote(*c, *f, term + 1, 3, /*pre_vote=*/true);
    ASSERT_TRUE(pre);
    auto v = ask_vote(*c, *f, term + 1, 3);
    ASSERT_TRUE(v);
    if (fault == LogOptions::Fault::none) {
      EXPECT_FALSE(pre->granted()) << "pre-vote granted right after open()";
      EXPECT_FALSE(v->granted()) << "vote granted right after open()";
    } else {
      EXPECT_TRUE(v->granted()) << "the contrast: the fault grants at once";
    }
  }
}

TEST(Lease, ARestartedVoterVotesAgainAfterAnElectionTimeout) {
  auto c = three_node_cluster(with_lease);
  auto* l = c->leader();
  ASSERT_TRUE(l);
  auto* f = c->others(l)[0];
  // Nobody to hear from or campaign with: its term stays, and only the
  // time since open() can hold its vote.
  for (auto* n : c->others(f)) c->net.down[n->url] = true;
  const auto term = f->log->term();
  c->crash(*f);
  c->start(*f);
  run_exactly(*c, 510ms);
  auto v = ask_vote(*c, *f, term + 5, 3);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->granted()) << v->error.message();
}

// Stickiness by time: a follower that learns of a later term from something
// other than a new leader (here an ack, as a reply of a later term to one of
// its pre-votes would) forgets its leader, yet that leader may still count
// its last answer in a lease: it grants no vote in that term until an
// election timeout after that answer.
TEST(Lease, AFollowerThatForgotItsLeaderStillGrantsNoVoteWithinAnElectionTimeoutOfHearingFromIt) {
  for (bool lease : {false, true}) {
    auto c = three_node_cluster(lease ? with_lease : std::function<void(LogOptions&)>{});
    auto* l = c->leader();
    ASSERT_TRUE(l);
    fresh_heartbeat_round(*c);
    auto* f = c->others(l)[0];
    auto* g = c->others(l)[1];
    const auto term = f->log->term();
    auto a = c->call<void>([&](auto h) { f->log->handle_ack(AckRequest{g->log->id(), term + 1, 0, g->url}, std::move(h)); });
    ASSERT_FALSE(a);  // not a leader: refused, but the term moved
    ASSERT_EQ(f->log->term(), term + 1);
    ASSERT_EQ(f->log->leader().first, 0u);
    const auto v = ask_vote(*c, *f, term + 1, g->log->id());
    ASSERT_TRUE(v);
    if (lease) EXPECT_FALSE(v->granted()) << "voted within an election timeout of its leader's heartbeat";
    else EXPECT_TRUE(v->granted()) << "the contrast: without lease reads it votes";
  }
}

// Once a leader has told a member to campaign (a transfer's TimeoutNow) the
// voters grant that member's election however recently they heard from the
// leader: no lease for the rest of the term, even after the transfer
// failed and it leads on.
TEST(Lease, NoLeaseOnceTheLeaderToldAMemberToCampaign) {
  auto c = three_node_cluster(with_lease);
  auto* l = c->leader();
  ASSERT_TRUE(l);
  ASSERT_TRUE(c->apply(*l, "x"));
  ASSERT_TRUE(read_index(*c, *l));
  ASSERT_EQ(l->log->status().reads_by_lease, 1u);
  auto* target = c->others(l)[0];
  // The target is unreachable when the TimeoutNow goes out (it rides a
  // heartbeat): the transfer times out.
  c->net.down[target->url] = true;
  auto t = c->call<void>([&](auto h) { l->log->start_transfer_leadership(target->log->id(), 100ms, std::move(h)); });
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error(), errc::timeout);
  ASSERT_EQ(l->log->state(), State::leader);
  c->net.down[target->url] = false;
  fresh_heartbeat_round(*c);
  auto r = read_index(*c, *l);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(l->log->status().reads_by_lease, 1u) << "read by lease after a TimeoutNow went out in this term";
}

// Each member tells, in its heartbeat replies, how long it will grant no
// vote (HeartbeatResponse::vote_hold_ms). One without lease_reads (or of an
// older build) promises nothing and counts in no lease: with the other
// follower silent, the leader confirms reads by a round; with it silent
// instead, the member that promised keeps the lease.
TEST(Lease, AMemberWithoutLeaseReadsCountsInNoLease) {
  for (bool n3_silent : {false, true}) {
    auto c = three_node_cluster([](LogOptions& o) { o.lease_reads = o.url != "http://n3"; });
    auto* l = c->nodes[0].get();
    ASSERT_EQ(l->log->state(), State::leader);
    ASSERT_TRUE(c->apply(*l, "x"));
    c->net.drop_heartbeats_to.insert(n3_silent ? "http://n3" : "http://n2");
    run_exactly(*c, 2 * kLease);
    ASSERT_EQ(l->log->state(), State::leader);
    // What the members promised shows in the leader's status (/raft/status:
    // "voteHoldMs"), so the one configured without lease reads can be found.
    const auto st = l->log->status();
    EXPECT_TRUE(st.lease_reads);
    for (const auto& p : st.peers) EXPECT_EQ(p.vote_hold_ms, p.id == 3 ? 0u : 500u) << "member " << p.id;
    const auto sent = c->net.heartbeats_sent;
    auto r = read_index(*c, *l);
    ASSERT_TRUE(r) << r.error().message();
    if (n3_silent) {
      EXPECT_EQ(l->log->status().reads_by_lease, 1u);
      EXPECT_EQ(c->net.heartbeats_sent, sent);
    } else {
      EXPECT_EQ(l->log->status().reads_by_lease, 0u) << "a lease counted on a member without lease_reads";
      EXPECT_GT(c->net.heartbeats_sent, sent);
    }
  }
}

// A member with a shorter election timeout refuses votes for less time
// after a heartbeat, and the lease it gives is that much shorter.
TEST(Lease, AMembersShorterElectionTimeoutShortensTheLeaseItGives) {
  auto c = three_node_cluster([](LogOptions& o) {
    o.lease_reads = true;
    if (o.url != "http://n1") o.election_timeout = 300ms;
  });
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  ASSERT_TRUE(c->apply(*l, "x"));
  expect_lease_of(*c, *l, std::chrono::microseconds(245'454));  // 300 ms * 0.9 / 1.1
}

TEST(Lease, OpenRefusesAClockDriftOutsideZeroToOne) {
  for (double d : {-0.1, 1.0, 2.0}) {
    LocalCluster c;
    c.tweak = [d](LogOptions& o) {
      o.lease_reads = true;
      o.lease_clock_drift = d;
    };
    EXPECT_THROW(c.add(), std::runtime_error) << d;
  }
  LocalCluster ok;
  ok.tweak = [](LogOptions& o) {
    o.lease_reads = true;
    o.lease_clock_drift = 0.0;
  };
  EXPECT_NO_THROW(ok.add());
}

}  // namespace
}  // namespace raft::test
