// The state machine a Log applies committed entries to (the user implements it).
#pragma once

#include "raft/error.hpp"
#include "raft/io.hpp"
#include "raft/log_entry.hpp"

#include <cstdint>

namespace raft {

// Contract, as in the Go package ("the FSM must maintain the highest index
// that it has seen"), plus what durability and snapshots need:
//
// * must_apply() receives every committed entry exactly once, in index order,
//   from one thread at a time (the Log's apply executor). Only entries of type
//   `command` carry user data. Nop, Initialize, AddPeer and RemovePeer entries
//   are handled by the library (membership, leadership); they reach the FSM
//   only so that it can record their index, and it must not interpret them.
// * index() returns the highest index the FSM has applied and kept (an
//   in-memory FSM returns 0 after a restart; the Log then restores the latest
//   snapshot and replays the log after it). The Log resumes at index() + 1.
// * snapshot(w) writes the FSM's whole state and returns the index it
//   covers. It runs on the apply executor between two must_apply calls, so
//   it sees a consistent state, but it holds up applying (never elections,
//   heartbeats or replication, which run elsewhere) for its duration: a large
//   FSM should take a copy-on-write view and return quickly.
// * restore(r) replaces the whole state with a snapshot's bytes; afterwards
//   index() must return the snapshot's index.
// * Errors the FSM cannot handle (disk failure) must abort the process, as
//   "must" says: the Log cannot skip an entry.
class FSM {
 public:
  virtual ~FSM() = default;
  virtual void must_apply(const LogEntry& entry) = 0;
  virtual std::uint64_t index() = 0;
  virtual result<std::uint64_t> snapshot(Writer& w) = 0;
  virtual result<void> restore(Reader& r) = 0;
};

}  // namespace raft
