// RAFT_ASSERT: a broken invariant is a bug, and the only safe reaction to a
// bug in a consensus library is to stop (what the Go package did with panic).
// Always on, also in release builds: the checks guard data, not speed.
#pragma once

namespace raft::detail {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept;
}

#define RAFT_ASSERT(expr, msg)                                              \
  do {                                                                      \
    if (!(expr)) ::raft::detail::assert_fail(#expr, __FILE__, __LINE__, msg); \
  } while (0)
