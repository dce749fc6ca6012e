# Journal tests (included by tests/CMakeLists.txt): the unit test, and the
# journal-reader fuzz target (libFuzzer under clang; elsewhere a driver
# that runs the same target over generated inputs or a saved corpus).

add_executable(test_journal ${CMAKE_CURRENT_LIST_DIR}/test_journal.c)
target_link_libraries(test_journal PRIVATE drover_broker)
add_test(NAME journal COMMAND test_journal)
set_tests_properties(journal PROPERTIES TIMEOUT 60)

if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  # journal.c is compiled into the target so it carries the fuzzer's
  # coverage and the sanitizers; drover_wire only supplies drv_log.
  add_executable(fuzz_journal ${CMAKE_CURRENT_LIST_DIR}/fuzz_journal.c
    ${CMAKE_CURRENT_LIST_DIR}/../broker/journal.c)
  target_include_directories(fuzz_journal PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../broker)
  target_compile_options(fuzz_journal PRIVATE -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(fuzz_journal PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_journal PRIVATE drover_wire)
  # Bounded run in `make test`; any crash, leak or UB fails it
  set(FUZZ_JOURNAL_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_journal_corpus)
  file(MAKE_DIRECTORY ${FUZZ_JOURNAL_CORPUS})
  add_test(NAME fuzz_journal COMMAND fuzz_journal -max_total_time=20 ${FUZZ_JOURNAL_CORPUS})
  set_tests_properties(fuzz_journal PROPERTIES TIMEOUT 60)
else()
  add_executable(fuzz_journal_corpus ${CMAKE_CURRENT_LIST_DIR}/fuzz_journal.c
    ${CMAKE_CURRENT_LIST_DIR}/fuzz_journal_main.c)
  target_link_libraries(fuzz_journal_corpus PRIVATE drover_broker)
  add_test(NAME fuzz_journal_corpus COMMAND fuzz_journal_corpus)
  set_tests_properties(fuzz_journal_corpus PROPERTIES TIMEOUT 60)
endif()
