// toml++'s compiled part for binaries linked with STATIC_DEPS: the library's documented
// single-translation-unit build (TOML_IMPLEMENTATION with TOML_HEADER_ONLY=0). Debian ships
// toml++ as a shared object and headers only.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
