# STOWAGE_SANITIZE=address,undefined builds everything with those sanitizers (the unit tier runs
# under them in `make test`).
if(STOWAGE_SANITIZE)
  string(REPLACE "," ";" _sanitizers "${STOWAGE_SANITIZE}")
  foreach(_s IN LISTS _sanitizers)
    add_compile_options(-fsanitize=${_s})
    add_link_options(-fsanitize=${_s})
  endforeach()
  add_compile_options(-fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fno-sanitize-recover=all)
endif()

# With STOWAGE_FUZZ every object (libraries included) carries libFuzzer's coverage
# instrumentation, so the fuzzer is guided by the parsers' branches, not only the harness's.
if(STOWAGE_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
