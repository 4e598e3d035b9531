# usb-device-plugin
#   make            build bin/usb-device-plugin
#   make run        set up, build, run on config/default.yaml in the foreground
#   make test       set up; unit + integration tests with ASan+UBSan, then the
#                   integration tests again under valgrind
#   make bench      figures: Allocate latency, event-to-update latency, RSS, idle CPU
#   make lint       cppcheck + clang-format --dry-run
#   make e2e        the image and the shipped manifests on a real cluster
# The release, from VERSION; the image and the manifests use the same tag.
VERSION := $(shell cat VERSION)

PKGS     := grpc libprotobuf-c libcjson yaml-0.1 libudev libusb-1.0 libmicrohttpd
CC       ?= cc
WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
BASEFLAGS = -std=gnu11 $(WARN) -D_GNU_SOURCE -DUDP_VERSION='"$(VERSION)"' \
            -Isrc -Ibuild/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2 -g
LDLIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
SANFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

SRC       := $(wildcard src/*.c)
GEN       := build/gen/deviceplugin.pb-c.c
LIBSRC    := $(filter-out src/main.c,$(SRC)) $(GEN)
OBJ       := $(patsubst %.c,build/obj/%.o,$(notdir $(SRC) $(GEN)))
LIBOBJ_SAN := $(patsubst %.c,build/san/%.o,$(notdir $(LIBSRC)))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,build/san/%,$(UNIT_SRC))

vpath %.c src build/gen tests/unit

.PHONY: all run test unit integration valgrind bench lint clean setup setup-test fuzz image e2e
all: bin/usb-device-plugin

setup:
	@scripts/setup.sh
setup-test:
	@scripts/setup.sh --test

# The messages only: gRPC core carries the bytes, and protoc-c's service
# stubs would name a member after the C keyword "register".
build/gen/deviceplugin.pb-c.c build/gen/deviceplugin.pb-c.h: proto/deviceplugin.proto
	@mkdir -p build/gen
	awk '/^service /{skip=1} !skip{print} skip&&/^}/{skip=0}' $< > build/gen/deviceplugin.proto
	protoc-c --c_out=build/gen -Ibuild/gen build/gen/deviceplugin.proto

build/obj/%.o: %.c build/gen/deviceplugin.pb-c.h VERSION
	@mkdir -p build/obj
	$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

build/san/%.o: %.c build/gen/deviceplugin.pb-c.h VERSION
	@mkdir -p build/san
	$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -MP -c -o $@ $<

bin/usb-device-plugin: $(OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The binary the tests run: the same sources, with sanitizers.
build/san/usb-device-plugin: $(LIBOBJ_SAN) build/san/main.o
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# Keep the test objects: no "rm" after the test summary, faster rebuilds.
.PRECIOUS: build/san/%.o build/obj/%.o

build/san/test_%: build/san/test_%.o $(LIBOBJ_SAN)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

run: setup
	@$(MAKE) --no-print-directory all
	bin/usb-device-plugin --config config/default.yaml

# ASan's leak checker cannot run under ptrace-less containers everywhere;
# it works here (root, no seccomp) and stays on.
export ASAN_OPTIONS := abort_on_error=0:detect_leaks=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1

test: setup-test
	@$(MAKE) --no-print-directory unit integration valgrind

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do ./$$t || exit 1; done

# Debian's python3 (pyenv's may shadow it) has grpcio and protobuf.
PYTEST := /usr/bin/python3 -m pytest -q -p no:cacheprovider

# An independent libudev + libusb client that checks the fake USB world.
build/usbprobe: tests/integration/usbprobe.c
	@mkdir -p build
	$(CC) -O1 -g -Wall -Wextra -Werror -o $@ $< $(shell pkg-config --cflags --libs libudev libusb-1.0)

export UDP_USBPROBE := $(CURDIR)/build/usbprobe

integration: build/san/usb-device-plugin build/usbprobe
	UDP_BIN=$(CURDIR)/build/san/usb-device-plugin $(PYTEST) tests/integration

# The integration suite again, the release binary under valgrind: any error
# or definite leak makes the plugin exit 99 and the test fail.
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no
valgrind: bin/usb-device-plugin build/usbprobe
	UDP_BIN=$(CURDIR)/bin/usb-device-plugin UDP_WRAP="$(VALGRIND)" $(PYTEST) tests/integration

test-valgrind: setup-test
	@$(MAKE) --no-print-directory valgrind

# The container image (podman; a debootstrap'd base when none can be
# pulled), smoke-tested: see docs/image.md.
image: setup
	scripts/image.sh

# The image and manifests/ on a real single-node Kubernetes built from
# Debian's packages (scripts/e2e/cluster.sh: cached in /var/cache/usbdp-e2e,
# E2E_CACHE), or on the cluster KUBECONFIG names: see docs/e2e.md.
e2e: setup-test
	@$(MAKE) --no-print-directory image
	/usr/bin/python3 -m pytest -v -rs -p no:cacheprovider tests/e2e

bench: setup-test
	@$(MAKE) --no-print-directory all
	/usr/bin/python3 tests/bench/bench.py
	/usr/bin/python3 tests/bench/bench_usb.py

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--suppress=missingIncludeSystem -Isrc -Ibuild/gen src
	clang-format --dry-run --Werror src/*.c src/*.h tests/unit/*.c

clean:
	rm -rf build bin

# make fuzz: libFuzzer targets (clang), see tests/fuzz/
-include tests/fuzz/fuzz.mk

-include $(wildcard build/obj/*.d build/san/*.d)
