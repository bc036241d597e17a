// The smallest useful embedding of raft::Log: a replicated counter.
// Single node here; add an HTTPTransport + raft::Server (see examples/kvstore)
// and join() other nodes for a real cluster.
#include <raft/raft.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>

class Counter final : public raft::FSM {
 public:
  void must_apply(const raft::LogEntry& e) override {
    if (e.type == raft::LogEntryType::command) value += std::stoll(e.data);
    applied = e.index;  // every committed entry, command or not, moves the index
  }
  std::uint64_t index() override { return applied; }
  raft::result<std::uint64_t> snapshot(raft::Writer& w) override {
    if (auto r = raft::write_all(w, std::to_string(value.load())); !r) return r.error();
    return applied.load();
  }
  raft::result<void> restore(raft::Reader& r) override {
    std::string s(32, '\0');
    auto n = raft::read_full(r, std::as_writable_bytes(std::span(s.data(), s.size())));
    if (!n) return n.error();
    value = std::stoll(s.substr(0, *n));
    return {};
  }
  std::atomic<long long> value{0};
  std::atomic<std::uint64_t> applied{0};
};

int main() {
  const auto dir = std::filesystem::temp_directory_path() / "raft-counter-example";
  std::filesystem::remove_all(dir);
  Counter fsm;
  raft::Log log({.url = "http://127.0.0.1:9000", .fsm = &fsm});  // owns its threads
  if (auto r = log.open(dir.string()); !r) return std::printf("open: %s\n", r.error().message().c_str()), 1;
  if (auto r = log.initialize(); !r) return std::printf("initialize: %s\n", r.error().message().c_str()), 1;
  std::uint64_t last = 0;
  for (int i = 1; i <= 100; ++i) {
    auto index = log.apply(std::to_string(i));  // returns once committed
    if (!index) return std::printf("apply: %s\n", index.error().message().c_str()), 1;
    last = *index;
  }
  if (auto r = log.wait(last); !r) return 1;  // returns once the FSM applied it
  std::printf("counter = %lld at index %llu\n", fsm.value.load(), static_cast<unsigned long long>(last));
  // A linearizable read: no log entry, one heartbeat round (none on one node).
  auto r = log.read_barrier();  // returns once the FSM applied the read index
  if (!r) return std::printf("read_barrier: %s\n", r.error().message().c_str()), 1;
  const long long read = fsm.value.load();  // reflects every write completed before read_barrier()
  std::printf("read at index %llu: %lld\n", static_cast<unsigned long long>(*r), read);
  (void)log.close();
  std::filesystem::remove_all(dir);
  return fsm.value == 5050 && read == 5050 && *r >= last ? 0 : 1;
}
