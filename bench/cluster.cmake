# raft-bench: a real N-process cluster over HTTP on 127.0.0.1 (issue 8).
add_executable(raft-bench ${CMAKE_CURRENT_LIST_DIR}/raft_bench.cpp)
target_link_libraries(raft-bench PRIVATE raft::raft raft_warnings raft_sanitize)

# raft-micro-bench: Google Benchmark micro-benchmarks (codec, stream parser,
# in-process commit path). Skipped quietly if Google Benchmark is missing.
find_package(benchmark QUIET)
if(benchmark_FOUND)
  add_executable(raft-micro-bench ${CMAKE_CURRENT_LIST_DIR}/micro_bench.cpp)
  target_link_libraries(raft-micro-bench PRIVATE raft::raft benchmark::benchmark raft_warnings raft_sanitize)
  target_include_directories(raft-micro-bench PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests/unit)
else()
  message(STATUS "raft: Google Benchmark not found, raft-micro-bench not built")
endif()
