# ftlua: fastai's training recipe for Lua, in C over libtorch.
#
#   make run             build, then run the main job offline (Fashion-MNIST from Debian)
#   make                 build ./ftlua (the host) and ./ftlua.so (the module library for lua5.4)
#   make test            run every test; the last line is "N passed, N failed"
#   make deps            install the Debian packages we need (idempotent, quiet when present)
#   make asan            ./ftlua-asan, built with AddressSanitizer and UBSan
#   make test-asan       the whole suite under ASan+UBSan (build-asan/: C tests, Lua tests
#                        through ./ftlua-asan); slow, not part of make test
#   make audit           the hostile-folder audit (also run by make test, as a test file), and
#                        kill -9 during every kind of write, every writer on a full disk
#   make fuzz            build and run the libFuzzer targets for a short while
#   make bench           benchmarks, compared with PyTorch in the same run
#   make LIBTORCH=DIR    build against another libtorch (DIR/include, DIR/lib), e.g. PyTorch's

CC       ?= cc
CXX      ?= g++
OPT      ?= -O2
WARN     = -Wall -Wextra -Wshadow -Wvla -Wformat=2
CFLAGS   += -std=c11 $(OPT) -g $(WARN) -Wmissing-prototypes -Wstrict-prototypes -fPIC -D_GNU_SOURCE
CXXFLAGS += -std=c++17 $(OPT) -g $(WARN) -fPIC
LDLIBS   += -lturbojpeg -ljansson -lz -lm -lpthread

# ---------------------------------------------------------------- Lua 5.4
LUA_CFLAGS ?= $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS   ?= $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
READLINE_LIBS ?= -lreadline

# ---------------------------------------------------------------- libtorch
# Debian's libtorch-dev by default; LIBTORCH=DIR for any 2.x (CPU or CUDA).
LIBTORCH ?=
ifeq ($(LIBTORCH),)
TORCH_CFLAGS = -isystem /usr/include/torch/csrc/api/include
TORCH_LIBS   = -ltorch -ltorch_cpu -lc10
else
TORCH_CFLAGS = -isystem $(LIBTORCH)/include -isystem $(LIBTORCH)/include/torch/csrc/api/include
TORCH_CUDA   = $(wildcard $(LIBTORCH)/lib/libtorch_cuda.so)
# --no-as-needed: otherwise the linker drops libtorch_cuda and CUDA is silently unavailable.
TORCH_LIBS   = -L$(LIBTORCH)/lib -Wl,-rpath,$(LIBTORCH)/lib -Wl,--no-as-needed -ltorch -ltorch_cpu \
               -lc10 $(if $(TORCH_CUDA),-ltorch_cuda -lc10_cuda) -Wl,--as-needed
ifneq ($(TORCH_CUDA),)
CXXFLAGS += -DFT_WITH_CUDA
endif
ifneq ($(TORCH_CXX11_ABI),)
CXXFLAGS += -D_GLIBCXX_USE_CXX11_ABI=$(TORCH_CXX11_ABI)
endif
endif

# ---------------------------------------------------------------- our CUDA kernels
# Built only when libtorch has CUDA and nvcc exists; each has a C twin that gives the same
# results (runtime/data/augment.c for augment_cuda.cu). The static CUDA runtime can't clash with
# the one PyTorch's wheel ships.
NVCC ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
NVCC_ARCH ?= -arch=native
ifneq ($(TORCH_CUDA),)
ifneq ($(NVCC),)
CUDA_DIR := $(patsubst %/bin/nvcc,%,$(NVCC))
CFLAGS   += -DFT_WITH_CUDA
CUDA_OBJ  = $(BUILD)/runtime/data/augment_cuda.o
LDLIBS   += -L$(CUDA_DIR)/lib64 -lcudart_static -ldl -lrt
endif
endif

# ---------------------------------------------------------------- sources
BUILD    ?= build
HOST_SRC  = runtime/main.c runtime/repl.c $(wildcard runtime/kernel/*.c)
# the Jupyter kernel (runtime/kernel/) links these into ./ftlua only; ftlua.so stays free of them
KERNEL_LIBS ?= -lzmq -ljansson
LIB_CSRC  = $(filter-out $(HOST_SRC),$(wildcard runtime/*.c runtime/*/*.c))
LIB_CXXSRC = $(wildcard runtime/torch/*.cpp)
LUA_SRC   = $(sort $(wildcard lua/ftlua/*.lua))

LIB_OBJ   = $(LIB_CSRC:%.c=$(BUILD)/%.o) $(LIB_CXXSRC:%.cpp=$(BUILD)/%.o) $(BUILD)/lua_embed.o \
            $(BUILD)/api_doc.o
LIB_OBJ  += $(CUDA_OBJ)
HOST_OBJ  = $(HOST_SRC:%.c=$(BUILD)/%.o)
INC       = -Iruntime $(LUA_CFLAGS)

.PHONY: all run test test-bins deps asan test-asan audit fuzz bench clean format format-check
all: ftlua ftlua.so

# The program's one link rule; make asan names it ftlua-asan (PROGRAM), over build-asan's objects.
PROGRAM ?= ftlua
$(PROGRAM): $(HOST_OBJ) $(LIB_OBJ)
	$(CXX) -o $@ $^ $(LDFLAGS) $(LUA_LIBS) $(READLINE_LIBS) $(KERNEL_LIBS) $(TORCH_LIBS) $(LDLIBS)

# The same modules as one C library; lua5.4 provides the Lua symbols, so don't link liblua.
ftlua.so: $(LIB_OBJ)
	$(CXX) -shared -o $@ $^ $(LDFLAGS) $(TORCH_LIBS) $(LDLIBS)

# -MMD -MP: each compile writes the headers it read to a .d file next to the object, so an
# object is rebuilt when one of its own headers changes (and a deleted header breaks nothing).
# An object without its .d (built before this rule existed) is rebuilt once.
DEPFLAGS  = -MMD -MP
DEPFILES  = $(patsubst %.o,%.d,$(HOST_OBJ) $(filter-out $(BUILD)/lua_embed.o $(CUDA_OBJ),$(LIB_OBJ)))
$(DEPFILES): ;


$(BUILD)/%.o: %.c $(BUILD)/%.d
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(INC) -c $< -o $@

$(BUILD)/runtime/torch/%.o: runtime/torch/%.cpp $(BUILD)/runtime/torch/%.d
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) $(DEPFLAGS) -Iruntime $(TORCH_CFLAGS) -c $< -o $@

$(BUILD)/runtime/data/augment_cuda.o: runtime/data/augment_cuda.cu runtime/data/augment.h runtime/data/augment_cuda.h
	@mkdir -p $(dir $@)
	$(NVCC) -O2 -std=c++17 $(NVCC_ARCH) -Xcompiler -fPIC -Iruntime -c $< -o $@

# lua/ftlua/*.lua are compiled into the library, so ./ftlua and ftlua.so need no search path.
$(BUILD)/lua_embed.c: $(LUA_SRC) tools/embed_lua.sh
	@mkdir -p $(BUILD)
	sh tools/embed_lua.sh $(LUA_SRC) > $@
$(BUILD)/lua_embed.o: $(BUILD)/lua_embed.c
	$(CC) $(CFLAGS) $(INC) -c $< -o $@
# docs/api.md too: help(x) prints its entries (runtime/host.c, lua/ftlua/help.lua).
$(BUILD)/api_doc.c: docs/api.md tools/embed_doc.sh
	@mkdir -p $(BUILD)
	sh tools/embed_doc.sh ftl_api_doc docs/api.md > $@
$(BUILD)/api_doc.o: $(BUILD)/api_doc.c
	$(CC) $(CFLAGS) -c $< -o $@

# ---------------------------------------------------------------- tests
TEST_CSRC = $(wildcard tests/c/test_*.c)
TEST_BIN  = $(TEST_CSRC:tests/c/%.c=$(BUILD)/tests/%)

$(BUILD)/tests/%: tests/c/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -MT $@ $(INC) -Itests/c -c $< -o $@.o
	$(CXX) -o $@ $@.o $(LIB_OBJ) $(LDFLAGS) $(LUA_LIBS) $(TORCH_LIBS) $(LDLIBS)

test: deps test-bins
	@BUILD=$(BUILD) sh tests/run.sh

# Everything the tests run, without installing anything (the GPU machine has no apt).
test-bins: all $(TEST_BIN)

deps:
	@sh tools/deps.sh

run: deps all
	./ftlua --report out/main/report.html scripts/main.lua --out out/main

# ---------------------------------------------------------------- variants
ASAN_MAKE = $(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	        LDFLAGS="-fsanitize=address,undefined"
asan:
	$(ASAN_MAKE) PROGRAM=ftlua-asan ftlua-asan

# The suite under the sanitizers: a report stops the program (halt_on_error), which run.sh
# counts as a failure. The shell tests drive ./ftlua (not the sanitized one), so they are left
# out. Leak checking is off unless ASAN_LEAKS=1: the whole suite has not been run with it (spot
# checks of test_image, test_data_errors, test_tensor and test_model_layers found no leak).
# On 2 busy cores the run takes about 40 minutes.
ASAN_LEAKS ?= 0
test-asan: asan
	$(ASAN_MAKE) $(TEST_CSRC:tests/c/%.c=build-asan/tests/%)
	@ASAN_OPTIONS=detect_leaks=$(ASAN_LEAKS):abort_on_error=0:halt_on_error=1 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	 BUILD=build-asan FTLUA=./ftlua-asan FTLUA_TEST_ONLY="c lua" sh tests/run.sh

# The crash audit takes a few minutes (CRASH_KILLS=8 kills per writer); make test runs its quick
# form (tests/audit/test_crash_quick.sh).
audit: all
	@sh tests/audit/test_hostile_folders.sh && sh tests/audit/crash_writes.sh

FUZZ_SECONDS ?= 30
fuzz:
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

BENCH_BIN = $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))
$(BUILD)/bench/%: tests/bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC) -c $< -o $@.o
	$(CXX) -o $@ $@.o $(LIB_OBJ) $(LDFLAGS) $(LUA_LIBS) $(TORCH_LIBS) $(LDLIBS)

bench: deps all $(BENCH_BIN)
	@BUILD=$(BUILD) sh tests/bench/run.sh

clean:
	rm -rf $(BUILD) build-asan ftlua ftlua.so ftlua-asan

# The generated header dependencies (absent before the first build).
-include $(wildcard $(DEPFILES) $(TEST_BIN:=.d))

# The house style (.clang-format, docs/design.md "Style") over every C, C++ and CUDA file.
FORMAT_SRC = $(shell find runtime tests -name '*.[ch]' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' | sort)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	@for f in $(FORMAT_SRC); do clang-format "$$f" | cmp -s - "$$f" || echo "$$f"; done
