// A consumer of raft::raft: encodes an entry and checks the exact bytes.
#include <raft/raft.hpp>

#include <cstdio>
#include <string>

int main() {
  raft::LogEntry e{raft::LogEntryType::command, 2, 3, std::string("\x04\x05\x06", 3)};
  std::string out;
  raft::encode_entry(out, e);
  const std::string want = std::string(7, '\0') + "\x03" + std::string(7, '\0') + "\x02" +
                           std::string(7, '\0') + "\x03" + "\x04\x05\x06";
  if (out != want) {
    std::puts("consumer: wrong encoding");
    return 1;
  }
  std::printf("consumer: ok, %zu bytes, raft %s\n", out.size(), raft::version());
  return 0;
}
