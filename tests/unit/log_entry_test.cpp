#include <raft/log_entry.hpp>

#include <gtest/gtest.h>

#include <random>

namespace raft {
namespace {

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

// DESIGN 4.1 and the seed's encoder test: the exact bytes.
TEST(LogEntryEncoder, EncodesTheDesignExampleExactly) {
  LogEntry e{LogEntryType::command, 2, 3, std::string("\x04\x05\x06", 3)};
  std::string out;
  StringWriter w(out);
  LogEntryEncoder enc(w);
  ASSERT_TRUE(enc.encode(e));
  EXPECT_EQ(hex(out),
            "0000000000000003"
            "0000000000000002"
            "0000000000000003"
            "040506");
  std::string fast;
  encode_entry(fast, e);
  EXPECT_EQ(fast, out);
}

TEST(LogEntryEncoder, TypeGoesInTheTopByte) {
  LogEntry e{LogEntryType::remove_peer, 1, 1, "x"};
  std::string out;
  encode_entry(out, e);
  EXPECT_EQ(hex(out.substr(0, 8)), "0400000000000001");
  e.type = LogEntryType::config;
  out.clear();
  encode_entry(out, e);
  EXPECT_EQ(hex(out.substr(0, 8)), "fe00000000000001");
}

class LimitedWriter final : public Writer {
 public:
  explicit LimitedWriter(std::size_t cap) : cap_(cap) {}
  result<std::size_t> write(std::span<const std::byte> d) override {
    std::size_t n = std::min(cap_, d.size());
    cap_ -= n;
    return n;
  }

 private:
  std::size_t cap_;
};

TEST(LogEntryEncoder, ShortWriteFails) {
  for (std::size_t cap : {0u, 10u, 24u, 26u}) {
    LimitedWriter w(cap);
    LogEntryEncoder enc(w);
    auto r = enc.encode({LogEntryType::command, 1, 1, "abc"});
    ASSERT_FALSE(r) << cap;
    EXPECT_EQ(r.error(), errc::short_write);
  }
}

TEST(LogEntryDecoder, EndBeforeHeaderIsCleanEnd) {
  StringReader r("");
  LogEntryDecoder dec(r);
  LogEntry e;
  auto res = dec.decode(e);
  ASSERT_TRUE(res);
  EXPECT_FALSE(*res);
}

TEST(LogEntryDecoder, EndInsideHeaderOrDataIsUnexpectedEof) {
  std::string full;
  encode_entry(full, {LogEntryType::command, 7, 9, "hello"});
  for (std::size_t cut = 1; cut < full.size(); ++cut) {
    StringReader r(std::string_view(full).substr(0, cut));
    LogEntryDecoder dec(r);
    LogEntry e;
    auto res = dec.decode(e);
    ASSERT_FALSE(res) << cut;
    EXPECT_EQ(res.error(), errc::unexpected_eof) << cut;
  }
}

TEST(LogEntryDecoder, RefusesOversizedLengthWithoutAllocating) {
  // Claims 2^55 bytes: allocating that would abort the test process.
  std::string in(kEntryHeaderSize, '\0');
  in[1] = '\x80';
  StringReader r(in);
  LogEntryDecoder dec(r, 1024);
  LogEntry e;
  auto res = dec.decode(e);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), errc::entry_too_large);
  EXPECT_EQ(e.data.capacity() < 1024, true);
}

TEST(LogEntryDecoder, AllocatesOnlyForBytesThatArrive) {
  // Found by tests/fuzz/entry_decoder_fuzz.cpp (slow inputs): a 24-byte
  // header declaring the default limit (64 MiB) followed by 3 bytes made the
  // decoder allocate and zero all 64 MiB before finding the input short.
  std::string in(kEntryHeaderSize, '\0');
  const std::uint64_t len = kDefaultMaxEntryBytes;
  for (int i = 0; i < 8; ++i) in[7 - i] = static_cast<char>((len >> (8 * i)) & 0xff);
  in += "abc";
  StringReader r(in);
  LogEntryDecoder dec(r);
  LogEntry e;
  auto res = dec.decode(e);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), errc::unexpected_eof);
  EXPECT_LE(e.data.capacity(), 256u << 10);
}

TEST(LogEntryDecoder, LargeEntryArrivingInPiecesDecodes) {
  std::string in;
  std::string data(3u << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  encode_entry(in, {LogEntryType::command, 4, 2, data});
  StringReader r(in);
  LogEntryDecoder dec(r);
  LogEntry e;
  ASSERT_TRUE(dec.decode(e).value());
  EXPECT_EQ(e.data, data);
  EXPECT_EQ(e.index, 4u);
}

TEST(LogEntryDecoder, LimitIsInclusive) {
  std::string in;
  encode_entry(in, {LogEntryType::command, 1, 1, std::string(100, 'a')});
  StringReader ok(in);
  LogEntryDecoder d1(ok, 100);
  LogEntry e;
  ASSERT_TRUE(d1.decode(e));
  StringReader bad(in);
  LogEntryDecoder d2(bad, 99);
  EXPECT_EQ(d2.decode(e).error(), errc::entry_too_large);
}

TEST(LogEntryDecoder, UnknownTypeIsAProtocolError) {
  std::string in(kEntryHeaderSize, '\0');
  in[0] = '\x0a';  // the first type after leave_joint (9)
  StringReader r(in);
  LogEntryDecoder dec(r);
  LogEntry e;
  EXPECT_EQ(dec.decode(e).error(), errc::protocol_error);
}

TEST(LogEntryCodec, RandomizedRoundTrip) {
  std::mt19937_64 rng(20261128);
  const LogEntryType types[] = {LogEntryType::command,     LogEntryType::nop,          LogEntryType::initialize,
                                LogEntryType::add_peer,    LogEntryType::remove_peer,  LogEntryType::promote_peer,
                                LogEntryType::bind_token,  LogEntryType::demote_peer,  LogEntryType::joint_voters,
                                LogEntryType::leave_joint, LogEntryType::config};
  std::vector<LogEntry> entries;
  std::string buf;
  StringWriter w(buf);
  LogEntryEncoder enc(w);
  for (int i = 0; i < 5000; ++i) {
    LogEntry e;
    e.type = types[rng() % std::size(types)];
    e.index = rng();
    e.term = rng();
    std::size_t len = 0;
    switch (rng() % 4) {
      case 0: len = 0; break;
      case 1: len = rng() % 16; break;
      case 2: len = rng() % 4096; break;
      case 3: len = (i % 500 == 0) ? (1u << 20) + rng() % 1000 : rng() % 300; break;
    }
    e.data.resize(len);
    for (auto& c : e.data) c = static_cast<char>(rng());
    ASSERT_TRUE(enc.encode(e));
    entries.push_back(std::move(e));
  }
  StringReader r(buf);
  LogEntryDecoder dec(r);
  for (const auto& want : entries) {
    LogEntry got;
    auto res = dec.decode(got);
    ASSERT_TRUE(res);
    ASSERT_TRUE(*res);
    ASSERT_EQ(got, want);
  }
  LogEntry end;
  auto res = dec.decode(end);
  ASSERT_TRUE(res);
  EXPECT_FALSE(*res);
}

}  // namespace
}  // namespace raft
