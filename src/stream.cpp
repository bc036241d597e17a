#include "raft/detail/stream.hpp"

#include "raft/detail/endian.hpp"

namespace raft::detail {

void encode_frame(std::string& out, std::uint8_t type, std::uint64_t index, std::uint64_t term, std::string_view data) {
  const std::size_t at = out.size();
  out.resize(at + kEntryHeaderSize);
  auto* p = reinterpret_cast<std::byte*>(out.data() + at);
  put_be64(p, (static_cast<std::uint64_t>(type) << 56) | data.size());
  put_be64(p + 8, index);
  put_be64(p + 16, term);
  out.append(data);
}

void encode_snapshot_chunk(std::string& out, std::string_view data) {
  std::byte len[8];
  put_be64(len, data.size());
  out.append(reinterpret_cast<const char*>(len), 8);
  out.append(data);
}

result<void> StreamParser::feed(std::string_view in, const std::function<result<void>(const StreamEvent&)>& on_event) {
  // Fast path would avoid the copy; the copy keeps the parser simple and the
  // data contiguous for the callback. Consumed bytes are dropped below.
  buf_.append(in);
  for (;;) {
    std::string_view avail(buf_.data() + off_, buf_.size() - off_);
    if (in_snapshot_) {
      if (in_chunk_) {
        if (avail.empty()) break;
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, avail.size()));
        StreamEvent ev{};
    ev.kind = StreamEvent::Kind::snapshot_data;
        ev.data = avail.substr(0, n);
        if (auto r = on_event(ev); !r) return r;
        off_ += n;
        chunk_left_ -= n;
        if (chunk_left_ == 0) in_chunk_ = false;
        continue;
      }
      if (avail.size() < 8) break;
      const std::uint64_t len = get_be64(reinterpret_cast<const std::byte*>(avail.data()));
      off_ += 8;
      if (len == 0) {
        in_snapshot_ = false;
        StreamEvent ev{};
    ev.kind = StreamEvent::Kind::snapshot_end;
        if (auto r = on_event(ev); !r) return r;
      } else {
        in_chunk_ = true;
        chunk_left_ = len;
      }
      continue;
    }
    if (avail.size() < kEntryHeaderSize) break;
    const EntryHeader h = decode_entry_header(reinterpret_cast<const std::byte*>(avail.data()));
    if (h.data_length > max_) return errc::entry_too_large;
    const bool known = is_valid_entry_type(h.type) || h.type == kFramePosition || h.type == kFrameSnapshot ||
                       h.type == kFrameCommit;
    if (!known) return errc::protocol_error;
    if (avail.size() < kEntryHeaderSize + h.data_length) break;
    StreamEvent ev{};
    ev.kind = StreamEvent::Kind::entry;
    ev.index = h.index;
    ev.term = h.term;
    ev.data = avail.substr(kEntryHeaderSize, h.data_length);
    if (h.type == kFrameConfig) {
      ev.kind = StreamEvent::Kind::config;
    } else if (h.type == kFramePosition) {
      if (h.data_length != 0) return errc::protocol_error;
      ev.kind = StreamEvent::Kind::position;
    } else if (h.type == kFrameCommit) {
      if (h.data_length != 0) return errc::protocol_error;
      ev.kind = StreamEvent::Kind::commit;
    } else if (h.type == kFrameSnapshot) {
      ev.kind = StreamEvent::Kind::snapshot_begin;
    } else {
      ev.type = static_cast<LogEntryType>(h.type);
    }
    if (auto r = on_event(ev); !r) return r;
    off_ += kEntryHeaderSize + h.data_length;
    if (ev.kind == StreamEvent::Kind::snapshot_begin) in_snapshot_ = true;
  }
  // Drop consumed bytes once they dominate the buffer (amortized O(1)).
  if (off_ > 0 && off_ * 2 >= buf_.size()) {
    buf_.erase(0, off_);
    off_ = 0;
  }
  return {};
}

}  // namespace raft::detail
