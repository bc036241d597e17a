// raft-lincheck: checks a recorded key-value history for linearizability.
//
//   raft-lincheck [--max-steps N] [--timeout-ms N] [--expect VERDICT] FILE
//
// FILE is in the format described in linearizability.hpp ('-' reads stdin).
// Exit status: 0 linearizable, 1 not linearizable, 2 inconclusive (budget
// exhausted: treat as a failure), 3 bad input or usage. With --expect
// (linearizable | not_linearizable | inconclusive), exit 0 iff the verdict is
// the expected one, else 1 (for tests of the tool itself).
#include "linearizability.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <string>

namespace {

int usage() {
  std::cerr << "usage: raft-lincheck [--max-steps N] [--timeout-ms N] [--expect VERDICT] FILE\n"
               "  Checks a history (one operation per line; see tests/chaos/linearizability.hpp).\n"
               "  Exit: 0 linearizable, 1 not linearizable, 2 inconclusive, 3 bad input.\n";
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  lincheck::Budget budget;
  std::string file, expect;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--max-steps") {
      const char* v = next();
      if (!v) return usage();
      budget.max_steps = std::strtoull(v, nullptr, 10);
    } else if (a == "--timeout-ms") {
      const char* v = next();
      if (!v) return usage();
      budget.max_time = std::chrono::milliseconds(std::strtoll(v, nullptr, 10));
    } else if (a == "--expect") {
      const char* v = next();
      if (!v) return usage();
      expect = v;
      if (expect != "linearizable" && expect != "not_linearizable" && expect != "inconclusive") return usage();
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (file.empty() && (a == "-" || a[0] != '-')) {
      file = a;
    } else {
      return usage();
    }
  }
  if (file.empty()) return usage();

  lincheck::ParseResult parsed;
  if (file == "-") {
    parsed = lincheck::parse_history(std::cin);
  } else {
    std::ifstream in(file);
    if (!in) {
      std::cerr << "raft-lincheck: cannot open " << file << "\n";
      return 3;
    }
    parsed = lincheck::parse_history(in);
  }
  if (!parsed.ok()) {
    std::cerr << "raft-lincheck: " << file << ": " << parsed.error << "\n";
    return 3;
  }
  std::set<std::string> keys;
  std::size_t indeterminate = 0;
  for (const auto& op : parsed.ops) {
    keys.insert(op.key);
    indeterminate += op.outcome == lincheck::Outcome::unknown;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto res = lincheck::check(parsed.ops, budget);
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %zu operations (%zu indeterminate), %zu keys: %s (%llu steps, %.1f ms)\n", file.c_str(),
              parsed.ops.size(), indeterminate, keys.size(), std::string(lincheck::to_string(res.verdict)).c_str(),
              static_cast<unsigned long long>(res.steps), ms);
  if (!res.explanation.empty()) std::printf("%s\n", res.explanation.c_str());

  using lincheck::Verdict;
  if (!expect.empty()) {
    const Verdict want = expect == "linearizable"       ? Verdict::linearizable
                         : expect == "not_linearizable" ? Verdict::not_linearizable
                                                        : Verdict::inconclusive;
    return res.verdict == want ? 0 : 1;
  }
  switch (res.verdict) {
    case Verdict::linearizable: return 0;
    case Verdict::not_linearizable: return 1;
    case Verdict::inconclusive: return 2;
    case Verdict::invalid_history: return 3;
  }
  return 3;
}
