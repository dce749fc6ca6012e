# Operations: settings from flags, environment and config files for droverd
# and drover-worker; drover health against a stand-in HTTP responder;
# drover workers, stats --json and SIGHUP against a real broker and worker.
# Real binaries on 127.0.0.1 with OS-chosen ports, each test in its own
# temporary directory (tests/integration/lib.sh).
set(DROVER_OPS_ENV
  "DROVERD=$<TARGET_FILE:droverd>"
  "DROVER=$<TARGET_FILE:drover_cli>"
  "DROVER_WORKER=$<TARGET_FILE:drover-worker>"
  "DROVER_PLUGIN=$<TARGET_FILE:drover_example_plugin>"
  # A broker started without --metrics serves HTTP on loopback, on a port
  # the OS picks, never on the default *:9090.
  "DROVER_METRICS=tcp://127.0.0.1:0")
foreach(name config health workers)
  add_test(NAME ops_${name}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/ops/${name}.sh)
  set_tests_properties(ops_${name} PROPERTIES
    ENVIRONMENT "${DROVER_OPS_ENV}" TIMEOUT 60 SKIP_RETURN_CODE 77)
endforeach()

# The settings loader on its own.
add_executable(test_conf ${CMAKE_CURRENT_SOURCE_DIR}/ops/test_conf.c)
target_link_libraries(test_conf PRIVATE drover_wire)
add_test(NAME ops_conf COMMAND test_conf)
set_tests_properties(ops_conf PROPERTIES TIMEOUT 30)
