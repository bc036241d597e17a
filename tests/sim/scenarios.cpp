// Scenarios, named as the Raft literature (the paper, MIT 6.824's tests,
// etcd and LogCabin) names them. Each drives a SimCluster through the Log's
// public asynchronous API, injects its faults, and ends with settle() (the
// liveness check and the final checks). Safety invariants are checked by
// the cluster after every step regardless of the scenario.
#include "cluster.hpp"

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <set>

#include <fmt/ranges.h>

namespace raft::sim {
namespace {

using namespace std::chrono_literals;

int nodes_or(const SimCluster& c, int d) { return c.params.nodes > 0 ? c.params.nodes : d; }
int ops_or(const SimCluster& c, int d) { return c.params.ops > 0 ? c.params.ops : d; }

// k distinct random elements of v.
std::vector<int> pick(Rng& r, std::vector<int> v, std::size_t k) {
  for (std::size_t i = 0; i < v.size(); ++i) std::swap(v[i], v[i + r.below(v.size() - i)]);
  v.resize(std::min(k, v.size()));
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int> all_but(const SimCluster& c, const std::vector<int>& out) {
  std::vector<int> v;
  for (int i = 0; i < c.size(); ++i)
    if (std::find(out.begin(), out.end(), i) == out.end()) v.push_back(i);
  return v;
}

std::vector<int> followers(SimCluster& c, int leader) {
  std::vector<int> v;
  for (int i : c.up_nodes())
    if (i != leader) v.push_back(i);
  return v;
}

// A random node of `ups` crashes, unless it is the only one up.
void crash_one(SimCluster& c, const std::vector<int>& ups) {
  if (ups.size() > 1) c.crash(ups[c.rng.below(ups.size())]);
}

// A random crashed node restarts, if any is down.
void restart_one(SimCluster& c) {
  auto down = c.down_nodes();
  if (!down.empty()) c.restart(down[c.rng.below(down.size())]);
}

// Heals, then cuts 1 to n/2 random nodes off from the rest.
// One to three writes through the leader, if there is one.
void submit_some(SimCluster& c) {
  const int l = c.leader();
  if (l >= 0)
    for (int k = 0, m = static_cast<int>(c.rng.range(1, 4)); k < m; ++k) c.submit(l);
}

// Starts an asynchronous client call (start(handler)) and returns its
// outcome, set when it completes (true: it succeeded); traced as `what`.
template <class Start>
std::shared_ptr<std::optional<bool>> client_call(SimCluster& c, std::string what, Start start) {
  auto done = std::make_shared<std::optional<bool>>();
  start([&c, what = std::move(what), done](std::error_code ec) {
    c.trace("client {} {}", what, ec ? "failed: " + ec.message() : std::string("done"));
    *done = !ec;
  });
  return done;
}

void partition_minority(SimCluster& c, int n) {
  c.net.heal();
  c.net.partition(pick(c.rng, all_but(c, {}), c.rng.range(1, static_cast<std::uint64_t>(n / 2))));
}

// §5.2: a leader is elected, and with no faults it stays.
void initial_election(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  c.run_for(2 * c.et());
  const int l = c.leader();
  if (l < 0) c.liveness_failure("no leader after the initial election");
  const auto term = c.log(l).term();
  c.run_for(4 * c.et());
  if (c.leader() != l || c.log(l).term() != term)
    c.liveness_failure("the term changed on a healthy network");
  c.settle();
}

// §5.2: losing the leader elects a new one; without a majority none.
void reelection_after_leader_loss(SimCluster& c) {
  const int n = nodes_or(c, 3);
  c.bootstrap(n);
  const int l1 = c.wait_leader(10 * c.et());
  c.net.isolate(l1);
  const int l2 = c.wait_leader(10 * c.et(), all_but(c, {l1}));
  if (l2 < 0) c.liveness_failure("no new leader after the leader was isolated");
  c.net.heal();
  c.run_for(2 * c.et());
  const int l3 = c.wait_leader(10 * c.et());
  if (l3 < 0) c.liveness_failure("no leader after the old leader came back");
  // Leader and enough others gone: the rest must not elect anyone new
  // (the checker sees any two leaders per term).
  auto gone = pick(c.rng, followers(c, l3), static_cast<std::size_t>(n / 2));
  gone.push_back(l3);
  for (int g : gone) c.net.isolate(g);
  c.run_for(4 * c.et());
  c.net.heal();
  c.settle();
}

// 7 nodes, repeated random disconnects of 3: a leader among the 4 each time.
void many_elections(SimCluster& c) {
  const int n = nodes_or(c, 7);
  c.bootstrap(n);
  for (int iter = 0; iter < 8; ++iter) {
    auto out = pick(c.rng, c.up_nodes(), static_cast<std::size_t>((n - 1) / 2));
    for (int o : out) c.net.isolate(o);
    c.run_for(c.rng.duration(c.et() / 2, 2 * c.et()));
    if (c.wait_leader(10 * c.et(), all_but(c, out)) < 0)
      c.liveness_failure("no leader in the connected majority");
    c.net.heal();
  }
  c.settle();
}

// Applies commit on every node (§5.3).
void basic_agreement(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  const int k = ops_or(c, 10);
  for (int i = 0; i < k; ++i) c.apply(10 * c.et());
  c.settle();
}

// A majority keeps committing while a follower is away; it catches up.
void agreement_despite_follower_failure(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  const int k = ops_or(c, 5);
  for (int i = 0; i < k; ++i) c.apply(10 * c.et());
  const int l = c.leader();
  const int f = followers(c, l)[c.rng.below(followers(c, l).size())];
  const bool crash = c.rng.one_in(2);
  if (crash) c.crash(f);
  else c.net.isolate(f);
  for (int i = 0; i < k; ++i) c.apply(10 * c.et());
  if (crash) c.restart(f);
  else c.net.heal();
  for (int i = 0; i < k; ++i) c.apply(10 * c.et());
  c.settle();
}

// 3 of 5 down: nothing commits; back up: agreement resumes.
void no_agreement_without_majority(SimCluster& c) {
  const int n = nodes_or(c, 5);
  c.bootstrap(n);
  c.apply(10 * c.et());
  const int l = c.leader();
  const auto down = pick(c.rng, followers(c, l), static_cast<std::size_t>(n / 2 + 1));
  const bool crash = c.rng.one_in(2);
  for (int d : down) {
    if (crash) c.crash(d);
    else c.net.isolate(d);
  }
  const auto commit_before = c.log(l).commit_index();
  const auto k = c.submit(l);
  c.run_for(4 * c.et());
  c.expect(!c.op_ok(k), "an apply committed with 3 of 5 nodes down");
  if (c.up(l)) c.expect(c.log(l).commit_index() == commit_before, "commit index advanced without a majority");
  for (int d : down) {
    if (crash) c.restart(d);
  }
  c.net.heal();
  for (int i = 0; i < ops_or(c, 3); ++i) c.apply(10 * c.et());
  c.settle();
}

// Many clients at once: every apply gets its own index (checked by the
// checker), all commit.
void concurrent_applies(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  const int l = c.wait_leader(10 * c.et());
  std::vector<std::size_t> ks;
  for (int i = 0; i < ops_or(c, 40); ++i) ks.push_back(c.submit(l));
  c.run_until([&] { return c.pending_ops() == 0; }, 10 * c.et());
  if (c.leader() == l)
    for (auto k : ks)
      if (!c.op_ok(k)) c.liveness_failure("a concurrent apply failed under a stable leader");
  c.settle();
}

// 6.824 TestRejoin: a partitioned leader with uncommitted entries comes back.
void partitioned_leader_rejoins(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  c.apply(10 * c.et());
  const int l1 = c.leader();
  c.net.isolate(l1);
  for (int i = 0; i < 3; ++i) c.submit(l1);  // never commit
  const int l2 = c.wait_leader(10 * c.et(), all_but(c, {l1}));
  if (l2 < 0) c.liveness_failure("no leader in the majority");
  c.apply(10 * c.et());
  c.net.heal();
  c.net.isolate(l2);  // the old leader and the third node
  c.run_for(c.et());
  c.apply(10 * c.et());
  c.net.heal();
  c.apply(10 * c.et());
  c.settle();
}

// 6.824 TestBackup: a long divergent uncommitted suffix is backed over fast.
void fast_backup(SimCluster& c) {
  const int n = nodes_or(c, 5);
  const int k = ops_or(c, 30);
  c.bootstrap(n);
  c.apply(10 * c.et());
  const int l1 = c.leader();
  const int f1 = followers(c, l1)[0];
  c.net.partition({l1, f1});
  for (int i = 0; i < k; ++i) c.submit(l1);  // uncommitted on the minority
  const auto rest = all_but(c, {l1, f1});
  const int l2 = c.wait_leader(10 * c.et(), rest);
  if (l2 < 0) c.liveness_failure("no leader in the majority");
  for (int i = 0; i < k; ++i) c.submit(l2);
  c.run_for(2 * c.et());
  // Break the majority: l2 and one more keep a divergent uncommitted suffix.
  std::vector<int> other;
  for (int r : rest)
    if (r != l2) other.push_back(r);
  c.net.partition({l2, other[0]});
  for (int i = 0; i < k; ++i) c.submit(l2);
  c.run_for(c.et());
  // The old minority and the remaining node form a majority.
  std::vector<int> side = {l1, f1};
  for (std::size_t i = 1; i < other.size(); ++i) side.push_back(other[i]);
  c.net.partition(side);
  c.run_for(2 * c.et());
  c.apply(10 * c.et());
  c.net.heal();
  c.apply(10 * c.et());
  c.settle();
}

// Crash and restart of all nodes, of the leader, of subsets: durable state
// survives, unsynced state may not.
void persistence(SimCluster& c) {
  const int n = nodes_or(c, 3);
  c.bootstrap(n);
  const int k = ops_or(c, 4);
  for (int i = 0; i < k; ++i) c.apply(10 * c.et());
  for (int i : c.up_nodes()) c.crash(i);
  for (int i : c.down_nodes()) c.restart(i);
  for (int i = 0; i < k; ++i) c.apply(10 * c.et());
  const int l = c.leader();
  if (l >= 0) c.crash(l);
  c.run_for(c.rng.duration(0ms, 2 * c.et()));
  if (l >= 0) c.restart(l);
  for (int i = 0; i < k; ++i) c.apply(10 * c.et());
  for (int round = 0; round < 3; ++round) {
    const auto sub = pick(c.rng, c.up_nodes(), c.rng.range(1, static_cast<std::uint64_t>(n)));
    if (c.pending_ops() == 0 && c.leader() >= 0) c.submit(c.leader());
    c.run_for(c.rng.duration(0ms, 100ms));
    for (int i : sub) c.crash(i);
    c.run_for(c.rng.duration(0ms, 2 * c.et()));
    for (int i : sub) c.restart(i);
    c.apply(10 * c.et());
  }
  c.settle();
}

// Figure 8 (§5.4.2): leaders crash right after appending; a majority stays
// up. Only current-term entries may be committed by counting.
void figure8_common(SimCluster& c, bool unreliable) {
  const int n = nodes_or(c, 5);
  c.bootstrap(n);
  if (unreliable) c.faults_on();
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    int l = c.leader();
    if (l >= 0) c.submit(l);
    if (unreliable) c.submit(c.up_nodes()[c.rng.below(c.up_nodes().size())]);
    c.run_for(c.rng.one_in(10) ? c.rng.duration(0ms, c.et() / 2) : c.rng.duration(0ms, 13ms));
    l = c.leader();
    if (l >= 0 && !c.rng.one_in(3)) {
      if (unreliable) c.net.isolate(l);
      else c.crash(l);
    }
    // Keep a majority available.
    if (unreliable) {
      int connected = 0;
      for (int i = 0; i < n; ++i) connected += c.net.link(i, (i + 1) % n) || c.net.link((i + 1) % n, i);
      if (c.rng.one_in(3) || connected < n / 2 + 1) {
        c.net.heal();
      }
    } else if (static_cast<int>(c.up_nodes().size()) < n / 2 + 1) {
      auto down = c.down_nodes();
      c.restart(down[c.rng.below(down.size())]);
    }
  }
  c.settle();
  c.apply(10 * c.et());
  c.settle();
}
void figure8(SimCluster& c) { figure8_common(c, false); }
void figure8_unreliable(SimCluster& c) { figure8_common(c, true); }

// Random crashes, restarts and partitions (symmetric, one-way, bridge)
// while clients apply.
void churn(SimCluster& c) {
  const int n = nodes_or(c, 5);
  c.bootstrap(n);
  c.faults_on(c.rng.one_in(2));
  const int iters = ops_or(c, 40);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    switch (c.rng.below(11)) {
      case 0:
      case 1:
      case 2: {
        int l = c.leader();
        c.submit(l >= 0 ? l : ups[c.rng.below(ups.size())]);
        break;
      }
      case 3:
        crash_one(c, ups);
        break;
      case 10: {
        // A quick reboot, typically in the middle of an election: a voter
        // must remember its vote (§5.2, Figure 2 "persistent state").
        const int x = ups[c.rng.below(ups.size())];
        c.crash(x);
        c.run_for(c.rng.duration(0ms, 30ms));
        c.restart(x);
        break;
      }
      case 4:
        restart_one(c);
        break;
      case 5:
        c.net.isolate(static_cast<int>(c.rng.below(static_cast<std::uint64_t>(n))));
        break;
      case 6:
        partition_minority(c, n);
        break;
      case 7: {
        c.net.heal();
        auto all = pick(c.rng, all_but(c, {}), static_cast<std::size_t>(n));
        const int br = all.back();
        all.pop_back();
        std::vector<int> a(all.begin(), all.begin() + static_cast<long>(all.size() / 2));
        std::vector<int> b(all.begin() + static_cast<long>(all.size() / 2), all.end());
        c.net.bridge(a, b, br);
        break;
      }
      case 8: {
        const int x = static_cast<int>(c.rng.below(static_cast<std::uint64_t>(n)));
        const int y = static_cast<int>(c.rng.below(static_cast<std::uint64_t>(n)));
        c.net.set_link(x, y, false);  // one way
        break;
      }
      default:
        c.net.heal();
    }
    c.run_for(c.rng.duration(0ms, c.et()));
  }
  c.settle();
}

// Single-server changes (thesis §4.1) with drops and delays, crashes too.
void membership_add_remove_under_faults(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  // Half the seeds with long delays too (up to 4 election timeouts): join
  // requests delivered after their node was removed, late votes and acks.
  c.faults_on(c.rng.one_in(2));
  for (int it = 0; it < 6; ++it) {
    const auto mem = c.members();
    if (c.rng.one_in(2) && c.size() < 10) {
      c.add_member(true);
    } else if (mem.size() > 2) {
      const int victim = mem[c.rng.below(mem.size())];
      if (c.remove_member(victim)) c.retire(victim);
    }
    if (c.leader() >= 0) c.submit(c.leader());
    if (c.rng.one_in(3)) {
      auto ups = c.up_nodes();
      const int x = ups[c.rng.below(ups.size())];
      c.crash(x);
      c.run_for(c.rng.duration(0ms, c.et()));
      c.restart(x);
    }
    c.run_for(c.rng.duration(0ms, c.et()));
  }
  // A joiner whose join gave up under the faults (or that crashed before its
  // answer came) asks again once they stop, as its operator would: through
  // a member, so once there is a leader (another joiner knows none).
  c.faults_off();
  c.net.heal();
  c.wait_leader(10 * c.et());
  for (int x : c.up_nodes())
    if (c.log(x).id() == 0) c.join(x, true);
  c.settle();
}

// Removing the leader: it steps down once the change commits (thesis §4.2.2).
void remove_leader(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  for (int i = 0; i < 3; ++i) c.apply(10 * c.et());
  const int l = c.leader();
  if (!c.remove_member(l)) c.liveness_failure("removing the leader did not complete");
  const int l2 = c.wait_leader(10 * c.et(), all_but(c, {l}));
  if (l2 < 0) c.liveness_failure("no leader after removing the leader");
  c.retire(l);
  for (int i = 0; i < 3; ++i) c.apply(10 * c.et());
  c.settle();
  for (int m : c.members()) c.expect(m != l, "the removed leader is still in the configuration");
}

// Every original member is replaced, one add and one remove at a time.
void replace_every_member(SimCluster& c) {
  const int n = nodes_or(c, 3);
  c.bootstrap(n);
  // Half the seeds with long delays too, as membership_add_remove_under_faults.
  const bool mild = c.rng.one_in(2);
  c.faults_on(mild);
  for (int o = 0; o < n; ++o) {
    bool ok = false;
    const int s = c.add_member(true, &ok);
    if (!ok) {
      // The join's answer may have been lost while the change committed.
      ok = c.run_until([&] {
        const auto m = c.members();
        return std::find(m.begin(), m.end(), s) != m.end();
      }, 10 * c.et());
    }
    if (!ok) {
      // Liveness is owed once faults stop (DESIGN 7): only then is a join
      // that does not complete within 10 election timeouts a failure.
      c.faults_off();
      c.net.heal();
      // A joiner whose join gave up under the faults asks again, as its
      // operator would.
      if (c.log(s).id() == 0) {
        c.wait_leader(10 * c.et());
        c.join(s, true);
      }
      ok = c.run_until([&] {
        const auto m = c.members();
        return std::find(m.begin(), m.end(), s) != m.end();
      }, 10 * c.et());
      c.faults_on(mild);
    }
    if (!ok) c.liveness_failure("a join did not complete");
    c.apply(10 * c.et(), false);
    bool removed = c.remove_member(o);
    if (!removed) {
      c.faults_off();
      c.net.heal();
      removed = c.remove_member(o);
      c.faults_on(mild);
    }
    if (!removed) c.liveness_failure("removing an original member did not complete");
    c.retire(o);
    c.apply(10 * c.et(), false);
  }
  c.settle();
  for (int m : c.members()) c.expect(m >= n, "an original member is still in the configuration");
}

// §5.2, Figure 2 ("votedFor: persistent"): a voter that reboots in the
// middle of a split election must remember its vote. Seven nodes are split
// into two halves of three joined only through the leader (the bridge). The
// bridge then reboots again and again, faster than an election timeout (so
// it never campaigns itself): both halves lose their leader at once and
// campaign from the same term, and each needs the bridge's vote for a
// majority of four. A node that forgot its vote elects two leaders in a term.
void voter_reboots_during_split_election(SimCluster& c) {
  c.bootstrap(7);
  const int l = c.wait_leader(10 * c.et());
  if (l < 0) return c.liveness_failure("no initial leader");
  c.apply(10 * c.et());
  auto rest = followers(c, l);
  for (std::size_t i = 0; i < rest.size(); ++i) std::swap(rest[i], rest[i + c.rng.below(rest.size() - i)]);
  c.net.bridge({rest[0], rest[1], rest[2]}, {rest[3], rest[4], rest[5]}, l);
  c.run_for(c.et() / 2);
  for (int k = 0; k < 24; ++k) {
    c.crash(l);
    c.restart(l);
    c.run_for(c.et() / 8 + c.et() * static_cast<long>(c.rng.below(5)) / 8);
  }
  c.net.heal();
  c.settle();
}

// ---- Snapshots and compaction (issue 5) ----

// Snapshots and compaction under normal operation, then a restart of all.
void snapshot_compaction(SimCluster& c) {
  c.snapshots_on();
  c.bootstrap(nodes_or(c, 3));
  for (int i = 0; i < ops_or(c, 120); ++i) c.apply(10 * c.et());
  c.settle();
}

// A follower partitioned past the compaction point is caught up by a
// snapshot on the stream; `unreliable` adds drops, duplicates and delays.
void snapshot_install(SimCluster& c, bool unreliable) {
  c.snapshots_on();
  c.bootstrap(nodes_or(c, 3));
  if (unreliable) c.faults_on();
  c.apply(20 * c.et());
  const int l = c.leader();
  if (l < 0) return c.liveness_failure("no leader");
  auto f = followers(c, l);
  const int lag = f[c.rng.below(f.size())];
  c.net.isolate(lag);
  for (int i = 0; i < ops_or(c, 100); ++i) c.apply(20 * c.et(), false);
  c.net.heal();
  c.run_for(4 * c.et());
  c.faults_off();
  c.settle();
}
void snapshot_install_after_partition(SimCluster& c) { snapshot_install(c, false); }
void snapshot_install_unreliable(SimCluster& c) { snapshot_install(c, true); }

// The receiver crashes again and again while it installs a snapshot: every
// persistence point of the install path is hit across seeds.
void snapshot_receiver_crashes(SimCluster& c) {
  c.snapshots_on();
  c.bootstrap(nodes_or(c, 3));
  c.apply(10 * c.et());
  const int l = c.leader();
  if (l < 0) return c.liveness_failure("no leader");
  auto f = followers(c, l);
  const int lag = f[c.rng.below(f.size())];
  c.crash(lag);
  for (int i = 0; i < ops_or(c, 100); ++i) c.apply(10 * c.et(), false);
  for (int k = 0; k < 8; ++k) {
    c.restart(lag);
    c.run_for(std::chrono::microseconds(c.rng.range(100, 40000)));
    c.crash(lag);
  }
  c.restart(lag);
  c.settle();
}

// Every node crashes after snapshots were taken and restarts from them.
void snapshot_crash_all(SimCluster& c) {
  c.snapshots_on();
  c.bootstrap(nodes_or(c, 3));
  for (int i = 0; i < ops_or(c, 80); ++i) c.apply(10 * c.et());
  for (int i : c.up_nodes()) c.crash(i);
  for (int i = 0; i < c.size(); ++i)
    if (!c.retired(i)) c.restart(i);
  c.apply(20 * c.et());
  c.settle();
}

// A node added after many compactions starts from a snapshot.
void snapshot_new_node(SimCluster& c) {
  c.snapshots_on();
  c.bootstrap(nodes_or(c, 3));
  for (int i = 0; i < ops_or(c, 150); ++i) c.apply(10 * c.et());
  bool ok = false;
  c.add_member(true, &ok);
  if (!ok) return c.liveness_failure("the new node did not join");
  c.apply(10 * c.et());
  c.settle();
}

// A node cut off right after its join (before it may have learned that the
// join committed) is removed while cut off, and keeps running afterwards
// (the other membership scenarios retire removed nodes). It may take itself
// for a lost joiner and ask to join again; it must not come back as a
// member (docs/design-notes.md, "A removed joiner does not come back").
void removed_while_cut_off(SimCluster& c) {
  c.bootstrap(nodes_or(c, 3));
  c.faults_on(true);
  bool joined = false;
  const int x = c.add_member(true, &joined);
  c.net.isolate(x);
  auto member = [&] {
    const auto m = c.members();
    return std::find(m.begin(), m.end(), x) != m.end();
  };
  // The join's answer may have been lost while the change committed; a
  // join that did not happen ends the scenario (nothing to remove).
  if (!c.run_until(member, 10 * c.et())) {
    c.faults_off();
    if (!c.run_until(member, 10 * c.et())) return c.settle();
    c.faults_on(true);
  }
  c.run_for(c.rng.duration(0ms, c.et()));
  bool removed = c.remove_member(x);
  if (!removed) {
    c.faults_off();
    removed = c.remove_member(x);
  }
  if (!removed) c.liveness_failure("removing the cut-off node did not complete");
  // x comes back and lives on for many of its election timeouts.
  c.net.heal();
  c.faults_on(true);
  c.run_for(c.rng.duration(5 * c.et(), 20 * c.et()));
  c.faults_off();
  c.run_for(10 * c.et());
  c.settle();
  c.expect(!member(), "a node removed while cut off was added back as a member");
}

// Nodes, the leader among them, are closed cleanly and opened again on the
// same Log object (SimCluster::reopen: nothing lost, the FSM kept) again and
// again, under client load, with partitions, unreliable links and the odd
// crash. The FSM runs on a lagging apply executor (SimCluster::lagging_apply).
// Closes land right after submits (a flush posted, a sync queued on the
// disk, a batch on the apply executor, a snapshot being written) or a random
// while later. The reopened Log must resume where its FSM is: no
// entry applied twice or skipped (the checker's apply order), nothing stuck.
// Snapshots are asked for too (Log::snapshot), amid all that: each call is
// answered, and a snapshot it reports covers what the FSM had applied when
// it was asked.
void reopen_in_place(SimCluster& c) {
  c.lagging_apply();
  if (c.rng.one_in(2)) c.snapshots_on();
  const int n = nodes_or(c, c.rng.one_in(2) ? 3 : 5);
  c.bootstrap(n);
  if (c.rng.one_in(2)) c.faults_on(c.rng.one_in(2));
  struct Asked {
    int node;
    std::uint64_t applied;  // the FSM's, when asked
    std::shared_ptr<std::optional<std::pair<std::error_code, std::uint64_t>>> got;
  };
  std::vector<Asked> asked;
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    const int l = c.leader();
    // Client load: a few applies, to the leader mostly.
    const auto k = c.rng.below(6);
    for (std::uint64_t j = 0; j < k; ++j)
      c.submit(l >= 0 && !c.rng.one_in(4) ? l : ups[c.rng.below(ups.size())]);
    // Close at once (work queued in every executor) or a little later.
    if (!c.rng.one_in(3)) c.run_for(c.rng.one_in(2) ? c.rng.duration(0ms, 2ms) : c.rng.duration(0ms, c.et() / 2));
    switch (c.rng.below(14)) {
      case 0:
      case 1:
      case 2:
        // The leader (most work in flight).
        if (l >= 0 && c.up(l)) c.reopen(l, c.rng.one_in(2) ? 0ms : c.rng.duration(0ms, 2 * c.et()));
        break;
      case 3:
      case 4:
      case 5: {
        const int x = ups[c.rng.below(ups.size())];
        c.reopen(x, c.rng.one_in(2) ? 0ms : c.rng.duration(0ms, 2 * c.et()));
        break;
      }
      case 6: {
        // Twice in a row, the second before the first opening did anything.
        const int x = ups[c.rng.below(ups.size())];
        c.reopen(x);
        c.reopen(x);
        break;
      }
      case 7:
        partition_minority(c, n);
        break;
      case 8:
        if (c.rng.one_in(2)) {
          // A crash now and then: the next reopen of that node starts from
          // a restarted Log.
          const int x = ups[c.rng.below(ups.size())];
          c.crash(x);
          c.run_for(c.rng.duration(0ms, c.et()));
          c.restart(x);
        } else {
          c.net.isolate(static_cast<int>(c.rng.below(static_cast<std::uint64_t>(n))));
        }
        break;
      case 10:
      case 11: {
        // The moment a node has committed entries its FSM has not applied
        // yet (a batch queued on the apply executor), if that comes soon.
        const int x = l >= 0 && c.rng.one_in(2) ? l : ups[c.rng.below(ups.size())];
        if (l >= 0) c.submit(l);
        c.run_until([&] {
          const auto st = c.log(x).status();
          return st.commit_index > st.applied_index;
        }, c.et());
        c.reopen(x, c.rng.one_in(2) ? 0ms : c.rng.duration(0ms, c.et()));
        break;
      }
      case 12: {
        // A node closed and reopened while it joins, or just after (its
        // membership not yet confirmed: join.json present). One whose join
        // was cut short by the close (no id) joins again, as its operator
        // would.
        if (c.size() >= 9) break;
        const int x = c.add_member(false);
        c.run_for(c.rng.duration(0ms, c.et() / 2));
        c.reopen(x, c.rng.one_in(2) ? 0ms : c.rng.duration(0ms, c.et()));
        if (c.log(x).id() == 0) c.join(x, true);
        break;
      }
      case 9: {
        // A snapshot asked for, on any node, whatever the thresholds.
        const int x = ups[c.rng.below(ups.size())];
        Asked a{x, c.log(x).applied_index(), std::make_shared<std::optional<std::pair<std::error_code, std::uint64_t>>>()};
        c.log(x).async_snapshot([&c, x, got = a.got](std::error_code ec, std::uint64_t index) {
          c.trace("client snapshot of n{} {}", x, ec ? "failed: " + ec.message() : fmt::format("at {}", index));
          got->emplace(ec, index);
        });
        asked.push_back(std::move(a));
        // Half the time closed at once, the call still waiting (for the
        // FSM's batch in flight, or the snapshot being written).
        if (c.rng.one_in(2)) c.reopen(x, c.rng.one_in(2) ? 0ms : c.rng.duration(0ms, c.et()));
        break;
      }
      case 13: {
        // A member other than the leader is removed (the cluster does not
        // keep growing), sometimes with a close in the middle of the change.
        // With long delays too (up to 4 election timeouts): a join request
        // of the victim delivered after its removal must not add its URL
        // back (seed 587 with --apply-inline, before join tokens).
        const auto mem = c.members();
        if (mem.size() <= 3 || l < 0) break;
        std::vector<int> cand;
        for (int m : mem)
          if (m != l && c.up(m)) cand.push_back(m);
        if (cand.empty()) break;
        const int victim = cand[c.rng.below(cand.size())];
        if (c.remove_member(victim)) c.retire(victim);
        break;
      }
      default:
        c.net.heal();
    }
    c.run_for(c.rng.duration(0ms, c.et()));
  }
  // A joiner whose join gave up under the faults asks again once they stop,
  // through a member (once there is a leader), as in
  // membership_add_remove_under_faults.
  c.faults_off();
  c.net.heal();
  c.wait_leader(10 * c.et());
  for (int x : c.up_nodes())
    if (c.log(x).id() == 0) c.join(x, true);
  c.settle();
  // Still working after all that: an apply through the leader commits.
  c.apply(10 * c.et());
  c.settle();
  for (const auto& a : asked) {
    if (!a.got->has_value()) {
      c.liveness_failure(fmt::format("a snapshot asked of n{} was never answered", a.node));
      continue;
    }
    const auto& [ec, index] = **a.got;
    c.expect(ec || index >= a.applied,
             fmt::format("n{} reported snapshot {} when its FSM had applied {} before the call", a.node, index, a.applied));
  }
}

// Thesis §3.10: leadership handed over again and again (to a chosen member,
// or id 0: the one furthest along) while writes are submitted, partitions
// come and go and nodes crash; the checker watches every step (one leader
// per term, no committed entry lost). Once the faults stop, a transfer to a
// chosen member must make it leader.
void leadership_transfer(SimCluster& c) {
  const int n = nodes_or(c, 5);
  c.bootstrap(n);
  c.faults_on(c.rng.one_in(2));
  auto transfer = [&c](int l, int target) {
    const std::uint64_t id = target < 0 ? 0 : c.log(target).id();
    c.trace("client transfer n{} -> {}", l, target < 0 ? std::string("id 0") : fmt::format("n{}", target));
    return client_call(c, fmt::format("transfer from n{}", l), [&](auto h) { c.log(l).async_transfer_leadership(id, h); });
  };
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    switch (c.rng.below(8)) {
      case 0:
      case 1:
      case 2:
        submit_some(c);
        break;
      case 3:
      case 4: {
        const int l = c.leader();
        if (l < 0) break;
        const int target = c.rng.one_in(4) ? -1 : ups[c.rng.below(ups.size())];
        transfer(l, target);
        if (c.rng.one_in(2)) c.submit(l);  // refused while the transfer runs
        break;
      }
      case 5:
        crash_one(c, ups);
        break;
      case 6:
        restart_one(c);
        break;
      default:
        if (c.rng.one_in(2)) partition_minority(c, n);
        else c.net.heal();
    }
    c.run_for(c.rng.duration(0ms, c.et() / 2));
  }
  c.settle();
  bool moved = false;
  for (int attempt = 0; attempt < 5 && !moved; ++attempt) {
    const int l = c.wait_leader(10 * c.et());
    if (l < 0) break;
    auto others = all_but(c, {l});
    std::vector<int> up;
    for (int i : others)
      if (c.up(i) && !c.retired(i)) up.push_back(i);
    if (up.empty()) break;
    const int target = up[c.rng.below(up.size())];
    auto done = transfer(l, target);
    c.run_until([&] { return done->has_value(); }, 10 * c.et());
    moved = done->value_or(false) && c.run_until([&] { return c.leader() == target; }, 10 * c.et());
    if (!moved) c.run_for(2 * c.et());  // an earlier transfer may still be under way
  }
  if (!moved) c.liveness_failure("no transfer to a chosen member succeeded once settled");
  c.settle();
}

// Reads asked of some nodes (a follower asks its leader), more at the leader.
void read_everywhere(SimCluster& c) {
  for (int u : c.up_nodes())
    if (c.rng.one_in(2)) c.read(u);
  const int l = c.leader();
  for (int k = 0, m = static_cast<int>(c.rng.below(4)); l >= 0 && k < m; ++k) c.read(l);
}

// Still answering after all that (leadership may still move once: a read
// refused as not_leader is asked again of the new leader). Earlier reads
// may still end meanwhile (a follower's, waiting on its leader or its
// FSM): only this read's own outcome counts.
void a_read_is_answered_once_settled(SimCluster& c) {
  bool answered = false;
  for (int attempt = 0; attempt < 5 && !answered; ++attempt) {
    const int l = c.wait_leader(10 * c.et());
    if (l < 0) break;
    auto outcome = c.read(l);
    c.run_until([&] { return outcome->has_value(); }, 10 * c.et());
    answered = outcome->value_or(false);
  }
  if (!answered) c.liveness_failure("no read answered by the leader once settled");
}

// Thesis §6.4: reads through read_index() asked of every node, old leaders
// included (followers ask their leader), while the leader is cut off and a
// new one commits, partitions come and go, clocks drift and nodes crash. No
// answer may be below what was committed anywhere when the read was asked
// (checked per read).
void linearizable_reads(SimCluster& c) {
  const int n = nodes_or(c, 5);
  // Half the seeds apply late (read_barrier must wait for the FSM).
  if (c.rng.one_in(2)) c.lagging_apply();
  c.bootstrap(n);
  c.faults_on(c.rng.one_in(2));
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    switch (c.rng.below(7)) {
      case 0:
      case 1: {
        const int l = c.leader();
        if (l >= 0) c.submit(l);
        break;
      }
      case 2: {
        // The case ReadIndex is for: the old leader still believes it leads
        // (until check-quorum) while the others elect and commit.
        const int l = c.leader();
        if (l < 0) break;
        c.net.isolate(l);
        for (int k = 0; k < 4; ++k) {
          c.run_for(c.rng.duration(0ms, c.et()));
          const int l2 = c.leader();
          if (l2 >= 0 && l2 != l) c.submit(l2);
          c.read(l);
          read_everywhere(c);
        }
        c.net.heal();
        break;
      }
      case 3:
        crash_one(c, ups);
        break;
      case 4:
        restart_one(c);
        break;
      case 5:
        partition_minority(c, n);
        break;
      default:
        c.net.heal();
    }
    read_everywhere(c);
    c.run_for(c.rng.duration(0ms, c.et() / 2));
  }
  c.settle();
  a_read_is_answered_once_settled(c);
}

// Thesis §6.4.1: reads by lease (LogOptions::lease_reads on every node),
// asked of every node while leaders are cut off, leadership is transferred,
// nodes crash and restart, partitions come and go and clocks drift (+-5 %,
// inside the default lease_clock_drift), in a third of the seeds with one
// member configured without lease reads. Each answer is checked as in
// linearizable_reads. One step is the restart a lease must survive: the
// leader's lease rests on the answers of a follower that then restarts
// (forgetting when it last heard from the leader) while the other side,
// no longer hearing from the leader, asks for its vote.
void lease_reads(SimCluster& c) {
  const int n = nodes_or(c, c.rng.one_in(2) ? 3 : 5);
  // A third of the seeds: one member is configured without lease reads (it
  // promises no vote hold; leases must count on the others only).
  c.lease_reads(c.rng.one_in(3) ? static_cast<int>(c.rng.below(static_cast<std::uint64_t>(n))) : -1);
  if (c.rng.one_in(2)) c.lagging_apply();
  c.bootstrap(n);
  c.faults_on(c.rng.one_in(2));
  // Reads at the old leader, and writes at a new one, for a while.
  auto reads_at_old_leader = [&c](int l, Clock::duration step) {
    for (int k = 0; k < 6; ++k) {
      c.run_for(c.rng.duration(0ms, step));
      const int l2 = c.leader();
      if (l2 >= 0 && l2 != l) c.submit(l2);
      c.read(l);
      read_everywhere(c);
    }
  };
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    switch (c.rng.below(9)) {
      case 0:
      case 1:
        submit_some(c);
        break;
      case 2: {
        const int l = c.leader();
        if (l < 0) break;
        c.net.isolate(l);
        reads_at_old_leader(l, c.et() / 2);
        c.net.heal();
        break;
      }
      case 3:
      case 4: {
        // The lease counts on follower f; the nodes the leader is cut off
        // from (n/2 of them, f not among them) stop deferring to it; f
        // restarts, and the leader is cut off from it too.
        const int l = c.leader();
        auto fs = followers(c, l);
        if (l < 0 || static_cast<int>(fs.size()) < n / 2 + 1) break;
        const int f = fs[c.rng.below(fs.size())];
        fs.erase(std::find(fs.begin(), fs.end(), f));
        c.net.heal();
        for (int o : pick(c.rng, fs, static_cast<std::size_t>(n / 2))) {
          c.net.set_link(l, o, false);
          c.net.set_link(o, l, false);
        }
        c.run_for(c.rng.duration(c.et() / 2, 3 * c.et() / 2));
        c.crash(f);
        c.restart(f);
        c.net.set_link(l, f, false);
        c.net.set_link(f, l, false);
        reads_at_old_leader(l, c.et() / 5);
        c.net.heal();
        break;
      }
      case 5: {
        const int l = c.leader();
        if (l < 0) break;
        const int target = ups[c.rng.below(ups.size())];
        const std::uint64_t id = c.log(target).id();
        c.trace("client transfer n{} -> n{}", l, target);
        client_call(c, fmt::format("transfer from n{}", l), [&](auto h) { c.log(l).async_transfer_leadership(id, h); });
        reads_at_old_leader(l, c.et() / 4);
        break;
      }
      case 6:
        crash_one(c, ups);
        break;
      case 7:
        restart_one(c);
        break;
      default:
        if (c.rng.one_in(2)) partition_minority(c, n);
        else c.net.heal();
    }
    read_everywhere(c);
    c.run_for(c.rng.duration(0ms, c.et() / 2));
  }
  c.settle();
  a_read_is_answered_once_settled(c);
}

// Thesis §4.2.1: learners (non-voting members) join, catch up, serve reads
// and are promoted (by the leader's promote_peer, or at the joiner's request
// with JoinOptions::catch_up_first), and voters are demoted (the leader
// too), while writes go on, nodes crash and
// partitions come and go. One partition puts the leader and the learners on one side and the
// other voters on the other: a leader that counted learners toward its
// majority would commit entries there that the voters' side then
// overwrites. Every step also checks that no learner campaigns or leads
// (SimCluster::check). Once settled, promoting the learners left must work.
void learners(SimCluster& c) {
  const int voters = nodes_or(c, 3);
  c.bootstrap(voters);
  for (int k = 0; k < 2; ++k) {
    bool ok = false;
    c.add_member(true, &ok, {.learner = true});
    if (!ok) c.liveness_failure("a learner's join failed before the faults");
  }
  c.faults_on(c.rng.one_in(2));
  // Learners in the leader's configuration, by slot.
  auto learner_slots = [&c] {
    std::vector<int> v;
    const int l = c.leader();
    if (l < 0) return v;
    for (const auto& n : c.log(l).config().nodes)
      if (n.learner)
        if (const int s = c.net.slot_of(n.url); s >= 0) v.push_back(s);
    return v;
  };
  auto promote = [&c](int l, std::uint64_t id) {
    c.trace("client promote id {} via leader n{}", id, l);
    return client_call(c, fmt::format("promote id {}", id), [&](auto h) { c.log(l).async_promote_peer(id, h); });
  };
  std::set<int> catching_up;  // slots that joined with catch_up_first
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    switch (c.rng.below(10)) {
      case 0:
      case 1:
        submit_some(c);
        break;
      case 9: {
        // Demote a voter (the leader itself, at times), keeping three: the
        // voter set shrinks by one at once; a demoted leader steps down.
        const int l = c.leader();
        if (l < 0) break;
        const Config config = c.log(l).config();
        if (config.voter_count() <= 3) break;
        std::vector<ConfigNode> voters;
        for (const auto& n : config.nodes)
          if (!n.learner) voters.push_back(n);
        const ConfigNode v = voters[c.rng.below(voters.size())];
        if (const int s = c.net.slot_of(v.url); s >= 0) catching_up.erase(s);  // its intent is done
        c.trace("client demote id {} via leader n{}", v.id, l);
        client_call(c, fmt::format("demote id {}", v.id), [&](auto h) { c.log(l).async_demote_peer(v.id, h); });
        break;
      }
      case 2: {
        // The leader and the learners apart from the other voters; the old
        // leader keeps taking writes until check-quorum ends it.
        const int l = c.leader();
        if (l < 0) break;
        std::vector<int> side{l};
        for (int x : learner_slots()) side.push_back(x);
        c.net.heal();
        c.trace("partition: leader n{} and its learners apart", l);
        c.net.partition(side);
        for (int k = 0; k < 3; ++k) {
          if (c.up(l)) c.submit(l);
          c.run_for(c.rng.duration(0ms, c.et()));
          const int l2 = c.leader();
          if (l2 >= 0 && l2 != l) c.submit(l2);
        }
        c.net.heal();
        break;
      }
      case 3: {
        const int l = c.leader();
        const auto ls = learner_slots();
        if (l < 0 || ls.empty()) break;
        for (const auto& n : c.log(l).config().nodes)
          if (n.url == c.url(ls[c.rng.below(ls.size())])) promote(l, n.id);
        break;
      }
      case 4:
        // Half of them to become voters once caught up (catch_up_first:
        // the joiner asks the leader to promote it).
        if (c.size() < 8) {
          const bool catch_up_first = c.rng.one_in(2);
          const int slot = c.add_member(false, nullptr, {.learner = !catch_up_first, .catch_up_first = catch_up_first});
          if (catch_up_first) catching_up.insert(slot);
        }
        break;
      case 5:
        crash_one(c, ups);
        break;
      case 6:
        restart_one(c);
        break;
      case 7: {
        const auto ls = learner_slots();
        for (int x : ls)
          if (c.up(x)) c.read(x);
        break;
      }
      default:
        if (c.rng.one_in(2)) partition_minority(c, c.size());
        else c.net.heal();
    }
    c.run_for(c.rng.duration(0ms, c.et() / 2));
  }
  // A joiner whose join gave up under the faults (or that crashed before its
  // answer came) asks again, as its operator would, once there is a leader.
  c.faults_off();
  c.net.heal();
  for (int x : c.down_nodes()) c.restart(x);
  c.wait_leader(10 * c.et());
  for (int x : c.up_nodes())
    if (c.log(x).id() == 0) {
      catching_up.erase(x);
      c.join(x, true, nullptr, {.learner = true});
    }
  c.settle();
  // A catch_up_first joiner needs no help: it asks for its promotion until
  // it has it, across restarts and after its join() gave up.
  auto still_learner = [&c](int l, int slot) {
    for (const auto& n : c.log(l).config().nodes)
      if (n.url == c.url(slot)) return n.learner;
    return false;
  };
  c.run_until([&] {
    const int l = c.leader();
    if (l < 0) return false;
    for (int x : catching_up)
      if (still_learner(l, x)) return false;
    return true;
  }, 30 * c.et());
  if (const int l = c.wait_leader(10 * c.et()); l >= 0)
    for (int x : catching_up)
      if (still_learner(l, x)) c.liveness_failure(fmt::format("n{} joined with catch_up_first and is still a learner", x));
  // Promote every learner left, one change at a time; each must take.
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int l = c.wait_leader(10 * c.et());
    if (l < 0) break;
    std::uint64_t id = 0;
    for (const auto& n : c.log(l).config().nodes)
      if (n.learner) id = n.id;
    if (id == 0) break;
    auto done = promote(l, id);
    c.run_until([&] { return done->has_value(); }, 10 * c.et());
    if (!done->value_or(false)) c.run_for(c.et());  // a change still committing, or leadership moved
  }
  const int l = c.wait_leader(10 * c.et());
  if (l < 0) c.liveness_failure("no leader after the promotions");
  for (const auto& n : c.log(l).config().nodes)
    if (n.learner) c.liveness_failure(fmt::format("learner {} not promoted once settled", n.id));
  c.apply(10 * c.et());  // the promoted voters make a majority that commits
  c.settle();
}

// The steps joint_consensus and rolling_upgrade share, by `choice` (of
// rng.below(10)): 5 a crash, 6 a restart, 7 reads at random nodes, else a
// partition of a minority or a heal.
void ordinary_step(SimCluster& c, std::uint64_t choice, const std::vector<int>& ups) {
  switch (choice) {
    case 5:
      crash_one(c, ups);
      break;
    case 6:
      restart_one(c);
      break;
    case 7:
      for (int x : ups)
        if (c.rng.one_in(2)) c.read(x);
      break;
    default:
      if (c.rng.one_in(2)) partition_minority(c, c.size());
      else c.net.heal();
  }
}

// Ids of the members in `config` (by voters first: the old ones, in a
// joint configuration, are the outgoing ones).
std::vector<std::uint64_t> member_ids(const Config& config, bool voters_only) {
  std::vector<std::uint64_t> v;
  for (const auto& n : config.nodes)
    if (!voters_only || !n.learner) v.push_back(n.id);
  return v;
}

// Log::set_voters asked of node l; the flag says how it ended once it has.
std::shared_ptr<std::optional<bool>> start_set_voters(SimCluster& c, int l, const std::vector<std::uint64_t>& ids) {
  auto done = std::make_shared<std::optional<bool>>();
  const auto what = fmt::format("set_voters {} via n{}", fmt::join(ids, ","), l);
  c.trace("client {}", what);
  c.log(l).async_set_voters(ids, [&c, what, done](std::error_code ec, std::uint64_t index) {
    c.trace("client {} {}", what, ec ? "failed: " + ec.message() : fmt::format("done at {}", index));
    *done = !ec;
  });
  return done;
}

// how_many() random members of `config` (drawn after the shuffle).
std::vector<std::uint64_t> random_members(SimCluster& c, const Config& config,
                                          const std::function<std::size_t()>& how_many) {
  auto all = member_ids(config, false);
  for (std::size_t i = 0; i < all.size(); ++i) std::swap(all[i], all[i + c.rng.below(all.size() - i)]);
  all.resize(std::min(how_many(), all.size()));
  return all;
}

// Once settled: a change to three random members takes, the configuration
// is C_new alone with exactly those voters, and writes commit under them.
void a_last_change_takes(SimCluster& c) {
  std::vector<std::uint64_t> want;
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int l = c.wait_leader(10 * c.et());
    if (l < 0) break;
    const Config config = c.log(l).config();
    if (want.empty()) {
      want = member_ids(config, false);
      for (std::size_t i = 0; i < want.size(); ++i) std::swap(want[i], want[i + c.rng.below(want.size() - i)]);
      want.resize(std::min<std::size_t>(3, want.size()));
      std::sort(want.begin(), want.end());
    }
    if (!config.joint() && config.index <= c.log(l).commit_index() && member_ids(config, true) == want) break;
    auto done = start_set_voters(c, l, want);
    c.run_until([&] { return done->has_value(); }, 10 * c.et());
    if (!done->value_or(false)) c.run_for(c.et());  // a change still committing, or leadership moved
  }
  const int l = c.wait_leader(10 * c.et());
  if (l < 0) return c.liveness_failure("no leader after the last change");
  const Config config = c.log(l).config();
  if (config.joint() || member_ids(config, true) != want)
    c.liveness_failure(fmt::format("the last change did not take: voters {}{}", fmt::join(member_ids(config, true), ","),
                                   config.joint() ? " (joint)" : ""));
  c.apply(10 * c.et());
  c.settle();
}

// Raft paper §6: the voter set changes by joint consensus
// (Log::set_voters) to any subset of the members, often a new majority at
// once (three voters for three others), while writes go on, nodes crash
// and restart and partitions come and go. One partition puts the old
// voters on one side and the rest on the other: a leader that let one
// half's majority decide (fault joint_new_majority_only) commits there what
// a leader elected by the other half overwrites. Once settled, one more
// change must take, and writes commit under its voters.
void joint_consensus(SimCluster& c) {
  const int voters = nodes_or(c, 3);
  c.bootstrap(voters);
  for (int k = 0; k < 3; ++k) {
    bool ok = false;
    c.add_member(true, &ok, {.learner = true});
    if (!ok) c.liveness_failure("a learner's join failed before the faults");
  }
  c.faults_on(c.rng.one_in(2));
  auto set_voters = [&c](int l, const std::vector<std::uint64_t>& ids) { return start_set_voters(c, l, ids); };
  // 1 to 5 random members of the leader's configuration, 3 half the time.
  auto random_voters = [&](const Config& config) {
    return random_members(c, config, [&]() -> std::size_t { return c.rng.one_in(2) ? 3 : c.rng.range(1, 5); });
  };
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    const auto choice = c.rng.below(10);
    switch (choice) {
      case 0:
      case 1:
        submit_some(c);
        break;
      case 2:
      case 3: {
        const int l = c.leader();
        if (l >= 0) set_voters(l, random_voters(c.log(l).config()));
        break;
      }
      case 4: {
        // Right after a change starts: the old voters apart from the rest,
        // each side with writes to whoever leads it.
        const int l = c.leader();
        if (l < 0) break;
        const Config before = c.log(l).config();
        if (before.joint()) break;
        set_voters(l, random_voters(before));
        c.run_for(c.rng.duration(0ms, c.et() / 4));
        std::vector<int> side;
        for (auto id : member_ids(before, true))
          if (const auto* n = before.node_by_id(id))
            if (const int s = c.net.slot_of(n->url); s >= 0) side.push_back(s);
        c.net.heal();
        c.trace("partition: the old voters apart");
        c.net.partition(side);
        for (int k = 0; k < 4; ++k) {
          for (int x : c.up_nodes())
            if (c.log(x).state() == State::leader) c.submit(x);
          c.run_for(c.rng.duration(0ms, c.et()));
        }
        c.net.heal();
        break;
      }
      default:
        ordinary_step(c, choice, ups);
    }
    c.run_for(c.rng.duration(0ms, c.et() / 2));
  }
  c.faults_off();
  c.settle();
  a_last_change_takes(c);
}

// A rolling upgrade (raft/transport.hpp, protocol version 2): most
// members start on a "build without joint consensus" (they speak version
// 1, SimNetwork::set_protocol) and are upgraded one by one, each with a
// restart, while writes go on, nodes crash and restart, partitions come
// and go, and new leaders ask for joint-consensus changes. The checker
// holds that no old build ever applies, restores or holds joint
// consensus; a change a leader starts while an old member answers is
// refused (unsupported_protocol) or goes ahead without it. Once every
// node is upgraded, a change to three random members must take.
void rolling_upgrade(SimCluster& c) {
  const int voters = nodes_or(c, 3);
  if (c.rng.one_in(2)) c.snapshots_on();  // old builds catch up by snapshots too
  c.bootstrap(voters);
  for (int k = 0; k < 2; ++k) {
    bool ok = false;
    c.add_member(true, &ok, {.learner = true});
    if (!ok) c.liveness_failure("a learner's join failed before the upgrade");
  }
  auto upgrade_to = [&c](int x, std::uint32_t v) {
    const bool was_up = c.up(x);
    if (was_up) c.crash(x);
    c.trace("n{} {} (protocol {})", x, v < kJointConsensusProtocol ? "runs an old build" : "upgraded", v);
    c.net.set_protocol(x, v);
    if (v < kJointConsensusProtocol) c.checker.old_builds.insert(x);
    else c.checker.old_builds.erase(x);
    if (was_up) c.restart(x);
  };
  std::vector<int> all(static_cast<std::size_t>(c.size()));
  for (int i = 0; i < c.size(); ++i) all[static_cast<std::size_t>(i)] = i;
  for (int x : pick(c.rng, all, c.rng.range(1, static_cast<std::uint64_t>(c.size()) - 1))) upgrade_to(x, 1);
  c.faults_on(c.rng.one_in(2));
  // 1 to 4 random members of the leader's configuration.
  auto random_voters = [&](const Config& config) {
    return random_members(c, config, [&]() -> std::size_t { return c.rng.range(1, 4); });
  };
  // A new build's leader (an old build has no set_voters to call).
  auto new_leader = [&c]() {
    const int l = c.leader();
    return l >= 0 && c.checker.old_builds.count(l) == 0 ? l : -1;
  };
  const int iters = ops_or(c, 30);
  for (int it = 0; it < iters; ++it) {
    auto ups = c.up_nodes();
    const auto choice = c.rng.below(10);
    switch (choice) {
      case 0:
      case 1:
        submit_some(c);
        break;
      case 2:
      case 3: {
        const int l = new_leader();
        if (l < 0) break;
        start_set_voters(c, l, random_voters(c.log(l).config()));
        if (c.rng.one_in(2)) break;
        // A snapshot taken once C_old,new is applied and before C_new
        // commits holds the joint configuration: it must not reach an old
        // build either (Log::Impl::begin_snapshot_send).
        std::uint64_t joint = 0;
        auto in_window = [&] {
          if (!c.up(l) || c.log(l).state() != State::leader) return false;
          const Config cf = c.log(l).config();
          return joint != 0 && !cf.joint() && c.log(l).applied_index() >= joint && cf.index > c.log(l).commit_index();
        };
        c.run_until([&] {
          if (!c.up(l) || c.log(l).state() != State::leader) return true;
          if (const Config cf = c.log(l).config(); cf.joint()) joint = cf.index;
          return in_window();
        }, c.et());
        if (!in_window()) break;
        c.trace("client snapshot via n{}, C_old,new {} applied and C_new not committed", l, joint);
        c.log(l).start_snapshot([&c, l](result<std::uint64_t> r) {
          c.trace("client snapshot via n{} {}", l, r ? fmt::format("at {}", *r) : "failed: " + r.error().message());
        });
        break;
      }
      case 4: {
        std::vector<int> old(c.checker.old_builds.begin(), c.checker.old_builds.end());
        if (!old.empty()) upgrade_to(old[c.rng.below(old.size())], kProtocolVersion);
        break;
      }
      default:
        ordinary_step(c, choice, ups);
    }
    c.run_for(c.rng.duration(0ms, c.et() / 2));
  }
  c.faults_off();
  while (!c.checker.old_builds.empty()) upgrade_to(*c.checker.old_builds.begin(), kProtocolVersion);
  for (int x : c.down_nodes()) c.restart(x);
  c.settle();
  a_last_change_takes(c);
}

}  // namespace

const std::vector<ScenarioInfo>& scenarios() {
  static const std::vector<ScenarioInfo> v = {
      {"initial_election", initial_election},
      {"reelection_after_leader_loss", reelection_after_leader_loss},
      {"many_elections", many_elections},
      {"basic_agreement", basic_agreement},
      {"agreement_despite_follower_failure", agreement_despite_follower_failure},
      {"no_agreement_without_majority", no_agreement_without_majority},
      {"concurrent_applies", concurrent_applies},
      {"partitioned_leader_rejoins", partitioned_leader_rejoins},
      {"fast_backup", fast_backup},
      {"persistence", persistence},
      {"figure8", figure8},
      {"figure8_unreliable", figure8_unreliable},
      {"churn", churn},
      {"membership_add_remove_under_faults", membership_add_remove_under_faults},
      {"remove_leader", remove_leader},
      {"replace_every_member", replace_every_member},
      {"voter_reboots_during_split_election", voter_reboots_during_split_election},
      {"snapshot_compaction", snapshot_compaction},
      {"snapshot_install_after_partition", snapshot_install_after_partition},
      {"snapshot_install_unreliable", snapshot_install_unreliable},
      {"snapshot_receiver_crashes", snapshot_receiver_crashes},
      {"snapshot_crash_all", snapshot_crash_all},
      {"snapshot_new_node", snapshot_new_node},
      {"removed_while_cut_off", removed_while_cut_off},
      {"reopen_in_place", reopen_in_place},
      {"linearizable_reads", linearizable_reads},
      {"lease_reads", lease_reads},
      {"leadership_transfer", leadership_transfer},
      {"learners", learners},
      {"joint_consensus", joint_consensus},
      {"rolling_upgrade", rolling_upgrade},
  };
  return v;
}

}  // namespace raft::sim
