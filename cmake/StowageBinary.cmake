# stowage_binary(NAME SOURCES ... DEPS ...): a shipped executable, written to build/bin/.
function(stowage_binary name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  stowage_apply_warnings(${name})
endfunction()
