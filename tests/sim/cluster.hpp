// SimCluster: N raft::Logs on one single-threaded io_context, one
// VirtualClock, the in-memory network and one MemoryFilesystem per node.
// One seed names one execution. Scenarios (scenarios.cpp) drive it through
// the Log's public asynchronous API only.
#pragma once

#include "sim_core.hpp"

#include <raft/log.hpp>
#include <raft/storage/memory_filesystem.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace raft::sim {

struct SimParams {
  std::uint64_t seed = 1;
  int nodes = 0;  // 0: the scenario's default
  int ops = 0;    // 0: the scenario's default
  bool echo_trace = false;
  std::string* capture_trace = nullptr;
  LogOptions::Fault fault = LogOptions::Fault::none;
  bool apply_inline = false;  // LogOptions::apply_inline on every node
  bool lease_reads = false;   // LogOptions::lease_reads on every node, in every scenario
  // Stop a run at its first safety violation (the checks keep running
  // otherwise, so the trace shows what followed).
  bool stop_at_violation = true;
};

// Thrown out of the run loop to end a run early (violation or bound hit).
struct StopRun {};

class SimCluster {
 public:
  explicit SimCluster(const SimParams& p);
  ~SimCluster();
  SimCluster(const SimCluster&) = delete;
  SimCluster& operator=(const SimCluster&) = delete;

  // ---- nodes ----
  int add_node();          // a new slot with an empty filesystem, not started
  void start(int i);       // a new Log incarnation on the slot's filesystem, open()ed
  void crash(int i);       // power cut: unsynced data lost, Log destroyed
  void restart(int i) { start(i); }
  // Clean close and open() again on the SAME Log object and path (unlike
  // crash: nothing is lost, the FSM is kept and the Log resumes after
  // fsm.index()). The close is the asynchronous one (start_close); the
  // simulation runs (strand, apply work, the disk, timers) until it
  // completes, then the node stays closed for `down` (still reachable on the
  // network: a closed Log refuses everything) before open().
  void reopen(int i, Clock::duration down = {});
  void retire(int i);      // removed from the cluster: stopped for good
  bool up(int i) const { return nodes_[static_cast<std::size_t>(i)]->log != nullptr; }
  bool retired(int i) const { return nodes_[static_cast<std::size_t>(i)]->retired; }
  int size() const { return static_cast<int>(nodes_.size()); }
  Log& log(int i) { return *nodes_[static_cast<std::size_t>(i)]->log; }
  const std::string& url(int i) const { return net.url(i); }
  std::vector<int> up_nodes() const;
  std::vector<int> down_nodes() const;  // crashed, not retired

  // ---- cluster set-up ----
  // Node 0 initializes; nodes 1..n-1 join one by one. Liveness failure if
  // that does not finish in time.
  void bootstrap(int n);
  // Starts a new node and joins it through a random up member; returns its
  // slot. `wait`: run until the join returns (ok or not).
  int add_member(bool wait, bool* ok = nullptr, JoinOptions opts = {});
  // Joins the started node `slot` through a random up member (what
  // add_member does after starting it). `state` (if given): first = the
  // join answered, second = it succeeded. `wait`: run until it answers.
  void join(int slot, bool wait, std::shared_ptr<std::pair<bool, bool>> state = nullptr, JoinOptions opts = {});
  // Leader-side remove of node `victim` (by slot). Returns true on success.
  bool remove_member(int victim);

  // ---- clients ----
  // Submits `cmd` to node i; the result is recorded. Returns the op number.
  std::size_t submit(int i);
  std::size_t submit(int i, std::string cmd);
  // Asks node i for a read_index(); a success is checked against what was
  // committed anywhere when it was asked (Checker::read_succeeded). The slot
  // returned is set (true: answered) when this read ends.
  std::shared_ptr<const std::optional<bool>> read(int i);
  std::uint64_t reads_ok() const { return reads_ok_; }
  std::uint64_t reads_done() const { return reads_done_; }
  bool op_done(std::size_t k) const { return ops_[k].done; }
  bool op_ok(std::size_t k) const { return ops_[k].ok; }
  std::size_t pending_ops() const { return pending_; }
  // Applies one command through the current leader, retrying through leader
  // changes, until success or `bound`. Liveness failure if `must`.
  bool apply(Clock::duration bound, bool must = true);

  // ---- time ----
  void run_for(Clock::duration d);
  // Runs until pred() holds (checked after every step) or `bound` passes.
  bool run_until(const std::function<bool()>& pred, Clock::duration bound);
  // The up node that is leader in the highest term, or -1.
  int leader() const;
  // A leader among `among` (every up node if empty) within `bound`, or -1.
  int wait_leader(Clock::duration bound, const std::vector<int>& among = {});

  // ---- faults and the end of a run ----
  void faults_on(bool mild = false);
  void faults_off();
  // Snapshots with small thresholds on every node started from now on (most
  // seeds draw this at random; the snapshot scenarios force it).
  void snapshots_on() { snapshots_ = true; }
  // Nodes started from now on run their FSM calls (apply batches, snapshots,
  // restores) on a third io_context that lags like the slow disk, so a close
  // finds FSM work queued (reopen_in_place). Off by default: the other
  // scenarios keep the apply executor = the Log's io_context (and their
  // seeds their traces).
  void lagging_apply();
  // LogOptions::lease_reads on every node started from now on (default
  // lease_clock_drift 0.1, inside the drifting clocks' +-5 %), but slot
  // `without` (a member configured without it: it promises no vote hold,
  // and leases must not count on it).
  void lease_reads(int without = -1);
  // Liveness: heal everything, restart crashed members, then a leader must
  // be elected and every pending apply settle within 10 election timeouts.
  // Then the final checks: every successful apply is in the committed log of
  // every member.
  void settle();
  // A leader, no pending applies, everything committed and applied on every
  // member, all members following the leader in its term.
  bool quiet();
  // "" unless two up nodes each hold a configuration giving them the same id
  // (both believe they are that member); else which id and nodes.
  std::string duplicate_member_ids();
  void liveness_failure(std::string what);
  void expect(bool cond, std::string what);  // a scenario-specific safety check

  std::vector<int> members() const;  // slots in the current leader's config
  Clock::duration et() const { return election_timeout_; }

  const SimParams params;
  VirtualClock clock;
  Trace trace;
  Checker checker;
  Rng rng;  // the scenario's choices
  SimNetwork net;
  std::string liveness;  // first liveness failure ("" if none)
  std::uint64_t steps = 0;

 private:
  struct Node {
    std::unique_ptr<storage::MemoryFilesystem> fs;
    std::unique_ptr<SimFsm> fsm;
    std::unique_ptr<DriftClock> clock;
    std::unique_ptr<Log> log;
    std::uint32_t drift_permille = 1000;
    bool retired = false;
    bool started = false;
    std::string last_state = "stopped";
    std::uint64_t last_term = 0, last_commit = 0;
    std::uint64_t leader_term = 0, leader_commit = 0;  // as leader, this incarnation
    std::uint64_t incarnation = 0;
  };
  struct Op {
    std::string cmd;
    int slot = 0;
    bool done = false, ok = false;
    std::uint64_t index = 0;
  };
  void check();
  void stop_node(int i, bool retire);
  // Runs storage work (the nodes' log syncs): all that is ready, or with a
  // slow disk at most one handler, one time in three. Whether anything ran.
  bool poll_disk();
  // Runs FSM work queued on apply_io_ (lagging_apply only): all that is
  // ready, or one handler one step in three. Whether anything ran.
  bool poll_apply();

  Clock::duration election_timeout_;
  Rng seed_rng_;  // per-node seeds (fs, Log rand)
  Rng disk_rng_;  // when storage work runs
  bool snapshots_;
  bool drift_;
  // Storage work waits a seed-chosen number of steps, so a crash finds
  // entries written but not yet synced (MemoryFilesystem::crash then keeps
  // some of them, in order or page by page).
  bool slow_disk_;
  bool lagging_apply_ = false;
  bool lease_reads_ = false;
  int lease_without_ = -1;
  bool slow_apply_ = false;
  Rng apply_rng_;  // when apply work runs (lagging_apply only)
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Op> ops_;
  std::size_t pending_ = 0;
  std::uint64_t reads_ = 0, reads_ok_ = 0, reads_done_ = 0;
  std::uint64_t op_serial_ = 0;
  // What dead incarnations may still reference from handlers queued in the
  // io_context: kept until the io_context is gone.
  std::vector<std::unique_ptr<SimFsm>> dead_fsms_;
  std::vector<std::unique_ptr<DriftClock>> dead_clocks_;
  std::uint64_t max_steps_;

  // Declared last: destroyed first, so queued handlers (and the Log
  // internals they keep alive) go before the filesystems and clocks.
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{io_.get_executor()};
  // Every node's storage executor: polled by poll_disk(), not by the crash
  // path, so syncs still queued at a crash never happen.
  boost::asio::io_context disk_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> disk_guard_{disk_io_.get_executor()};
  // The nodes' apply executor with lagging_apply(): polled by poll_apply();
  // the crash path runs what is queued before the power cut takes effect.
  boost::asio::io_context apply_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> apply_guard_{apply_io_.get_executor()};
};

// Scenarios.
using Scenario = void (*)(SimCluster&);
struct ScenarioInfo {
  const char* name;
  Scenario run;
};
const std::vector<ScenarioInfo>& scenarios();

struct RunResult {
  std::vector<std::string> violations;
  std::string liveness;
  Clock::duration virtual_time{};
  std::uint64_t steps = 0;
};
RunResult run_scenario(const ScenarioInfo& s, const SimParams& p);

}  // namespace raft::sim
