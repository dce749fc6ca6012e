# Metrics building blocks (included by tests/CMakeLists.txt): the HTTP
# server on a STREAM socket, the Prometheus text writer, the journal's
# counters.

add_executable(test_http ${CMAKE_CURRENT_LIST_DIR}/test_http.c)
target_link_libraries(test_http PRIVATE drover_broker)
add_test(NAME http COMMAND test_http)
set_tests_properties(http PROPERTIES TIMEOUT 60)

add_executable(test_prom ${CMAKE_CURRENT_LIST_DIR}/test_prom.c)
target_link_libraries(test_prom PRIVATE drover_broker)
add_test(NAME prom COMMAND test_prom)
set_tests_properties(prom PROPERTIES TIMEOUT 30)

add_executable(test_journal_stats ${CMAKE_CURRENT_LIST_DIR}/test_journal_stats.c)
target_link_libraries(test_journal_stats PRIVATE drover_broker)
add_test(NAME journal_stats COMMAND test_journal_stats)
set_tests_properties(journal_stats PROPERTIES TIMEOUT 30)
