// Fuzz target: detail::StreamParser, the follower's decoder of the leader's
// replication stream (DESIGN 4.2), fed arbitrary bytes at arbitrary split
// points as they arrive from the socket.
//
// Input: byte 0 picks max_frame_bytes, byte 1 seeds the split points, byte 2
// (when >= 0xf0) makes the callback fail at event (byte 2 & 15); the rest is
// the stream.
//
// Invariants beyond "no crash":
// * every frame delivered has data within max_frame_bytes, position and
//   commit frames have none, entry frames have a valid type;
// * round trip: re-encoding the delivered events with encode_frame and
//   encode_snapshot_chunk gives back the input: all of it when the parser
//   ends idle without error, a prefix otherwise; on an error the frame right
//   after that prefix is one the error describes;
// * feeding the same bytes in pieces yields the same events (snapshot data
//   merged) and the same outcome as one feed;
// * an error returned by the callback stops parsing and is returned as is.
#include "fuzz_util.hpp"
#include "raft/detail/stream.hpp"

#include <vector>

namespace {

using raft::detail::StreamEvent;
using raft::detail::StreamParser;
using Kind = StreamEvent::Kind;

struct Ev {
  Kind kind;
  std::uint64_t index, term;
  raft::LogEntryType type;
  std::string data;
  bool operator==(const Ev&) const = default;
};

struct Run {
  std::vector<Ev> events;
  std::error_code error;
  bool idle = false;
};

// Snapshot bytes arrive in pieces that depend on the split; merge them.
void add(std::vector<Ev>& out, const StreamEvent& e) {
  if (e.kind == Kind::snapshot_data && !out.empty() && out.back().kind == Kind::snapshot_data) {
    out.back().data.append(e.data);
    return;
  }
  out.push_back(Ev{e.kind, e.index, e.term, e.type, std::string(e.data)});
}

Run parse(std::uint64_t max, std::string_view in, const std::vector<std::size_t>& cuts, bool merge,
          std::size_t fail_at = SIZE_MAX) {
  Run run;
  StreamParser p(max);
  std::size_t seen = 0;
  auto cb = [&](const StreamEvent& e) -> raft::result<void> {
    if (merge)
      add(run.events, e);
    else
      run.events.push_back(Ev{e.kind, e.index, e.term, e.type, std::string(e.data)});
    if (seen++ == fail_at) return raft::errc::canceled;
    return {};
  };
  std::size_t at = 0;
  for (std::size_t c : cuts) {
    if (auto r = p.feed(in.substr(at, c - at), cb); !r) {
      run.error = r.error();
      return run;
    }
    at = c;
  }
  if (auto r = p.feed(in.substr(at), cb); !r) {
    run.error = r.error();
    return run;
  }
  run.idle = p.idle();
  return run;
}

std::string encode(const std::vector<Ev>& evs, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const Ev& e = evs[i];
    switch (e.kind) {
      case Kind::config: raft::detail::encode_frame(out, raft::detail::kFrameConfig, e.index, e.term, e.data); break;
      case Kind::position: raft::detail::encode_frame(out, raft::detail::kFramePosition, e.index, e.term, e.data); break;
      case Kind::commit: raft::detail::encode_frame(out, raft::detail::kFrameCommit, e.index, e.term, e.data); break;
      case Kind::snapshot_begin:
        raft::detail::encode_frame(out, raft::detail::kFrameSnapshot, e.index, e.term, e.data);
        break;
      case Kind::entry:
        raft::detail::encode_frame(out, static_cast<std::uint8_t>(e.type), e.index, e.term, e.data);
        break;
      case Kind::snapshot_data: raft::detail::encode_snapshot_chunk(out, e.data); break;
      case Kind::snapshot_end: raft::detail::encode_snapshot_chunk(out, {}); break;
    }
  }
  return out;
}

constexpr std::uint64_t kMaxChoices[8] = {0, 1, 8, 24, 100, 1000, 65536, raft::kDefaultMaxEntryBytes};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  raft::fuzz::Input in(data, size);
  const std::uint64_t max = kMaxChoices[in.byte() & 7];
  raft::fuzz::Rng rng(in.byte());
  const std::uint8_t fail_byte = in.byte();
  const std::string_view stream = in.rest();

  // One feed, events exactly as delivered (one per frame or chunk).
  const Run whole = parse(max, stream, {}, false);
  const auto& evs = whole.events;
  for (const Ev& e : evs) {
    if (e.kind == Kind::snapshot_data || e.kind == Kind::snapshot_end) continue;
    FUZZ_CHECK(e.data.size() <= max, "frame of %zu bytes above max %llu", e.data.size(),
               static_cast<unsigned long long>(max));
    if (e.kind == Kind::position || e.kind == Kind::commit) FUZZ_CHECK(e.data.empty(), "data on a control frame");
    if (e.kind == Kind::entry)
      FUZZ_CHECK(raft::is_valid_entry_type(static_cast<std::uint8_t>(e.type)) && e.type != raft::LogEntryType::config,
                 "entry of type %d", static_cast<int>(e.type));
  }
  FUZZ_CHECK(!whole.error || whole.error == raft::errc::entry_too_large || whole.error == raft::errc::protocol_error,
             "unexpected error %s", whole.error.message().c_str());

  // Round trip.
  if (!whole.error && whole.idle) {
    const std::string enc = encode(evs, evs.size());
    FUZZ_CHECK(enc == stream, "re-encoding differs: %s vs %s", raft::fuzz::hex(enc).c_str(),
               raft::fuzz::hex(stream).c_str());
  } else {
    // A trailing snapshot_data event may be a partial chunk.
    std::size_t n = evs.size();
    if (!whole.error && n > 0 && evs[n - 1].kind == Kind::snapshot_data) --n;
    const std::string enc = encode(evs, n);
    FUZZ_CHECK(stream.substr(0, enc.size()) == enc, "re-encoding is not a prefix of the input");
    if (whole.error) {
      FUZZ_CHECK(stream.size() >= enc.size() + raft::kEntryHeaderSize, "error without a complete frame header");
      const auto h = raft::decode_entry_header(reinterpret_cast<const std::byte*>(stream.data() + enc.size()));
      if (whole.error == raft::errc::entry_too_large) {
        FUZZ_CHECK(h.data_length > max, "entry_too_large for a frame of %llu bytes",
                   static_cast<unsigned long long>(h.data_length));
      } else {
        const bool control = h.type == raft::detail::kFramePosition || h.type == raft::detail::kFrameCommit;
        const bool known = raft::is_valid_entry_type(h.type) || control || h.type == raft::detail::kFrameSnapshot;
        FUZZ_CHECK(h.data_length <= max && (!known || (control && h.data_length != 0)),
                   "protocol_error for a valid frame of type %d", h.type);
      }
    }
  }

  // The same bytes in pieces (as the transport hands them over).
  std::vector<std::size_t> cuts;
  for (std::size_t at = 0; at < stream.size();) {
    at += 1 + rng.below(rng.below(4) == 0 ? 64 : 8);
    if (at < stream.size()) cuts.push_back(at);
  }
  std::vector<Ev> merged;
  for (const Ev& e : evs) {
    StreamEvent se{e.kind, e.index, e.term, e.type, e.data};
    add(merged, se);
  }
  const Run split = parse(max, stream, cuts, true);
  FUZZ_CHECK(split.error == whole.error, "split feed: %s, one feed: %s", split.error.message().c_str(),
             whole.error.message().c_str());
  FUZZ_CHECK(split.idle == whole.idle, "split feed idle %d, one feed %d", split.idle, whole.idle);
  FUZZ_CHECK(split.events == merged, "split feed delivered other events");

  // A callback error stops the parser at once.
  if (fail_byte >= 0xf0) {
    const std::size_t k = fail_byte & 15;
    const Run stopped = parse(max, stream, {}, false, k);
    if (k < evs.size()) {
      FUZZ_CHECK(stopped.error == raft::errc::canceled, "callback error not returned");
      FUZZ_CHECK(stopped.events.size() == k + 1, "events after the callback failed");
    } else {
      FUZZ_CHECK(stopped.error == whole.error && stopped.events == evs, "unfailed run differs");
    }
  }
  return 0;
}
