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

# The envelope decoder: the same arrangement as the journal's.
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  # The generated code comes from sdk/'s protoc-c rule
  set_source_files_properties(${GEN_DIR}/drover.pb-c.c PROPERTIES GENERATED TRUE)
  add_executable(fuzz_codec ${CMAKE_CURRENT_LIST_DIR}/fuzz_codec.c
    ${PROJECT_SOURCE_DIR}/sdk/src/codec.c ${GEN_DIR}/drover.pb-c.c)
  target_compile_definitions(fuzz_codec PRIVATE DROVER_LIBFUZZER)
  target_include_directories(fuzz_codec PRIVATE ${PROJECT_SOURCE_DIR}/sdk/src ${GEN_DIR})
  target_compile_options(fuzz_codec PRIVATE -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(fuzz_codec PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_codec PRIVATE PkgConfig::ZMQ PkgConfig::PROTOBUFC)
  add_dependencies(fuzz_codec drover_wire_obj)
  set(FUZZ_CODEC_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_codec_corpus)
  file(MAKE_DIRECTORY ${FUZZ_CODEC_CORPUS})
  add_test(NAME fuzz_codec COMMAND fuzz_codec -max_total_time=20 ${FUZZ_CODEC_CORPUS})
  set_tests_properties(fuzz_codec PROPERTIES TIMEOUT 60)
else()
  add_executable(fuzz_codec_corpus ${CMAKE_CURRENT_LIST_DIR}/fuzz_codec.c)
  target_link_libraries(fuzz_codec_corpus PRIVATE drover_wire)
  add_test(NAME fuzz_codec_corpus COMMAND fuzz_codec_corpus)
  set_tests_properties(fuzz_codec_corpus PROPERTIES TIMEOUT 60)
endif()
