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

PKGS     := grpc libprotobuf-c libcjson yaml-0.1 libudev libusb-1.0 re2 libcurl libcrypto
PKG_CONFIG ?= pkg-config
CC       ?= cc
# C++ only for src/gore.cc, the shim over RE2's C++ API.
CXX      ?= g++
WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
BASEFLAGS = -std=gnu11 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DUDP_VERSION='"$(VERSION)"' \
            -Isrc -Ibuild/gen $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2 -g
CXXBASE   = -std=c++17 $(WARN) -D_GNU_SOURCE -Isrc $(shell $(PKG_CONFIG) --cflags re2 2>/dev/null)
LDLIBS    = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lpthread
SANFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

SRC       := $(wildcard src/*.c src/*.cc)
GEN       := build/gen/deviceplugin.pb-c.c build/gen/podresources.pb-c.c
GENH      := $(GEN:.c=.h)
LIBSRC    := $(filter-out src/main.c,$(SRC)) $(GEN)
objs       = $(patsubst %,$(1)/%.o,$(basename $(notdir $(2))))
OBJ       := $(call objs,build/obj,$(SRC) $(GEN))
LIBOBJ_SAN := $(call objs,build/san,$(LIBSRC))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,build/san/%,$(UNIT_SRC))

vpath %.c src build/gen tests/unit
vpath %.cc src

.PHONY: all run test unit integration valgrind bench lint clean setup setup-test fuzz image \
	release image-archive push test-cross e2e
all: bin/usb-device-plugin

setup:
	@scripts/setup.sh
setup-test:
	@scripts/setup.sh --test

# The messages only: gRPC core carries the bytes, and protoc-c's service
# stubs would name a member after the C keyword "register". One run makes
# both files (a pattern rule's targets are made together: make -j runs
# protoc-c once per proto).
build/gen/%.pb-c.c build/gen/%.pb-c.h: proto/%.proto
	@mkdir -p build/gen
	awk '/^service /{skip=1} !skip{print} skip&&/^}/{skip=0}' $< > build/gen/$*.proto
	protoc-c --c_out=build/gen -Ibuild/gen build/gen/$*.proto

build/obj/%.o: %.c $(GENH) VERSION
	@mkdir -p build/obj
	$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

build/san/%.o: %.c $(GENH) VERSION
	@mkdir -p build/san
	$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -MP -c -o $@ $<

build/obj/%.o: %.cc
	@mkdir -p build/obj
	$(CXX) $(CXXBASE) $(CFLAGS) -MMD -MP -c -o $@ $<

build/san/%.o: %.cc
	@mkdir -p build/san
	$(CXX) $(CXXBASE) $(SANFLAGS) -MMD -MP -c -o $@ $<

# Linked by the C++ driver: gore.o needs the C++ runtime.
bin/usb-device-plugin: $(OBJ)
	@mkdir -p bin
	$(CXX) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The binary the tests run: the same sources, with sanitizers.
build/san/usb-device-plugin: $(LIBOBJ_SAN) build/san/main.o
	$(CXX) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# Keep the test objects: no "rm" after the test summary, faster rebuilds.
.PRECIOUS: build/san/%.o build/obj/%.o $(GEN) $(GENH)

# The binary the image ships, for any architecture: scripts/release.sh ARCH
# sets CC (a cross compiler with --sysroot), PKG_CONFIG_LIBDIR/SYSROOT_DIR,
# RELEASE_DIR and REL_DEPS (cJSON and libcurl with HTTPS only, built from
# Debian's source packages: Debian ships no libcjson.a, and its libcurl.a
# needs a dozen libraries, several without a .a; libcurl's TLS is OpenSSL's
# libssl.a and libcrypto.a). Static except glibc and libudev (systemd
# ships no libudev.a); gRPC without TLS (grpc_unsecure); unused sections
# dropped at link time. See docs/image.md.
RELEASE_DIR ?= build/release/native
REL_DEPS    ?= $(RELEASE_DIR)/deps
REL_CFLAGS  := -O2 -g -ffunction-sections -fdata-sections
REL_PKGS     = $(patsubst grpc,grpc_unsecure,$(filter-out libcjson libcurl,$(PKGS)))
# 64-bit off_t, ino_t and directory offsets on 32-bit systems too (armhf):
# without it readdir and stat fail with EOVERFLOW on large values.
REL_FLAGS    = -std=gnu11 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DUDP_VERSION='"$(VERSION)"' -Isrc -Ibuild/gen \
               -I$(REL_DEPS)/include $(shell $(PKG_CONFIG) --cflags $(REL_PKGS))
# glibc's libraries and libudev stay shared; everything else from .a files.
REL_SHARED  := -ludev -lm -lpthread -ldl -lrt -latomic
REL_LDLIBS   = -L$(REL_DEPS)/lib -Wl,--gc-sections -Wl,-O1 -Wl,--as-needed -static-libgcc \
	-Wl,-Bstatic -lcjson \
	-lcurl -lssl -lcrypto \
	$(filter-out $(REL_SHARED) -Wl%,$(shell $(PKG_CONFIG) --static --libs $(REL_PKGS))) \
	-lupb -laddress_sorting -lcares -lre2 -lz -lstdc++ -latomic \
	-Wl,-Bdynamic -ludev -lm -lpthread
REL_OBJ     := $(call objs,$(RELEASE_DIR)/obj,$(SRC) $(GEN))
REL_CXXFLAGS = -std=c++17 $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Isrc \
               $(shell $(PKG_CONFIG) --cflags re2) $(REL_CFLAGS)

$(RELEASE_DIR)/obj/%.o: %.c $(GENH) VERSION Makefile
	@mkdir -p $(@D)
	$(CC) $(REL_FLAGS) $(REL_CFLAGS) -MMD -MP -c -o $@ $<

$(RELEASE_DIR)/obj/%.o: %.cc VERSION Makefile
	@mkdir -p $(@D)
	$(CXX) $(REL_CXXFLAGS) -MMD -MP -c -o $@ $<

# Linked by the C driver: libstdc++ (for RE2 and the shim) comes statically
# from REL_LDLIBS.
$(RELEASE_DIR)/usb-device-plugin: $(REL_OBJ)
	$(CC) $(REL_CFLAGS) $(LDFLAGS) -o $@ $^ $(REL_LDLIBS)

.PRECIOUS: $(RELEASE_DIR)/obj/%.o

build/san/test_%: build/san/test_%.o $(LIBOBJ_SAN)
	$(CXX) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# The resource's life cycle is tested with every allocation failing in turn.
ALLOC_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=reallocarray \
              -Wl,--wrap=strdup,--wrap=strndup
build/san/failalloc.o: tests/fuzz/failalloc.c
	@mkdir -p build/san
	$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -MP -c -o $@ $<
build/san/test_resource: build/san/test_resource.o build/san/failalloc.o $(LIBOBJ_SAN)
	$(CXX) $(SANFLAGS) $(ALLOC_WRAP) -o $@ $^ $(LDLIBS)

run: setup
	@$(MAKE) --no-print-directory all
	bin/usb-device-plugin --config config/default.yaml

# ASan's leak checker cannot run under ptrace-less containers everywhere;
# it works here (root, no seccomp) and stays on.
export ASAN_OPTIONS := abort_on_error=0:detect_leaks=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1

test: setup-test
	@$(MAKE) --no-print-directory unit integration valgrind

# Every file runs; each prints "unit <file>: N passed, N failed, N skipped"
# and a "SKIP test: reason" line per skipped test. Exit 77 (as systemd's
# tests) means the file skipped every test: reported, not a failure.
unit: $(UNIT_BIN)
	@failed=""; skipped=""; \
	for t in $(UNIT_BIN); do \
		./$$t; r=$$?; \
		if [ $$r -eq 77 ]; then skipped="$$skipped $${t##*/}"; \
		elif [ $$r -ne 0 ]; then failed="$$failed $${t##*/}"; fi; \
	done; \
	if [ -n "$$skipped" ]; then echo "unit: skipped whole:$$skipped"; fi; \
	if [ -n "$$failed" ]; then echo "unit: FAILED:$$failed"; exit 1; fi

# Debian's python3 (pyenv's may shadow it) has grpcio and protobuf.
# A test that hangs prints every thread's stack after 10 minutes.
PYTEST := /usr/bin/python3 -m pytest -q -p no:cacheprovider -o faulthandler_timeout=600

# An independent libudev + libusb client that checks the fake USB world.
build/usbprobe: tests/integration/usbprobe.c
	@mkdir -p build
	$(CC) -O1 -g -Wall -Wextra -Werror -o $@ $< $(shell pkg-config --cflags --libs libudev libusb-1.0)

export UDP_USBPROBE := $(CURDIR)/build/usbprobe

integration: build/san/usb-device-plugin build/usbprobe bin/usb-device-plugin
	UDP_BIN=$(CURDIR)/build/san/usb-device-plugin $(PYTEST) tests/integration
	@# Memory figures need the uninstrumented binary (ASan keeps freed memory).
	UDP_BIN=$(CURDIR)/bin/usb-device-plugin $(PYTEST) -s tests/integration/test_lifecycle.py -k usage_flat

# The integration suite again, the release binary under valgrind: any error
# or definite leak makes the plugin exit 99 and the test fail.
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no \
	--suppressions=$(CURDIR)/tests/integration/re2.supp
valgrind: bin/usb-device-plugin build/usbprobe
	UDP_BIN=$(CURDIR)/bin/usb-device-plugin UDP_WRAP="$(VALGRIND)" $(PYTEST) tests/integration

test-valgrind: setup-test
	@$(MAKE) --no-print-directory valgrind

# The container images (podman), smoke-tested: see docs/image.md.
#   make image                     amd64, arm64 and arm/v7 (cross-compiled),
#                                  one manifest list usb-device-plugin:VERSION
#   make image ARCH=arm64          only those architectures (space-separated)
#   make image MODE=dockerfile     this machine's architecture, from the
#                                  Dockerfile (as docker build would)
#   make release ARCH=arm64        the binary and root filesystem only
#                                  (build/release/ARCH)
#   make image-archive             OCI archives in build/image for ctr import
#   make push REGISTRY=registry.example/team
image: setup
	@scripts/setup.sh --cross
	ARCH="$(ARCH)" MODE="$(MODE)" scripts/image.sh

release: setup
	@scripts/setup.sh --release
	@for a in $(or $(ARCH),$(shell dpkg --print-architecture)); do scripts/release.sh $$a || exit 1; done

image-archive:
	scripts/image-archive.sh

push:
	REGISTRY="$(REGISTRY)" scripts/push.sh

# The arm64 and armhf binaries under qemu-user-static against the kubelet
# stand-in: start, serve a path group, Allocate, SIGTERM (tests/cross).
CROSS_ARCHS ?= arm64 armhf
test-cross: setup-test
	@scripts/setup.sh --cross
	@for a in $(CROSS_ARCHS); do scripts/release.sh $$a || exit 1; done
	$(PYTEST) tests/cross

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
	/usr/bin/python3 tests/bench/bench_image.py

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--suppress=missingIncludeSystem -Isrc -Ibuild/gen src
	clang-format --dry-run --Werror src/*.c src/*.h tests/unit/*.c

clean:
	rm -rf build bin

# make fuzz: libFuzzer targets (clang), see tests/fuzz/
-include tests/fuzz/fuzz.mk

-include $(wildcard build/obj/*.d build/san/*.d $(RELEASE_DIR)/obj/*.d)
