# ingot build. `make` builds build/ingot, the unit tests and the benchmarks' library.
#   make                      release-ish build (-O2 -g) into build/
#   make SAN=address,undefined BUILD=build/asan    sanitizer build
#   make SAN=thread BUILD=build/tsan               ThreadSanitizer build
#   make fuzz                 libFuzzer targets (clang) into build/fuzz/
#   make bench                benchmarks into build/bench/
#   make test                 the whole test suite (tests/run.sh)
#   make soak                 soak test against $(BUILD)/ingot (tests/soak/soak.py, SOAK_SECONDS=300)
BUILD ?= build
SAN ?=
CC ?= cc
OPT ?= -O2

PKGS := libmicrohttpd sqlite3 zlib libzstd libpq libcurl libcrypto grpc libprotobuf-c
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wno-missing-field-initializers -g -pthread -msse4.2 -mpclmul -Isrc -Iinclude -I$(BUILD)/gen \
	$(shell pkg-config --cflags $(PKGS))
LDLIBS := $(shell pkg-config --libs $(PKGS)) -lpthread -lm

ifneq ($(SAN),)
CFLAGS_SAN := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT := -O1
endif
CFLAGS := $(CFLAGS_COMMON) $(OPT) $(CFLAGS_SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(CFLAGS_SAN) -pthread

# proto/ -> protobuf-c message code (pack/unpack only) in $(BUILD)/gen, part of the library.
PROTO_SRC := $(sort $(shell find proto -name '*.proto'))
PROTO_C := $(PROTO_SRC:proto/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_H := $(PROTO_C:.c=.h)
LIB_SRC := $(filter-out src/main.c,$(sort $(wildcard src/*.c src/*/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(PROTO_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)

.PHONY: all test fuzz bench soak clean
.SECONDARY:
all: $(BUILD)/ingot $(TEST_BIN)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libingot.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ingot: $(BUILD)/obj/src/main.o $(BUILD)/libingot.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libingot.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libingot.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench: $(BENCH_BIN)

# libFuzzer targets: clang, ASan+UBSan, linked against every library source.
FUZZ_CFLAGS := $(CFLAGS_COMMON) -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
build/fuzz/%: fuzz/%.c $(LIB_SRC) $(PROTO_C)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(LDLIBS)

fuzz: $(FUZZ_BIN)

test: all
	tests/run.sh

SOAK_SECONDS ?= 300
soak: $(BUILD)/ingot
	INGOT_BIN=$(BUILD)/ingot python3 tests/soak/soak.py --seconds $(SOAK_SECONDS)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
