# drover CLI tests (included by tests/CMakeLists.txt).

# No broker needed: usage errors exit 2, --help, keygen (files, 0600 secret,
# role, refusal to overwrite), bench (usage errors only), and exit 3 when connecting to
# nothing, within the connect timeout.
add_test(NAME cli_usage
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli_usage.sh $<TARGET_FILE:drover_cli>)
set_tests_properties(cli_usage PROPERTIES TIMEOUT 60)

# With the broker linked in: `drover demo` on a small range, and every job
# command against a `drover up` broker with real drover-worker processes.
if(TARGET drover_broker)
  add_test(NAME cli_demo
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli_demo.sh $<TARGET_FILE:drover_cli>)
  set_tests_properties(cli_demo PROPERTIES TIMEOUT 120)
  if(TARGET drover-worker)
    add_test(NAME cli_jobs
      COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli_jobs.sh
              $<TARGET_FILE:drover_cli> $<TARGET_FILE:drover-worker>)
    set_tests_properties(cli_jobs PROPERTIES TIMEOUT 180)
  endif()
endif()
