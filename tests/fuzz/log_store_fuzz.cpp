// Fuzz target: LogStore::open recovery (DESIGN 6) over a MemoryFilesystem
// whose log directory holds segment files made of the input.
//
// Input: byte 0 is flags:
//   bits 0-1  entry_size_bytes_max: 64 MiB, 16, 256, 4096
//   bit 2     the last piece is `reset.tmp` instead of a segment
//   bit 3     name each segment one past its header's first index (a
//             name/header mismatch, which must be corruption)
//   bit 4     segment_size_bytes_max 200 for the append after open
//   bit 5     recompute the segment header and record CRCs before writing,
//             so that the fuzzer reaches the checks behind the checksums
//   bit 6     preallocate segments (with segments of at most 16 KiB, so the
//             zeros stay small) for the append after open
//   bit 7     the last segment (the last two, with 3 pieces or more) is
//             named `<first>.seg.pending`: a segment whose predecessor's seal
//             a crash interrupted (log_store.cpp, SEALING)
// The rest is split at "%SEG" into files (none if it is empty). A file is named after the first
// index in its header (bytes 12..19), or one past the previous name when it
// is too short to have one.
//
// Invariants beyond "no crash":
// * open() either succeeds or fails with log_corrupt; on failure no segment
//   that could hold entries (>= 32 bytes, header not all zeros: a zero
//   header is a torn creation) is removed or changed (unless a reset.tmp
//   was there to finish);
// * on success: prev_index() + 1 == first_index(), the entries
//   [first_index(), last_index()] read back with contiguous indexes,
//   non-decreasing terms no lower than prev_term(), valid types, data within
//   entry_size_bytes_max, term_at() agreeing; every segment file is a prefix
//   of its input (recovery only cuts a torn tail: bytes after a bad record,
//   zeros, or everything from a page never written) and equals its header plus
//   the records of its entries re-encoded from the format's description; a
//   pending segment was either adopted (renamed to its final name, a prefix
//   of its input like any segment) or removed: none is left;
// * recovery is idempotent: after appending one entry, a reopen warns about
//   nothing and finds that entry.
#include "fs_util.hpp"
#include "raft/detail/crc32c.hpp"
#include "raft/detail/endian.hpp"
#include "raft/storage/log_store.hpp"

#include <fmt/format.h>

#include <vector>

namespace {

using namespace raft;
constexpr std::size_t kSegHeader = 32;

bool zero_header(const std::string& file) {
  return file.size() >= kSegHeader && file.find_first_not_of('\0') >= kSegHeader;
}
constexpr std::size_t kRecHeader = 25;
constexpr std::string_view kSeparator = "%SEG";
constexpr std::uint64_t kEntryMax[4] = {kDefaultMaxEntryBytes, 16, 256, 4096};

void fix_crcs(std::string& f) {
  auto* b = reinterpret_cast<std::byte*>(f.data());
  if (f.size() < kSegHeader) return;
  detail::put_be32(b + 28, detail::crc_mask(detail::crc32c(0, b, 28)));
  for (std::size_t off = kSegHeader; off + kRecHeader <= f.size();) {
    const std::uint64_t len = detail::get_be32(b + off + 4);
    if (off + kRecHeader + len > f.size()) break;
    detail::put_be32(b + off, detail::crc_mask(detail::crc32c(0, b + off + 8, 17 + len)));
    off += kRecHeader + len;
  }
}

// A record as DESIGN 6 describes it.
void encode_record(std::string& out, const LogEntry& e) {
  std::byte h[kRecHeader];
  detail::put_be32(h + 4, static_cast<std::uint32_t>(e.data.size()));
  h[8] = static_cast<std::byte>(e.type);
  detail::put_be64(h + 9, e.index);
  detail::put_be64(h + 17, e.term);
  const std::uint32_t crc = detail::crc32c(detail::crc32c(0, h + 8, 17), e.data.data(), e.data.size());
  detail::put_be32(h, detail::crc_mask(crc));
  out.append(reinterpret_cast<const char*>(h), kRecHeader);
  out.append(e.data);
}

bool seg_first(const std::string& name, std::uint64_t& first) {
  if (name.size() != 24 || name.substr(20) != ".seg") return false;
  first = 0;
  for (int i = 0; i < 20; ++i) first = first * 10 + static_cast<std::uint64_t>(name[static_cast<std::size_t>(i)] - '0');
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t flags = in.byte();
  std::string_view rest = in.rest();
  std::vector<std::string> pieces;
  while (!rest.empty()) {
    const auto at = rest.find(kSeparator);
    pieces.emplace_back(rest.substr(0, at));
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + kSeparator.size());
    if (rest.empty()) pieces.emplace_back();
  }
  if (pieces.size() > 8) pieces.resize(8);  // enough to reach every rule
  const bool reset = (flags & 4) && pieces.size() > 1;

  storage::MemoryFilesystem fs;
  const std::string dir = "log";
  FUZZ_CHECK(fs.mkdir(dir).has_value(), "mkdir");
  std::map<std::string, std::string> input;
  std::uint64_t name = 0;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    std::string& p = pieces[i];
    if (flags & 32) fix_crcs(p);
    if (reset && i + 1 == pieces.size()) {
      input["reset.tmp"] = p;
      break;
    }
    name = p.size() >= 20 ? detail::get_be64(reinterpret_cast<const std::byte*>(p.data()) + 12) : name + 1;
    if (flags & 8) name += 1;
    const std::size_t segments = pieces.size() - (reset ? 1 : 0);
    const bool pending = (flags & 128) && i + (segments >= 3 ? 2 : 1) >= segments;
    input[fmt::format("{:020}.seg{}", name, pending ? ".pending" : "")] = p;
  }
  for (const auto& [n, bytes] : input) fuzz::put_file(fs, dir, n, bytes);

  storage::LogStoreOptions opts;
  opts.entry_size_bytes_max = kEntryMax[flags & 3];
  if (flags & 16) opts.segment_size_bytes_max = 200;
  opts.preallocate = (flags & 64) != 0;
  if (opts.preallocate && !(flags & 16)) opts.segment_size_bytes_max = 16 << 10;
  auto st = storage::LogStore::open(fs, dir, opts);
  const auto after = fuzz::get_dir(fs, dir);
  if (!st) {
    FUZZ_CHECK(st.error() == errc::log_corrupt, "open failed with %s", st.error().message().c_str());
    if (!reset) {
      for (const auto& [n, bytes] : input) {
        if (bytes.size() < kSegHeader || zero_header(bytes)) continue;
        auto it = after.find(n);
        FUZZ_CHECK(it != after.end() && it->second == bytes, "failed open changed or removed %s", n.c_str());
      }
    }
    return 0;
  }

  storage::LogStore& s = **st;
  FUZZ_CHECK(s.prev_index() + 1 == s.first_index(), "prev_index %llu, first_index %llu",
             static_cast<unsigned long long>(s.prev_index()), static_cast<unsigned long long>(s.first_index()));
  FUZZ_CHECK(s.first_index() >= 1, "log starts at index 0");
  FUZZ_CHECK(s.last_index() >= s.prev_index(), "last_index %llu below prev_index %llu",
             static_cast<unsigned long long>(s.last_index()), static_cast<unsigned long long>(s.prev_index()));
  FUZZ_CHECK(s.durable_index() == s.last_index(), "recovered entries not durable");
  FUZZ_CHECK(s.term_at(s.prev_index()).value() == s.prev_term(), "term_at(prev_index)");
  std::vector<LogEntry> entries;
  if (s.last_index() >= s.first_index()) {
    auto r = s.read(s.first_index(), s.last_index(), SIZE_MAX);
    FUZZ_CHECK(r.has_value(), "read of the recovered log: %s", r.error().message().c_str());
    entries = std::move(*r);
    FUZZ_CHECK(entries.size() == s.last_index() - s.first_index() + 1, "read %zu entries", entries.size());
  }
  std::uint64_t term = s.prev_term();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const LogEntry& e = entries[i];
    FUZZ_CHECK(e.index == s.first_index() + i, "entry %zu has index %llu", i, static_cast<unsigned long long>(e.index));
    FUZZ_CHECK(e.term >= term, "term decreases at index %llu", static_cast<unsigned long long>(e.index));
    FUZZ_CHECK(is_valid_entry_type(static_cast<std::uint8_t>(e.type)), "type %d", static_cast<int>(e.type));
    FUZZ_CHECK(e.data.size() <= opts.entry_size_bytes_max, "entry of %zu bytes", e.data.size());
    FUZZ_CHECK(s.term_at(e.index).value() == e.term, "term_at disagrees with the entry");
    term = e.term;
  }
  FUZZ_CHECK(s.last_term() == term, "last_term");

  // Every segment file: a prefix of its input; header + re-encoded records.
  std::vector<std::pair<std::uint64_t, std::string>> segs;
  for (const auto& [n, bytes] : after) {
    FUZZ_CHECK(n.size() < 8 || n.substr(n.size() - 8) != ".pending", "%s left after recovery", n.c_str());
    std::uint64_t first;
    if (!seg_first(n, first)) continue;
    if (!reset) {
      // A segment shorter than its header, or whose header is all zeros, is
      // a torn creation: recovery may remove it, and then create the first
      // segment afresh. A pending one of the same name may be adopted in its
      // place.
      const auto fin = input.find(n), pend = input.find(n + ".pending");
      auto torn = [&](auto it) { return it == input.end() || it->second.size() < kSegHeader || zero_header(it->second); };
      // (A named reference: clang before 16 cannot capture a structured binding.)
      const std::string& now = bytes;
      auto prefix = [&](auto it) { return it != input.end() && it->second.substr(0, now.size()) == now; };
      FUZZ_CHECK(fin != input.end() || pend != input.end() || (n == "00000000000000000001.seg" && bytes.size() == kSegHeader),
                 "recovery created %s", n.c_str());
      if (!torn(fin))
        FUZZ_CHECK(prefix(fin), "%s is not a prefix of its input", n.c_str());
      else
        FUZZ_CHECK(bytes.size() == kSegHeader || prefix(fin) || (!torn(pend) && prefix(pend)),
                   "%s replaced by more than a fresh header or its adopted pending segment", n.c_str());
    }
    segs.emplace_back(first, bytes);
  }
  FUZZ_CHECK(!segs.empty() && segs.front().first == s.first_index(), "first segment");
  for (std::size_t k = 0; k < segs.size(); ++k) {
    const auto& [first, bytes] = segs[k];
    // Entries in this segment, counted (index 2^64-1 + 1 would wrap).
    const std::uint64_t last = k + 1 < segs.size() ? segs[k + 1].first - 1 : s.last_index();
    FUZZ_CHECK(first >= s.first_index() && last >= first - 1, "segment order");  // first >= 1
    std::string expect = bytes.substr(0, kSegHeader);
    for (std::uint64_t n = 0; n < last - (first - 1); ++n) encode_record(expect, entries[first + n - s.first_index()]);
    FUZZ_CHECK(expect == bytes, "segment %llu is not its header and records", static_cast<unsigned long long>(first));
  }

  // Idempotent recovery: append, close, reopen without a warning.
  if (s.last_index() == UINT64_MAX) return 0;
  LogEntry next{LogEntryType::command, s.last_index() + 1, std::max<std::uint64_t>(term, 1), "after recovery"};
  FUZZ_CHECK(s.append(std::span(&next, 1)).has_value(), "append after recovery");
  FUZZ_CHECK(s.sync().value() == next.index, "sync after recovery");
  const std::uint64_t first = s.first_index();
  st->reset();
  std::string warned;
  opts.warn = [&](const std::string& w) { warned += w + "\n"; };
  auto again = storage::LogStore::open(fs, dir, opts);
  FUZZ_CHECK(again.has_value(), "reopen failed: %s", again.error().message().c_str());
  FUZZ_CHECK(warned.empty(), "second recovery warned: %s", warned.c_str());
  FUZZ_CHECK((*again)->first_index() == first && (*again)->last_index() == next.index, "reopen lost entries");
  FUZZ_CHECK((*again)->entry(next.index).value() == next, "appended entry differs after reopen");
  return 0;
}
