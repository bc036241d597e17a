// Error values of the raft library.
//
// Every expected failure is a value: a `raft::errc` carried in a
// `std::error_code`, returned inside `raft::result<T>`. The first block mirrors
// the Go package's `ErrXxx` variables one for one, with the same messages, so
// that errors that travel over HTTP as `X-Raft-Error: <message>` read the same
// as they did in the seed. The second block is what durability, safety and the
// asynchronous API add.
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace raft {

enum class errc : int {
  // --- the Go package's errors (same messages) ---
  closed = 1,          // "log closed"
  open,                // "log already open"
  initialized,         // "log already initialized"
  url_required,        // "url required"
  log_exists,          // "log exists"
  not_leader,          // "not leader"
  stale_term,          // "stale term"
  out_of_date_log,     // "out of date log"
  uncommitted_index,   // "uncommitted index"
  already_voted,       // "already voted"
  node_not_found,      // "node not found"
  invalid_node_id,     // "invalid node id"
  node_url_required,   // "node url required"
  duplicate_node_id,   // "duplicate node id"
  duplicate_node_url,  // "duplicate node url"

  // --- added by this library ---
  log_corrupt = 100,     // on-disk data failed a check; nothing was deleted
  would_block,           // a blocking call was made from the Log's own executor
  cluster_id_mismatch,   // a request from another cluster
  unexpected_eof,        // input ended inside a record
  entry_too_large,       // a declared length is above the configured limit
  short_write,           // a writer accepted fewer bytes than given
  invalid_config,        // malformed configuration JSON
  io_error,              // a read, write or fsync failed (fatal for a store)
  no_space,              // ENOSPC: nothing already synced was lost
  store_failed,          // the store hit an earlier fatal error and refuses work
  timeout,               // the operation's deadline passed
  canceled,              // the operation was canceled
  change_in_progress,    // a membership change is not yet committed
  not_initialized,       // the log has no cluster yet (initialize or join)
  no_leader,             // no leader is known
  transport_error,       // the peer could not be reached or answered badly
  invalid_argument,      // a caller passed an argument outside its domain
  snapshot_corrupt,      // a snapshot file or frame failed a check
  protocol_error,        // a peer violated the wire protocol
  not_committed,         // the entry was overwritten before it committed
  removed,               // this node was removed from the cluster
  node_url_mismatch,     // the configuration gives the node's id to another URL
  transfer_in_progress,  // the leader is handing leadership over: no new entries
  not_voter,             // the node is a learner: it cannot lead or be made to
  unauthorized,          // a request without the cluster's auth token (HTTP 401)
  tls_error,             // TLS set-up failed: unreadable or mismatched PEM files, or an
                         // https:// peer URL on a transport without a TLSContext
  unsupported_protocol,  // the peer speaks a wire protocol version this build does not
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Maps a message produced by `error_category().message()` back to its value
// (how `X-Raft-Error` headers become errors again). Unknown text -> nullopt.
bool errc_from_message(std::string_view message, errc& out) noexcept;

// The library's result type: a value or a std::error_code. Never throws
// unless the caller asks for `.value()` of an error.
template <class T>
using result = boost::system::result<T, std::error_code>;

}  // namespace raft

template <>
struct std::is_error_code_enum<raft::errc> : std::true_type {};
