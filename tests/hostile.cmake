# Hostile input (included by tests/CMakeLists.txt): seed corpora for the
# fuzzers, the whole-message broker fuzzer, and hostile and
# unauthenticated peers against a real droverd.

# Seeds: a valid envelope of every command for fuzz_codec, a conversation
# per command for fuzz_broker. Written by a test that the fuzz runs require.
# Under clang they go where the libFuzzer runs read their corpora; elsewhere
# (where fuzz_*_corpus names the replay drivers) into a directory of their own.
add_executable(hostile_seed_corpus ${CMAKE_CURRENT_LIST_DIR}/hostile/seed_corpus.c)
target_include_directories(hostile_seed_corpus PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(hostile_seed_corpus PRIVATE drover_wire)
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(FUZZ_CODEC_SEEDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_codec_corpus)
  set(FUZZ_BROKER_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_broker_corpus)
else()
  set(FUZZ_CODEC_SEEDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_seeds/codec)
  set(FUZZ_BROKER_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_seeds/broker)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz_seeds)
endif()
add_test(NAME fuzz_seeds COMMAND hostile_seed_corpus ${FUZZ_CODEC_SEEDS} ${FUZZ_BROKER_CORPUS})
set_tests_properties(fuzz_seeds PROPERTIES FIXTURES_SETUP fuzz_seeds TIMEOUT 30)
if(TEST fuzz_codec)
  set_tests_properties(fuzz_codec PROPERTIES FIXTURES_REQUIRED fuzz_seeds)
endif()

# The broker fed whole multipart messages (fuzz_broker.c). Under clang the
# broker's sources are compiled into the target so the fuzzer sees their
# coverage; elsewhere a driver replays generated inputs.
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  file(GLOB HOSTILE_BROKER_SOURCES ${PROJECT_SOURCE_DIR}/broker/*.c)
  list(REMOVE_ITEM HOSTILE_BROKER_SOURCES ${PROJECT_SOURCE_DIR}/broker/main.c)
  set_source_files_properties(${GEN_DIR}/drover.pb-c.c PROPERTIES GENERATED TRUE)
  add_executable(fuzz_broker ${CMAKE_CURRENT_LIST_DIR}/fuzz_broker.c ${HOSTILE_BROKER_SOURCES}
    ${PROJECT_SOURCE_DIR}/sdk/src/codec.c ${PROJECT_SOURCE_DIR}/sdk/src/util.c
    ${GEN_DIR}/drover.pb-c.c)
  target_compile_definitions(fuzz_broker PRIVATE DROVER_LIBFUZZER)
  target_include_directories(fuzz_broker PRIVATE ${CMAKE_CURRENT_LIST_DIR}
    ${PROJECT_SOURCE_DIR}/broker ${PROJECT_SOURCE_DIR}/sdk/src ${GEN_DIR})
  target_compile_options(fuzz_broker PRIVATE -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(fuzz_broker PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_broker PRIVATE PkgConfig::ZMQ PkgConfig::CZMQ
    PkgConfig::PROTOBUFC PkgConfig::SODIUM Threads::Threads m)
  add_dependencies(fuzz_broker drover_wire_obj)
  # The broker allocates on its own thread, so libFuzzer's per-input leak
  # check (which runs whenever an input's mallocs and frees differ) would
  # fire on nearly every input and cut the rate sixfold; leaks are still
  # found at exit, where the target stops the broker before LeakSanitizer runs.
  add_test(NAME fuzz_broker COMMAND fuzz_broker -max_total_time=25 -timeout=30
    -detect_leaks=0 -rss_limit_mb=4096 -print_final_stats=1 ${FUZZ_BROKER_CORPUS})
  set_tests_properties(fuzz_broker PROPERTIES TIMEOUT 90 FIXTURES_REQUIRED fuzz_seeds)
else()
  add_executable(fuzz_broker_corpus ${CMAKE_CURRENT_LIST_DIR}/fuzz_broker.c)
  target_include_directories(fuzz_broker_corpus PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(fuzz_broker_corpus PRIVATE drover_broker)
  add_test(NAME fuzz_broker_corpus COMMAND fuzz_broker_corpus)
  set_tests_properties(fuzz_broker_corpus PROPERTIES TIMEOUT 60)
endif()

# Hostile and unauthenticated peers against a real droverd (CURVE on).
foreach(t hostile_peers floods)
  add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/hostile/${t}.c)
  target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../sdk/src)
  target_link_libraries(${t} PRIVATE drover_static PkgConfig::ZMQ PkgConfig::CZMQ
    PkgConfig::PROTOBUFC PkgConfig::SODIUM Threads::Threads)
  add_test(NAME ${t} COMMAND ${t} $<TARGET_FILE:droverd>)
  set_tests_properties(${t} PROPERTIES TIMEOUT 120
    ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/hostile/lsan-attackers.supp")
endforeach()

# Regression found by fuzz_broker: a purged dead letter's timer.
add_executable(hostile_dead_purge ${CMAKE_CURRENT_LIST_DIR}/hostile/dead_purge.c)
target_link_libraries(hostile_dead_purge PRIVATE drover_broker)
add_test(NAME hostile_dead_purge COMMAND hostile_dead_purge)
set_tests_properties(hostile_dead_purge PROPERTIES TIMEOUT 30)

# The codec keeps every field: decode, encode, decode, encode gives the
# same bytes twice (fuzz_codec_fields.c), from the envelope seeds.
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz_codec_fields ${CMAKE_CURRENT_LIST_DIR}/fuzz_codec_fields.c
    ${PROJECT_SOURCE_DIR}/sdk/src/codec.c ${GEN_DIR}/drover.pb-c.c)
  target_compile_definitions(fuzz_codec_fields PRIVATE DROVER_LIBFUZZER)
  target_include_directories(fuzz_codec_fields PRIVATE ${CMAKE_CURRENT_LIST_DIR}
    ${PROJECT_SOURCE_DIR}/sdk/src ${GEN_DIR})
  target_compile_options(fuzz_codec_fields PRIVATE -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(fuzz_codec_fields PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_codec_fields PRIVATE PkgConfig::ZMQ PkgConfig::PROTOBUFC)
  add_dependencies(fuzz_codec_fields drover_wire_obj)
  # Its own copy of the seeds, so that what it adds stays out of fuzz_codec's
  set(FUZZ_FIELDS_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_codec_fields_corpus)
  add_test(NAME fuzz_codec_fields_seeds COMMAND ${CMAKE_COMMAND} -E copy_directory
    ${FUZZ_CODEC_SEEDS} ${FUZZ_FIELDS_CORPUS})
  set_tests_properties(fuzz_codec_fields_seeds PROPERTIES FIXTURES_REQUIRED fuzz_seeds
    FIXTURES_SETUP fuzz_fields_seeds TIMEOUT 30)
  add_test(NAME fuzz_codec_fields COMMAND fuzz_codec_fields -max_total_time=10
    -print_final_stats=1 ${FUZZ_FIELDS_CORPUS})
  set_tests_properties(fuzz_codec_fields PROPERTIES TIMEOUT 60 FIXTURES_REQUIRED fuzz_fields_seeds)
else()
  add_executable(fuzz_codec_fields_corpus ${CMAKE_CURRENT_LIST_DIR}/fuzz_codec_fields.c)
  target_include_directories(fuzz_codec_fields_corpus PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(fuzz_codec_fields_corpus PRIVATE drover_wire)
  add_test(NAME fuzz_codec_fields_corpus COMMAND fuzz_codec_fields_corpus)
  set_tests_properties(fuzz_codec_fields_corpus PROPERTIES TIMEOUT 60)
endif()

# Regression found by fuzz_broker: a session completing a barrier round it
# was already waiting in (use after free under AddressSanitizer).
add_executable(hostile_barrier_self ${CMAKE_CURRENT_LIST_DIR}/hostile/barrier_self.c)
target_link_libraries(hostile_barrier_self PRIVATE drover_broker)
add_test(NAME hostile_barrier_self COMMAND hostile_barrier_self)
set_tests_properties(hostile_barrier_self PROPERTIES TIMEOUT 30)

# Regression found by fuzz_broker: a Submit with no job (undefined behaviour).
add_executable(hostile_empty_submit ${CMAKE_CURRENT_LIST_DIR}/hostile/empty_submit.c)
target_link_libraries(hostile_empty_submit PRIVATE drover_broker)
add_test(NAME hostile_empty_submit COMMAND hostile_empty_submit)
set_tests_properties(hostile_empty_submit PROPERTIES TIMEOUT 30)
