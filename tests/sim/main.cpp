// raft-sim: runs simulator scenarios over ranges of seeds.
//
//   raft-sim --list
//   raft-sim --scenario NAME|all --seeds A-B [--nodes N] [--ops K] [--fault F]
//   raft-sim --replay SEED --scenario NAME [--trace]
//
// Ends with exactly one line "raft-sim: <S> seeds, <V> safety violations, <L>
// liveness failures"; exit status 0 only if V and L are 0. --expect-violation
// inverts that for the bug-finding test: exit 0 once a violation is found.
#include "cluster.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

using namespace raft::sim;

namespace {
using Fault = raft::LogOptions::Fault;
// The rules --fault can break (LogOptions::Fault), by name.
constexpr std::pair<Fault, const char*> kFaults[] = {
    {Fault::commit_previous_term_by_counting, "commit_previous_term_by_counting"},
    {Fault::forget_vote, "forget_vote"},
    {Fault::ack_before_sync, "ack_before_sync"},
    {Fault::read_without_confirmation, "read_without_confirmation"},
    {Fault::follower_read_without_leader, "follower_read_without_leader"},
    {Fault::learner_counts_as_voter, "learner_counts_as_voter"},
    {Fault::joint_new_majority_only, "joint_new_majority_only"},
    {Fault::joint_to_old_builds, "joint_to_old_builds"},
    {Fault::lease_outlives_election_timeout, "lease_outlives_election_timeout"},
    {Fault::lease_votes_after_restart, "lease_votes_after_restart"},
    {Fault::lease_without_vote_hold, "lease_without_vote_hold"},
};

int usage() {
  std::string faults = "none";
  for (const auto& [f, name] : kFaults) (faults += '|') += name;
  std::fprintf(stderr,
               "usage: raft-sim --list\n"
               "       raft-sim --scenario NAME|all --seeds A-B [--nodes N] [--ops K]\n"
               "                [--fault %s]\n"
               "                [--expect-violation]\n"
               "                [--apply-inline] [--lease-reads]\n"
               "       raft-sim --replay SEED --scenario NAME [--trace] [--nodes N] [--ops K] [--fault F] [--apply-inline]\n"
               "                [--lease-reads]\n",
               faults.c_str());
  return 2;
}
const char* fault_name(Fault f) {
  for (const auto& [g, name] : kFaults)
    if (g == f) return name;
  return "none";
}
}  // namespace

int main(int argc, char** argv) {
  std::string scenario, seeds;
  long long replay = -1;
  bool trace = false, list = false, expect_violation = false;
  SimParams base;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage());
      return argv[++i];
    };
    if (a == "--list") list = true;
    else if (a == "--scenario") scenario = next();
    else if (a == "--seeds") seeds = next();
    else if (a == "--replay") replay = std::stoll(next());
    else if (a == "--trace") trace = true;
    else if (a == "--nodes") base.nodes = std::stoi(next());
    else if (a == "--ops") base.ops = std::stoi(next());
    else if (a == "--expect-violation") expect_violation = true;
    else if (a == "--apply-inline") base.apply_inline = true;
    else if (a == "--lease-reads") base.lease_reads = true;
    else if (a == "--fault") {
      const std::string f = next();
      const auto* it = std::find_if(std::begin(kFaults), std::end(kFaults), [&](const auto& p) { return f == p.second; });
      if (it != std::end(kFaults)) base.fault = it->first;
      else if (f != "none") return usage();
    } else return usage();
  }
  if (list) {
    for (const auto& s : scenarios()) std::printf("%s\n", s.name);
    return 0;
  }
  std::vector<const ScenarioInfo*> chosen;
  for (const auto& s : scenarios())
    if (scenario == "all" || scenario == s.name) chosen.push_back(&s);
  if (chosen.empty()) return usage();

  std::uint64_t lo = 0, hi = 0;
  if (replay >= 0) {
    lo = hi = static_cast<std::uint64_t>(replay);
  } else {
    const auto dash = seeds.find('-');
    if (seeds.empty()) return usage();
    lo = std::stoull(seeds.substr(0, dash));
    hi = dash == std::string::npos ? lo : std::stoull(seeds.substr(dash + 1));
  }
  base.echo_trace = trace;

  std::uint64_t runs = 0, violations = 0, liveness = 0;
  for (const auto* s : chosen) {
    for (std::uint64_t seed = lo; seed <= hi; ++seed) {
      SimParams p = base;
      p.seed = seed;
      const RunResult r = run_scenario(*s, p);
      ++runs;
      const bool bad_safety = !r.violations.empty();
      const bool bad_live = !bad_safety && !r.liveness.empty();
      if (bad_safety) ++violations;
      if (bad_live) ++liveness;
      if (bad_safety || bad_live) {
        std::printf("FAIL scenario=%s seed=%llu: %s\n", s->name, static_cast<unsigned long long>(seed),
                    bad_safety ? r.violations.front().c_str() : ("liveness: " + r.liveness).c_str());
        std::printf("  replay: raft-sim --replay %llu --scenario %s%s%s --trace\n",
                    static_cast<unsigned long long>(seed), s->name,
                    base.fault != raft::LogOptions::Fault::none ? " --fault " : "",
                    base.fault != raft::LogOptions::Fault::none ? fault_name(base.fault) : "");
        std::fflush(stdout);
        if (expect_violation && bad_safety) goto done;
      }
    }
  }
done:
  std::printf("raft-sim: %llu seeds, %llu safety violations, %llu liveness failures\n",
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(violations),
              static_cast<unsigned long long>(liveness));
  if (expect_violation) return violations > 0 ? 0 : 1;
  return violations == 0 && liveness == 0 ? 0 : 1;
}
