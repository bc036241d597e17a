# Builds and runs the FetchContent consumer against this checkout's current
# commit (looked up now, not when the parent project was configured).
execute_process(COMMAND ${GIT} rev-parse HEAD WORKING_DIRECTORY ${RAFT_SOURCE_DIR}
  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fetchcontent consumer: git rev-parse failed (${rc})")
endif()
execute_process(COMMAND ${CTEST} --build-and-test ${RAFT_SOURCE_DIR}/tests/consumer/fetchcontent ${WORK_DIR}
    --build-generator ${GENERATOR}
    --build-options -DRAFT_GIT_REPOSITORY=${RAFT_SOURCE_DIR} -DRAFT_GIT_TAG=${head}
      ${BUILD_OPTIONS} -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}
    --test-command ${CTEST} --output-on-failure
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fetchcontent consumer failed (${rc}) at ${head}")
endif()
