# Binaries declared with stowage_binary(... STATIC_DEPS) link protobuf, libnghttp2, libarchive,
# yaml-cpp, OpenSSL and their compression libraries from Debian's static archives instead of their
# shared objects, with unused sections dropped: fewer libraries to map, relocate and keep resident
# (the node agent's idle RSS, bench/README.md). fmt, spdlog and toml++, which Debian ships as
# shared objects only, are compiled from their headers (static_deps/), and the C++ runtime is
# linked in, so such a binary loads only the C library. Such a binary must not use libcurl
# (http_curl), whose shared dependencies would load a second OpenSSL. A rebuild picks up
# OpenSSL fixes (the images build from the current Debian packages). Every other target links
# the shared objects as before.
#
# stowage_static_deps_apply() must run once all targets exist: it rewrites each library's link
# interface so the choice is made per linked binary, by its STOWAGE_STATIC_DEPS property.
option(STOWAGE_STATIC_DEPS "Link binaries marked STATIC_DEPS against static archives" ON)

# Imported targets linked from archives, and the pkg-config modules that describe the archives.
set(_stowage_static_targets protobuf::libprotobuf PkgConfig::NGHTTP2 LibArchive::LibArchive
    ZLIB::ZLIB yaml-cpp OpenSSL::SSL OpenSSL::Crypto spdlog::spdlog fmt::fmt
    tomlplusplus::tomlplusplus)
set(_stowage_static_modules protobuf libnghttp2 libarchive zlib yaml-cpp libssl libcrypto)
# Never from an archive: the C runtime.
set(_stowage_shared_only c m dl rt pthread atomic)

if(STOWAGE_STATIC_DEPS)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(STOWAGE_STATIC REQUIRED ${_stowage_static_modules})
  set(_archives)
  foreach(_name IN LISTS STOWAGE_STATIC_STATIC_LIBRARIES)
    if(_name IN_LIST _stowage_shared_only)
      continue()
    endif()
    find_library(_archive NAMES lib${_name}.a HINTS ${STOWAGE_STATIC_STATIC_LIBRARY_DIRS} NO_CACHE)
    if(_archive)
      list(APPEND _archives ${_archive})
    else()
      # No archive (libacl, liblz4): libarchive needs them only for ACLs and LZ4, which Stowage
      # does not use; a binary that did would fail to link, not load a second copy.
      message(STATUS "static deps: no lib${_name}.a, left out")
    endif()
    unset(_archive)
  endforeach()
  list(REMOVE_DUPLICATES _archives)
  list(JOIN _archives "," _archive_list)
  # fmt, spdlog and toml++ come as shared objects only: their compiled parts are built here
  # (static_deps/), and so is the C++ runtime linked in, since then no shared object needs it.
  add_library(stowage_static_impl STATIC ${CMAKE_CURRENT_LIST_DIR}/static_deps/fmt.cpp
      ${CMAKE_CURRENT_LIST_DIR}/static_deps/spdlog.cpp ${CMAKE_CURRENT_LIST_DIR}/static_deps/toml.cpp)
  target_compile_definitions(stowage_static_impl
      PUBLIC SPDLOG_COMPILED_LIB SPDLOG_FMT_EXTERNAL TOML_HEADER_ONLY=0)
  target_link_libraries(stowage_static_impl PUBLIC Threads::Threads)
  add_library(stowage_static_deps INTERFACE)
  # One group: the archives may refer to each other in any order.
  target_link_libraries(stowage_static_deps INTERFACE
      stowage_static_impl "$<LINK_GROUP:RESCAN,${_archive_list}>" Threads::Threads
      ${CMAKE_DL_LIBS} m rt)
  if(NOT STOWAGE_SANITIZE)  # the sanitizers' runtimes expect the shared C++ runtime
    target_link_options(stowage_static_deps INTERFACE -static-libstdc++ -static-libgcc)
  endif()
endif()

function(_stowage_static_deps_rewrite target property)
  get_target_property(_items ${target} ${property})
  if(NOT _items)
    return()
  endif()
  set(_out)
  set(_changed FALSE)
  foreach(_item IN LISTS _items)
    foreach(_dep IN LISTS _stowage_static_targets)
      set(_pick "$<IF:$<BOOL:$<TARGET_PROPERTY:STOWAGE_STATIC_DEPS>>,stowage_static_deps,${_dep}>")
      if(_item STREQUAL _dep)
        set(_item "${_pick}")
        set(_changed TRUE)
      elseif(_item STREQUAL "$<LINK_ONLY:${_dep}>")
        set(_item "$<LINK_ONLY:${_pick}>")
        set(_changed TRUE)
      endif()
    endforeach()
    list(APPEND _out "${_item}")
  endforeach()
  if(_changed)
    set_property(TARGET ${target} PROPERTY ${property} "${_out}")
  endif()
endfunction()

# Makes every library under dir (recursively) link the archives into binaries marked
# STOWAGE_STATIC_DEPS and the shared objects into the rest.
function(stowage_static_deps_apply dir)
  if(NOT STOWAGE_STATIC_DEPS)
    return()
  endif()
  get_property(_targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_type ${_target} TYPE)
    if(_type STREQUAL "STATIC_LIBRARY")
      _stowage_static_deps_rewrite(${_target} INTERFACE_LINK_LIBRARIES)
    elseif(_type STREQUAL "EXECUTABLE")
      _stowage_static_deps_rewrite(${_target} LINK_LIBRARIES)
    endif()
  endforeach()
  get_property(_subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(_subdir IN LISTS _subdirs)
    stowage_static_deps_apply(${_subdir})
  endforeach()
endfunction()
