// A linearizability checker for key-value histories recorded by the chaos
// tests of raft-kv (issue 7).
//
// Algorithm: Wing & Gong's search with Lowe's memoization, as Porcupine
// implements it ("Testing for Linearizability", Lowe 2017; anishathalye/
// porcupine checker.go). The history of one key becomes a doubly linked list
// of call and return events in time order. The search repeatedly picks a
// call whose operation the model accepts in the current state, "lifts" the
// operation (removes its call and return from the list) and starts again from
// the head; reaching a return event means the operation it closes was not
// linearized before its response, so the search undoes the most recent
// choice and tries the next call. A cache of (set of linearized operations,
// model state) prunes configurations already explored. The list being empty
// means a linearization exists.
//
// Partitioning: every operation touches exactly one key and the model of a
// map is a product of independent registers, so the history is linearizable
// iff each key's sub-history is (Herlihy & Wing's locality; Porcupine's
// partitioned models). Keys are checked one by one, in key order.
//
// Indeterminate operations (the client got no answer: timeout, connection
// reset) may or may not have taken effect. As in Porcupine and Knossos, their
// response time is +infinity and their outcome unknown: the model accepts them
// in any state, so the search may linearize them anywhere after their
// invocation; linearizing one after every other operation is the same as
// "it never happened". A read that got no answer changes nothing and is
// dropped. An indeterminate operation invoked after every definite operation
// of its key completed is dropped too: it can always go last.
//
// Complexity: exponential in the worst case (the problem is NP-complete).
// Indeterminate writes are the expensive part, because each one stays
// concurrent with everything after it. A budget bounds the work; running out
// yields `inconclusive`, which callers must treat as a failure.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lincheck {

// Response time of an operation that never got one.
inline constexpr std::int64_t kInfinity = std::numeric_limits<std::int64_t>::max();

enum class Kind : std::uint8_t { put, get, cas, del };

enum class Outcome : std::uint8_t {
  ok,       // put, del, get (see `read`), cas that swapped
  fail,     // cas only: the current value differed from `prev`
  unknown,  // no response: indeterminate (complete is treated as +infinity)
};

struct Operation {
  std::uint64_t client = 0;
  // Times in any monotonic unit, invoke <= complete. `complete` is ignored
  // (taken as +infinity) when the outcome is unknown.
  std::int64_t invoke = 0;
  std::int64_t complete = kInfinity;
  Kind kind = Kind::get;
  std::string key;
  std::string value;                // put, cas: the value written
  std::optional<std::string> prev;  // cas: expected value; nullopt = "only if absent"
  std::optional<std::string> read;  // get with outcome ok: the value read; nullopt = absent
  Outcome outcome = Outcome::unknown;

  static Operation make_put(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k, std::string v,
                            Outcome o = Outcome::ok);
  static Operation make_get(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k,
                            std::optional<std::string> r, Outcome o = Outcome::ok);
  static Operation make_cas(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k,
                            std::optional<std::string> p, std::string v, Outcome o);
  static Operation make_del(std::uint64_t c, std::int64_t t0, std::int64_t t1, std::string k,
                            Outcome o = Outcome::ok);

  friend bool operator==(const Operation&, const Operation&) = default;
};

struct Budget {
  // Search steps (model steps plus backtracks) over all keys.
  std::uint64_t max_steps = 200'000'000;
  // Wall-clock limit; zero means none. Tests use steps (deterministic).
  std::chrono::milliseconds max_time{0};
};

enum class Verdict : std::uint8_t {
  linearizable,
  not_linearizable,
  inconclusive,     // the budget ran out: a failure for the caller
  invalid_history,  // malformed operation (invoke > complete, cas outcome on a put, ...)
};
std::string_view to_string(Verdict v) noexcept;

struct CheckResult {
  Verdict verdict = Verdict::linearizable;
  // not_linearizable / inconclusive / invalid_history: the key concerned.
  std::string key;
  // Human-readable: for a violation, the operation that cannot take effect,
  // the longest linearizable prefix found, and the operations involved.
  std::string explanation;
  // Indexes into the checked history of the operations the explanation names.
  std::vector<std::size_t> ops;
  std::uint64_t steps = 0;
  std::size_t keys_checked = 0;

  bool ok() const { return verdict == Verdict::linearizable; }
};

CheckResult check(std::span<const Operation> history, const Budget& budget = {});

// ---- history files ----------------------------------------------------------
//
// Line-oriented text, one operation per line; blank lines and lines starting
// with '#' are ignored. Fields are separated by spaces or tabs:
//
//   CLIENT INVOKE COMPLETE put KEY VALUE      RESULT   RESULT: ok | ?
//   CLIENT INVOKE COMPLETE get KEY            RESULT   RESULT: VALUE | - | ?
//   CLIENT INVOKE COMPLETE cas KEY PREV VALUE RESULT   RESULT: ok | fail | ?
//   CLIENT INVOKE COMPLETE del KEY            RESULT   RESULT: ok | ?
//
// CLIENT is an unsigned decimal, INVOKE a signed decimal, COMPLETE a signed
// decimal or `inf`. `?` marks an indeterminate operation (no response); its
// COMPLETE may be `inf` or the time the client gave up (ignored either way).
// Strings (KEY, VALUE, PREV, the value a get returned) are percent-encoded:
// bytes in [A-Za-z0-9_.,:/+=@] stand for themselves, every other byte is %XX
// (hex). `-` alone means absent (a get that found nothing; a cas "only if
// absent"), `""` the empty string. Example:
//
//   # raft-lincheck history v1
//   1 1000 1520 put k1 v1 ok
//   2 1010 1600 get k1 v1
//   2 1700 inf cas k1 v1 v2 ?
//   3 1800 1900 cas k1 - v3 fail
//   3 2000 2100 del k1 ok
//   3 2200 2300 get k1 -
std::string format_operation(const Operation& op);
void write_history(std::ostream& out, std::span<const Operation> history);

struct ParseResult {
  std::vector<Operation> ops;
  std::string error;  // empty on success; else "line N: reason"
  bool ok() const { return error.empty(); }
};
ParseResult parse_history(std::istream& in);
ParseResult parse_history(std::string_view text);

}  // namespace lincheck
