#pragma once

namespace raft {
inline constexpr int kVersionMajor = 0;
inline constexpr int kVersionMinor = 1;
inline constexpr int kVersionPatch = 0;
inline const char* version() noexcept { return "0.1.0"; }
}  // namespace raft
