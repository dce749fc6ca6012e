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

# The HTTP request parser, the broker's one unauthenticated network input:
# libFuzzer under clang (the sanitizer build .ci/run makes), a driver with
# generated inputs elsewhere.
if(CMAKE_C_COMPILER_ID MATCHES "Clang" AND DROVER_SANITIZE)
  # http.c is compiled into the target so the fuzzer sees its coverage
  add_executable(fuzz_http ${CMAKE_CURRENT_LIST_DIR}/fuzz_http.c
    ${PROJECT_SOURCE_DIR}/broker/http.c)
  target_include_directories(fuzz_http PRIVATE ${PROJECT_SOURCE_DIR}/broker)
  target_compile_definitions(fuzz_http PRIVATE DROVER_LIBFUZZER)
  target_compile_options(fuzz_http PRIVATE -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(fuzz_http PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_http PRIVATE drover_wire)
  set(FUZZ_HTTP_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_http_corpus)
  file(MAKE_DIRECTORY ${FUZZ_HTTP_CORPUS})
  # Seeds: the requests the endpoint really gets
  file(WRITE ${FUZZ_HTTP_CORPUS}/seed-metrics "GET /metrics HTTP/1.1\r\nHost: broker:9090\r\nAccept: */*\r\n\r\n")
  file(WRITE ${FUZZ_HTTP_CORPUS}/seed-probe "HEAD /readyz?x=1 HTTP/1.0\r\nUser-Agent: kube-probe\r\n\r\n")
  file(WRITE ${FUZZ_HTTP_CORPUS}/seed-post "POST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
  add_test(NAME fuzz_http COMMAND fuzz_http -max_total_time=20 -timeout=10 ${FUZZ_HTTP_CORPUS})
  set_tests_properties(fuzz_http PROPERTIES TIMEOUT 60)
else()
  add_executable(fuzz_http_driver ${CMAKE_CURRENT_LIST_DIR}/fuzz_http.c)
  target_link_libraries(fuzz_http_driver PRIVATE drover_broker)
  add_test(NAME fuzz_http_driver COMMAND fuzz_http_driver)
  set_tests_properties(fuzz_http_driver PROPERTIES TIMEOUT 60)
endif()
