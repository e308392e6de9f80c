# Third-party libraries, all from Debian packages installed by hack/install-deps.sh.
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(CURL REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(LibArchive REQUIRED)
find_package(ZLIB REQUIRED)
# CRI client (libs/cri): protoc and grpc_cpp_plugin generate C++ from libs/cri/api.proto at build
# time; gRPC's CMake package also finds its own dependencies (absl, re2, c-ares).
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
# HTTP/2 framing and HPACK for the CRI client's gRPC calls (libs/cri/grpc_unary.cpp).
find_package(PkgConfig REQUIRED)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
if(STOWAGE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
