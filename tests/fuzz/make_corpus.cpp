// Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/),
// mostly valid encodings made by the library's own encoders, so that the
// mutations start from inputs that reach deep into each decoder.
//
//   raft-fuzz-make-corpus tests/fuzz/corpus
//
// Deterministic: running it again rewrites the same files. Inputs found by
// fuzzing (crashes, after their fix) are added by hand next to these, with
// names starting "regress-".
#include "http/common.hpp"
#include "http/handler.hpp"
#include "raft/config.hpp"
#include "raft/detail/stream.hpp"
#include "raft/log_entry.hpp"
#include "raft/storage/log_store.hpp"
#include "raft/storage/memory_filesystem.hpp"
#include "raft/storage/meta_store.hpp"
#include "raft/storage/snapshot_store.hpp"

#include <boost/beast/http/write.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace raft;

fs::path root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string ctl(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

Config sample_config() {
  Config c;
  c.cluster_id = 42;
  c.index = 7;
  (void)c.add_node(1, "http://127.0.0.1:8001");
  (void)c.add_node(2, "http://127.0.0.1:8002");
  (void)c.add_node(5, "https://node-5.example:443/raft");
  return c;
}

std::string read_all(storage::MemoryFilesystem& mfs, const std::string& path) {
  auto f = mfs.open(path, storage::OpenFlags{.read_only = true}).value();
  std::string out(f->size().value(), '\0');
  (void)f->read_at(0, std::as_writable_bytes(std::span(out.data(), out.size())));
  return out;
}

void stream_parser() {
  const std::string cfg = to_json(sample_config());
  std::string s;
  detail::encode_frame(s, detail::kFrameConfig, 7, 3, cfg);
  detail::encode_frame(s, detail::kFramePosition, 10, 2, {});
  encode_entry(s, {LogEntryType::nop, 11, 3, {}});
  encode_entry(s, {LogEntryType::command, 12, 3, "set x=1"});
  encode_entry(s, {LogEntryType::add_peer, 13, 3, "http://127.0.0.1:8004"});
  encode_entry(s, {LogEntryType::remove_peer, 14, 3, std::string("\0\0\0\0\0\0\0\4", 8)});
  detail::encode_frame(s, detail::kFrameCommit, 14, 0, {});
  // A learner's AddPeer (URL, 0, token 0, flag 1) and its promotion.
  encode_entry(s, {LogEntryType::add_peer, 15, 3, std::string("http://127.0.0.1:8005\0\0\0\0\0\0\0\0\0\1", 31)});
  encode_entry(s, {LogEntryType::promote_peer, 16, 3, std::string("\0\0\0\0\0\0\0\5", 8)});
  // A joint change to voters {1, 5} (Log::set_voters) and its C_new.
  encode_entry(s, {LogEntryType::joint_voters, 17, 3, std::string("\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0\5", 16)});
  encode_entry(s, {LogEntryType::leave_joint, 18, 3, {}});
  put("stream_parser", "entries", ctl({7, 1, 0}) + s);
  put("stream_parser", "entries-split-fine", ctl({6, 200, 0}) + s);
  put("stream_parser", "entries-callback-fails", ctl({7, 3, 0xf2}) + s);

  std::string snap;
  detail::encode_frame(snap, detail::kFrameConfig, 7, 3, cfg);
  detail::encode_frame(snap, detail::kFrameSnapshot, 100, 3, cfg);
  detail::encode_snapshot_chunk(snap, "first chunk of the FSM");
  detail::encode_snapshot_chunk(snap, std::string(300, 'z'));
  detail::encode_snapshot_chunk(snap, {});
  encode_entry(snap, {LogEntryType::command, 101, 3, "after the snapshot"});
  put("stream_parser", "snapshot", ctl({7, 9, 0}) + snap);
  put("stream_parser", "snapshot-torn", ctl({7, 9, 0}) + snap.substr(0, snap.size() - 40));
  put("stream_parser", "small-max", ctl({2, 5, 0}) + s);
  put("stream_parser", "empty", ctl({7, 0, 0}));
  std::string bad;
  encode_entry(bad, {LogEntryType::command, 1, 1, "x"});
  bad[0] = static_cast<char>(99);  // unknown type
  put("stream_parser", "unknown-type", ctl({7, 0, 0}) + bad);
}

void entry_decoder() {
  std::string s;
  StringWriter w(s);
  LogEntryEncoder enc(w);
  (void)enc.encode({LogEntryType::initialize, 1, 1, {}});
  (void)enc.encode({LogEntryType::nop, 2, 1, {}});
  (void)enc.encode({LogEntryType::command, 3, 1, std::string("\x04\x05\x06", 3)});
  (void)enc.encode({LogEntryType::add_peer, 4, 2, "http://127.0.0.1:8002"});
  (void)enc.encode({LogEntryType::remove_peer, 5, 2, std::string("\0\0\0\0\0\0\0\2", 8)});
  (void)enc.encode({LogEntryType::config, 6, 2, to_json(sample_config())});
  (void)enc.encode({LogEntryType::promote_peer, 7, 2, std::string("\0\0\0\0\0\0\0\3", 8)});
  (void)enc.encode({LogEntryType::bind_token, 8, 2, std::string("\0\0\0\0\0\0\0\3\0\0\0\0\0\0\1\1", 16)});
  (void)enc.encode({LogEntryType::demote_peer, 9, 2, std::string("\0\0\0\0\0\0\0\3", 8)});
  (void)enc.encode({LogEntryType::joint_voters, 10, 2, std::string("\0\0\0\0\0\0\0\3", 8)});
  (void)enc.encode({LogEntryType::leave_joint, 11, 2, {}});
  put("entry_decoder", "entries", ctl({7, 1, 0}) + s);
  put("entry_decoder", "entries-max-100", ctl({4, 2, 0}) + s);
  put("entry_decoder", "entries-read-error", ctl({7, 3, 0xe0}) + s);
  put("entry_decoder", "truncated", ctl({7, 4, 0}) + s.substr(0, s.size() - 5));
  put("entry_decoder", "design-example", ctl({7, 0, 0}) + std::string("\0\0\0\0\0\0\0\3\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\3\4\5\6", 27));
  put("entry_decoder", "empty", ctl({7, 0, 0}));
  // Declares the default limit (64 MiB) and brings 3 bytes: the decoder
  // used to allocate all 64 MiB up front (fixed; see log_entry_test.cpp).
  std::string huge(kEntryHeaderSize, '\0');
  encode_entry_header(reinterpret_cast<std::byte*>(huge.data()), LogEntryType::command, kDefaultMaxEntryBytes, 1, 1);
  put("entry_decoder", "regress-huge-declared-length", ctl({7, 0, 0}) + huge + "abc");
}

void config() {
  put("config", "sample", ctl({0}) + to_json(sample_config()));
  put("config", "join-tokens", ctl({0}) + R"({"clusterID":1,"index":5,"maxNodeID":3,"nodes":[{"id":1,"url":"a","joinToken":7}],)"
                                        R"("removed":[{"id":3,"url":"c","joinToken":18446744073709551615}]})");
  put("config", "empty-nodes", ctl({0}) + to_json(Config{}));
  {
    Config c = sample_config();
    (void)c.add_node(c.max_node_id + 1, "http://127.0.0.1:8009", 0, true);
    put("config", "learner", ctl({0}) + to_json(c));
  }
  {
    Config c = sample_config();
    (void)c.add_node(c.max_node_id + 1, "http://127.0.0.1:8009", 0, true);
    (void)c.enter_joint({c.max_node_id});  // C_old,new: "outgoingVoters"
    put("config", "joint", ctl({0}) + to_json(c));
  }
  put("config", "learners-only", ctl({0}) + R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":[{"id":1,"url":"a","learner":true}]})");
  put("config", "null-nodes", ctl({0}) + R"({"clusterID":1,"index":0,"maxNodeID":0,"nodes":null})");
  put("config", "duplicate-id", ctl({0}) + R"({"clusterID":1,"index":2,"maxNodeID":3,"nodes":[{"id":3,"url":"a"},{"id":3,"url":"b"}]})");
  put("config", "negative", ctl({0}) + R"({"clusterID":-1,"index":2,"maxNodeID":3,"nodes":[]})");
  {
    Config c = sample_config();
    (void)c.remove_node(c.nodes.back().id);  // a removed member ("removed")
    put("config", "removed", ctl({0}) + to_json(c));
  }
  put("config", "over-max", ctl({1}) + to_json(sample_config()));
  put("config", "escapes", ctl({0}) + R"({"clusterID":18446744073709551615,"index":1e3,"maxNodeID":9,"nodes":[{"id":9,"url":"http://h\u00e9\"\/"}]} )");
}

void meta() {
  storage::MemoryFilesystem mfs;
  auto ms = storage::MetaStore::open(mfs, "d").value();
  (void)ms.save({.id = 3, .term = 17, .voted_for = 2, .cluster_id = 42});
  const std::string file = read_all(mfs, "d/meta");
  put("meta", "valid", ctl({0}) + file);
  put("meta", "valid-with-tmp", ctl({2}) + file);
  std::string bumped = file;
  bumped[27] = 18;  // term 18: the CRC no longer matches unless recomputed
  put("meta", "fixed-crc", ctl({1}) + bumped);
  put("meta", "bad-crc", ctl({0}) + bumped);
  put("meta", "short", ctl({0}) + file.substr(0, 47));
}

// The log directory's files joined as the log_store target expects.
std::string log_dir(storage::MemoryFilesystem& mfs, const std::string& dir) {
  std::string out;
  for (const auto& n : mfs.list(dir).value()) {
    if (!out.empty()) out += "%SEG";
    out += read_all(mfs, dir + "/" + n);
  }
  return out;
}

void log_store() {
  storage::MemoryFilesystem mfs;
  storage::LogStoreOptions o;
  o.segment_size_bytes_max = 200;
  o.preallocate = false;  // files of exactly their records; zero tails are added below
  auto st = storage::LogStore::open(mfs, "log", o).value();
  std::vector<LogEntry> es;
  for (std::uint64_t i = 1; i <= 9; ++i)
    es.push_back({i == 1 ? LogEntryType::initialize : LogEntryType::command, i, i < 5 ? 1u : 2u,
                  std::string(i * 7, static_cast<char>('a' + i))});
  (void)st->append(es);
  (void)st->sync();
  const std::string multi = log_dir(mfs, "log");
  put("log_store", "segments", ctl({0}) + multi);
  put("log_store", "segments-fix-crc", ctl({32}) + multi);
  put("log_store", "segments-small-entries", ctl({2 | 16}) + multi);
  put("log_store", "torn-tail", ctl({0}) + multi.substr(0, multi.size() - 9));
  put("log_store", "misnamed", ctl({8}) + multi);
  // The last segments pending (flag 128): adopted whole, or, with the
  // predecessor's last record torn, removed.
  put("log_store", "pending-adopted", ctl({128}) + multi);
  {
    const auto last_sep = multi.rfind("%SEG");
    const auto prev_sep = multi.rfind("%SEG", last_sep - 1);
    std::string torn = multi;
    if (prev_sep != std::string::npos) torn.erase(last_sep - 5, 5);  // the record before the last pending one
    put("log_store", "pending-after-torn", ctl({128}) + torn);
  }

  // Preallocated space after the last record, as a clean shutdown leaves it
  // (flag 64: the append after open preallocates too).
  put("log_store", "prealloc-zero-tail", ctl({64 | 16}) + multi + std::string(300, '\0'));

  // Unsynced pages written back out of order: records across three pages,
  // the middle page never written, valid records after it (a torn tail).
  {
    storage::MemoryFilesystem big;
    storage::LogStoreOptions ob;
    ob.preallocate = false;
    auto sb = storage::LogStore::open(big, "log", ob).value();
    std::vector<LogEntry> v;
    for (std::uint64_t i = 1; i <= 12; ++i) v.push_back({LogEntryType::command, i, 1, std::string(1000, static_cast<char>('A' + i))});
    (void)sb->append(v);
    (void)sb->sync();
    std::string seg = log_dir(big, "log");
    seg.replace(4096, 4096, std::string(4096, '\0'));
    put("log_store", "unwritten-page", ctl({64}) + seg);
    seg.replace(4096, 4096, std::string(4000, '\0') + std::string(96, 'z'));  // not a whole page: corruption
    put("log_store", "zeros-short-of-page", ctl({0}) + seg);
  }

  storage::MemoryFilesystem one;
  storage::LogStoreOptions o1;
  o1.preallocate = false;
  auto s1 = storage::LogStore::open(one, "log", o1).value();
  (void)s1->append(std::vector<LogEntry>{{LogEntryType::initialize, 1, 1, {}}, {LogEntryType::command, 2, 1, "x"}});
  (void)s1->sync();
  const std::string single = log_dir(one, "log");
  put("log_store", "single", ctl({0}) + single);
  put("log_store", "empty-dir", ctl({0}));

  // A reset log: after reset() the segment is only a header, as reset.tmp is.
  (void)s1->reset(50, 4);
  const std::string header = log_dir(one, "log");
  put("log_store", "reset-tmp", ctl({4}) + single + "%SEG" + header);
  put("log_store", "after-reset", ctl({0}) + header);
}

void snapshot() {
  storage::MemoryFilesystem mfs;
  auto st = storage::SnapshotStore::open(mfs, "s").value();
  auto write = [&](std::uint64_t index, std::uint64_t term, const std::string& bytes) {
    auto sink = st->create(index, term, sample_config()).value();
    (void)write_all(*sink, bytes);
    return read_all(mfs, sink->commit().value().path);
  };
  const std::string full = write(100, 3, "the FSM's state, serialized");
  put("snapshot", "valid", ctl({0}) + full);
  put("snapshot", "valid-fix-crc", ctl({1}) + full);
  put("snapshot", "misnamed", ctl({2}) + full);
  put("snapshot", "half-written", ctl({0}) + full.substr(0, full.size() - 5));
  put("snapshot", "empty-data", ctl({0}) + write(7, 1, ""));
  std::string flipped = full;
  flipped[flipped.size() - 14] ^= 1;  // a data byte: only the reader's CRC check sees it
  put("snapshot", "data-crc-mismatch", ctl({0}) + flipped);
}

std::string request(const std::string& method, const std::string& target, const std::string& extra = {}) {
  return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "Content-Length: 0\r\n\r\n";
}

void http_handler() {
  const std::string cid = "X-Raft-Cluster-ID: 7\r\n";
  put("http_handler", "ping", ctl({0, 0}) + request("GET", "/raft/ping"));
  put("http_handler", "status", ctl({0, 1}) + request("GET", "/raft/status", cid));
  put("http_handler", "metrics", ctl({0, 0}) + request("HEAD", "/raft/metrics"));
  put("http_handler", "join", ctl({0, 1}) + request("POST", "/raft/join?url=http%3A%2F%2F127.0.0.1%3A8002", cid));
  put("http_handler", "join-token",
      ctl({0, 1}) + request("POST", "/raft/join?url=http://127.0.0.1:8002&id=4&joinToken=9876543210", cid));
  put("http_handler", "join-learner",
      ctl({0, 1}) + request("POST", "/raft/join?url=http://127.0.0.1:8002&joinToken=5&learner=1", cid));
  put("http_handler", "join-not-leader", ctl({1, 0}) + request("POST", "/raft/join?url=http://127.0.0.1:8002"));
  put("http_handler", "leave", ctl({2, 1}) + request("POST", "/raft/leave?id=3", "X-Raft-Cluster-ID: 8\r\n"));
  put("http_handler", "heartbeat",
      ctl({0, 0}) + request("POST", "/raft/heartbeat?term=5&commitIndex=10&leaderID=1&leaderURL=http://a:1"));
  put("http_handler", "heartbeat-stale", ctl({4, 0}) + request("POST", "/raft/heartbeat?term=5&commitIndex=0&leaderID=1"));
  put("http_handler", "vote",
      ctl({6, 1}) + request("POST", "/raft/vote?term=6&candidateID=2&lastLogIndex=9&lastLogTerm=5&preVote=1", cid));
  put("http_handler", "ack", ctl({5, 0}) + request("POST", "/raft/ack?id=2&term=6&index=12&url=http://b:2"));
  put("http_handler", "heartbeat-timeout-now",
      ctl({0, 1}) + request("POST", "/raft/heartbeat?term=5&commitIndex=10&leaderID=1&timeoutNow=1", cid));
  put("http_handler", "vote-transfer",
      ctl({0, 0}) + request("POST", "/raft/vote?term=6&candidateID=2&lastLogIndex=9&lastLogTerm=5&transfer=1"));
  put("http_handler", "read-index", ctl({0, 1}) + request("POST", "/raft/readIndex?timeoutMs=250", cid));
  put("http_handler", "read-index-not-leader", ctl({1, 0}) + request("POST", "/raft/readIndex"));
  put("http_handler", "stream", ctl({0, 0}) + request("GET", "/raft/stream?id=2&term=6&index=12&logTerm=5&url=http://b:2"));
  put("http_handler", "stream-http10", ctl({0, 0}) + "GET /raft/stream?id=2&term=6&index=0&logTerm=0 HTTP/1.0\r\n\r\n");
  put("http_handler", "duplicate-param", ctl({0, 0}) + request("POST", "/raft/leave?id=3&id=4"));
  put("http_handler", "wrong-method", ctl({0, 0}) + request("GET", "/raft/vote?term=1"));
  put("http_handler", "not-found", ctl({0, 0}) + request("GET", "/raft/p%69ng/x?"));
  // Bit 7 of the second byte: the Handler wants the token "tok".
  put("http_handler", "auth-ok", ctl({0, 0x81}) + request("POST", "/raft/leave?id=3", cid + "Authorization: Bearer tok\r\n"));
  put("http_handler", "auth-wrong", ctl({0, 0x80}) + request("POST", "/raft/heartbeat?term=5&commitIndex=0&leaderID=1",
                                                              "Authorization: Bearer tol\r\n"));
  put("http_handler", "auth-missing", ctl({0, 0x80}) + request("GET", "/raft/stream?id=2&term=6&index=12&logTerm=5"));
  put("http_handler", "auth-ping", ctl({0, 0x80}) + request("GET", "/raft/ping"));
  // Protocol versions (raft/http.hpp): both this build speaks, another, a
  // malformed one.
  put("http_handler", "protocol-1", ctl({0, 1}) + request("POST", "/raft/ack?id=2&term=6&index=12", cid + "X-Raft-Protocol: 1\r\n"));
  put("http_handler", "protocol-2", ctl({0, 0}) + request("GET", "/raft/stream?id=2&term=6&index=12&logTerm=5&url=http://n2",
                                                             "X-Raft-Protocol: 2\r\n"));
  put("http_handler", "protocol-other", ctl({0, 0}) + request("GET", "/raft/stream?id=2&term=6&index=12&logTerm=5",
                                                                 "X-Raft-Protocol: 3\r\n"));
  put("http_handler", "protocol-bad", ctl({0, 0}) + request("POST", "/raft/heartbeat?term=5&commitIndex=0&leaderID=1",
                                                               "X-Raft-Protocol: 1\r\nX-Raft-Protocol: x\r\n"));
  put("http_handler", "chunked-body", ctl({3, 0}) + "POST /raft/ack?id=1&term=1&index=0 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
}


// Replies as a Server writes them: the Handler answers a request for a
// Service that returns `answer`, and finish_response completes the response
// as a connection does before writing it.
class ReplyService final : public Service {
 public:
  std::variant<std::error_code, JoinResponse, HeartbeatResponse, VoteResponse, std::uint64_t> answer;
  std::string leader_url;
  std::uint64_t cluster_id() const override { return 42; }
  Status status() const override {
    Status s;
    s.leader_url = leader_url;
    return s;
  }
  void handle_join(const JoinRequest&, Handler_fn<JoinResponse> h) override { give(h); }
  void handle_leave(std::uint64_t, Handler_fn<void> h) override { give(h); }
  void handle_heartbeat(const HeartbeatRequest&, Handler_fn<HeartbeatResponse> h) override { give(h); }
  void handle_vote(const VoteRequest&, Handler_fn<VoteResponse> h) override { give(h); }
  void handle_ack(const AckRequest&, Handler_fn<void> h) override { give(h); }
  void handle_read_index(const ReadIndexRequest&, Handler_fn<std::uint64_t> h) override { give(h); }
  void handle_stream(const StreamRequest&, std::shared_ptr<StreamWriter>) override {}

 private:
  template <class T>
  void give(const Handler_fn<T>& h) {
    if (auto* e = std::get_if<std::error_code>(&answer); e && *e) return h(*e);
    if constexpr (std::is_void_v<T>) h(result<void>{});
    else h(std::get<T>(answer));
  }
};

std::string served(ReplyService& svc, const std::string& target, const std::string& cluster_id = {}) {
  http_detail::Request req;
  req.method(boost::beast::http::verb::post);
  req.version(11);
  req.target(target);
  if (!cluster_id.empty()) req.set("X-Raft-Cluster-ID", cluster_id);
  Handler handler(svc);
  std::optional<http_detail::Reply> reply;
  http_detail::handle_request(handler, req, [&](http_detail::Reply r) { reply = std::move(r); });
  http_detail::finish_response(reply->res, req, false);
  std::ostringstream os;
  os << reply->res;
  return os.str();
}

// A stream as a Server sends it: the head, each write as one chunk, and the
// last chunk when `complete`.
std::string chunked_stream(const std::vector<std::string>& writes, bool complete) {
  std::string out(http_detail::kStreamHead);
  for (const auto& w : writes) {
    out += http_detail::chunk_header(w.size());
    out += w;
    out += http_detail::kChunkEnd;
  }
  if (complete) out += http_detail::kLastChunk;
  return out;
}

// Control bytes of the http_reply target: call (0 join, 1 leave, 2
// heartbeat, 3 vote, 4 ack, 5 stream, 6 read index), flags, read-size seed.
void http_reply() {
  enum { join, leave, heartbeat, vote, ack, stream, read_index };
  const std::string hb = "/raft/heartbeat?term=3&commitIndex=1&leaderID=1";
  const std::string vt = "/raft/vote?term=3&candidateID=1&lastLogIndex=4&lastLogTerm=2";
  auto err = [](errc e) { return make_error_code(e); };
  ReplyService svc;

  svc.answer = JoinResponse{2, 1, sample_config()};
  put("http_reply", "join", ctl({join, 0, 1}) + served(svc, "/raft/join?url=http://127.0.0.1:8002"));
  put("http_reply", "join-small-limits", ctl({join, 1, 2}) + served(svc, "/raft/join?url=http://127.0.0.1:8002"));
  svc.answer = err(errc::not_leader);
  svc.leader_url = "http://127.0.0.1:8001/raft";
  put("http_reply", "join-redirect", ctl({join, 0, 3}) + served(svc, "/raft/join?url=http://127.0.0.1:8002"));
  put("http_reply", "leave-redirect", ctl({leave, 0, 4}) + served(svc, "/raft/leave?id=2"));
  svc.leader_url.clear();
  put("http_reply", "join-not-leader", ctl({join, 0, 5}) + served(svc, "/raft/join?url=http://127.0.0.1:8002"));
  svc.answer = err(errc::change_in_progress);
  put("http_reply", "join-change-in-progress", ctl({join, 0, 6}) + served(svc, "/raft/join?url=http://a:1"));
  svc.answer = err(errc::no_leader);
  put("http_reply", "leave-no-leader", ctl({leave, 0, 7}) + served(svc, "/raft/leave?id=2"));
  svc.answer = std::error_code{};
  put("http_reply", "leave", ctl({leave, 0, 8}) + served(svc, "/raft/leave?id=2"));
  put("http_reply", "ack", ctl({ack, 0, 9}) + served(svc, "/raft/ack?id=2&term=3&index=9&url=http://b:2"));
  svc.answer = err(errc::node_url_mismatch);
  put("http_reply", "ack-url-mismatch", ctl({ack, 2, 10}) + served(svc, "/raft/ack?id=2&term=3&index=9&url=http://b:2"));
  svc.answer = std::error_code{};
  put("http_reply", "ack-other-cluster", ctl({ack, 0, 11}) + served(svc, "/raft/ack?id=2&term=3&index=9", "7"));
  put("http_reply", "ack-bad-parameter", ctl({ack, 0, 12}) + served(svc, "/raft/ack?id=0&term=3&index=9"));

  svc.answer = HeartbeatResponse{9, 3, {}, 2};
  put("http_reply", "heartbeat", ctl({heartbeat, 0, 13}) + served(svc, hb));
  svc.answer = HeartbeatResponse{12, 5, err(errc::stale_term)};
  put("http_reply", "heartbeat-stale", ctl({heartbeat, 1, 14}) + served(svc, hb));
  svc.answer = HeartbeatResponse{~0ull, ~0ull, {}, ~0ull};
  put("http_reply", "heartbeat-max", ctl({heartbeat, 0, 15}) + served(svc, hb));
  svc.answer = err(errc::closed);
  put("http_reply", "heartbeat-closed", ctl({heartbeat, 0, 16}) + served(svc, hb));
  svc.answer = VoteResponse{3, {}};
  put("http_reply", "vote-granted", ctl({vote, 0, 17}) + served(svc, vt));
  svc.answer = VoteResponse{4, err(errc::already_voted)};
  put("http_reply", "vote-already-voted", ctl({vote, 0, 18}) + served(svc, vt));
  svc.answer = VoteResponse{6, err(errc::out_of_date_log)};
  put("http_reply", "vote-out-of-date", ctl({vote, 2, 19}) + served(svc, vt));
  svc.answer = err(errc::cluster_id_mismatch);
  put("http_reply", "vote-cluster-mismatch", ctl({vote, 0, 20}) + served(svc, vt));
  svc.answer = std::uint64_t{1234};
  put("http_reply", "read-index", ctl({read_index, 0, 21}) + served(svc, "/raft/readIndex?timeoutMs=100"));
  svc.answer = err(errc::not_leader);
  svc.leader_url = "http://127.0.0.1:8001";
  put("http_reply", "read-index-redirect", ctl({read_index, 0, 22}) + served(svc, "/raft/readIndex"));
  svc.leader_url.clear();
  svc.answer = err(errc::timeout);
  put("http_reply", "read-index-timeout", ctl({read_index, 2, 23}) + served(svc, "/raft/readIndex"));

  // Streams: the stream_parser seeds' frames, written in pieces.
  const std::string cfg = to_json(sample_config());
  std::string head_frames, entries;
  detail::encode_frame(head_frames, detail::kFrameConfig, 7, 3, cfg);
  detail::encode_frame(head_frames, detail::kFramePosition, 10, 2, {});
  encode_entry(entries, {LogEntryType::command, 11, 3, "set x=1"});
  encode_entry(entries, {LogEntryType::add_peer, 12, 3, "http://127.0.0.1:8004"});
  detail::encode_frame(entries, detail::kFrameCommit, 12, 0, {});
  put("http_reply", "stream", ctl({stream, 0, 21}) + chunked_stream({head_frames, entries}, true));
  put("http_reply", "stream-open", ctl({stream, 2, 22}) + chunked_stream({head_frames, entries}, false));
  put("http_reply", "stream-cut", ctl({stream, 0, 23}) + chunked_stream({head_frames, entries}, false).substr(0, 200));
  std::string snap;
  detail::encode_frame(snap, detail::kFrameSnapshot, 100, 3, cfg);
  detail::encode_snapshot_chunk(snap, std::string(5000, 's'));  // over one 4 KiB read buffer
  detail::encode_snapshot_chunk(snap, {});
  put("http_reply", "stream-snapshot", ctl({stream, 0, 24}) + chunked_stream({head_frames, snap, entries}, true));
  svc.answer = err(errc::not_leader);
  svc.leader_url = "http://127.0.0.1:8001";
  put("http_reply", "stream-refused", ctl({stream, 0, 25}) + served(svc, "/raft/leave?id=2"));
  // A peer of another protocol version: refused whatever else its reply says.
  put("http_reply", "heartbeat-other-protocol",
      ctl({heartbeat, 0, 26}) + "HTTP/1.1 200 OK\r\nX-Raft-Protocol: 3\r\nX-Raft-Index: 1\r\nX-Raft-Term: 5\r\n"
                                "Content-Length: 0\r\n\r\n");
  // Versions this build speaks, and an older build's refusal of version 2.
  put("http_reply", "heartbeat-protocol-2",
      ctl({heartbeat, 0, 26}) + "HTTP/1.1 200 OK\r\nX-Raft-Protocol: 2\r\nX-Raft-Index: 1\r\nX-Raft-Term: 5\r\n"
                                "Content-Length: 0\r\n\r\n");
  put("http_reply", "heartbeat-older-build-refusal",
      ctl({heartbeat, 0, 26}) + "HTTP/1.1 400 Bad Request\r\nX-Raft-Protocol: 1\r\n"
                                "X-Raft-Error: unsupported protocol version\r\nContent-Length: 0\r\n\r\n");
  put("http_reply", "join-redirect-other-protocol",
      ctl({join, 0, 27}) + "HTTP/1.1 421 Misdirected Request\r\nX-Raft-Protocol: 3\r\nX-Raft-Error: not leader\r\n"
                           "X-Raft-Leader-URL: http://127.0.0.1:8001\r\nContent-Length: 0\r\n\r\n");
  std::string other = chunked_stream({head_frames, entries}, true);
  other.insert(other.find("\r\n") + 2, "X-Raft-Protocol: 3\r\n");
  put("http_reply", "stream-other-protocol", ctl({stream, 0, 28}) + other);
}

std::string ack_record(std::uint64_t term, std::uint64_t index) {
  std::string r(http_detail::kAckRecordBytes, '\0');
  http_detail::encode_ack_record(term, index, r.data());
  return r;
}

// Control bytes of the http_server target: flags (bits 0-1 stream mode, 2
// hold acks, 3-4 refuse the n-th ack, 5 half-close, 6 plain requests fail),
// split seed. The requests are what a client writes on one connection.
void http_server() {
  const std::string ping = request("GET", "/raft/ping");
  const std::string hb = request("POST", "/raft/heartbeat?term=3&commitIndex=1&leaderID=1");
  const std::string keep_alive = ping + request("GET", "/raft/status") +
                                 request("POST", "/raft/vote?term=6&candidateID=2&lastLogIndex=9&lastLogTerm=5") +
                                 request("POST", "/raft/ack?id=2&term=6&index=12&url=http://b:2") +
                                 request("HEAD", "/raft/metrics") + hb +
                                 request("POST", "/raft/join?url=http://127.0.0.1:8002") +
                                 request("POST", "/raft/leave?id=3");
  put("http_server", "ping", ctl({0, 0}) + ping);
  put("http_server", "keep-alive-pipelined", ctl({0, 3}) + keep_alive);
  put("http_server", "keep-alive-pipelined-one-piece", ctl({32, 0}) + keep_alive);
  put("http_server", "keep-alive-errors", ctl({64, 5}) + keep_alive);
  put("http_server", "close-in-the-middle",
      ctl({0, 6}) + ping + request("GET", "/raft/ping", "Connection: close\r\n") + ping);
  put("http_server", "http10", ctl({0, 0}) + "GET /raft/ping HTTP/1.0\r\n\r\n" + ping);
  put("http_server", "http10-keep-alive",
      ctl({0, 0}) + "GET /raft/ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + ping);
  put("http_server", "bad-after-good", ctl({0, 7}) + ping + "GET /raft/ping HTTP/9.9\r\n\r\n" + ping);
  put("http_server", "head-then-bad", ctl({0, 0}) + request("HEAD", "/raft/metrics") + "BAD\x01 / HTTP/1.1\r\n\r\n");
  put("http_server", "header-too-large", ctl({0, 0}) + ping + request("GET", "/raft/ping", "X-Pad: " + std::string(1100, 'p') + "\r\n"));
  put("http_server", "body-too-large",
      ctl({0, 0}) + "POST /raft/ping HTTP/1.1\r\nContent-Length: 300\r\n\r\n" + std::string(300, 'b'));
  put("http_server", "chunked-body",
      ctl({0, 9}) + "POST /raft/ack?id=1&term=1&index=0 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
          ping);
  put("http_server", "incomplete-tail", ctl({0, 2}) + ping + ping.substr(0, 20));
  put("http_server", "incomplete-tail-half-close", ctl({32, 2}) + ping + ping.substr(0, 20));

  // Streams: node 2 at kMe, optionally asking for the ack channel.
  const std::string me = "http://127.0.0.1:9/me";
  auto stream_req = [&](bool channel, const std::string& url = "http://127.0.0.1:9/me") {
    return "GET /raft/stream?id=2&term=3&index=10&logTerm=2" + (url.empty() ? "" : "&url=" + url) +
           " HTTP/1.1\r\nHost: x\r\n" + (channel ? "X-Raft-Ack-Channel: 1\r\n" : "") + "\r\n";
  };
  const std::string records = ack_record(3, 11) + ack_record(3, 12) + ack_record(3, 15) + ack_record(4, 16);
  enum { chunk_then_end = 0, refuse = 1, chunk_then_fail = 2, end_only = 3 };
  const int hold = 4, refuse_1st = 1 << 3, refuse_2nd = 2 << 3, half_close = 32;
  // Split seeds 7, 13, 16, 21, 37... cut the input in 8 pieces.
  put("http_server", "stream", ctl({chunk_then_end, 0}) + stream_req(false));
  put("http_server", "stream-stray-bytes", ctl({chunk_then_end, 4}) + stream_req(false) + records + "junk");
  put("http_server", "stream-refused", ctl({refuse, 0}) + stream_req(true) + records);
  put("http_server", "stream-fails", ctl({chunk_then_fail, 1}) + stream_req(true));
  put("http_server", "stream-end-only", ctl({end_only, 0}) + stream_req(false));
  put("http_server", "stream-half-close", ctl({half_close | chunk_then_end, 0}) + stream_req(false));
  put("http_server", "stream-http10",
      ctl({0, 0}) + "GET /raft/stream?id=2&term=3&index=10&logTerm=2&url=" + me + " HTTP/1.0\r\n\r\n");
  put("http_server", "stream-head", ctl({0, 0}) + "HEAD /raft/stream?id=2&term=3&index=10&logTerm=2 HTTP/1.1\r\n\r\n");
  put("http_server", "ack-channel-without-url", ctl({chunk_then_end, 3}) + stream_req(true, "") + records);
  put("http_server", "ack-channel", ctl({chunk_then_end, 0}) + stream_req(true) + records);
  put("http_server", "ack-channel-split", ctl({chunk_then_end, 13}) + stream_req(true) + records);
  put("http_server", "ack-channel-hold", ctl({hold | chunk_then_end, 16}) + stream_req(true) + records + records);
  put("http_server", "ack-channel-hold-coalesced", ctl({hold | chunk_then_end, 11}) + stream_req(true) + records + records);
  put("http_server", "ack-channel-refused", ctl({refuse_2nd | chunk_then_end, 13}) + stream_req(true) + records);
  put("http_server", "ack-channel-refused-held", ctl({hold | refuse_1st | end_only, 21}) + stream_req(true) + records + records);
  put("http_server", "ack-channel-garbage", ctl({chunk_then_end, 14}) + stream_req(true) + records + "GET / HTTP/1.1\r\n\r\n");
  put("http_server", "ack-channel-term-0", ctl({end_only, 15}) + stream_req(true) + ack_record(3, 11) + ack_record(0, 12));
  put("http_server", "ack-channel-partial-record", ctl({chunk_then_end, 16}) + stream_req(true) + records.substr(0, 40));
  put("http_server", "ack-channel-half-close", ctl({half_close | hold, 17}) + stream_req(true) + records);
  put("http_server", "ack-channel-after-requests",
      ctl({chunk_then_end, 18}) + ping + hb + stream_req(true) + records);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: raft-fuzz-make-corpus DIR\n";
    return 2;
  }
  root = argv[1];
  stream_parser();
  entry_decoder();
  config();
  meta();
  log_store();
  snapshot();
  http_handler();
  http_reply();
  http_server();
  return 0;
}
