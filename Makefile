# Caravel backend. One Makefile; every src/**/*.c is a module of the service.
#   make            build build/caravel
#   make test       install what is missing, build, run every test (test/run.sh)
#   make unit       C unit tests only        make asan   sanitizer build of caravel + unit tests
#                   (assertions on in sanitizer builds and with DEBUG=1, off in the plain build)
#   make fuzz       libFuzzer targets (clang) make bench  benchmarks (bench/run.sh)
#   make run        install what is missing and start the service with development defaults
#   make image-check  lint the Dockerfile, build it with podman and run the image (root only;
#                     not part of make test unless CARAVEL_IMAGE_CHECK=1)
SAN      ?=
BUILD    ?= build$(if $(SAN),-$(SAN))
CC       ?= cc
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PKGS     := libuv libcurl sqlite3 libpq libcjson libsecp256k1
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wcast-qual -Wpointer-arith -Wundef -Wvla -Wimplicit-fallthrough -Wnull-dereference
CFLAGS   ?= -O2 -g
ifeq ($(SAN),asan)
CFLAGS   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
endif
ifdef WERROR
WARN     += -Werror
endif
CPPFLAGS += -std=gnu11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -Isrc -I$(BUILD)/vendor $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Assertions (src/util/debug.h): on in sanitizer builds and with DEBUG=1, compiled out of the
# plain (release) build.
ifneq ($(SAN)$(DEBUG),)
CPPFLAGS += -DCARAVEL_DEBUG
else
CPPFLAGS += -DNDEBUG
endif
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmbedtls -lmbedx509 -lmbedcrypto -lwslay -lm -lpthread

SRC      := $(shell find src -name '*.c' ! -name main.c | sort)
OBJ      := $(SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
# Small command-line programs the integration tests drive (e.g. to let nostr-tools check what
# our C code signs): test/tools/NAME.c -> $(BUILD)/tools/NAME, linked with every module.
TOOL_SRC := $(sort $(wildcard test/tools/*.c))
TOOLS    := $(TOOL_SRC:test/tools/%.c=$(BUILD)/tools/%)
# Benchmarks (not tests): bench/*.c -> $(BUILD)/bench/NAME.
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LLHTTP_OBJ := $(BUILD)/vendor/llhttp.o $(BUILD)/vendor/api.o $(BUILD)/vendor/http.o
UNIT_SRC := $(sort $(wildcard test/unit/*.c))
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
DEPS     := $(OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BUILD)/src/main.d $(TOOL_SRC:%.c=$(BUILD)/%.d) $(BENCH_SRC:%.c=$(BUILD)/%.d)

.PHONY: all test unit asan fuzz bench run clean deps image-check
# Keep intermediate objects of tools and benches (no relink on every make).
.SECONDARY:
all: $(BUILD)/caravel $(BUILD)/unit $(TOOLS) $(BENCHES)

$(BUILD)/vendor/llhttp.h: $(LLHTTP_INC)/llhttp.h
	@mkdir -p $(@D) && cp $< $@
$(BUILD)/vendor/%.c: $(LLHTTP_SRC)/%.c
	@mkdir -p $(@D) && cp $< $@
# llhttp's generated C is third-party: relaxed warnings.
$(BUILD)/vendor/%.o: $(BUILD)/vendor/%.c $(BUILD)/vendor/llhttp.h Makefile
	$(CC) $(CPPFLAGS) $(CFLAGS) -w -c -o $@ $<

$(BUILD)/%.o: %.c $(BUILD)/vendor/llhttp.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

# Migrations are embedded in the binary so it runs from any directory (and in the image).
$(BUILD)/gen/migrations.c: $(sort $(wildcard migrations/*.sql)) scripts/embed-migrations.sh
	@mkdir -p $(@D) && bash scripts/embed-migrations.sh migrations > $@
$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tools/%: $(BUILD)/test/tools/%.o $(OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/caravel: $(BUILD)/src/main.o $(OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit: $(UNIT_OBJ) $(OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(BUILD)/unit
	./$(BUILD)/unit

asan:
	$(MAKE) SAN=asan all

test:
	bash test/run.sh

fuzz:
	bash test/fuzz/run.sh

bench:
	bash bench/run.sh

run:
	bash scripts/deps.sh build && $(MAKE) $(BUILD)/caravel && ./$(BUILD)/caravel

deps:
	bash scripts/deps.sh all

image-check:
	bash scripts/deps.sh image && node scripts/image-check.mjs

clean:
	rm -rf build build-*

-include $(DEPS)
