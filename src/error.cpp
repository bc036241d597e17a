#include "raft/assert.hpp"
#include "raft/error.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace raft {
namespace {

struct Entry {
  errc value;
  const char* message;
};

constexpr Entry kMessages[] = {
    {errc::closed, "log closed"},
    {errc::open, "log already open"},
    {errc::initialized, "log already initialized"},
    {errc::url_required, "url required"},
    {errc::log_exists, "log exists"},
    {errc::not_leader, "not leader"},
    {errc::stale_term, "stale term"},
    {errc::out_of_date_log, "out of date log"},
    {errc::uncommitted_index, "uncommitted index"},
    {errc::already_voted, "already voted"},
    {errc::node_not_found, "node not found"},
    {errc::invalid_node_id, "invalid node id"},
    {errc::node_url_required, "node url required"},
    {errc::duplicate_node_id, "duplicate node id"},
    {errc::duplicate_node_url, "duplicate node url"},
    {errc::log_corrupt, "log corrupt"},
    {errc::would_block, "blocking call on the log's own executor"},
    {errc::cluster_id_mismatch, "cluster id mismatch"},
    {errc::unexpected_eof, "unexpected end of input"},
    {errc::entry_too_large, "entry too large"},
    {errc::short_write, "short write"},
    {errc::invalid_config, "invalid config"},
    {errc::io_error, "i/o error"},
    {errc::no_space, "no space left on device"},
    {errc::store_failed, "store failed"},
    {errc::timeout, "timeout"},
    {errc::canceled, "canceled"},
    {errc::change_in_progress, "membership change in progress"},
    {errc::not_initialized, "log not initialized"},
    {errc::no_leader, "no leader"},
    {errc::transport_error, "transport error"},
    {errc::invalid_argument, "invalid argument"},
    {errc::snapshot_corrupt, "snapshot corrupt"},
    {errc::protocol_error, "protocol error"},
    {errc::not_committed, "entry not committed"},
    {errc::removed, "node removed from cluster"},
    {errc::node_url_mismatch, "node id belongs to another url"},
    {errc::transfer_in_progress, "leadership transfer in progress"},
    {errc::not_voter, "node is not a voter"},
    {errc::unauthorized, "unauthorized"},
    {errc::tls_error, "tls error"},
    {errc::unsupported_protocol, "unsupported protocol version"},
};

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "raft"; }
  std::string message(int ev) const override {
    for (const auto& e : kMessages) {
      if (static_cast<int>(e.value) == ev) return e.message;
    }
    return "unknown raft error " + std::to_string(ev);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

bool errc_from_message(std::string_view message, errc& out) noexcept {
  for (const auto& e : kMessages) {
    if (message == e.message) {
      out = e.value;
      return true;
    }
  }
  return false;
}

namespace detail {
void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept {
  std::fprintf(stderr, "raft: assertion failed: %s (%s) at %s:%d\n", msg, expr, file, line);
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail
}  // namespace raft
