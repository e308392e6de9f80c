# Stowage. `make test` installs dependencies, builds, and runs every test tier; `make demo` shows
# what the system does. See README.md.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build

.PHONY: all deps build test test-unit test-integration test-asan test-fuzz demo demo-down image lint format clean

all: build

deps:
	bash hack/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Every tier: unit, integration and e2e in the main build; the unit tier again under
# ASan+UBSan; each fuzz target for STOWAGE_FUZZ_SECONDS (default 10). Ends with one summary line.
test: deps
	bash hack/test.sh all

test-unit: build
	bash hack/test.sh unit

test-integration: build
	bash hack/test.sh integration

test-asan:
	bash hack/test.sh asan

test-fuzz:
	bash hack/test.sh fuzz

demo: deps
	bash hack/demo.sh

demo-down:
	bash hack/demo.sh down

# Container images (buildah on a debootstrap-made bookworm base); not part of `make test`.
image:
	bash hack/build-image.sh $(TAG)

lint: $(BUILD)/build.ninja
	git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run -Werror
	git ls-files 'libs/*.cpp' 'cli/*.cpp' | xargs clang-tidy -p $(BUILD) --quiet

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-fuzz
