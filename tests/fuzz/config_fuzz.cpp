// Fuzz target: Config JSON (config_from_json and ConfigDecoder), which
// arrives in join replies, at the head of every stream, in snapshot headers
// and in config log entries.
//
// Input: byte 0 picks ConfigDecoder's max_bytes; the rest is the JSON.
//
// Invariants beyond "no crash":
// * an accepted config is valid: node ids non-zero and unique, URLs
//   non-empty and unique, max_node_id at least every id, outgoing voters
//   members in ascending order;
// * round trip: to_json of it decodes to an equal Config, and encoding that
//   again gives the same text;
// * ConfigDecoder agrees with config_from_json when the input is within its
//   limit and refuses it (invalid_config) when not;
// * errors are invalid_config or one of add_node's.
#include "fuzz_util.hpp"
#include "raft/config.hpp"

#include <algorithm>
#include <cstring>
#include <set>

namespace {

class ChoppyReader final : public raft::Reader {
 public:
  explicit ChoppyReader(std::string_view in) : in_(in) {}
  raft::result<std::size_t> read(std::span<std::byte> out) override {
    std::size_t n = std::min({out.size(), in_.size(), std::size_t{7}});
    if (n) std::memcpy(out.data(), in_.data(), n);
    in_.remove_prefix(n);
    return n;
  }

 private:
  std::string_view in_;
};

void check_valid(const raft::Config& c) {
  std::set<std::uint64_t> ids;
  std::set<std::string> urls;
  for (const auto& n : c.nodes) {
    FUZZ_CHECK(n.id != 0, "node id 0 accepted");
    FUZZ_CHECK(!n.url.empty(), "empty url accepted");
    FUZZ_CHECK(ids.insert(n.id).second, "duplicate id %llu accepted", static_cast<unsigned long long>(n.id));
    FUZZ_CHECK(urls.insert(n.url).second, "duplicate url accepted");
    FUZZ_CHECK(c.max_node_id >= n.id, "maxNodeID below a node's id");
  }
  // Removed members: handed out once (<= maxNodeID), no longer members (ids
  // are not reused), bounded as Config::remove_node keeps the list.
  // A joint configuration's old voters: members, ascending, no duplicates.
  for (std::size_t i = 0; i < c.outgoing_voters.size(); ++i) {
    FUZZ_CHECK(ids.count(c.outgoing_voters[i]), "outgoing voter %llu is no member",
               static_cast<unsigned long long>(c.outgoing_voters[i]));
    FUZZ_CHECK(i == 0 || c.outgoing_voters[i - 1] < c.outgoing_voters[i], "outgoing voters not ascending");
  }
  FUZZ_CHECK(c.removed.size() <= raft::Config::kRemovedMax, "removed list above its bound");
  for (const auto& n : c.removed) {
    FUZZ_CHECK(n.id != 0 && n.id <= c.max_node_id, "impossible removed id %llu", static_cast<unsigned long long>(n.id));
    FUZZ_CHECK(!n.url.empty(), "removed entry without url");
    FUZZ_CHECK(!ids.count(n.id), "removed id %llu is still a member", static_cast<unsigned long long>(n.id));
  }
}

bool allowed(const std::error_code& ec) {
  return ec == raft::errc::invalid_config || ec == raft::errc::invalid_node_id ||
         ec == raft::errc::node_url_required || ec == raft::errc::duplicate_node_id ||
         ec == raft::errc::duplicate_node_url;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  raft::fuzz::Input in(data, size);
  const std::size_t max = (in.byte() & 1) ? 64 : 16u << 20;
  const std::string_view json = in.rest();

  auto c = raft::config_from_json(json);
  if (!c) {
    FUZZ_CHECK(allowed(c.error()), "unexpected error %s", c.error().message().c_str());
  } else {
    check_valid(*c);
    const std::string text = raft::to_json(*c);
    auto again = raft::config_from_json(text);
    FUZZ_CHECK(again.has_value(), "own encoding refused: %s", text.c_str());
    FUZZ_CHECK(*again == *c, "round trip changed the config: %s", text.c_str());
    FUZZ_CHECK(raft::to_json(*again) == text, "encoding is not stable");
  }

  ChoppyReader r(json);
  raft::ConfigDecoder dec(r, max);
  raft::Config d;
  auto got = dec.decode(d);
  if (json.size() > max) {
    FUZZ_CHECK(!got && got.error() == raft::errc::invalid_config, "input above max_bytes accepted");
  } else if (c) {
    FUZZ_CHECK(got.has_value() && d == *c, "ConfigDecoder disagrees with config_from_json");
  } else {
    FUZZ_CHECK(!got && got.error() == c.error(), "ConfigDecoder: %s, config_from_json: %s",
               got ? "ok" : got.error().message().c_str(), c.error().message().c_str());
  }
  return 0;
}
