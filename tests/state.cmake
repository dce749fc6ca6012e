# Shared state end to end (included by tests/CMakeLists.txt): a broker actor
# in process, replicas and clients through the SDK, CAS children re-executed
# from the test binary itself.
add_executable(test_state_e2e ${CMAKE_CURRENT_LIST_DIR}/test_state_e2e.c)
target_link_libraries(test_state_e2e PRIVATE drover_broker drover_static)
add_test(NAME test_state_e2e COMMAND test_state_e2e)
set_tests_properties(test_state_e2e PROPERTIES TIMEOUT 120)
