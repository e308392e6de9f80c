# stowage_library(NAME SOURCES ... DEPS ...): one static library per folder under libs/, exported
# as stowage::NAME. Headers are included as "NAME/header.h" (include root libs/).
function(stowage_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(stowage_${name} STATIC ${ARG_SOURCES})
  add_library(stowage::${name} ALIAS stowage_${name})
  target_include_directories(stowage_${name} PUBLIC ${PROJECT_SOURCE_DIR}/libs)
  target_link_libraries(stowage_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  set_target_properties(stowage_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  stowage_apply_warnings(stowage_${name})
endfunction()
