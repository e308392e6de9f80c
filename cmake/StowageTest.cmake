# stowage_test(NAME LABEL unit|integration|e2e SOURCES ... DEPS ... [TIMEOUT s] [ENV k=v ...]
#              [ONE_PROCESS]):
# a GoogleTest executable; every TEST() becomes one ctest test carrying LABEL. With ONE_PROCESS
# the executable is a single ctest test instead: its TESTs share one suite fixture (one whole
# system started once) and run in the order written.
include(GoogleTest)
function(stowage_test name)
  cmake_parse_arguments(ARG "ONE_PROCESS" "LABEL;TIMEOUT" "SOURCES;DEPS;ENV" ${ARGN})
  if(NOT ARG_LABEL)
    message(FATAL_ERROR "stowage_test(${name}): LABEL is required")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
      STOWAGE_SOURCE_DIR="${PROJECT_SOURCE_DIR}" STOWAGE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  stowage_apply_warnings(${name})
  if(ARG_ONE_PROCESS)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES
        LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT} ENVIRONMENT "${ARG_ENV}")
  else()
    gtest_discover_tests(${name}
        PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT} ENVIRONMENT "${ARG_ENV}"
        DISCOVERY_TIMEOUT 60)
  endif()
endfunction()

# stowage_script_test(NAME LABEL l COMMAND ...): a test that is a script.
function(stowage_script_test name)
  cmake_parse_arguments(ARG "" "LABEL" "COMMAND" ${ARGN})
  add_test(NAME ${name} COMMAND ${ARG_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS ${ARG_LABEL})
endfunction()
