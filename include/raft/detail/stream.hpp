// The replication stream's frames (DESIGN 4.2). Every frame starts with the
// 24-byte entry header of DESIGN 4.1 (u64 type<<56|length, u64 index, u64 term):
//
//   type 254 config    index = config index, term = leader's term, data = JSON.
//                      Always the first frame.
//   type 253 position  index X, term T, no data: "entries that follow start at
//                      X+1; my entry X has term T". The follower checks that
//                      it holds (X, T) (Log Matching, §5.3): if so it drops its
//                      uncommitted suffix after X and reads on; if not it
//                      reconnects asking from an earlier point.
//   type 252 commit    index = the leader's commit index, no data. Sent after
//                      entries (and alone when only the commit moved), so a
//                      follower learns commits without a heartbeat round.
//   type 255 snapshot  index/term = the snapshot's last entry; data = the
//                      config JSON at that index; then the FSM's bytes as
//                      chunks `u64 length | bytes`, ended by a zero length.
//   types 0..4         log entries.
#pragma once

#include "raft/error.hpp"
#include "raft/log_entry.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace raft::detail {

inline constexpr std::uint8_t kFrameCommit = 252;
inline constexpr std::uint8_t kFramePosition = 253;
inline constexpr std::uint8_t kFrameConfig = 254;
inline constexpr std::uint8_t kFrameSnapshot = 255;

void encode_frame(std::string& out, std::uint8_t type, std::uint64_t index, std::uint64_t term, std::string_view data);
void encode_snapshot_chunk(std::string& out, std::string_view data);  // empty data = end

struct StreamEvent {
  enum class Kind { config, position, commit, entry, snapshot_begin, snapshot_data, snapshot_end };
  Kind kind = Kind::entry;
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  LogEntryType type = LogEntryType::command;  // for entries
  std::string_view data;  // entry data, config JSON or snapshot bytes; valid during the callback
};

// Incremental parser: feed() any split of the byte stream. Entry frames whose
// data exceeds max_frame_bytes, unknown types and malformed snapshots are
// protocol errors. Snapshot bytes are passed through in pieces as they
// arrive, so a snapshot of any size needs no more than one feed's memory.
class StreamParser {
 public:
  explicit StreamParser(std::uint64_t max_frame_bytes) : max_(max_frame_bytes) {}
  // The callback may return an error to stop parsing; feed() returns it.
  result<void> feed(std::string_view in, const std::function<result<void>(const StreamEvent&)>& on_event);
  // True when no partial frame is buffered.
  bool idle() const { return buf_.empty() && !in_snapshot_; }

 private:
  result<std::size_t> unit_size(std::string_view avail) const;
  std::error_code check(const EntryHeader& h) const;  // size limit and known type
  result<std::size_t> parse(std::string_view avail, const std::function<result<void>(const StreamEvent&)>& on_event);

  std::uint64_t max_;
  std::string buf_;  // the start of a unit cut by the end of the last feed
  bool in_snapshot_ = false;
  std::uint64_t chunk_left_ = 0;  // bytes left in the current snapshot chunk
  bool in_chunk_ = false;
};

}  // namespace raft::detail
