// The network seen from a Log, both ways.
//
// * `Transport` is what a Log calls to reach other nodes (client side).
//   HTTPTransport implements it over HTTP; the simulator implements it in
//   memory. Every call is asynchronous: it returns at once and calls its
//   handler exactly once, on any thread (the Log re-posts to its strand).
// * `Service` is what a Log offers to other nodes (server side). raft::Handler
//   serves a Service over HTTP; the simulator calls it directly.
//
// Protocol refusals (stale term, already voted, not leader...) are part of a
// response, not transport failures: a transport error means "no answer".
#pragma once

#include "raft/config.hpp"
#include "raft/error.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace raft {

// The wire protocol (DESIGN 4: the calls, the stream's frames, the entry
// formats inside it) as one number. Version 2 added joint consensus
// (Log::set_voters): entry types joint_voters and leave_joint, and a
// configuration's "outgoingVoters", which a version-1 build reads as a
// corrupt entry or, worse, ignores. Every other message is the same in both.
//
// Builds of both versions may run in one cluster (a rolling upgrade): the
// HTTP transport and server agree on a version per peer (raft/http.hpp),
// and a leader writes version-2 content only where it may: it refuses
// set_voters (errc::unsupported_protocol) while a member answers its
// heartbeats in version 1, and it never streams a joint-consensus entry or
// configuration to a follower whose stream is in version 1 (that stream
// ends with errc::unsupported_protocol: upgrade the follower).
// docs/design-notes.md, "Protocol version".
inline constexpr std::uint32_t kProtocolVersion = 2;
inline constexpr std::uint32_t kMinProtocolVersion = 1;
// The first version whose streams may carry joint consensus.
inline constexpr std::uint32_t kJointConsensusProtocol = 2;

template <class T>
using Handler_fn = std::function<void(result<T>)>;

// A node asks to be added (POST /raft/join?url=U[&id=N]). `previous_id`
// (query parameter `id`, an addition to the seed's protocol) is set when a
// node that was already given an id asks again because it never learned that
// its membership committed (see Log: a lost join). If the leader's
// configuration records that id with that URL as removed meanwhile, the
// leader refuses with errc::removed instead of adding the node back as a new
// member. A fresh node (previous_id 0) at a removed URL may join again.
// `join_token` is random, drawn once per data directory (every retry and
// restart sends the same one), and recorded with the member it adds
// (ConfigNode::join_token): a copy of the request the network delivers after
// that member was removed is refused the same way, and a join from a
// member's URL with another token (a wiped directory) is refused with
// errc::duplicate_node_url until the member is removed. 0: none sent.
struct JoinRequest {
  std::string url;
  std::uint64_t previous_id = 0;
  std::uint64_t join_token = 0;
  bool learner = false;  // join as a learner (JoinOptions::learner)
  // From a learner that is a member already: promote it once it has caught
  // up, and answer then (JoinOptions::catch_up_first).
  bool promote = false;
};

struct JoinResponse {
  std::uint64_t id = 0;         // id assigned to the joining node
  std::uint64_t leader_id = 0;  // who assigned it
  Config config;                // configuration including the new node
};

struct HeartbeatRequest {
  std::uint64_t term = 0;
  std::uint64_t commit_index = 0;
  std::uint64_t leader_id = 0;
  // The leader's URL (query parameter `leaderURL`, an addition to the seed's
  // protocol): a follower whose log does not yet hold the configuration that
  // added the leader could otherwise never find it to open its stream.
  std::string leader_url;
  // Leadership transfer (thesis §3.10; query parameter `timeoutNow=1`): the
  // leader, whose log the follower now holds in full, asks it to start an
  // election at once.
  bool timeout_now = false;
};
struct HeartbeatResponse {
  std::uint64_t index = 0;  // follower's last log index
  std::uint64_t term = 0;   // follower's current term
  std::error_code error;    // errc::stale_term if the leader is behind
  // The responder's node id (0: it has none, e.g. a node started afresh at a
  // member's URL; HTTP header X-Raft-ID). A leader confirms reads only with
  // replies from the member it addressed.
  std::uint64_t id = 0;
  // The protocol version the exchange was in (HTTP header X-Raft-Protocol):
  // the newest the responder and we both speak. 0: this build's
  // (kProtocolVersion), for transports that never span builds.
  std::uint32_t protocol = 0;
  // With LogOptions::lease_reads: the responder grants no vote (but a
  // transfer's) for this long after it got this heartbeat, by its own clock
  // (its election timeout, in whole milliseconds; HTTP header
  // X-Raft-Vote-Hold-Ms). 0: it promises nothing (lease_reads off, or a
  // build without lease reads), and a leader counts it in no lease.
  std::uint64_t vote_hold_ms = 0;
};

// A follower asks the leader for a read index (Log::read_index called on a
// follower; POST /raft/readIndex, an addition to the seed's protocol). The
// leader answers as its own read_index() would: a committed index covering
// every write completed before it got the request. `timeout_ms` bounds how
// long it may take to confirm (0: the leader's default, two election
// timeouts); the follower sends what is left of its caller's timeout.
struct ReadIndexRequest {
  std::uint64_t timeout_ms = 0;
};

struct VoteRequest {
  std::uint64_t term = 0;
  std::uint64_t candidate_id = 0;
  std::uint64_t last_log_index = 0;
  std::uint64_t last_log_term = 0;
  // Pre-vote (thesis §9.6): "would you vote for me in `term`?" The voter
  // answers as it would a vote but changes nothing (term, vote, timer).
  bool pre_vote = false;
  // An election the leader asked for (HeartbeatRequest::timeout_now; query
  // parameter `transfer=1`): voters grant it although they hear from a live
  // leader (thesis §3.10 / §4.2.3); every other rule holds.
  bool transfer = false;
};
struct VoteResponse {
  std::uint64_t term = 0;  // voter's current term (after the request)
  std::error_code error;   // empty: granted; else stale_term, already_voted, out_of_date_log,
                           // node_not_found (refused, and the voter's configuration removed
                           // the candidate)
  bool granted() const { return !error; }
};

// A follower reports the highest index it holds durably that matches the
// leader of `term` (DESIGN 4.3).
//
// `url` (query parameter `url`, an addition to the seed's protocol) is the
// sender's own URL: the leader credits the ack to node `id` only if its
// configuration gives `id` to that URL (errc::node_url_mismatch otherwise,
// errc::node_url_required if absent). A node whose join was lost (its
// AddPeer entry truncated by a later leader) still believes it has the id the
// next joiner is given; without the URL its acks would count as that
// member's toward commit quorums.
struct AckRequest {
  std::uint64_t id = 0;
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string url;
};

// "Send me your log after (index, log_term)": the follower holds entry
// `index` with term `log_term` (0/0 for an empty log). `url` is the
// follower's own URL, checked against the configuration as for acks (a
// stream replaces the member's previous one, and its position feeds the
// member's acks).
struct StreamRequest {
  std::uint64_t id = 0;
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::uint64_t log_term = 0;
  std::string url;
  // The protocol version the follower asked in (HTTP header
  // X-Raft-Protocol): the stream may carry nothing newer. 0: this build's
  // (kProtocolVersion), for transports that never span builds.
  std::uint32_t protocol = 0;
};

// Follower side of a stream: the transport hands bytes, in order, as they
// arrive. The bytes stay valid until `more` is called (even if the handle is
// released meanwhile: `more` keeps them), so the consumer need not copy them;
// the transport reads nothing further until then (back-pressure). `on_end`
// is called once, last.
struct StreamCallbacks {
  std::function<void(std::string_view bytes, std::function<void()> more)> on_data;
  std::function<void(std::error_code)> on_end;
};

// Handle to an open stream; cancel() closes it (on_end still runs).
class StreamHandle {
 public:
  virtual ~StreamHandle() = default;
  virtual void cancel() = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // The cluster id sent with every request (0 until known).
  virtual void set_cluster_id(std::uint64_t id) = 0;

  // Asks the member at `url` to add `req.url`; a non-leader member points to
  // the leader and the transport follows it.
  virtual void join(const std::string& url, const JoinRequest& req, Handler_fn<JoinResponse> h) = 0;
  // Asks the member at `url` (following leader hints) to remove node `id`.
  virtual void leave(const std::string& url, std::uint64_t id, Handler_fn<void> h) = 0;
  virtual void heartbeat(const std::string& url, const HeartbeatRequest& req,
                         Handler_fn<HeartbeatResponse> h) = 0;
  virtual void request_vote(const std::string& url, const VoteRequest& req, Handler_fn<VoteResponse> h) = 0;
  virtual void ack(const std::string& url, const AckRequest& req, Handler_fn<void> h) = 0;
  // Asks the leader at `url` (following leader hints) for a read index.
  virtual void read_index(const std::string& url, const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) = 0;
  // Opens the log stream from the leader at `url` (DESIGN 4.2).
  virtual std::shared_ptr<StreamHandle> read_from(const std::string& url, const StreamRequest& req,
                                                  StreamCallbacks cb) = 0;
};

// Leader side of a stream: where a Log writes the stream's bytes. One write
// outstanding at a time; `done` runs once the bytes are handed on (or failed).
// The caller keeps `bytes` valid and unchanged until `done` runs (the Log
// writes from its per-stream buffer), so a writer need not copy them.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  virtual void write(std::string_view bytes, std::function<void(std::error_code)> done) = 0;
  // Ends the stream. With an error and nothing written yet, the server answers
  // with that error instead of a stream.
  virtual void finish(std::error_code ec) = 0;
};

// A leader's view of one other member's replication (Status::peers).
struct PeerProgress {
  std::uint64_t id = 0;
  // The highest index the member acknowledged as durable in its log.
  std::uint64_t match = 0;
  // Since it last answered this leader (a heartbeat reply or an ack).
  std::uint64_t last_contact_ms = 0;
  // Lease reads: the vote hold its latest heartbeat reply promised
  // (HeartbeatResponse::vote_hold_ms); 0: none, so no lease counts on it
  // (LogOptions::lease_reads off there, or a build without lease reads).
  std::uint64_t vote_hold_ms = 0;

  friend bool operator==(const PeerProgress&, const PeerProgress&) = default;
};

struct Status {
  std::uint64_t id = 0;
  std::string state;  // "follower", "candidate", "leader", "stopped"
  std::uint64_t term = 0;
  std::uint64_t leader_id = 0;
  std::string leader_url;
  std::uint64_t commit_index = 0;
  std::uint64_t applied_index = 0;
  std::uint64_t last_index = 0;
  Config config;
  // Leader only (empty otherwise): every other member's progress, as of the
  // last heartbeat tick or membership change; e.g. to see that a learner has
  // caught up, or how far a follower lags (last_index - match).
  std::vector<PeerProgress> peers;
  // Counters since this Log object was made (/raft/metrics): linearizable
  // reads answered (their index confirmed) as leader and as a follower (by
  // asking the leader), elections this node started, and leadership
  // transfers this node completed as leader.
  std::uint64_t reads_as_leader = 0;
  std::uint64_t reads_as_follower = 0;
  // Of reads_as_leader, those answered by lease (LogOptions::lease_reads).
  std::uint64_t reads_by_lease = 0;
  // LogOptions::lease_reads of this node.
  bool lease_reads = false;
  std::uint64_t elections_started = 0;
  std::uint64_t transfers_completed = 0;
};

// What a node serves to its peers. Handlers run exactly once, on any thread.
class Service {
 public:
  virtual ~Service() = default;
  virtual std::uint64_t cluster_id() const = 0;  // 0 until known
  virtual Status status() const = 0;
  virtual void handle_join(const JoinRequest& req, Handler_fn<JoinResponse> h) = 0;
  virtual void handle_leave(std::uint64_t id, Handler_fn<void> h) = 0;
  virtual void handle_heartbeat(const HeartbeatRequest& req, Handler_fn<HeartbeatResponse> h) = 0;
  virtual void handle_vote(const VoteRequest& req, Handler_fn<VoteResponse> h) = 0;
  virtual void handle_ack(const AckRequest& req, Handler_fn<void> h) = 0;
  virtual void handle_read_index(const ReadIndexRequest& req, Handler_fn<std::uint64_t> h) = 0;
  virtual void handle_stream(const StreamRequest& req, std::shared_ptr<StreamWriter> w) = 0;
};

}  // namespace raft
