# libFuzzer targets (clang), included by the Makefile. See tests/fuzz/README.md.
#   make fuzz              set up, build, run each target FUZZ_SECONDS (60) seconds
#   make fuzz-quick        the same, 10 seconds each
#   make fuzz-build        only build them: build/fuzz/fuzz_*
#   make fuzz-run-fuzz_X   run one (no setup), e.g. make fuzz-run-fuzz_usbids FUZZ_SECONDS=600
# Any crash, leak or timeout fails the run; the input is in build/fuzz/artifacts/.

FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_TARGETS := fuzz_config_file fuzz_config_flags fuzz_requests fuzz_usbids fuzz_paths

# What each target links: only the modules it needs, and their libraries.
CONFIG_MODS  := config cfgval cfgschema cfgtree errbuf gore pathmatch instance log cdi fsutil tmpl
fuzz_objs     = $(patsubst %,build/fuzz/obj/%.o,$(1))

build/fuzz/fuzz_config_file:  $(call fuzz_objs,$(CONFIG_MODS))
build/fuzz/fuzz_config_file:  FUZZ_PKGS := libcjson yaml-0.1 re2
build/fuzz/fuzz_config_flags: $(call fuzz_objs,$(CONFIG_MODS))
build/fuzz/fuzz_config_flags: FUZZ_PKGS := libcjson yaml-0.1 re2
build/fuzz/fuzz_requests:     $(call fuzz_objs,alloc table instance log cdi fsutil tmpl errbuf deviceplugin.pb-c)
build/fuzz/fuzz_requests:     FUZZ_PKGS := libprotobuf-c libcjson
build/fuzz/fuzz_usbids:       $(call fuzz_objs,usbids)
build/fuzz/fuzz_usbids:       FUZZ_PKGS :=
build/fuzz/fuzz_paths:        $(call fuzz_objs,paths pathmatch instance)
build/fuzz/fuzz_paths:        FUZZ_PKGS := libcrypto

# Every target can make one allocation of the code under test fail
# (failalloc.h): the allocation functions are wrapped at link time.
FUZZ_WRAP    := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=reallocarray \
                -Wl,--wrap=strdup,--wrap=strndup

# Both config targets share one dictionary.
fuzz-run-fuzz_config_file fuzz-run-fuzz_config_flags: FUZZ_DICT := tests/fuzz/config.dict

vpath %.c tests/fuzz
vpath %.cc src
.PRECIOUS: build/fuzz/obj/%.o

.PHONY: fuzz-quick fuzz-build fuzz-all

fuzz: setup-test
	@$(MAKE) --no-print-directory fuzz-all FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-quick: setup-test
	@$(MAKE) --no-print-directory fuzz-all FUZZ_SECONDS=10

fuzz-build: $(addprefix build/fuzz/,$(FUZZ_TARGETS))

fuzz-all: $(addprefix fuzz-run-,$(FUZZ_TARGETS))

fuzz-run-%: build/fuzz/%
	@tests/fuzz/run.sh $* $(FUZZ_SECONDS) $(FUZZ_DICT)

# The sources instrumented for coverage (fuzzer-no-link); -fsanitize=fuzzer
# at link time adds libFuzzer's main.
build/fuzz/obj/%.o: %.c build/gen/deviceplugin.pb-c.h
	@mkdir -p build/fuzz/obj
	$(FUZZ_CC) $(BASEFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

build/fuzz/obj/%.o: %.cc
	@mkdir -p build/fuzz/obj
	$(FUZZ_CXX) $(CXXBASE) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

# Linked by the C++ driver: the config targets hold gore.o (C++).
build/fuzz/fuzz_%: build/fuzz/obj/fuzz_%.o build/fuzz/obj/failalloc.o
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_WRAP) -o $@ $^ \
		$(if $(FUZZ_PKGS),$(shell pkg-config --libs $(FUZZ_PKGS)))

-include $(wildcard build/fuzz/obj/*.d)
