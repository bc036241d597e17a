// Clusters and writes the Log's unit tests share (log_test, learner_test):
// built on LocalCluster, checked with GoogleTest expectations.
#pragma once

#include "unit/local_cluster.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace raft::test {

// n1 initializes (and leads), the others join through it, one at a time.
inline std::unique_ptr<LocalCluster> cluster_of(std::size_t n, std::function<void(LogOptions&)> tweak = {}) {
  auto c = std::make_unique<LocalCluster>();
  c->tweak = std::move(tweak);
  auto& a = c->add();
  EXPECT_TRUE(c->initialize(a));
  for (std::size_t i = 1; i < n; ++i) {
    auto& b = c->add();
    auto jb = c->join(b, a.url);
    EXPECT_TRUE(jb) << jb.error().message();
  }
  EXPECT_TRUE(c->net.run_until([&] {
    for (auto& node : c->nodes)
      if (node->log->config().nodes.size() != n || node->log->commit_index() < n) return false;
    return true;
  }));
  return c;
}

inline std::unique_ptr<LocalCluster> three_node_cluster(std::function<void(LogOptions&)> tweak = {}) {
  return cluster_of(3, std::move(tweak));
}

// Applies "w0", "w1", ... through `l`; the last one's index (0 if one failed).
inline std::uint64_t apply_writes(LocalCluster& c, LocalNode& l, int count) {
  std::uint64_t last = 0;
  for (int i = 0; i < count; ++i) {
    auto idx = c.apply(l, "w" + std::to_string(i));
    if (!idx) return 0;
    last = *idx;
  }
  return last;
}

// An apply through `l` that must not complete within `d` (its majority is
// unreachable); returns whether it stayed pending.
inline bool stays_pending(LocalCluster& c, LocalNode& l, Clock::duration d) {
  // Shared: the apply may complete after this returns (once the majority is
  // back), and its handler must not write into this frame then.
  auto done = std::make_shared<bool>(false);
  l.log->start_apply("pending", {}, [done](result<std::uint64_t>) { *done = true; });
  c.net.run_for(d);
  return !*done;
}

// The node of `among` that becomes leader within 30 s, or nullptr.
inline LocalNode* leader_among(LocalCluster& c, const std::vector<LocalNode*>& among) {
  LocalNode* found = nullptr;
  c.net.run_until([&] {
    for (auto* n : among)
      if (n->log->state() == State::leader) found = n;
    return found != nullptr;
  }, std::chrono::seconds(30));
  return found;
}

}  // namespace raft::test
