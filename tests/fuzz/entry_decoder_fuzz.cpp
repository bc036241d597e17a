// Fuzz target: LogEntryDecoder over a Reader (DESIGN 4.1 framing), with
// short reads and an optional read error.
//
// Input: byte 0 picks max_data_bytes, byte 1 the reader's piece sizes,
// byte 2 (when >= 0xc0) the offset after which the reader fails; the rest
// is the byte stream.
//
// Invariants beyond "no crash":
// * every decoded entry has a valid type and data within max_data_bytes;
// * round trip: LogEntryEncoder and encode_entry both re-encode the decoded
//   entries to exactly the bytes consumed, which is the whole input when the
//   decoder reports a clean end;
// * each error is the one the remaining bytes call for: the reader's error,
//   unexpected_eof only for a short header or data, protocol_error only for
//   an unknown type, entry_too_large only for a length above the limit.
#include "fuzz_util.hpp"
#include "raft/log_entry.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

// Hands out at most a few bytes per read; fails once `fail_at` bytes are read.
class ChoppyReader final : public raft::Reader {
 public:
  ChoppyReader(std::string_view in, std::uint64_t seed, std::size_t fail_at)
      : in_(in), rng_(seed), fail_at_(fail_at) {}
  raft::result<std::size_t> read(std::span<std::byte> out) override {
    if (pos_ >= fail_at_) return raft::errc::io_error;
    std::size_t n = std::min({out.size(), in_.size() - pos_, fail_at_ - pos_, 1 + rng_.below(40)});
    if (n) std::memcpy(out.data(), in_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string_view in_;
  raft::fuzz::Rng rng_;
  std::size_t fail_at_;
  std::size_t pos_ = 0;
};

constexpr std::uint64_t kMaxChoices[8] = {0, 1, 3, 16, 100, 4096, 1u << 20, raft::kDefaultMaxEntryBytes};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  raft::fuzz::Input in(data, size);
  const std::uint64_t max = kMaxChoices[in.byte() & 7];
  const std::uint8_t seed = in.byte();
  const std::uint8_t fail_byte = in.byte();
  const std::string_view bytes = in.rest();
  const std::size_t fail_at = fail_byte >= 0xc0 ? (fail_byte & 0x3f) * bytes.size() / 64 : SIZE_MAX;

  ChoppyReader r(bytes, seed, fail_at);
  raft::LogEntryDecoder dec(r, max);
  std::string enc1, enc2;
  raft::StringWriter w(enc1);
  raft::LogEntryEncoder encoder(w);
  for (;;) {
    const std::size_t at = enc1.size();  // where this entry starts
    raft::LogEntry e;
    auto got = dec.decode(e);
    if (got && !*got) {
      FUZZ_CHECK(at == bytes.size(), "clean end at %zu of %zu bytes", at, bytes.size());
      FUZZ_CHECK(fail_at > bytes.size(), "clean end although the reader failed");
      break;
    }
    if (!got) {
      const std::error_code ec = got.error();
      const std::string_view left = bytes.substr(at);
      if (ec == raft::errc::io_error) {
        FUZZ_CHECK(fail_at <= bytes.size(), "io_error from a reader that never failed");
      } else if (ec == raft::errc::unexpected_eof) {
        bool short_input = left.size() < raft::kEntryHeaderSize;
        if (!short_input) {
          const auto h = raft::decode_entry_header(reinterpret_cast<const std::byte*>(left.data()));
          short_input = left.size() - raft::kEntryHeaderSize < h.data_length;
        }
        FUZZ_CHECK(short_input && fail_at > bytes.size(), "unexpected_eof with the data present");
      } else {
        FUZZ_CHECK(left.size() >= raft::kEntryHeaderSize, "%s without a header", ec.message().c_str());
        const auto h = raft::decode_entry_header(reinterpret_cast<const std::byte*>(left.data()));
        if (ec == raft::errc::protocol_error)
          FUZZ_CHECK(!raft::is_valid_entry_type(h.type), "protocol_error for type %d", h.type);
        else if (ec == raft::errc::entry_too_large)
          FUZZ_CHECK(raft::is_valid_entry_type(h.type) && h.data_length > max, "entry_too_large for %llu bytes",
                     static_cast<unsigned long long>(h.data_length));
        else
          FUZZ_CHECK(false, "unexpected error %s", ec.message().c_str());
      }
      break;
    }
    FUZZ_CHECK(raft::is_valid_entry_type(static_cast<std::uint8_t>(e.type)), "decoded type %d",
               static_cast<int>(e.type));
    FUZZ_CHECK(e.data.size() <= max, "decoded %zu bytes above max", e.data.size());
    FUZZ_CHECK(encoder.encode(e).has_value(), "re-encoding failed");
    raft::encode_entry(enc2, e);
    FUZZ_CHECK(enc1 == enc2, "the two encoders disagree");
    FUZZ_CHECK(bytes.substr(at, enc1.size() - at) == std::string_view(enc1).substr(at),
               "entry at %zu re-encodes differently", at);
  }
  return 0;
}
