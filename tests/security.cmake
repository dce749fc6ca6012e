# Security (included by tests/CMakeLists.txt): every access rule of the
# broker against the in-process actor with CURVE on (roles, queue limits,
# submitter identity, allow-list reloads, limits, server secret mode), and
# the same rules end to end with the real droverd, drover and drover-worker.
add_executable(test_security ${CMAKE_CURRENT_LIST_DIR}/security/test_security.c)
target_link_libraries(test_security PRIVATE drover_broker drover_static Threads::Threads)
add_test(NAME test_security COMMAND test_security)
set_tests_properties(test_security PROPERTIES TIMEOUT 90)
# Isolation between keys: dead-letter ids, resubmitted ids, session
# takeover, revocation seen first by a handshake, revoked subscriptions.
add_test(NAME test_security_isolation COMMAND test_security isolation)
set_tests_properties(test_security_isolation PROPERTIES TIMEOUT 60)
# End to end with the real binaries (environment from integration.cmake).
foreach(name daemon keygen)
  add_test(NAME security_${name}
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/security/${name}.sh)
  set_tests_properties(security_${name} PROPERTIES ENVIRONMENT "${DROVER_IT_ENV}" TIMEOUT 120)
endforeach()
