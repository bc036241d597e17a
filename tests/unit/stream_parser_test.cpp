// detail::StreamParser (DESIGN 4.2): the follower's view of the stream. The
// transport hands bytes in whatever pieces TCP delivered; the events must
// not depend on where the pieces were cut, and a frame over the limit must
// be refused from its header alone.
#include <raft/detail/stream.hpp>
#include <raft/log_entry.hpp>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace raft::test {
namespace {

using detail::StreamEvent;
using K = StreamEvent::Kind;

// One event as a comparable string; snapshot bytes, which arrive in pieces,
// are merged into the preceding snapshot_data record.
struct Recorder {
  std::vector<std::string> events;
  result<void> operator()(const StreamEvent& ev) {
    if (ev.kind == K::snapshot_data && !events.empty() && events.back().rfind("data:", 0) == 0) {
      events.back().append(ev.data);
      return {};
    }
    std::string s = ev.kind == K::snapshot_data ? "data:" : std::to_string(static_cast<int>(ev.kind)) + "/" +
                                                               std::to_string(static_cast<int>(ev.type)) + "/" +
                                                               std::to_string(ev.index) + "/" + std::to_string(ev.term) + ":";
    s.append(ev.data);
    events.push_back(std::move(s));
    return {};
  }
};

// A stream with every kind of unit, entries of sizes around the header size
// and larger than a typical read, and a snapshot in uneven chunks.
std::string sample_stream() {
  std::string w;
  detail::encode_frame(w, detail::kFrameConfig, 3, 2, R"({"clusterID":1,"index":3,"maxNodeID":2,"nodes":[]})");
  detail::encode_frame(w, detail::kFramePosition, 3, 2, {});
  std::uint64_t index = 4;
  for (std::size_t n : {0u, 1u, 23u, 24u, 25u, 300u, 70000u, 5u})
    encode_entry(w, LogEntry{LogEntryType::command, index++, 2, std::string(n, static_cast<char>('a' + n % 26))});
  detail::encode_frame(w, detail::kFrameCommit, index - 1, 2, {});
  detail::encode_frame(w, detail::kFrameSnapshot, 100, 3, R"({"clusterID":1,"index":100,"maxNodeID":2,"nodes":[]})");
  for (std::size_t n : {1u, 4096u, 7u, 30000u}) detail::encode_snapshot_chunk(w, std::string(n, static_cast<char>('0' + n % 10)));
  detail::encode_snapshot_chunk(w, {});
  encode_entry(w, LogEntry{LogEntryType::nop, 101, 3, {}});
  encode_entry(w, LogEntry{LogEntryType::command, 102, 3, "last"});
  return w;
}

std::vector<std::string> parse_in_pieces(const std::string& wire, const std::vector<std::size_t>& cuts) {
  detail::StreamParser p(1 << 20);
  Recorder rec;
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    EXPECT_TRUE(p.feed(std::string_view(wire).substr(at, cut - at), std::ref(rec)));
    at = cut;
  }
  EXPECT_TRUE(p.feed(std::string_view(wire).substr(at), std::ref(rec)));
  EXPECT_TRUE(p.idle());
  return rec.events;
}

TEST(StreamParser, EventsDoNotDependOnWhereTheBytesWereCut) {
  const std::string wire = sample_stream();
  const auto whole = parse_in_pieces(wire, {});
  ASSERT_EQ(whole.size(), 2u + 8u + 1u + 1u + 1u + 1u + 2u);  // config, position, entries, commit, snapshot, data, end, 2 entries
  // Every single cut point in the first 400 bytes and around the big entry.
  for (std::size_t cut = 1; cut < 400; ++cut) ASSERT_EQ(parse_in_pieces(wire, {cut}), whole) << "cut at " << cut;
  for (std::size_t cut = 600; cut < wire.size(); cut += 997) ASSERT_EQ(parse_in_pieces(wire, {cut}), whole) << "cut at " << cut;
  // Byte by byte, and random pieces (seeded).
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < wire.size(); ++i) every.push_back(i);
  EXPECT_EQ(parse_in_pieces(wire, every), whole);
  std::mt19937_64 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = rng() % 64; at < wire.size(); at += 1 + rng() % 3000) cuts.push_back(at);
    if (!cuts.empty() && cuts.front() == 0) cuts.erase(cuts.begin());
    ASSERT_EQ(parse_in_pieces(wire, cuts), whole) << "round " << round;
  }
}

TEST(StreamParser, EntryDataIsDeliveredWithoutBeingCopiedWhenItArrivesWhole) {
  std::string wire;
  encode_entry(wire, LogEntry{LogEntryType::command, 1, 1, "payload"});
  detail::StreamParser p(1 << 20);
  const char* seen = nullptr;
  ASSERT_TRUE(p.feed(wire, [&](const StreamEvent& ev) -> result<void> {
    seen = ev.data.data();
    return {};
  }));
  EXPECT_EQ(seen, wire.data() + kEntryHeaderSize) << "the event should view the caller's bytes";
}

TEST(StreamParser, OversizedFrameIsRefusedFromItsHeader) {
  std::string header;
  detail::encode_frame(header, static_cast<std::uint8_t>(LogEntryType::command), 1, 1, std::string(2000, 'x'));
  header.resize(kEntryHeaderSize);  // only the header arrives: it already says 2000 > 1000
  detail::StreamParser p(1000);
  auto r = p.feed(header.substr(0, 10), [](const StreamEvent&) -> result<void> { return {}; });
  ASSERT_TRUE(r);  // not enough to judge yet
  r = p.feed(header.substr(10), [](const StreamEvent&) -> result<void> { return {}; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::entry_too_large);
}

TEST(StreamParser, CallbackErrorStopsParsing) {
  std::string wire;
  encode_entry(wire, LogEntry{LogEntryType::command, 1, 1, "a"});
  encode_entry(wire, LogEntry{LogEntryType::command, 2, 1, "b"});
  detail::StreamParser p(1 << 20);
  int calls = 0;
  auto r = p.feed(wire, [&](const StreamEvent&) -> result<void> {
    ++calls;
    return errc::protocol_error;
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::protocol_error);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace raft::test
