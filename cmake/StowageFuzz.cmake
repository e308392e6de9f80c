# stowage_fuzz(NAME SOURCES ... DEPS ... CORPUS dir): a libFuzzer target (clang, STOWAGE_FUZZ=ON).
# Registered as a ctest test labelled `fuzz` that runs for STOWAGE_FUZZ_SECONDS on a copy of the
# seed corpus, so new inputs never land in the source tree.
set(STOWAGE_FUZZ_SECONDS 10 CACHE STRING "Seconds each fuzz target runs under ctest")
function(stowage_fuzz name)
  cmake_parse_arguments(ARG "" "CORPUS" "SOURCES;DEPS" ${ARGN})
  if(NOT STOWAGE_FUZZ)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  stowage_apply_warnings(${name})
  set(_work ${CMAKE_BINARY_DIR}/fuzz-corpus/${name})
  add_test(NAME ${name}
      COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
              sh -c "rm -rf '${_work}' && mkdir -p '${_work}' '${CMAKE_BINARY_DIR}/fuzz-artifacts' && exec \"$0\" -max_total_time=${STOWAGE_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix='${CMAKE_BINARY_DIR}/fuzz-artifacts/${name}-' '${_work}' '${ARG_CORPUS}'"
              $<TARGET_FILE:${name}>)
  set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 120)
endfunction()
