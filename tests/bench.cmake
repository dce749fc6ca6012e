# `drover bench` smoke test (included by tests/CMakeLists.txt): a run with
# tiny parameters must exit 0 and print one line of sane JSON, with the raw
# floor when it is built. drover finds droverd in the build tree itself.
if(TARGET drover_cli AND TARGET droverd)
  if(TARGET raw_floor)
    set(_bench_raw $<TARGET_FILE:raw_floor>)
  else()
    set(_bench_raw "")
  endif()
  add_test(NAME bench_smoke
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bench_smoke.sh
            $<TARGET_FILE:drover_cli> ${_bench_raw})
  set_tests_properties(bench_smoke PROPERTIES TIMEOUT 120)
  unset(_bench_raw)
endif()
