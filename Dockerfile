# Stowage container images: one build stage on Debian bookworm with the packages of
# hack/install-deps.sh (build set), and two runtime stages that install only the shared libraries
# the binaries load. tests/integration/dockerfile checks the runtime package lists against `ldd`.
#   make image                      # buildah, on a bookworm base made with debootstrap
#   buildah bud --target operator -t stowage-operator .
ARG BASE_IMAGE=docker.io/library/debian:bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY hack/install-deps.sh hack/install-deps.sh
RUN bash hack/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build* \
 && cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTOWAGE_BUILD_TESTS=OFF \
 && cmake --build /build --target stowage-operator stowage-agent stowctl -j "$(nproc)" \
 && install -d /out/bin \
 && install -s /build/bin/stowage-operator /build/bin/stowage-agent /build/bin/stowctl /out/bin/

# The operator: a Kubernetes client and a registry client (tag resolution). Runs as non-root.
FROM ${BASE_IMAGE} AS operator
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      ca-certificates libcurl4 libfmt9 libspdlog1.10 libssl3 libtomlplusplus3 \
      libyaml-cpp0.7 libzstd1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/stowage-operator /usr/bin/stowage-operator
USER 65532:65532
ENTRYPOINT ["/usr/bin/stowage-operator"]

# The node agent, with stowctl for work by hand on a node (`stowctl --cri-endpoint ... images`).
# It runs as root in the DaemonSet: it writes host files and signals the runtime.
FROM ${BASE_IMAGE} AS agent
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      ca-certificates libarchive13 libcurl4 libfmt9 libnghttp2-14 libprotobuf32 \
      libspdlog1.10 libssl3 libtomlplusplus3 libyaml-cpp0.7 libzstd1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/stowage-agent /usr/bin/stowage-agent
COPY --from=build /out/bin/stowctl /usr/bin/stowctl
ENTRYPOINT ["/usr/bin/stowage-agent"]
