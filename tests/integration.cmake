# Integration tests: real droverd, drover-worker and drover processes on
# 127.0.0.1 with OS-chosen ports, each in its own temporary directory.
set(DROVER_IT_ENV
  "DROVERD=$<TARGET_FILE:droverd>"
  "DROVER=$<TARGET_FILE:drover_cli>"
  "DROVER_WORKER=$<TARGET_FILE:drover-worker>"
  "DROVER_PLUGIN=$<TARGET_FILE:drover_example_plugin>"
  "EXAMPLE_PRODUCER=$<TARGET_FILE:example_producer>"
  "EXAMPLE_WORKER=$<TARGET_FILE:example_worker>"
  "EXAMPLES_DIR=$<TARGET_FILE_DIR:example_producer>"
  # droverd serves HTTP on *:9090 by default: tests keep it on loopback
  # with an OS-chosen port (a flag still overrides it)
  "DROVER_METRICS=tcp://127.0.0.1:0")
foreach(name jobpath security faults restart examples partition durability crash admin state sync metrics)
  add_test(NAME it_${name}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/${name}.sh)
  set_tests_properties(it_${name} PROPERTIES
    ENVIRONMENT "${DROVER_IT_ENV}" TIMEOUT 180)
endforeach()
# Needs root, ip netns and iptables; exits 77 (skipped) without them.
set_tests_properties(it_partition PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 90)
