// Joint consensus (Raft paper §6, Log::set_voters): one rule per test. The
// voter set changes in one step to any set of members. The leader appends
// C_old,new; while it is the latest configuration every decision (commit,
// election) needs a majority of the old voters and one of the new; once it
// commits the leader appends C_new, and a leader left out steps down once
// that commits.
#include "unit/cluster_helpers.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>

namespace raft::test {
namespace {

using namespace std::chrono_literals;

// n1..n3 voters (n1 leads), n4..n6 learners that have caught up.
std::unique_ptr<LocalCluster> three_and_three(std::function<void(LogOptions&)> tweak = {}) {
  auto c = cluster_of(3, std::move(tweak));
  for (int i = 0; i < 3; ++i) {
    auto& x = c->add();
    auto j = c->join(x, c->nodes[0]->url, {.learner = true});
    EXPECT_TRUE(j) << j.error().message();
  }
  EXPECT_TRUE(c->net.run_until([&] {
    for (auto& n : c->nodes)
      if (n->log->config().nodes.size() != 6 || n->log->commit_index() < c->nodes[0]->log->last_index()) return false;
    return true;
  }));
  return c;
}

// Every node's commit index at n1's last index.
bool caught_up_all(LocalCluster& c) {
  return c.net.run_until([&] {
    for (auto& n : c.nodes)
      if (n->log->commit_index() < c.nodes[0]->log->last_index()) return false;
    return true;
  }, 5s);
}

std::vector<std::uint64_t> ids(LocalCluster& c, std::initializer_list<std::size_t> slots) {
  std::vector<std::uint64_t> v;
  for (auto s : slots) v.push_back(c.nodes[s]->log->id());
  return v;
}

std::vector<std::uint64_t> voters(const Config& config) {
  std::vector<std::uint64_t> v;
  for (const auto& n : config.nodes)
    if (!n.learner) v.push_back(n.id);
  return v;
}

result<std::uint64_t> set_voters(LocalCluster& c, LocalNode& l, std::vector<std::uint64_t> v) {
  return c.call<std::uint64_t>([&](auto h) { l.log->start_set_voters(std::move(v), {}, std::move(h)); });
}

// Starts set_voters on n1 with the slots in `cut` unreachable, and runs
// until C_old,new is n1's configuration; the call's outcome lands in `out`.
void start_stuck_change(LocalCluster& c, std::initializer_list<std::size_t> cut,
                        std::shared_ptr<std::optional<result<std::uint64_t>>> out) {
  for (auto s : cut) c.net.down[c.nodes[s]->url] = true;
  auto* l = c.nodes[0].get();
  l->log->start_set_voters(ids(c, {3, 4, 5}), {}, [out](result<std::uint64_t> r) { *out = r; });
  ASSERT_TRUE(c.net.run_until([&] { return l->log->config().joint(); }, 5s));
}

// Three voters replaced by three others in one call: afterwards the old
// ones count for nothing (all three crash, and writes still commit), and
// the old leader, left out, stepped down.
TEST(Joint, SetVotersReplacesAMajorityInOneChange) {
  auto c = three_and_three();
  auto* l = c->nodes[0].get();
  ASSERT_EQ(l->log->state(), State::leader);
  const auto want = ids(*c, {3, 4, 5});
  auto r = set_voters(*c, *l, want);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(c->net.run_until([&] {
    for (auto& n : c->nodes)
      if (n->log->commit_index() < *r) return false;
    return true;
  }, 5s));
  for (auto& n : c->nodes) {
    const Config config = n->log->config();
    EXPECT_FALSE(config.joint()) << n->url;
    EXPECT_EQ(voters(config), want) << n->url;
    EXPECT_EQ(config.index, *r) << n->url;
  }
  auto* nl = leader_among(*c, {c->nodes[3].get(), c->nodes[4].get(), c->nodes[5].get()});
  ASSERT_TRUE(nl) << "no leader among the new voters";
  EXPECT_NE(l->log->state(), State::leader);
  for (std::size_t i = 0; i < 3; ++i) c->crash(*c->nodes[i]);
  auto w = c->apply(*nl, "under the new voters");
  ASSERT_TRUE(w) << w.error().message();
}

// One half of C_old,new cut short of its majority (the slots in `cut`):
// neither the change nor a write commits, though the other half (`holder`
// among them) holds them all; with `back` reachable again both commit.
void commits_only_with_both_halves(std::initializer_list<std::size_t> cut, std::size_t holder, std::size_t back,
                                   const char* missing) {
  auto c = three_and_three();
  auto* l = c->nodes[0].get();
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  start_stuck_change(*c, cut, out);
  const std::uint64_t commit = l->log->commit_index();
  EXPECT_TRUE(stays_pending(*c, *l, kDefaultElectionTimeout / 2)) << "committed without " << missing;
  EXPECT_FALSE(out->has_value());
  EXPECT_EQ(l->log->commit_index(), commit);
  EXPECT_EQ(c->nodes[holder]->log->last_index(), l->log->last_index());
  c->net.down[c->nodes[back]->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return out->has_value(); }, 5s));
  ASSERT_TRUE(**out) << (*out)->error().message();
  EXPECT_FALSE(c->nodes[3]->log->config().joint());
}

// While C_old,new is the latest configuration, the old voters' majority
// alone commits nothing (two of the new voters cut off) ...
TEST(Joint, AJointConfigurationCommitsOnlyWithTheNewVotersMajorityToo) {
  commits_only_with_both_halves({4, 5}, 1, 4, "the new voters");
}

// ... and the new voters' majority alone commits nothing either (two of
// the old voters cut off).
TEST(Joint, AJointConfigurationCommitsOnlyWithTheOldVotersMajorityToo) {
  commits_only_with_both_halves({1, 2}, 5, 1, "the old voters");
}

// An election under C_old,new needs a majority of each half. With the
// leader gone and two of the new voters cut off, n2 and n3 (the old
// majority) and n4 elect nobody; nor do n3 and the three new voters once
// n2 is cut off instead. With n2 back a leader is elected, and it finishes
// the change (appends C_new, which commits).
TEST(Joint, AnElectionInAJointConfigurationNeedsAMajorityOfEachHalf) {
  auto c = three_and_three();
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  start_stuck_change(*c, {4, 5}, out);
  ASSERT_TRUE(c->net.run_until([&] { return c->nodes[3]->log->config().joint(); }, 5s));
  c->crash(*c->nodes[0]);
  auto nobody_leads = [&](const char* what) {
    for (int i = 0; i < 100; ++i) {
      c->net.run_for(kDefaultElectionTimeout / 5);
      ASSERT_EQ(c->leader(), nullptr) << what;
    }
  };
  nobody_leads("elected without a majority of the new voters");
  c->net.down[c->nodes[1]->url] = true;
  c->net.down[c->nodes[4]->url] = false;
  c->net.down[c->nodes[5]->url] = false;
  nobody_leads("elected without a majority of the old voters");
  c->net.down[c->nodes[1]->url] = false;
  auto* nl = leader_among(*c, {c->nodes[1].get(), c->nodes[2].get(), c->nodes[3].get(), c->nodes[4].get(),
                               c->nodes[5].get()});
  ASSERT_TRUE(nl);
  const auto want = ids(*c, {3, 4, 5});
  ASSERT_TRUE(c->net.run_until([&] {
    const Config config = c->nodes[3]->log->config();
    return !config.joint() && c->nodes[3]->log->commit_index() >= config.index;
  }, 10s)) << "the new leader did not finish the change";
  EXPECT_EQ(voters(c->nodes[3]->log->config()), want);
  EXPECT_FALSE(**out);  // the old leader crashed: its caller learns it failed (closed)
}

// A refused call changes nothing; a call for the voters there are is done
// at once; while a change is under way, every other change waits.
TEST(Joint, SetVotersRefusesBadSetsAndOtherChangesWaitForIt) {
  auto c = three_and_three();
  auto* l = c->nodes[0].get();
  const Config before = l->log->config();
  EXPECT_EQ(set_voters(*c, *l, {}).error(), errc::invalid_argument);
  EXPECT_EQ(set_voters(*c, *l, {1, 0}).error(), errc::invalid_argument);
  EXPECT_EQ(set_voters(*c, *l, {1, 1}).error(), errc::invalid_argument);
  EXPECT_EQ(set_voters(*c, *l, {1, 99}).error(), errc::node_not_found);
  EXPECT_EQ(set_voters(*c, *c->nodes[1], ids(*c, {3, 4, 5})).error(), errc::not_leader);
  auto same = set_voters(*c, *l, ids(*c, {2, 0, 1}));
  ASSERT_TRUE(same) << same.error().message();
  EXPECT_EQ(*same, before.index);
  EXPECT_EQ(l->log->config(), before);
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  start_stuck_change(*c, {4, 5}, out);
  EXPECT_EQ(set_voters(*c, *l, ids(*c, {0, 1, 2})).error(), errc::change_in_progress);
  EXPECT_EQ(c->call<void>([&](auto h) { l->log->start_remove_peer(c->nodes[5]->log->id(), std::move(h)); }).error(),
            errc::change_in_progress);
  EXPECT_EQ(c->call<void>([&](auto h) { l->log->start_demote_peer(c->nodes[1]->log->id(), std::move(h)); }).error(),
            errc::change_in_progress);
}

// As promote_peer: C_old,new is appended only once each new voter holds
// the leader's log as it was when asked, so the new voters' majority does
// not hold up commits while they catch up. n4, cut off while writes went
// on, is waited for (writes commit meanwhile); back, it catches up and the
// change goes through.
TEST(Joint, SetVotersWaitsForTheNewVotersToCatchUp) {
  auto c = three_and_three();
  auto* l = c->nodes[0].get();
  auto& x = *c->nodes[3];
  c->net.down[x.url] = true;
  ASSERT_NE(apply_writes(*c, *l, 5), 0u);
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  l->log->start_set_voters(ids(*c, {0, 1, 3}), {}, [out](result<std::uint64_t> r) { *out = r; });
  c->net.run_for(kDefaultElectionTimeout);
  EXPECT_FALSE(out->has_value());
  EXPECT_FALSE(l->log->config().joint()) << "entered joint consensus with a new voter behind";
  ASSERT_NE(apply_writes(*c, *l, 2), 0u) << "writes stopped while waiting";
  c->net.down[x.url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return out->has_value(); }, 10s));
  ASSERT_TRUE(**out) << (*out)->error().message();
  EXPECT_EQ(voters(l->log->config()), ids(*c, {0, 1, 3}));
}

// ... and gives up after its timeout, changing nothing.
TEST(Joint, SetVotersTimesOutIfANewVoterDoesNotCatchUp) {
  auto c = three_and_three();
  auto* l = c->nodes[0].get();
  c->net.down[c->nodes[3]->url] = true;
  ASSERT_NE(apply_writes(*c, *l, 3), 0u);
  const Config before = l->log->config();
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  l->log->start_set_voters(ids(*c, {0, 1, 3}), 2 * kDefaultElectionTimeout, [out](result<std::uint64_t> r) { *out = r; });
  // Its own timeout, not the harness's: answered within 3 election timeouts.
  ASSERT_TRUE(c->net.run_until([&] { return out->has_value(); }, 3 * kDefaultElectionTimeout));
  ASSERT_FALSE(**out);
  EXPECT_EQ((*out)->error(), errc::timeout);
  EXPECT_EQ(l->log->config(), before);
  auto w = c->apply(*l, "after");  // and other changes may go on
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_TRUE(c->call<void>([&](auto h) { l->log->start_demote_peer(c->nodes[2]->log->id(), std::move(h)); }));
}

// The servers a change leaves out may campaign while it is not known to be
// committed (Log::Impl::may_campaign; simulator joint_consensus seed 197).
// n1 and n2 hand the vote to n3..n5: C_new reaches n1 and n2 only, then n1
// crashes. n3..n5, still in C_old,new, need a vote of each of n1 and n2 and
// cannot have n2's (its log is longer); n2, a learner in its C_new, must
// campaign, win the new voters' votes, and finish the change.
TEST(Joint, ServersLeftOutCampaignWhileTheChangeIsUncommitted) {
  // The new voters are cut off as the leader appends C_new (from its log
  // line, on its strand, before anything is sent).
  auto cut = std::make_shared<std::function<void()>>();
  auto c = cluster_of(2, [cut](LogOptions& o) {
    o.logger = [cut](std::string_view line) {
      if (*cut && line.find("leaving joint consensus") != std::string_view::npos) std::exchange(*cut, nullptr)();
    };
  });
  for (int i = 0; i < 3; ++i) {
    auto& x = c->add();
    auto j = c->join(x, c->nodes[0]->url, {.learner = true});
    ASSERT_TRUE(j) << j.error().message();
  }
  ASSERT_TRUE(caught_up_all(*c));
  auto* l = c->nodes[0].get();
  auto* n2 = c->nodes[1].get();
  *cut = [&c] {
    for (std::size_t i = 2; i < 5; ++i) c->net.down[c->nodes[i]->url] = true;
  };
  l->log->start_set_voters(ids(*c, {2, 3, 4}), {}, [](result<std::uint64_t>) {});
  ASSERT_TRUE(c->net.run_until([&] { return !*cut; }, 5s)) << "C_new never appended";
  const std::uint64_t c_new = l->log->config().index;
  ASSERT_FALSE(l->log->config().joint());
  ASSERT_TRUE(c->net.run_until([&] { return n2->log->last_index() >= c_new; }, 5s));
  for (std::size_t i = 2; i < 5; ++i) ASSERT_TRUE(c->nodes[i]->log->config().joint()) << "C_new reached " << i;
  c->crash(*l);
  for (std::size_t i = 2; i < 5; ++i) c->net.down[c->nodes[i]->url] = false;
  auto* nl = leader_among(*c, {n2, c->nodes[2].get(), c->nodes[3].get(), c->nodes[4].get()});
  ASSERT_TRUE(nl) << "nobody could be elected";
  ASSERT_TRUE(c->net.run_until([&] {
    const Config config = c->nodes[2]->log->config();
    return !config.joint() && c->nodes[2]->log->commit_index() >= config.index;
  }, 10s)) << "the change was not finished";
  EXPECT_EQ(voters(c->nodes[2]->log->config()), ids(*c, {2, 3, 4}));
  auto* final_leader = leader_among(*c, {c->nodes[2].get(), c->nodes[3].get(), c->nodes[4].get()});
  ASSERT_TRUE(final_leader);
  auto w = c->apply(*final_leader, "under the new voters");
  ASSERT_TRUE(w) << w.error().message();
}

// C_old,new is a configuration like any other: a node restarted while it
// is the latest one comes back with it, and the change then completes.
TEST(Joint, AJointConfigurationSurvivesARestart) {
  auto c = three_and_three();
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  start_stuck_change(*c, {4, 5}, out);
  auto& x = *c->nodes[3];
  ASSERT_TRUE(c->net.run_until([&] { return x.log->config().joint(); }, 5s));
  const Config joint = x.log->config();
  c->crash(x);
  c->start(x);
  EXPECT_EQ(x.log->config(), joint);
  c->net.down[c->nodes[4]->url] = false;
  c->net.down[c->nodes[5]->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return out->has_value(); }, 10s));
  ASSERT_TRUE(**out) << (*out)->error().message();
  ASSERT_TRUE(c->net.run_until([&] { return !x.log->config().joint(); }, 5s));
  EXPECT_EQ(voters(x.log->config()), ids(*c, {3, 4, 5}));
}

// Mixed protocol versions (a rolling upgrade, raft/transport.hpp): the
// leader writes no joint-consensus entry while a member answers in a
// version that cannot read it, and goes ahead once that member has been
// silent for an election timeout, or answers in this build's version.
TEST(Joint, SetVotersIsRefusedWhileAMemberAnswersInAnOlderProtocol) {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto c = three_and_three([lines](LogOptions& o) { o.logger = [lines](std::string_view l) { lines->emplace_back(l); }; });
  auto* l = c->nodes[0].get();
  const auto& old_node = *c->nodes[5];  // a learner: it would receive the entries all the same
  c->net.speaks[old_node.url] = 1;
  c->net.run_for(kDefaultElectionTimeout);  // heartbeat rounds: its replies say version 1
  const Config before = l->log->config();
  const auto last = l->log->last_index();
  auto r = set_voters(*c, *l, ids(*c, {3, 4, 5}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unsupported_protocol);
  EXPECT_EQ(l->log->config(), before);
  EXPECT_EQ(l->log->last_index(), last);  // nothing appended
  EXPECT_TRUE(std::any_of(lines->begin(), lines->end(), [&](const std::string& x) {
    return x.find(fmt::format("node {} answers in protocol version 1", old_node.log->id())) != std::string::npos;
  }));
  // Silent for an election timeout (dead, say): it holds nothing up any
  // more, so that a dead member can be replaced.
  c->net.down[old_node.url] = true;
  c->net.run_for(2 * kDefaultElectionTimeout);
  r = set_voters(*c, *l, ids(*c, {0, 3, 4}));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(voters(l->log->config()), ids(*c, {0, 3, 4}));
  // Back and upgraded: its replies are in this build's version.
  c->net.speaks.clear();
  c->net.down[old_node.url] = false;
  EXPECT_TRUE(caught_up_all(*c));  // by its stream: no heartbeat reply need have come yet
  r = set_voters(*c, *l, ids(*c, {3, 4, 5}));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(caught_up_all(*c));
  EXPECT_EQ(voters(c->nodes[5]->log->config()), ids(*c, {3, 4, 5}));
}

// A member the leader has not heard from does not hold the change up (that
// is how a dead member is replaced). If it comes back on a build without
// joint consensus, its stream carries neither the joint configuration nor
// a joint entry: it stops just before them, where an upgrade lets it go on.
TEST(Joint, AFollowerOnAnOlderProtocolIsNeverSentJointConsensus) {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto c = three_and_three([lines](LogOptions& o) { o.logger = [lines](std::string_view l) { lines->emplace_back(l); }; });
  auto* l = c->nodes[0].get();
  auto& old_node = *c->nodes[1];  // n2, an old voter
  c->net.down[old_node.url] = true;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->apply(*l, "missed by n2"));
  c->net.run_for(kDefaultElectionTimeout);  // the learners' acks: the new voters have caught up
  const std::uint64_t missed_from = old_node.log->last_index() + 1;
  const std::uint64_t before_change = l->log->last_index();
  ASSERT_GT(before_change, missed_from);
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  start_stuck_change(*c, {1, 3, 4}, out);  // n2 down; and n4, n5: the new voters' half has no majority
  ASSERT_FALSE(out->has_value());
  const std::uint64_t joint_index = l->log->config().index;
  ASSERT_GT(joint_index, before_change);
  auto cannot = [&](std::string_view what) {
    return std::count_if(lines->begin(), lines->end(), [&](const std::string& x) {
      return x.find(fmt::format("node {} reads protocol version 1", old_node.log->id())) != std::string::npos &&
             x.find(what) != std::string::npos;
    });
  };
  // Back, on an old build, while C_old,new is the leader's configuration:
  // its stream would open with it (an old build ignores outgoingVoters).
  c->net.speaks[old_node.url] = 1;
  c->net.down[old_node.url] = false;
  c->net.run_for(kDefaultElectionTimeout);
  EXPECT_EQ(cannot(fmt::format("cannot follow past the joint configuration {}", joint_index)), 1);
  EXPECT_LT(old_node.log->last_index(), missed_from);  // not even the entries before it
  // The change completes without it; entries before the joint one reach it,
  // then its stream stops there (said once per leadership).
  c->net.down[c->nodes[3]->url] = false;
  ASSERT_TRUE(c->net.run_until([&] { return out->has_value(); }, 5s));
  ASSERT_TRUE(**out) << (*out)->error().message();
  LocalNode* nl = nullptr;
  ASSERT_TRUE(c->net.run_until([&] { return (nl = leader_among(*c, {c->nodes[3].get(), c->nodes[5].get()})); }, 5s));
  ASSERT_TRUE(c->apply(*nl, "after the change"));
  c->net.run_for(kDefaultElectionTimeout);
  EXPECT_EQ(old_node.log->last_index(), joint_index - 1);
  EXPECT_FALSE(old_node.log->config().joint());
  // Upgraded: it takes the rest, the joint entries included.
  c->net.speaks.clear();
  ASSERT_TRUE(c->net.run_until([&] { return old_node.log->last_index() == nl->log->last_index(); }, 10s));
  EXPECT_EQ(old_node.log->config(), nl->log->config());
}

// The same when the old member's stream is open and idle as the joint
// entry is appended (its heartbeat replies lost, so set_voters did not
// wait for it): the leader ends that stream while it sends the entry to
// all its streams at once. (That once erased a stream from the map being
// walked: a use after free under ASan, a crash in raft-kv.)
TEST(Joint, AnOpenStreamInAnOlderProtocolEndsAtTheJointEntry) {
  auto c = three_and_three();
  auto* l = c->nodes[0].get();
  auto& old_node = *c->nodes[1];
  // Restarted on an "old build": its new stream is in version 1.
  c->net.speaks[old_node.url] = 1;
  c->net.drop_heartbeats_to.insert(old_node.url);
  c->crash(old_node);
  c->start(old_node);
  c->net.run_for(2 * kDefaultElectionTimeout);
  ASSERT_EQ(l->log->state(), State::leader);
  ASSERT_EQ(old_node.log->last_index(), l->log->last_index());  // caught up, its stream idle
  auto r = set_voters(*c, *l, ids(*c, {0, 3, 4}));
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(c->apply(*l, "after"));
  c->net.run_for(kDefaultElectionTimeout);
  EXPECT_LT(old_node.log->last_index(), r.value());
  EXPECT_FALSE(old_node.log->config().joint());
  c->net.speaks.clear();
  c->net.drop_heartbeats_to.clear();
  ASSERT_TRUE(c->net.run_until([&] { return old_node.log->last_index() == l->log->last_index(); }, 10s));
  EXPECT_EQ(old_node.log->config(), l->log->config());
}

// A snapshot taken once C_old,new is applied and before C_new commits
// holds the joint configuration, which a follower installs as it restores
// the snapshot: it is not sent to a follower of an older protocol either.
TEST(Joint, ASnapshotInAJointConfigurationIsNotSentToAnOlderProtocol) {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto c = three_and_three([lines](LogOptions& o) {
    o.logger = [lines](std::string_view l) { lines->emplace_back(l); };
    o.snapshot_tail_entries = 0;  // compaction leaves the old node behind the snapshot
    o.segment_size_bytes_max = 1024;
  });
  auto* l = c->nodes[0].get();
  auto& old_node = *c->nodes[1];
  c->net.down[old_node.url] = true;
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(c->apply(*l, std::string(100, 'x')));
  c->net.run_for(kDefaultElectionTimeout);  // every ack in: the new voters have caught up
  // Acks held: C_old,new is appended but does not commit until released.
  c->net.hold_acks = true;
  auto out = std::make_shared<std::optional<result<std::uint64_t>>>();
  l->log->start_set_voters(ids(*c, {0, 3, 4}), {}, [out](result<std::uint64_t> r) { *out = r; });
  ASSERT_TRUE(c->net.run_until([&] { return l->log->config().joint(); }, 5s));
  const std::uint64_t joint = l->log->config().index;
  // Release acks until C_old,new is applied; C_new's acks stay held.
  for (int i = 0; i < 50 && l->log->applied_index() < joint; ++i) {
    c->net.release_acks();
    c->net.hold_acks = true;
    c->net.run_for(10ms);
  }
  ASSERT_GE(l->log->applied_index(), joint);
  ASSERT_FALSE(l->log->config().joint());                       // C_new appended
  ASSERT_LT(l->log->commit_index(), l->log->config().index);  // not committed
  auto snap = c->call<std::uint64_t>([&](auto h) { l->log->start_snapshot(std::move(h)); });
  ASSERT_TRUE(snap) << snap.error().message();
  ASSERT_LT(*snap, l->log->config().index);  // its configuration is C_old,new
  // The old node comes back on an older build: it needs that snapshot.
  c->net.speaks[old_node.url] = 1;
  c->net.down[old_node.url] = false;
  c->net.run_for(kDefaultElectionTimeout);
  EXPECT_TRUE(std::any_of(lines->begin(), lines->end(), [&](const std::string& x) {
    return x.find(fmt::format("node {} reads protocol version 1", old_node.log->id())) != std::string::npos &&
           x.find(fmt::format("cannot follow past snapshot {}, taken in a joint configuration", *snap)) !=
               std::string::npos;
  }));
  EXPECT_FALSE(old_node.log->config().joint());
  EXPECT_LT(old_node.log->last_index(), joint);
  // The change completes; upgraded, the old node takes the snapshot and the rest.
  c->net.release_acks();
  ASSERT_TRUE(c->net.run_until([&] { return out->has_value(); }, 5s));
  ASSERT_TRUE(**out) << (*out)->error().message();
  c->net.speaks.clear();
  LocalNode* nl = nullptr;
  ASSERT_TRUE(c->net.run_until([&] {
    nl = leader_among(*c, {c->nodes[0].get(), c->nodes[3].get(), c->nodes[4].get()});
    return nl && old_node.log->last_index() == nl->log->last_index();
  }, 10s));
  EXPECT_EQ(old_node.log->config(), nl->log->config());
}

}  // namespace
}  // namespace raft::test
