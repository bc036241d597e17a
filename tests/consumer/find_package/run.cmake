# Configures and installs raft into a temporary prefix, then builds and runs
# the consumer against it with find_package(raft CONFIG).
set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${prefix})
foreach(step
    "${CMAKE_COMMAND};-S;${RAFT_SOURCE_DIR};-B;${WORK_DIR}/raft-build;-G;${GENERATOR};${BUILD_OPTIONS};-DRAFT_TESTS=OFF;-DRAFT_EXAMPLES=OFF;-DRAFT_BENCH=OFF;-DRAFT_INSTALL=ON;-DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER};-DCMAKE_INSTALL_PREFIX=${prefix}"
    "${CMAKE_COMMAND};--build;${WORK_DIR}/raft-build"
    "${CMAKE_COMMAND};--install;${WORK_DIR}/raft-build"
    "${CTEST};--build-and-test;${RAFT_SOURCE_DIR}/tests/consumer/find_package;${WORK_DIR}/consumer-build;--build-generator;${GENERATOR};--build-options;-DCMAKE_PREFIX_PATH=${prefix};${BUILD_OPTIONS};--test-command;${CTEST};--output-on-failure")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "find_package consumer: step failed (${rc}): ${step}")
  endif()
endforeach()
