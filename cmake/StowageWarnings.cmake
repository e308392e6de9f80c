# The one warnings list of the project. Generated code (protobuf, gRPC) uses the laxer list.
set(STOWAGE_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Wcast-align
    -Wimplicit-fallthrough -Wformat=2 -Wmissing-declarations)
set(STOWAGE_GENERATED_WARNINGS -Wall -Wno-unused-parameter)

function(stowage_apply_warnings target)
  target_compile_options(${target} PRIVATE ${STOWAGE_WARNINGS})
  if(STOWAGE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(stowage_apply_generated_warnings target)
  target_compile_options(${target} PRIVATE ${STOWAGE_GENERATED_WARNINGS})
endfunction()
