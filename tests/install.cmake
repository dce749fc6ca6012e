# Installation: cmake --install into a temporary prefix, then a producer
# built outside the tree against it (pkg-config and find_package), run
# against a real broker and worker. See tests/install/install.sh.
# A sanitized libdrover can only be linked into sanitized programs, as
# anyone embedding such a build would have to.
set(DROVER_INSTALL_CONSUMER_FLAGS "")
if(DROVER_SANITIZE)
  set(DROVER_INSTALL_CONSUMER_FLAGS "-fsanitize=address,undefined")
endif()
add_test(NAME install
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/install.sh)
set_tests_properties(install PROPERTIES
  ENVIRONMENT "DROVER_METRICS=tcp://127.0.0.1:0;DROVERD=$<TARGET_FILE:droverd>;DROVER=$<TARGET_FILE:drover_cli>;DROVER_WORKER=$<TARGET_FILE:drover-worker>;DROVER_PLUGIN=$<TARGET_FILE:drover_example_plugin>;DROVER_BUILD_DIR=${CMAKE_BINARY_DIR};DROVER_BUILD_CONFIG=$<CONFIG>;CMAKE_COMMAND=${CMAKE_COMMAND};CC=${CMAKE_C_COMPILER};CONSUMER_FLAGS=${DROVER_INSTALL_CONSUMER_FLAGS}"
  TIMEOUT 120)
