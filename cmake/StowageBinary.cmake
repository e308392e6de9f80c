# stowage_binary(NAME SOURCES ... DEPS ... [STATIC_DEPS]): a shipped executable, written to
# build/bin/. With STATIC_DEPS (and the STOWAGE_STATIC_DEPS option on) it links the third-party
# libraries of StowageStaticDeps.cmake from their static archives, dropping unused sections, and
# packs its relative relocations (DT_RELR): fewer pages read and written at start.
function(stowage_binary name)
  cmake_parse_arguments(ARG "STATIC_DEPS" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  if(ARG_STATIC_DEPS AND STOWAGE_STATIC_DEPS)
    set_target_properties(${name} PROPERTIES STOWAGE_STATIC_DEPS ON)
    target_link_options(${name} PRIVATE LINKER:--gc-sections LINKER:--as-needed
                        LINKER:-z,pack-relative-relocs)
  endif()
  stowage_apply_warnings(${name})
endfunction()
