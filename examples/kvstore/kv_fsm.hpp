// The state machine of the example service `raft-kv`: a replicated map from
// byte-string keys to byte-string values.
//
// ## Command encoding (version 1)
//
// A command is the `data` of a LogEntry of type `command`. All integers are
// big-endian; `str` is `u32 length | bytes`.
//
//   u8  version            1
//   u8  op                 1 PUT, 2 CAS, 3 DELETE, 4 READ
//   str key                1 .. kMaxKeyBytes bytes
//   PUT:    str value                        value <= kMaxValueBytes
//   CAS:    u8 has_prev (0 or 1) [str prev]  has_prev 0: "only if absent"
//           str value
//   DELETE: (nothing more)
//   READ:   (nothing more)   a barrier: changes nothing, its outcome carries
//                            the value at its place in the log (a read
//                            through the log; raft-kv's GET now uses
//                            Log::read_barrier instead, and the FSM still
//                            applies READ entries already in a log).
//
// Nothing may follow the last field. decode_command() checks every length
// against the input and the limits before copying, and rejects unknown
// versions, ops, flags and trailing bytes: bad bytes are an error, never UB.
//
// ## Snapshot format (version 1)
//
//   "RKVS" | u32 version 1 | u64 applied index | u64 record count
//   count records: u32 key_length | u32 value_length | key | value,
//                  keys strictly increasing (so duplicates are corruption)
//   u32 masked crc32c of every byte above | "RKVE"
//   end of input (anything after the trailer is corruption)
//
// The writer emits it in chunks of at most kSnapshotChunkBytes (plus one
// record if a single record is larger); the reader never allocates more than
// one record at a time, bounded by the key and value limits.
#pragma once

#include <raft/error.hpp>
#include <raft/fsm.hpp>
#include <raft/io.hpp>
#include <raft/log_entry.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>

namespace kvstore {

inline constexpr std::size_t kMaxKeyBytes = 1024;          // keys are 1 .. 1 KiB
inline constexpr std::size_t kMaxValueBytes = 1u << 20;    // values are 0 .. 1 MiB
inline constexpr std::uint8_t kCommandVersion = 1;
inline constexpr std::uint32_t kSnapshotVersion = 1;
inline constexpr std::size_t kSnapshotChunkBytes = 64u << 10;
// How many recent outcomes result_of() can still answer (by count of applied
// commands). The service normally consumes outcomes through on_applied.
inline constexpr std::size_t kDefaultOutcomeRetention = 4096;

enum class Op : std::uint8_t { put = 1, cas = 2, del = 3, read = 4 };
std::string_view to_string(Op op) noexcept;

struct Command {
  Op op = Op::put;
  std::string key;
  // CAS only: the expected current value; nullopt means "only if absent".
  std::optional<std::string> prev;
  // PUT and CAS: the new value.
  std::string value;

  static Command put(std::string k, std::string v) { return {Op::put, std::move(k), std::nullopt, std::move(v)}; }
  static Command cas(std::string k, std::optional<std::string> p, std::string v) {
    return {Op::cas, std::move(k), std::move(p), std::move(v)};
  }
  static Command del(std::string k) { return {Op::del, std::move(k), std::nullopt, {}}; }
  static Command read(std::string k) { return {Op::read, std::move(k), std::nullopt, {}}; }

  friend bool operator==(const Command&, const Command&) = default;
};

// Why a command cannot be encoded (empty or oversized key or value), as a
// one-line reason for an HTTP 400 answer; empty when the command is valid.
std::string_view validate(const Command& c) noexcept;

// errc::invalid_argument if validate() objects.
raft::result<std::string> encode_command(const Command& c);
// errc::invalid_argument for anything but a well-formed version-1 command.
raft::result<Command> decode_command(std::string_view bytes);

// What applying one committed command did, for the client that proposed it.
struct Outcome {
  enum class Status : std::uint8_t {
    ok,          // PUT, DELETE, READ, and a CAS that swapped
    cas_failed,  // CAS whose expectation did not hold; nothing changed
    invalid,     // the entry's bytes did not decode; nothing changed
  };
  Op op = Op::put;
  Status status = Status::ok;
  // The key's value just before this command (for READ: the value read);
  // nullopt if the key was absent (or the command was invalid).
  std::optional<std::string> previous;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

class KvFsm final : public raft::FSM {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  // Called on the applying thread after each applied command (not for other
  // entry types), after the state is visible to get(). Must not call
  // must_apply/restore; may call get(), index(), result_of().
  using AppliedCallback = std::function<void(std::uint64_t index, const Outcome&)>;

  explicit KvFsm(std::size_t outcome_retention = kDefaultOutcomeRetention);

  // --- raft::FSM ---
  // Applies `command` entries (a command that does not decode is recorded as
  // Status::invalid and changes nothing); other types only advance index().
  // An entry at or below index() is a replay and is ignored (index() never
  // goes backwards). A gap (index > index() + 1) means the Log skipped
  // committed entries: a bug, so RAFT_ASSERT aborts.
  void must_apply(const raft::LogEntry& entry) override;
  std::uint64_t index() override { return index_.load(std::memory_order_acquire); }
  // Safe to call from any thread, also while must_apply runs elsewhere: it
  // takes a copy-on-write reference to the current map under the lock (O(1))
  // and streams it with no lock held. Returns the index the snapshot covers.
  raft::result<std::uint64_t> snapshot(raft::Writer& w) override;
  // Reads a whole snapshot into a new map; only if it validates completely
  // does it replace the state (and index() becomes its index). On error the
  // old state and index are untouched. Outcomes recorded so far are dropped:
  // a proposer whose index the snapshot covers learns only that it applied.
  raft::result<void> restore(raft::Reader& r) override;

  // --- service side (any thread) ---
  std::optional<std::string> get(std::string_view key) const;
  std::size_t size() const;
  // The outcome of the command applied at `index`, while it is among the
  // last `outcome_retention` applied commands; nullopt otherwise.
  std::optional<Outcome> result_of(std::uint64_t index) const;
  // Replaces the callback; call before applying starts.
  void on_applied(AppliedCallback cb);

 private:
  Outcome apply_command(std::string_view data);
  // Makes map_ exclusively ours before mutating it (copy-on-write). Caller
  // holds mu_ exclusively.
  Map& mutable_map();

  mutable std::shared_mutex mu_;
  // Invariant: replaced, never mutated, while another reference exists (a
  // snapshot in progress holds one). Guarded by mu_.
  std::shared_ptr<Map> map_;
  // Last applied index; written under mu_ (exclusive), readable lock-free.
  std::atomic<std::uint64_t> index_{0};
  // (index, outcome) of the most recent applied commands, oldest first.
  // Guarded by mu_.
  std::deque<std::pair<std::uint64_t, Outcome>> outcomes_;
  std::size_t outcome_retention_;
  AppliedCallback on_applied_;
};

}  // namespace kvstore
