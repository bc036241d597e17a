#include "raft/config.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace raft {

const ConfigNode* Config::node_by_id(std::uint64_t id) const noexcept {
  for (const auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

const ConfigNode* Config::node_by_url(std::string_view url) const noexcept {
  for (const auto& n : nodes)
    if (n.url == url) return &n;
  return nullptr;
}

result<void> Config::add_node(std::uint64_t id, std::string url, std::uint64_t join_token, bool learner) {
  if (id == 0) return errc::invalid_node_id;
  if (url.empty()) return errc::node_url_required;
  if (node_by_id(id)) return errc::duplicate_node_id;
  if (node_by_url(url)) return errc::duplicate_node_url;
  nodes.push_back({id, std::move(url), join_token, learner});
  max_node_id = std::max(max_node_id, id);
  return {};
}

result<void> Config::promote(std::uint64_t id) {
  auto it = std::find_if(nodes.begin(), nodes.end(), [&](const ConfigNode& n) { return n.id == id; });
  if (it == nodes.end()) return errc::node_not_found;
  if (!it->learner) return errc::invalid_argument;
  it->learner = false;
  return {};
}

result<void> Config::demote(std::uint64_t id) {
  auto it = std::find_if(nodes.begin(), nodes.end(), [&](const ConfigNode& n) { return n.id == id; });
  if (it == nodes.end()) return errc::node_not_found;
  if (it->learner || voter_count() == 1) return errc::invalid_argument;
  it->learner = true;
  return {};
}

result<void> Config::bind_token(std::uint64_t id, std::uint64_t join_token) {
  auto it = std::find_if(nodes.begin(), nodes.end(), [&](const ConfigNode& n) { return n.id == id; });
  if (it == nodes.end()) return errc::node_not_found;
  if (it->join_token != 0 || join_token == 0) return errc::invalid_argument;
  it->join_token = join_token;
  return {};
}

bool Config::is_voter(std::uint64_t id) const noexcept {
  const auto* n = node_by_id(id);
  return n && !n->learner;
}

std::size_t Config::voter_count() const noexcept {
  return static_cast<std::size_t>(std::count_if(nodes.begin(), nodes.end(), [](const ConfigNode& n) { return !n.learner; }));
}

bool Config::is_outgoing_voter(std::uint64_t id) const noexcept {
  return std::binary_search(outgoing_voters.begin(), outgoing_voters.end(), id);
}

result<void> Config::enter_joint(const std::vector<std::uint64_t>& voters) {
  if (joint() || voters.empty()) return errc::invalid_argument;
  std::vector<std::uint64_t> sorted = voters;
  std::sort(sorted.begin(), sorted.end());
  if (sorted.front() == 0 || std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    return errc::invalid_argument;
  for (auto id : sorted)
    if (!node_by_id(id)) return errc::node_not_found;
  for (const auto& n : nodes)
    if (!n.learner) outgoing_voters.push_back(n.id);
  std::sort(outgoing_voters.begin(), outgoing_voters.end());
  for (auto& n : nodes) n.learner = !std::binary_search(sorted.begin(), sorted.end(), n.id);
  return {};
}

result<void> Config::leave_joint() {
  if (!joint()) return errc::invalid_argument;
  outgoing_voters.clear();
  return {};
}

result<void> Config::remove_node(std::uint64_t id) {
  auto it = std::find_if(nodes.begin(), nodes.end(), [&](const ConfigNode& n) { return n.id == id; });
  if (it == nodes.end()) return errc::node_not_found;
  if (is_outgoing_voter(id)) return errc::invalid_argument;
  removed.push_back(std::move(*it));
  nodes.erase(it);
  // Bounded: the list travels in every configuration entry and snapshot,
  // and only a joiner that was cut off around its own removal needs it.
  if (removed.size() > kRemovedMax) removed.erase(removed.begin());
  return {};
}

bool Config::was_removed(std::uint64_t id, std::string_view url) const noexcept {
  return std::any_of(removed.begin(), removed.end(), [&](const ConfigNode& n) { return n.id == id && n.url == url; });
}

bool Config::join_was_removed(std::string_view url, std::uint64_t join_token) const noexcept {
  return join_token != 0 && std::any_of(removed.begin(), removed.end(), [&](const ConfigNode& n) {
           return n.join_token == join_token && n.url == url;
         });
}

namespace {
boost::json::object node_json(const ConfigNode& n) {
  boost::json::object o{{"id", n.id}, {"url", n.url}};
  if (n.join_token != 0) o["joinToken"] = n.join_token;
  if (n.learner) o["learner"] = true;
  return o;
}
}  // namespace

std::string to_json(const Config& c) {
  boost::json::array nodes;
  for (const auto& n : c.nodes) nodes.push_back(node_json(n));
  boost::json::object o;
  o["clusterID"] = c.cluster_id;
  o["index"] = c.index;
  o["maxNodeID"] = c.max_node_id;
  o["nodes"] = std::move(nodes);
  if (!c.removed.empty()) {
    boost::json::array removed;
    for (const auto& n : c.removed) removed.push_back(node_json(n));
    o["removed"] = std::move(removed);
  }
  if (c.joint()) {
    boost::json::array outgoing;
    for (auto id : c.outgoing_voters) outgoing.push_back(id);
    o["outgoingVoters"] = std::move(outgoing);
  }
  return boost::json::serialize(o);
}

namespace {
bool get_u64(const boost::json::object& o, std::string_view key, std::uint64_t& out) {
  const auto* v = o.if_contains(key);
  if (!v) return false;
  if (v->is_uint64()) {
    out = v->get_uint64();
    return true;
  }
  if (v->is_int64() && v->get_int64() >= 0) {
    out = static_cast<std::uint64_t>(v->get_int64());
    return true;
  }
  return false;
}

// The optional "joinToken" of a node: absent means 0.
bool get_join_token(const boost::json::object& o, std::uint64_t& out) {
  out = 0;
  return !o.contains("joinToken") || get_u64(o, "joinToken", out);
}

// The optional "learner" of a node: absent means a voter; a bool if present.
bool get_learner(const boost::json::object& o, bool& out) {
  out = false;
  const auto* v = o.if_contains("learner");
  if (!v) return true;
  if (!v->is_bool()) return false;
  out = v->get_bool();
  return true;
}
}  // namespace

result<Config> config_from_json(std::string_view json) {
  boost::system::error_code ec;
  // parse() rejects trailing non-whitespace input, which is what we want.
  boost::json::value v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return errc::invalid_config;
  const auto& o = v.get_object();
  Config c;
  std::uint64_t max_node_id = 0;
  if (!get_u64(o, "clusterID", c.cluster_id) || !get_u64(o, "index", c.index) ||
      !get_u64(o, "maxNodeID", max_node_id))
    return errc::invalid_config;
  const auto* nodes = o.if_contains("nodes");
  if (!nodes || !(nodes->is_array() || nodes->is_null())) return errc::invalid_config;
  if (nodes->is_array()) {
    for (const auto& nv : nodes->get_array()) {
      if (!nv.is_object()) return errc::invalid_config;
      const auto& no = nv.get_object();
      std::uint64_t id = 0, token = 0;
      bool learner = false;
      const auto* url = no.if_contains("url");
      if (!get_u64(no, "id", id) || !url || !url->is_string() || !get_join_token(no, token) ||
          !get_learner(no, learner))
        return errc::invalid_config;
      if (auto r = c.add_node(id, std::string(url->get_string()), token, learner); !r) return r.error();
    }
  }
  // A cluster always has a voter (remove_peer keeps the last one): a
  // configuration of learners only could never elect a leader.
  if (!c.nodes.empty() && c.voter_count() == 0) return errc::invalid_config;
  if (max_node_id < c.max_node_id) return errc::invalid_config;
  c.max_node_id = max_node_id;
  // Optional (configurations written before it existed have none). A
  // removed id was handed out (<= maxNodeID) and is no member any more (ids
  // are not reused); the list is bounded as remove_node keeps it.
  if (const auto* removed = o.if_contains("removed")) {
    if (!removed->is_array() || removed->get_array().size() > Config::kRemovedMax) return errc::invalid_config;
    for (const auto& nv : removed->get_array()) {
      if (!nv.is_object()) return errc::invalid_config;
      const auto& no = nv.get_object();
      std::uint64_t id = 0, token = 0;
      const auto* url = no.if_contains("url");
      if (!get_u64(no, "id", id) || !url || !url->is_string() || url->get_string().empty() ||
          !get_join_token(no, token))
        return errc::invalid_config;
      if (id == 0 || id > c.max_node_id || c.node_by_id(id)) return errc::invalid_config;
      c.removed.push_back({id, std::string(url->get_string()), token});
    }
  }
  // Optional: only a joint configuration has it, never empty, each id a
  // member, ascending without duplicates (as enter_joint writes it).
  if (const auto* outgoing = o.if_contains("outgoingVoters")) {
    if (!outgoing->is_array() || outgoing->get_array().empty()) return errc::invalid_config;
    for (const auto& iv : outgoing->get_array()) {
      std::uint64_t id = 0;
      if (iv.is_uint64()) id = iv.get_uint64();
      else if (iv.is_int64() && iv.get_int64() > 0) id = static_cast<std::uint64_t>(iv.get_int64());
      else return errc::invalid_config;
      if (!c.node_by_id(id) || (!c.outgoing_voters.empty() && id <= c.outgoing_voters.back()))
        return errc::invalid_config;
      c.outgoing_voters.push_back(id);
    }
  }
  return c;
}

result<void> ConfigEncoder::encode(const Config& c) { return write_all(w_, to_json(c)); }

result<void> ConfigDecoder::decode(Config& c) {
  std::string buf;
  std::byte chunk[4096];
  for (;;) {
    auto n = r_.read(chunk);
    if (!n) return n.error();
    if (*n == 0) break;
    if (buf.size() + *n > max_) return errc::invalid_config;
    buf.append(reinterpret_cast<const char*>(chunk), *n);
  }
  auto r = config_from_json(buf);
  if (!r) return r.error();
  c = std::move(*r);
  return {};
}

}  // namespace raft
