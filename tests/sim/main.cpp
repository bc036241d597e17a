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

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace raft::sim;

namespace {
int usage() {
  std::fprintf(stderr,
               "usage: raft-sim --list\n"
               "       raft-sim --scenario NAME|all --seeds A-B [--nodes N] [--ops K]\n"
               "                [--fault none|commit_previous_term_by_counting|forget_vote|ack_before_sync|\n"
               "                         read_without_confirmation|follower_read_without_leader|\n"
               "                         learner_counts_as_voter|joint_new_majority_only|\n"
               "                         joint_to_old_builds]\n"
               "                [--expect-violation]\n"
               "                [--apply-inline]\n"
               "       raft-sim --replay SEED --scenario NAME [--trace] [--nodes N] [--ops K] [--fault F] [--apply-inline]\n");
  return 2;
}
const char* fault_name(raft::LogOptions::Fault f) {
  switch (f) {
    case raft::LogOptions::Fault::commit_previous_term_by_counting: return "commit_previous_term_by_counting";
    case raft::LogOptions::Fault::forget_vote: return "forget_vote";
    case raft::LogOptions::Fault::ack_before_sync: return "ack_before_sync";
    case raft::LogOptions::Fault::read_without_confirmation: return "read_without_confirmation";
    case raft::LogOptions::Fault::follower_read_without_leader: return "follower_read_without_leader";
    case raft::LogOptions::Fault::learner_counts_as_voter: return "learner_counts_as_voter";
    case raft::LogOptions::Fault::joint_new_majority_only: return "joint_new_majority_only";
    case raft::LogOptions::Fault::joint_to_old_builds: return "joint_to_old_builds";
    default: return "none";
  }
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
    else if (a == "--fault") {
      const std::string f = next();
      if (f == "commit_previous_term_by_counting") base.fault = raft::LogOptions::Fault::commit_previous_term_by_counting;
      else if (f == "forget_vote") base.fault = raft::LogOptions::Fault::forget_vote;
      else if (f == "ack_before_sync") base.fault = raft::LogOptions::Fault::ack_before_sync;
      else if (f == "read_without_confirmation") base.fault = raft::LogOptions::Fault::read_without_confirmation;
      else if (f == "follower_read_without_leader") base.fault = raft::LogOptions::Fault::follower_read_without_leader;
      else if (f == "learner_counts_as_voter") base.fault = raft::LogOptions::Fault::learner_counts_as_voter;
      else if (f == "joint_new_majority_only") base.fault = raft::LogOptions::Fault::joint_new_majority_only;
      else if (f == "joint_to_old_builds") base.fault = raft::LogOptions::Fault::joint_to_old_builds;
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
