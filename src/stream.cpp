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

// Bytes the next unit needs in all, once its header is in `avail`: an entry
// frame's header, then header + data; a snapshot chunk's 8-byte length.
// Validates the header as soon as it is complete, so nothing over the frame
// limit is ever buffered.
result<std::size_t> StreamParser::unit_size(std::string_view avail) const {
  if (in_snapshot_) return std::size_t{8};
  if (avail.size() < kEntryHeaderSize) return kEntryHeaderSize;
  const EntryHeader h = decode_entry_header(reinterpret_cast<const std::byte*>(avail.data()));
  if (auto ec = check(h)) return ec;
  return kEntryHeaderSize + static_cast<std::size_t>(h.data_length);
}

std::error_code StreamParser::check(const EntryHeader& h) const {
  if (h.data_length > max_) return make_error_code(errc::entry_too_large);
  const bool known = is_valid_entry_type(h.type) || h.type == kFramePosition || h.type == kFrameSnapshot ||
                     h.type == kFrameCommit;
  if (!known) return make_error_code(errc::protocol_error);
  return {};
}

// Parses whole units from `avail` (snapshot data in whatever pieces are
// there); returns how many bytes it consumed. What is left is the start of
// a unit that is not complete in `avail`.
result<std::size_t> StreamParser::parse(std::string_view avail,
                                        const std::function<result<void>(const StreamEvent&)>& on_event) {
  std::size_t used = 0;
  for (;;) {
    std::string_view rest = avail.substr(used);
    if (in_chunk_) {
      if (rest.empty()) break;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, rest.size()));
      StreamEvent ev{};
      ev.kind = StreamEvent::Kind::snapshot_data;
      ev.data = rest.substr(0, n);
      if (auto r = on_event(ev); !r) return r.error();
      used += n;
      chunk_left_ -= n;
      if (chunk_left_ == 0) in_chunk_ = false;
      continue;
    }
    if (in_snapshot_) {
      if (rest.size() < 8) break;
      const std::uint64_t len = get_be64(reinterpret_cast<const std::byte*>(rest.data()));
      used += 8;
      if (len == 0) {
        in_snapshot_ = false;
        StreamEvent ev{};
        ev.kind = StreamEvent::Kind::snapshot_end;
        if (auto r = on_event(ev); !r) return r.error();
      } else {
        in_chunk_ = true;
        chunk_left_ = len;
      }
      continue;
    }
    if (rest.size() < kEntryHeaderSize) break;
    const EntryHeader h = decode_entry_header(reinterpret_cast<const std::byte*>(rest.data()));
    if (auto ec = check(h)) return ec;
    const std::size_t size = kEntryHeaderSize + static_cast<std::size_t>(h.data_length);
    if (rest.size() < size) break;
    StreamEvent ev{};
    ev.kind = StreamEvent::Kind::entry;
    ev.index = h.index;
    ev.term = h.term;
    ev.data = rest.substr(kEntryHeaderSize, h.data_length);
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
    if (auto r = on_event(ev); !r) return r.error();
    used += size;
    if (ev.kind == StreamEvent::Kind::snapshot_begin) in_snapshot_ = true;
  }
  return used;
}

result<void> StreamParser::feed(std::string_view in, const std::function<result<void>(const StreamEvent&)>& on_event) {
  // Most bytes are parsed where the transport left them. Only a unit cut by
  // the end of one feed is copied (into buf_), completed from the next feed
  // with just the bytes it lacks, and parsed from there.
  while (!buf_.empty()) {
    auto size = unit_size(buf_);
    if (!size) return size.error();
    if (buf_.size() < *size) {
      const std::size_t take = std::min(*size - buf_.size(), in.size());
      buf_.append(in.substr(0, take));
      in.remove_prefix(take);
      if (buf_.size() < *size) {
        if (in.empty()) return {};
        continue;  // the header is complete now: the unit's full size is known
      }
    }
    auto used = parse(buf_, on_event);
    if (!used) return used.error();
    buf_.erase(0, *used);  // all of it: buf_ held exactly one unit
  }
  auto used = parse(in, on_event);
  if (!used) return used.error();
  buf_.assign(in.substr(*used));
  return {};
}

}  // namespace raft::detail
