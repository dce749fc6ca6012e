# SDK unit tests (included by tests/CMakeLists.txt). Each test is its own
# executable; none needs a running broker (the fake brokers live in the tests).
set(DROVER_SDK_TESTS test_sdk_basic test_sdk_client test_sdk_worker test_sdk_auth
  test_sdk_state test_sdk_sync)
add_executable(test_codec ${CMAKE_CURRENT_LIST_DIR}/test_codec.c)
target_link_libraries(test_codec PRIVATE drover_wire)
add_test(NAME test_codec COMMAND test_codec)
set_tests_properties(test_codec PROPERTIES TIMEOUT 60)
foreach(t ${DROVER_SDK_TESTS})
  add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c)
  # The SDK tests also use codec.h/util.h to play a fake broker
  target_link_libraries(${t} PRIVATE drover_static
    PkgConfig::ZMQ PkgConfig::CZMQ PkgConfig::PROTOBUFC PkgConfig::SODIUM Threads::Threads)
  target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../sdk/src)
  add_test(NAME ${t} COMMAND ${t})
  set_tests_properties(${t} PROPERTIES TIMEOUT 60)
endforeach()
