# usb-device-plugin
#   make            build bin/usb-device-plugin
#   make run        set up, build, run on config/default.yaml in the foreground
#   make test       set up, build with ASan+UBSan, run unit and integration tests
#   make lint       cppcheck + clang-format --dry-run
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)

PKGS     := grpc libprotobuf-c libcjson yaml-0.1
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

.PHONY: all run test unit integration lint clean setup setup-test
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

build/obj/%.o: %.c build/gen/deviceplugin.pb-c.h
	@mkdir -p build/obj
	$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

build/san/%.o: %.c build/gen/deviceplugin.pb-c.h
	@mkdir -p build/san
	$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -MP -c -o $@ $<

bin/usb-device-plugin: $(OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The binary the tests run: the same sources, with sanitizers.
build/san/usb-device-plugin: $(LIBOBJ_SAN) build/san/main.o
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

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
	@$(MAKE) --no-print-directory unit integration

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do ./$$t || exit 1; done

integration: build/san/usb-device-plugin bin/usb-device-plugin
	UDP_BIN=$(CURDIR)/build/san/usb-device-plugin python3 -m pytest -q tests/integration

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--suppress=missingIncludeSystem -Isrc src
	clang-format --dry-run --Werror src/*.c src/*.h tests/unit/*.c

clean:
	rm -rf build bin

-include $(wildcard build/obj/*.d build/san/*.d)
