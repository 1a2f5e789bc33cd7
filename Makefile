# Agora: the two commands a newcomer needs are `make run` and `make test`.
# Everything builds with CMake; this file only names the common tasks.

BUILD        ?= build
BUILD_ASAN   ?= build-asan
BUILD_FUZZ   ?= build-fuzz
JOBS         ?= $(shell nproc)
FUZZ_SECONDS ?= 60
PYTHON       ?= /usr/bin/python3

# cmake --build runs make again; its "Entering directory" lines only add noise.
MAKEFLAGS    += --no-print-directory

.PHONY: all deps build test unit e2e e2e-asan run bench fuzz format clean

all: build

deps:
	@scripts/deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DAGORA_TESTS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Unit tests run in the sanitizer build; the e2e tests run twice: against the release binaries
# (what ships) and against the ASan+UBSan ones, so that real traffic (refusals, slowloris,
# drain) is checked for memory errors and leaks too.
unit: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DAGORA_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS)

e2e: build
	@AGORA_BIN=$(CURDIR)/$(BUILD)/bin $(PYTHON) -m pytest -q tests/e2e

e2e-asan: unit
	@AGORA_BIN=$(CURDIR)/$(BUILD_ASAN)/bin $(PYTHON) -m pytest -q tests/e2e

test: unit e2e e2e-asan

# agora up: auth, hello, products and the gateway on http://127.0.0.1:8080, state under var/,
# the demo catalog seeded at the first start (Ctrl-C stops).
run: build
	@AGORA_BIN=$${AGORA_BIN:-$(BUILD)/bin} $(BUILD)/bin/agora up --config config/platform.yaml --seed

bench: build
	@bench/run

fuzz: deps
	@cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DAGORA_FUZZ=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(BUILD_FUZZ)/fuzz

format:
	@clang-format -i src/*/*.[ch] src/*/*/*.[ch] src/*/*/*/*.[ch] tests/unit/*.h tests/unit/*/*.[ch] tests/fuzz/*.c 2>/dev/null || true

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
