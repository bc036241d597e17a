// Cluster configuration: who is a member, and the cluster's identity.
//
// JSON form (the seed's field names, plus "removed", written only when not
// empty, a node's "joinToken", written only when not 0, "learner", written
// only when true, and "outgoingVoters", written only in a joint
// configuration):
//   {"clusterID":1,"index":4,"maxNodeID":3,"nodes":[{"id":1,"url":"http://127.0.0.1:8001"},
//    {"id":3,"url":"http://127.0.0.1:8003","learner":true}],
//    "removed":[{"id":2,"url":"http://127.0.0.1:8002","joinToken":977}]}
// Decoding re-validates every node through add_node, so a config read from the
// wire or disk can never hold id 0, an empty URL, or a duplicate.
#pragma once

#include "raft/error.hpp"
#include "raft/io.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace raft {

struct ConfigNode {
  std::uint64_t id = 0;
  std::string url;
  // The random token of the join request that added this node; for member 1,
  // that of the directory that ran initialize (0 for a node added by
  // add_peer, or by a joiner that sent none). Kept in
  // `removed` so that a join request the network delivers late, after the
  // node it added was removed, is told apart from a node starting afresh.
  std::uint64_t join_token = 0;
  // A learner (non-voting member, thesis §4.2.1) receives the log and
  // applies it like any member, but neither votes nor counts toward a
  // commit, read or check-quorum majority, and never campaigns. A node joins
  // as one to catch up without weakening the cluster's availability, or to
  // serve reads; promote_peer makes it a voter.
  bool learner = false;

  friend bool operator==(const ConfigNode&, const ConfigNode&) = default;
};

struct Config {
  // Identifies the cluster; requests carrying another id are refused.
  std::uint64_t cluster_id = 0;
  // Index of the log entry that produced this configuration.
  std::uint64_t index = 0;
  // Largest node id handed out; ids are never reused.
  std::uint64_t max_node_id = 0;
  std::vector<ConfigNode> nodes;
  // Members removed from the cluster, oldest first, at most kRemovedMax (the
  // oldest are forgotten). A node that joined but never learned that its
  // membership committed (it was cut off or restarted) asks to join again
  // under the id it was given; if that (id, url) was removed meanwhile the
  // leader refuses it (errc::removed) instead of adding it back as a new
  // member nobody asked for. A node starting afresh at a removed URL asks
  // with no id and a new join token and may join again; a late copy of the
  // join request that added a removed node carries that node's token and is
  // refused too (join_was_removed).
  std::vector<ConfigNode> removed;
  static constexpr std::size_t kRemovedMax = 64;
  // Joint consensus (Raft paper §6, Log::set_voters). Empty but during a
  // change of the voter set by set_voters; then this is the transitional
  // configuration C_old,new: `outgoing_voters` are C_old's voters (sorted,
  // each still a member) and the members that are not learners are C_new's.
  // Every decision (commit, election, read, check-quorum) then needs a
  // majority of each set, and a member of either set may campaign.
  std::vector<std::uint64_t> outgoing_voters;

  const ConfigNode* node_by_id(std::uint64_t id) const noexcept;
  const ConfigNode* node_by_url(std::string_view url) const noexcept;
  // errc::invalid_node_id (id 0), errc::node_url_required (empty url),
  // errc::duplicate_node_id, errc::duplicate_node_url. Raises max_node_id.
  result<void> add_node(std::uint64_t id, std::string url, std::uint64_t join_token = 0, bool learner = false);
  // errc::node_not_found; errc::invalid_argument if `id` is a voter already.
  result<void> promote(std::uint64_t id);
  // errc::node_not_found; errc::invalid_argument if `id` is a learner
  // already or the last voter.
  result<void> demote(std::uint64_t id);
  // Records `join_token` for member `id`, added without one. errc::node_not_found;
  // errc::invalid_argument if it has a token already or `join_token` is 0.
  result<void> bind_token(std::uint64_t id, std::uint64_t join_token);
  // Members that vote (not learners); in a joint configuration, C_new's
  // voters (see outgoing_voters for C_old's).
  bool is_voter(std::uint64_t id) const noexcept;
  std::size_t voter_count() const noexcept;
  bool joint() const noexcept { return !outgoing_voters.empty(); }
  bool is_outgoing_voter(std::uint64_t id) const noexcept;
  // Enters joint consensus: the current voters become outgoing_voters, and
  // exactly `voters` (members, at least one) become the voters; every other
  // member becomes a learner. errc::invalid_argument (already joint, no
  // voters, id 0 or listed twice), errc::node_not_found.
  result<void> enter_joint(const std::vector<std::uint64_t>& voters);
  // Leaves joint consensus: C_new alone. errc::invalid_argument if not joint.
  result<void> leave_joint();
  // errc::node_not_found; errc::invalid_argument for an outgoing voter of a
  // joint configuration (it stays a member until C_new). Records the node
  // in `removed`.
  result<void> remove_node(std::uint64_t id);
  bool was_removed(std::uint64_t id, std::string_view url) const noexcept;
  // A removed node at `url` joined with `join_token` (never true for 0).
  bool join_was_removed(std::string_view url, std::uint64_t join_token) const noexcept;

  friend bool operator==(const Config&, const Config&) = default;
};

std::string to_json(const Config& c);
// errc::invalid_config for malformed JSON, wrong types, missing fields or
// trailing garbage; the add_node errors for invalid nodes.
result<Config> config_from_json(std::string_view json);

class ConfigEncoder {
 public:
  explicit ConfigEncoder(Writer& w) : w_(w) {}
  result<void> encode(const Config& c);

 private:
  Writer& w_;
};

class ConfigDecoder {
 public:
  // Reads the whole input (at most max_bytes) and decodes it.
  explicit ConfigDecoder(Reader& r, std::size_t max_bytes = 16u << 20) : r_(r), max_(max_bytes) {}
  result<void> decode(Config& c);

 private:
  Reader& r_;
  std::size_t max_;
};

}  // namespace raft
