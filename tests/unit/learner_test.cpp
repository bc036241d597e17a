// Learners (non-voting members, Raft thesis §4.2.1): one rule per test. A
// learner receives and applies the log like any member, counts toward no
// majority (commit, election, read, check-quorum), never campaigns, and
// becomes a voter only through a committed promote_peer entry.
#include "unit/cluster_helpers.hpp"

#include <gtest/gtest.h>

#include <optional>

namespace raft::test {
namespace {

using namespace std::chrono_literals;

// `voters` nodes as cluster_of builds them (n1 leads), then `learners` more
// joined through n1 as learners.
std::unique_ptr<LocalCluster> cluster_with_learners(std::size_t voters, std::size_t learners,
                                                    LogOptions::Fault fault = LogOptions::Fault::none) {
  auto c = cluster_of(voters, [fault](LogOptions& o) { o.inject_fault = fault; });
  for (std::size_t i = 0; i < learners; ++i) {
    auto& x = c->add(fault);
    auto j = c->join(x, c->nodes[0]->url, {.learner = true});
    EXPECT_TRUE(j) << j.error().message();
  }
  const std::size_t n = voters + learners;
  EXPECT_TRUE(c->net.run_until([&] {
    for (auto& node : c->nodes)
      if (node->log->config().nodes.size() != n || node->log->commit_index() < n) return false;
    return true;
  }));
  return c;
}

bool is_learner(const Config& c, std::uint64_t id) {
  const auto* n = c.node_by_id(id);
  return n && n->learner;
}

// JoinOptions::catch_up_first's intent, kept until the promotion is known
// to have committed.
bool has_promote_intent(LocalNode& n) {
  auto e = n.fs.exists("/data/promote-intent");
  EXPECT_TRUE(e);
  return e && *e;
}

result<void> promote(LocalCluster& c, LocalNode& l, std::uint64_t id) {
  return c.call<void>([&](auto h) { l.log->start_promote_peer(id, {}, std::move(h)); });
}

result<void> demote(LocalCluster& c, LocalNode& l, std::uint64_t id) {
  return c.call<void>([&](auto h) { l.log->start_demote_peer(id, std::move(h)); });
}

// 3 voters (n1 leads) and learner n4, after `writes` writes up to `last`.
struct WithOneLearner {
  std::unique_ptr<LocalCluster> c;
  LocalNode* l = nullptr;
  LocalNode* x = nullptr;
  std::uint64_t last = 0;
};
WithOneLearner with_one_learner(int writes) {
  WithOneLearner s{cluster_with_learners(3, 1)};
  s.l = s.c->nodes[0].get();
  s.x = s.c->nodes[3].get();
  s.last = apply_writes(*s.c, *s.l, writes);
  EXPECT_NE(s.last, 0u);
  return s;
}

// 3 voters and 2 learners, led by n1, with the two other voters cut off
// after `writes` writes: the leader hears only learners.
struct OnlyLearnersHeard {
  std::unique_ptr<LocalCluster> c;
  LocalNode* l = nullptr;
};
OnlyLearnersHeard only_learners_heard(int writes = 0) {
  OnlyLearnersHeard s{cluster_with_learners(3, 2)};
  s.l = s.c->nodes[0].get();
  EXPECT_EQ(s.l->log->state(), State::leader);
  if (writes > 0) {
    EXPECT_TRUE(apply_writes(*s.c, *s.l, writes));
  }
  s.c->net.down[s.c->nodes[1]->url] = true;
  s.c->net.down[s.c->nodes[2]->url] = true;
  return s;
}

TEST(Learner, JoinsAsALearnerAndAppliesTheLog) {
  auto c = cluster_with_learners(3, 1);
  auto* l = c->nodes[0].get();
  auto* x = c->nodes[3].get();
  ASSERT_EQ(l->log->state(), State::leader);
  for (auto& n : c->nodes) {
    EXPECT_TRUE(is_learner(n->log->config(), x->log->id())) << n->url;
    EXPECT_EQ(n->log->config().voter_count(), 3u) << n->url;
  }
  const std::uint64_t last = apply_writes(*c, *l, 5);
  ASSERT_NE(last, 0u);
  ASSERT_TRUE(c->net.run_until([&] { return x->fsm.applied_index >= last; }, 5s));
  EXPECT_EQ(x->fsm.commands.back().data, "w4");
  EXPECT_EQ(x->log->state(), State::follower);
}

// 3 voters and 2 learners: the leader and both learners are 3 of 5 nodes,
// but 1 of 3 voters, so nothing commits until a second voter is back.
TEST(Learner, DoesNotCountTowardTheCommitMajority) {
  auto [c, l] = only_learners_heard();
  const std::uint64_t commit = l->log->commit_index();
  std::optional<result<std::uint64_t>> r;
  l->log->start_apply("x", 5s, [&](result<std::uint64_t> v) { r = v; });
  // Less than an election timeout: check-quorum has not stepped it down.
  c->net.run_for(kDefaultElectionTimeout / 2);
  EXPECT_FALSE(r.has_value()) << "committed with one voter of three and two learners";
  EXPECT_EQ(l->log->commit_index(), commit);
  // The learners do hold the entry: they were not what was missing.
  EXPECT_EQ(c->nodes[3]->log->last_index(), l->log->last_index());
  c->net.down[c->nodes[1]->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return r.has_value(); }, 5s));
  ASSERT_TRUE(*r) << r->error().message();
}

// With a single voter, a learner's acks are not needed: the voter commits
// alone while the learner is away.
TEST(Learner, OneVoterCommitsWhileItsLearnerIsAway) {
  auto c = cluster_with_learners(1, 1);
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  c->net.down[c->nodes[1]->url] = true;
  auto w = c->apply(*l, "alone");
  ASSERT_TRUE(w) << w.error().message();
  c->net.run_for(3 * kDefaultElectionTimeout);
  EXPECT_EQ(l->log->state(), State::leader) << "check-quorum counted the learner";
}

// With its voter gone, a learner never campaigns (its term stays).
TEST(Learner, NeverCampaigns) {
  auto c = cluster_with_learners(1, 1);
  auto* x = c->nodes[1].get();
  const std::uint64_t term = x->log->term();
  c->net.down[c->nodes[0]->url] = true;
  c->net.run_for(20 * kDefaultElectionTimeout);
  EXPECT_EQ(x->log->state(), State::follower);
  EXPECT_EQ(x->log->term(), term);
  EXPECT_EQ(x->log->status().elections_started, 0u);
}

// 3 voters and 2 learners, the leader and both learners gone: the two
// voters left are a majority of the voters, and elect a leader.
TEST(Learner, ElectionNeedsAMajorityOfVotersOnly) {
  auto c = cluster_with_learners(3, 2);
  for (auto i : {0, 3, 4}) c->net.down[c->nodes[static_cast<std::size_t>(i)]->url] = true;
  auto* l = leader_among(*c, {c->nodes[1].get(), c->nodes[2].get()});
  ASSERT_TRUE(l) << "no leader from two of three voters";
  auto w = c->apply(*l, "after");
  ASSERT_TRUE(w) << w.error().message();
}

// Check-quorum: a leader that hears only learners steps down.
TEST(Learner, CheckQuorumCountsOnlyVoters) {
  auto [c, l] = only_learners_heard();
  ASSERT_TRUE(c->net.run_until([&] { return l->log->state() != State::leader; }, 3 * kDefaultElectionTimeout))
      << "a leader heard by learners only kept leading";
}

// A read needs a heartbeat round answered by a majority of voters; the
// learners' answers do not make one.
TEST(Learner, ReadIndexNeedsAMajorityOfVoters) {
  auto [c, l] = only_learners_heard(2);
  std::optional<result<std::uint64_t>> r;
  l->log->start_read_index(kDefaultElectionTimeout / 2, [&](result<std::uint64_t> v) { r = v; });
  ASSERT_TRUE(c->net.run_until([&] { return r.has_value(); }, kDefaultElectionTimeout));
  ASSERT_FALSE(*r) << "read confirmed by learners only";
  EXPECT_EQ(r->error(), errc::timeout);
}

// A learner serves linearizable reads (it asks the leader for the index).
TEST(Learner, ServesReadsThroughTheLeader) {
  auto [c, l, x, last] = with_one_learner(3);
  ASSERT_NE(last, 0u);
  auto r = c->call<std::uint64_t>([&](auto h) { x->log->start_read_barrier({}, std::move(h)); });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_GE(*r, last);
  EXPECT_GE(x->fsm.applied_index, last);
}

// add_learner commits without the learner, even one that never answers;
// add_peer of such a node to a one-voter cluster cannot (it needs both).
TEST(Learner, AddLearnerCommitsWithoutTheLearner) {
  auto c = cluster_of(1);
  auto* l = c->nodes[0].get();
  auto added = c->call<std::pair<std::uint64_t, Config>>([&](auto h) { l->log->start_add_learner("http://nobody", std::move(h)); });
  ASSERT_TRUE(added) << added.error().message();
  EXPECT_TRUE(is_learner(added->second, added->first));
  EXPECT_TRUE(c->apply(*l, "still writable"));
  auto voter_added = std::make_shared<bool>(false);  // outlives this frame, as the call may
  l->log->start_add_peer("http://nobody-either", [voter_added](auto) { *voter_added = true; });
  c->net.run_for(2 * kDefaultElectionTimeout);
  EXPECT_FALSE(*voter_added) << "a voter added without answering";
}

// Promotion: the learner then counts like any voter; here the two voters
// need each other, and the cluster stalls without the promoted one.
TEST(Learner, PromotedLearnerCountsTowardTheMajority) {
  auto c = cluster_with_learners(1, 1);
  auto* l = c->nodes[0].get();
  auto* x = c->nodes[1].get();
  const std::uint64_t id = x->log->id();
  ASSERT_TRUE(apply_writes(*c, *l, 3));
  auto p = promote(*c, *l, id);
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_TRUE(c->net.run_until([&] { return !is_learner(x->log->config(), id); }, 5s));
  EXPECT_FALSE(is_learner(l->log->config(), id));
  EXPECT_EQ(l->log->config().voter_count(), 2u);
  c->net.down[x->url] = true;
  EXPECT_TRUE(stays_pending(*c, *l, kDefaultElectionTimeout / 2)) << "committed without the promoted voter";
  // And it may now lead: a transfer to it succeeds.
  c->net.down[x->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return x->log->commit_index() == l->log->last_index(); }, 5s));
  auto t = c->call<void>([&](auto h) { l->log->start_transfer_leadership(id, {}, std::move(h)); });
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_TRUE(c->net.run_until([&] { return x->log->state() == State::leader; }, kDefaultElectionTimeout));
}

// Thesis §4.2.1: a learner behind the leader is promoted only once it has
// caught up; meanwhile it stays a learner and writes commit without it.
TEST(Learner, PromotionWaitsForTheLearnerToCatchUp) {
  auto c = cluster_with_learners(1, 1);
  auto* l = c->nodes[0].get();
  auto* x = c->nodes[1].get();
  const std::uint64_t id = x->log->id();
  c->net.down[x->url] = true;
  const std::uint64_t last = apply_writes(*c, *l, 10);
  ASSERT_NE(last, 0u);
  std::optional<result<void>> p;
  l->log->start_promote_peer(id, 30s, [&](result<void> r) { p = r; });
  c->net.run_for(2 * kDefaultElectionTimeout);
  EXPECT_FALSE(p.has_value());
  EXPECT_TRUE(is_learner(l->log->config(), id)) << "promoted before it caught up";
  auto during = c->apply(*l, "during");
  ASSERT_TRUE(during) << "a write waited for the learner: " << during.error().message();
  auto second = promote(*c, *l, id);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), errc::change_in_progress);
  c->net.down[x->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return p.has_value(); }, 10s));
  ASSERT_TRUE(*p) << p->error().message();
  EXPECT_FALSE(is_learner(l->log->config(), id));
  EXPECT_GE(x->log->last_index(), last);
}

// One that never catches up stays a learner; the call times out.
TEST(Learner, PromotionTimesOutIfTheLearnerDoesNotCatchUp) {
  auto c = cluster_with_learners(1, 1);
  auto* l = c->nodes[0].get();
  auto* x = c->nodes[1].get();
  const std::uint64_t id = x->log->id();
  c->net.down[x->url] = true;
  ASSERT_TRUE(apply_writes(*c, *l, 3));
  auto p = c->call<void>([&](auto h) { l->log->start_promote_peer(id, 300ms, std::move(h)); });
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(), errc::timeout);
  EXPECT_TRUE(is_learner(l->log->config(), id));
  EXPECT_TRUE(c->apply(*l, "after"));
  // Back and caught up, it can be promoted.
  c->net.down[x->url] = false;
  auto again = promote(*c, *l, id);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_FALSE(is_learner(l->log->config(), id));
}

// JoinOptions::catch_up_first: the joiner is a learner until it has caught
// up, so with a voter down the others keep committing meanwhile (as a voter
// at once it would make 3 of 4 the majority, itself included); join()
// returns once it is a voter.
TEST(Learner, JoinCatchUpFirstCountsOnlyOnceCaughtUp) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  ASSERT_TRUE(apply_writes(*c, *l, 5));
  c->net.down[c->nodes[2]->url] = true;
  auto& x = c->add();
  bool x_acks = false;  // x's acks vanish: the leader never sees it catch up
  c->net.vanish_ack = [&](const std::string& from, const AckRequest&) { return from == x.url && !x_acks; };
  std::optional<result<void>> joined;
  x.log->start_join(l->url, {.catch_up_first = true}, [&](result<void> r) { joined = r; });
  ASSERT_TRUE(c->net.run_until([&] { return x.log->id() != 0; }, 5s));
  c->net.run_for(kDefaultElectionTimeout);
  EXPECT_FALSE(joined.has_value());
  EXPECT_TRUE(is_learner(l->log->config(), x.log->id()));
  auto w = c->apply(*l, "while x catches up");
  ASSERT_TRUE(w) << "a write waited for the joiner: " << w.error().message();
  x_acks = true;
  ASSERT_TRUE(c->net.run_until([&] { return joined.has_value(); }, 30s));
  ASSERT_TRUE(*joined) << joined->error().message();
  EXPECT_FALSE(is_learner(l->log->config(), x.log->id()));
  EXPECT_EQ(l->log->config().voter_count(), 4u);
  EXPECT_GE(x.log->last_index(), *w);
  EXPECT_FALSE(has_promote_intent(x));
}

// The catch_up_first intent is on disk: a joiner that restarts after being
// added as a learner and before its promotion asks for it again, and
// becomes a voter with nobody calling promote_peer.
TEST(Learner, JoinCatchUpFirstIsResumedAfterARestart) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  ASSERT_TRUE(apply_writes(*c, *l, 5));
  auto& x = c->add();
  bool x_acks = false;  // the leader cannot see x catch up: no promotion yet
  c->net.vanish_ack = [&](const std::string& from, const AckRequest&) { return from == x.url && !x_acks; };
  // Shared: the handler may run after the crash below (with errc::closed).
  auto joined = std::make_shared<std::optional<result<void>>>();
  x.log->start_join(l->url, {.catch_up_first = true}, [joined](result<void> r) { *joined = r; });
  ASSERT_TRUE(c->net.run_until([&] { return x.log->id() != 0; }, 5s));
  const std::uint64_t id = x.log->id();
  EXPECT_TRUE(has_promote_intent(x));
  ASSERT_TRUE(c->net.run_until([&] { return is_learner(l->log->config(), id) && l->log->commit_index() == l->log->last_index(); }, 5s));
  c->net.run_for(kDefaultElectionTimeout);
  ASSERT_TRUE(is_learner(l->log->config(), id));
  c->crash(x);
  // Until the promotion the leader began for x's last request times out:
  // from then on only x's own intent can bring one.
  c->net.run_for(11 * kDefaultElectionTimeout);
  ASSERT_TRUE(is_learner(l->log->config(), id));
  x_acks = true;
  c->start(x);
  ASSERT_TRUE(c->net.run_until([&] { return !is_learner(l->log->config(), id) && l->log->commit_index() == l->log->last_index(); }, 30s))
      << "the restarted joiner stayed a learner";
  EXPECT_EQ(l->log->config().voter_count(), 4u);
  EXPECT_EQ(x.log->id(), id);
  // Answered: the intent is gone, and a later restart asks nothing.
  EXPECT_TRUE(c->net.run_until([&] { return !has_promote_intent(x); }, 5s));
}

// The intent ends once the node's own log shows its promotion committed,
// answer or no answer: restarted after being demoted again meanwhile, it
// does not ask to be promoted (which would undo the operator's demotion).
TEST(Learner, JoinCatchUpFirstIntentEndsWithACommittedPromotion) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  auto& x = c->add();
  auto joined = std::make_shared<std::optional<result<void>>>();
  x.log->start_join(l->url, {.catch_up_first = true}, [joined](result<void> r) { *joined = r; });
  ASSERT_TRUE(c->net.run_until([&] { return x.log->id() != 0; }, 5s));
  // From now on the answers to x's promotion requests are lost.
  c->net.hold_join_replies = true;
  ASSERT_TRUE(c->net.run_until([&] {
    const auto cfg = x.log->config();
    return cfg.is_voter(x.log->id()) && x.log->commit_index() >= cfg.index;
  }, 10s));
  const std::uint64_t id = x.log->id();
  ASSERT_FALSE(joined->has_value());
  EXPECT_TRUE(c->net.run_until([&] { return !has_promote_intent(x); }, 1s)) << "the intent outlived the committed promotion";
  c->crash(x);
  c->net.held_join_replies.clear();  // lost for good
  c->net.hold_join_replies = false;
  ASSERT_TRUE(demote(*c, *l, id));
  c->start(x);
  c->net.run_for(20 * kDefaultElectionTimeout);
  EXPECT_FALSE(l->log->config().is_voter(id)) << "the restarted node undid its demotion";
}

// join() with catch_up_first gives up after its retries (the leader cannot
// see the joiner catch up) and says so; the node goes on asking, and is
// promoted once it catches up.
TEST(Learner, JoinCatchUpFirstKeepsAskingAfterJoinGivesUp) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  auto& x = c->add();
  bool x_acks = false;
  c->net.vanish_ack = [&](const std::string& from, const AckRequest&) { return from == x.url && !x_acks; };
  auto joined = std::make_shared<std::optional<result<void>>>();
  x.log->start_join(l->url, {.catch_up_first = true}, [joined](result<void> r) { *joined = r; });
  ASSERT_TRUE(c->net.run_until([&] { return joined->has_value(); }, 2000 * kDefaultElectionTimeout));
  ASSERT_FALSE(**joined);
  EXPECT_EQ(joined->value().error(), errc::timeout);
  const std::uint64_t id = x.log->id();
  ASSERT_NE(id, 0u);
  // Past the leader's last promotion attempt for the request join() made.
  c->net.run_for(11 * kDefaultElectionTimeout);
  ASSERT_TRUE(is_learner(l->log->config(), id));
  x_acks = true;
  ASSERT_TRUE(c->net.run_until([&] { return !is_learner(l->log->config(), id) && l->log->commit_index() == l->log->last_index(); }, 30s))
      << "the joiner stopped asking once join() returned";
  EXPECT_EQ(l->log->config().voter_count(), 4u);
}

TEST(Learner, JoinRefusesLearnerWithCatchUpFirst) {
  auto c = cluster_of(1);
  auto& x = c->add();
  auto r = c->join(x, c->nodes[0]->url, {.learner = true, .catch_up_first = true});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_argument);
  EXPECT_EQ(x.log->id(), 0u);
}

// The leader's Status::peers tells how far each member (a learner
// included) has caught up, refreshed every heartbeat tick; elsewhere empty.
TEST(Learner, LeaderStatusShowsEachPeersProgress) {
  auto [c, l, x, last] = with_one_learner(4);
  ASSERT_NE(last, 0u);
  c->net.run_for(2 * kDefaultHeartbeatInterval);
  auto st = l->log->status();
  ASSERT_EQ(st.peers.size(), 3u);
  for (const auto& p : st.peers) {
    EXPECT_NE(p.id, l->log->id());
    EXPECT_GE(p.match, last) << p.id;
    EXPECT_LT(p.last_contact_ms, 500u) << p.id;
  }
  EXPECT_TRUE(c->nodes[1]->log->status().peers.empty());
  c->net.down[x->url] = true;
  const std::uint64_t later = apply_writes(*c, *l, 3);
  c->net.run_for(2 * kDefaultElectionTimeout);
  st = l->log->status();
  for (const auto& p : st.peers) {
    if (p.id != x->log->id()) {
      EXPECT_GE(p.match, later) << p.id;
      continue;
    }
    EXPECT_LT(p.match, later);
    EXPECT_GE(p.last_contact_ms, 500u);  // as of the last tick: away longer than that
  }
}

TEST(Learner, PromoteRefusesUnknownIdsAndIsDoneForAVoter) {
  auto c = cluster_with_learners(3, 1);
  auto* l = c->nodes[0].get();
  auto unknown = promote(*c, *l, 99);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), errc::node_not_found);
  auto zero = promote(*c, *l, 0);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error(), errc::invalid_node_id);
  const std::uint64_t last = l->log->last_index();
  EXPECT_TRUE(promote(*c, *l, c->nodes[1]->log->id()));  // a voter already
  EXPECT_EQ(l->log->last_index(), last) << "promoting a voter appended an entry";
  auto follower = promote(*c, *c->nodes[1], c->nodes[3]->log->id());
  ASSERT_FALSE(follower);
  EXPECT_EQ(follower.error(), errc::not_leader);
}

// A learner would never campaign: it is refused as a transfer target, and
// id 0 picks voters only.
TEST(Learner, IsNeverATransferTarget) {
  auto c = cluster_with_learners(1, 1);
  auto* l = c->nodes[0].get();
  auto to_learner = c->call<void>([&](auto h) { l->log->start_transfer_leadership(c->nodes[1]->log->id(), {}, std::move(h)); });
  ASSERT_FALSE(to_learner);
  EXPECT_EQ(to_learner.error(), errc::not_voter);
  auto any = c->call<void>([&](auto h) { l->log->start_transfer_leadership(0, {}, std::move(h)); });
  ASSERT_FALSE(any);
  EXPECT_EQ(any.error(), errc::node_not_found);
  EXPECT_EQ(l->log->state(), State::leader);
}

// The last voter stays: a cluster of learners only could never lead.
TEST(Learner, TheLastVoterCannotBeRemoved) {
  auto c = cluster_with_learners(1, 1);
  auto* l = c->nodes[0].get();
  auto r = c->call<void>([&](auto h) { l->log->start_remove_peer(l->log->id(), std::move(h)); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_argument);
  auto learner = c->call<void>([&](auto h) { l->log->start_remove_peer(c->nodes[1]->log->id(), std::move(h)); });
  ASSERT_TRUE(learner) << learner.error().message();
  EXPECT_EQ(l->log->config().nodes.size(), 1u);
}

// The role lives in the log: after crashes, every node reads the learner
// (and a promotion) back from its own log.
TEST(Learner, RolesSurviveRestarts) {
  auto c = cluster_with_learners(3, 2);
  auto* l = c->nodes[0].get();
  const std::uint64_t promoted = c->nodes[3]->log->id(), learner = c->nodes[4]->log->id();
  ASSERT_TRUE(promote(*c, *l, promoted));
  ASSERT_TRUE(c->net.run_until([&] {
    for (auto& n : c->nodes)
      if (n->log->commit_index() < l->log->last_index()) return false;
    return true;
  }, 5s));
  for (auto& n : c->nodes) {
    c->crash(*n);
    c->start(*n);
  }
  for (auto& n : c->nodes) {
    EXPECT_FALSE(is_learner(n->log->config(), promoted)) << n->url;
    EXPECT_TRUE(is_learner(n->log->config(), learner)) << n->url;
    EXPECT_EQ(n->log->config().voter_count(), 4u) << n->url;
  }
  ASSERT_TRUE(c->net.run_until([&] { return c->leader() != nullptr; }, 10s));
  EXPECT_NE(c->leader(), c->nodes[4].get());
}

}  // namespace
}  // namespace raft::test

namespace raft::test {
namespace {

using namespace std::chrono_literals;

// Until every node holds the leader's whole log, committed.
bool caught_up(LocalCluster& c, LocalNode& l) {
  return c.net.run_until([&] {
    for (auto& n : c.nodes)
      if (n->log->commit_index() < l.log->last_index()) return false;
    return true;
  }, 5s);
}

// demote_peer: a demoted voter counts toward no majority. With n2 down, n1
// and n3 made a majority of three; once n3 is a learner, n1 alone is not a
// majority of the voters {n1, n2}.
TEST(Demotion, DemotedVoterNoLongerCountsTowardTheMajority) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  const std::uint64_t n3 = c->nodes[2]->log->id();
  ASSERT_TRUE(demote(*c, *l, n3));
  ASSERT_TRUE(caught_up(*c, *l));
  for (auto& n : c->nodes) {
    EXPECT_FALSE(n->log->config().is_voter(n3)) << n->url;
    EXPECT_EQ(n->log->config().voter_count(), 2u) << n->url;
  }
  c->net.down[c->nodes[1]->url] = true;
  EXPECT_TRUE(stays_pending(*c, *l, kDefaultElectionTimeout / 2)) << "committed with a learner's ack";
}

// ... and neither campaigns nor votes: with the leader gone, n2 and the
// demoted n3 are no majority of the voters {n1, n2}, and nobody leads.
TEST(Demotion, DemotedVoterNeitherCampaignsNorVotes) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  auto* x = c->nodes[2].get();
  ASSERT_TRUE(demote(*c, *l, x->log->id()));
  ASSERT_TRUE(caught_up(*c, *l));
  c->crash(*l);
  for (int i = 0; i < 100; ++i) {
    c->net.run_for(kDefaultElectionTimeout / 10);
    ASSERT_EQ(x->log->state(), State::follower) << "the demoted node campaigned";
    ASSERT_NE(c->nodes[1]->log->state(), State::leader) << "elected without a majority of the voters";
  }
}

// A leader demoting itself takes no new entries meanwhile, steps down once
// the change commits, and follows the voters' new leader as a learner.
TEST(Demotion, LeaderDemotingItselfStepsDownAndFollowsAsALearner) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  const std::uint64_t id = l->log->id();
  c->net.hold_acks = true;  // the demotion stays uncommitted until released
  std::optional<result<void>> done;
  l->log->start_demote_peer(id, [&](result<void> r) { done = r; });
  c->net.run_for(kDefaultElectionTimeout / 10);
  ASSERT_FALSE(done.has_value());
  EXPECT_EQ(l->log->state(), State::leader);
  auto w = c->apply(*l, "after the demotion");
  EXPECT_EQ(w.error(), errc::not_leader);
  c->net.release_acks();
  ASSERT_TRUE(c->net.run_until([&] { return done.has_value(); }, 5s));
  ASSERT_TRUE(*done) << done->error().message();
  EXPECT_NE(l->log->state(), State::leader);
  // It tells a caught-up voter to campaign at once: a leader well within an
  // election timeout (the voters' own timeouts would take one at least).
  EXPECT_TRUE(c->net.run_until([&] { return c->leader() != nullptr; }, kDefaultElectionTimeout / 2))
      << "no hand-over: the voters waited for their election timeouts";
  ASSERT_TRUE(c->net.run_until([&] {
    auto* nl = c->leader();
    return nl != nullptr && nl != l && l->log->leader().first == nl->log->id();
  }, 10s));
  auto* nl = c->leader();
  auto w2 = c->apply(*nl, "under the new leader");
  ASSERT_TRUE(w2);
  ASSERT_TRUE(c->net.run_until([&] { return l->log->applied_index() >= *w2; }, 5s));
  EXPECT_FALSE(l->log->config().is_voter(id));
}

TEST(Demotion, RefusesTheLastVoterAndIsDoneForALearner) {
  auto c = cluster_with_learners(1, 1);
  auto* l = c->nodes[0].get();
  EXPECT_EQ(demote(*c, *l, l->log->id()).error(), errc::invalid_argument);
  EXPECT_TRUE(demote(*c, *l, c->nodes[1]->log->id()));  // a learner already
  EXPECT_EQ(demote(*c, *l, 99).error(), errc::node_not_found);
  EXPECT_EQ(demote(*c, *l, 0).error(), errc::invalid_node_id);
  EXPECT_EQ(demote(*c, *c->nodes[1], l->log->id()).error(), errc::not_leader);
  EXPECT_EQ(l->log->config().voter_count(), 1u);
}

// Demotion is reversible: the same node is promoted again, with its data.
TEST(Demotion, DemotedNodeCanBePromotedAgain) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  const std::uint64_t id = c->nodes[1]->log->id();
  ASSERT_TRUE(demote(*c, *l, id));
  ASSERT_FALSE(l->log->config().is_voter(id));
  ASSERT_TRUE(apply_writes(*c, *l, 3));
  ASSERT_TRUE(promote(*c, *l, id));
  ASSERT_TRUE(caught_up(*c, *l));
  EXPECT_TRUE(l->log->config().is_voter(id));
  EXPECT_EQ(l->log->config().voter_count(), 3u);
  // It counts again: with n3 down, n1 and n2 commit.
  c->net.down[c->nodes[2]->url] = true;
  EXPECT_TRUE(c->apply(*l, "with n2 voting again"));
}

// Roles after a demotion survive restarts (the entry is in every log).
TEST(Demotion, SurvivesRestarts) {
  auto c = three_node_cluster();
  auto* l = c->nodes[0].get();
  const std::uint64_t id = c->nodes[2]->log->id();
  ASSERT_TRUE(demote(*c, *l, id));
  ASSERT_TRUE(caught_up(*c, *l));
  for (auto& n : c->nodes) {
    c->crash(*n);
    c->start(*n);
  }
  for (auto& n : c->nodes) EXPECT_FALSE(n->log->config().is_voter(id)) << n->url;
  ASSERT_TRUE(c->net.run_until([&] { return c->leader() != nullptr; }, 10s));
  EXPECT_NE(c->leader(), c->nodes[2].get());
}

}  // namespace
}  // namespace raft::test
