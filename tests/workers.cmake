# drover-worker tests (included by tests/CMakeLists.txt). Only test_worker_e2e
# needs a broker, and runs its own in process.

# The --exec runner on its own: pipes, timeouts, kills, big payloads.
add_executable(test_exec ${CMAKE_CURRENT_LIST_DIR}/test_exec.c
  ${PROJECT_SOURCE_DIR}/workers/exec_run.c)
target_include_directories(test_exec PRIVATE ${PROJECT_SOURCE_DIR}/workers)
target_link_libraries(test_exec PRIVATE Threads::Threads)
add_test(NAME test_exec COMMAND test_exec)
set_tests_properties(test_exec PROPERTIES TIMEOUT 60)

# The supervisor with stand-in children: restart, backoff, drain, exit 3.
add_executable(test_supervisor ${CMAKE_CURRENT_LIST_DIR}/test_supervisor.c
  ${PROJECT_SOURCE_DIR}/workers/supervisor.c)
target_include_directories(test_supervisor PRIVATE ${PROJECT_SOURCE_DIR}/workers
  ${PROJECT_SOURCE_DIR}/sdk/src)
target_link_libraries(test_supervisor PRIVATE drover_wire)
add_test(NAME test_supervisor COMMAND test_supervisor)
set_tests_properties(test_supervisor PROPERTIES TIMEOUT 60)

# The drover-worker binary's command-line contract: bad usage exits 2, an
# unloadable plugin exits 2, an unreachable broker exits 3.
add_test(NAME test_worker_cli
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/test_worker_cli.sh
          $<TARGET_FILE:drover-worker> $<TARGET_FILE:drover_example_plugin>)
set_tests_properties(test_worker_cli PROPERTIES TIMEOUT 60)

# drover-worker end to end: a broker actor in process, the real binary as
# child processes, jobs through the SDK client.
add_executable(test_worker_e2e ${CMAKE_CURRENT_LIST_DIR}/test_worker_e2e.c)
target_link_libraries(test_worker_e2e PRIVATE drover_broker drover_static)
add_dependencies(test_worker_e2e drover-worker drover_example_plugin)
add_test(NAME test_worker_e2e
  COMMAND test_worker_e2e $<TARGET_FILE:drover-worker> $<TARGET_FILE:drover_example_plugin>)
set_tests_properties(test_worker_e2e PROPERTIES TIMEOUT 120)
