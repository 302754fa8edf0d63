# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# relaygate build. Everything goes to $(OUT) (default build/).
#   make            build the BPF object, skeleton, relaygatectl, relaygated
#   make check      install missing deps, build, run every test layer
#   make demo       install missing deps, build, run the namespace lab demo
#   make bench      benchmarks (not part of check)
#   make install    DESTDIR=... PREFIX=/usr/local
#   V=1             show the commands
.DELETE_ON_ERROR:
.SUFFIXES:

OUT       ?= build
CLANG     ?= clang
BPFTOOL   ?= bpftool
LLVM_STRIP ?= llvm-strip
CC        ?= gcc
PREFIX    ?= /usr/local
DESTDIR   ?=
ARCH_INC  := -I/usr/include/$(shell $(CC) -dumpmachine)

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

WARN      := -Wall -Wextra -Werror
CFLAGS    ?= -O2 -g
CFLAGS    += $(WARN) -std=gnu11 -D_GNU_SOURCE -Imaps -Iuser -I$(OUT)
LDLIBS    := -lbpf -lelf -lz -lpcre2-8 -linih -lhiredis -lmicrohttpd -lm
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 $(WARN) -Imaps -Ibpf $(ARCH_INC)

# Userspace: every user/*.c but the two mains goes into one static library.
MAINS     := user/relaygatectl.c user/relaygated.c
LIB_SRCS  := $(filter-out $(MAINS),$(wildcard user/*.c))
LIB_OBJS  := $(patsubst user/%.c,$(OUT)/obj/%.o,$(LIB_SRCS))
BINS      := $(patsubst user/%.c,$(OUT)/%,$(wildcard $(MAINS)))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUT)/tests/unit/%,$(UNIT_SRCS))
ASAN_BINS := $(patsubst tests/unit/%.c,$(OUT)/asan/tests/unit/%,$(UNIT_SRCS))
PROG_SRCS := $(wildcard tests/prog/*.c)
PROG_BINS := $(patsubst tests/prog/%.c,$(OUT)/tests/prog/%,$(PROG_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(OUT)/fuzz/%,$(FUZZ_SRCS))

SKEL      := $(OUT)/relaygate.skel.h
BPF_OBJ   := $(OUT)/relaygate.bpf.o
BPF_HDRS  := $(wildcard bpf/*.h) $(wildcard maps/*.h)
USER_HDRS := $(wildcard user/*.h) maps/relaygate.h $(SKEL)

.PHONY: all deps check demo bench install clean tests fuzz
all: $(BINS)

deps:
	$(Q)scripts/install-deps

$(OUT)/relaygate.tmp.o: bpf/relaygate.bpf.c $(BPF_HDRS)
	$(Q)mkdir -p $(@D)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BPF_OBJ): $(OUT)/relaygate.tmp.o
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $<

$(SKEL): $(BPF_OBJ)
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name relaygate > $@

$(OUT)/obj/%.o: user/%.c $(USER_HDRS)
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUT)/librelaygate.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@; ar rcs $@ $^

$(OUT)/%: user/%.c $(OUT)/librelaygate.a $(USER_HDRS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $< $(OUT)/librelaygate.a $(LDLIBS) -o $@

# Unit tests: cmocka, linked against the library; once plain (valgrind runs
# these) and once with ASan+UBSan.
$(OUT)/tests/unit/%: tests/unit/%.c $(OUT)/librelaygate.a $(USER_HDRS)
	$(Q)mkdir -p $(@D)
	$(call msg,TEST,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $< $(OUT)/librelaygate.a $(LDLIBS) -lcmocka -o $@

ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
$(OUT)/asan/tests/unit/%: tests/unit/%.c $(LIB_SRCS) $(USER_HDRS)
	$(Q)mkdir -p $(@D)
	$(call msg,ASAN,$@)
	$(Q)$(CC) $(filter-out -O2,$(CFLAGS)) $(ASAN_FLAGS) -Itests $< $(LIB_SRCS) $(LDLIBS) -lcmocka -o $@

# Packet tests: load the real BPF object through the skeleton.
$(OUT)/tests/prog/%: tests/prog/%.c $(OUT)/librelaygate.a $(USER_HDRS) $(wildcard tests/prog/*.h)
	$(Q)mkdir -p $(@D)
	$(call msg,TEST,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -Itests/prog $< $(OUT)/librelaygate.a $(LDLIBS) -o $@

# libFuzzer targets: clang, ASan+UBSan, the library sources compiled in.
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined $(WARN) -std=gnu11 -D_GNU_SOURCE -Imaps -Iuser -I$(OUT) -Itests
$(OUT)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(USER_HDRS)
	$(Q)mkdir -p $(@D)
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $< $(LIB_SRCS) $(LDLIBS) -o $@

tests: all $(UNIT_BINS) $(ASAN_BINS) $(PROG_BINS)
fuzz: $(FUZZ_BINS)

check: deps
	$(Q)$(MAKE) --no-print-directory tests fuzz
	$(Q)OUT=$(OUT) tests/run-all

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)OUT=$(OUT) scripts/demo

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)OUT=$(OUT) bench/run

# install: the binaries, the man pages, the systemd unit (its /usr/sbin/
# paths rewritten to SBINDIR) and, only when there is none yet, the sample
# config: an admin's config is never overwritten. Nothing else: systemd
# creates the state, runtime and log directories (relaygated.service).
# uninstall removes the same files but the config.
SBINDIR        ?= $(PREFIX)/sbin
MANDIR         ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= /lib/systemd/system
RG_CONF_DIR    := /etc/relaygate
RG_MAN5        := docs/relaygate.conf.5
RG_MAN8        := docs/relaygated.8 docs/relaygatectl.8
.PHONY: uninstall
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(RG_CONF_DIR)
	install -m 0755 $(BINS) $(DESTDIR)$(SBINDIR)/
	install -m 0644 $(RG_MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(RG_MAN8) $(DESTDIR)$(MANDIR)/man8/
	sed 's|/usr/sbin/|$(SBINDIR)/|g' etc/relaygated.service > $(OUT)/relaygated.service
	install -m 0644 $(OUT)/relaygated.service $(DESTDIR)$(SYSTEMDUNITDIR)/relaygated.service
	@if [ -e $(DESTDIR)$(RG_CONF_DIR)/relaygate.conf ] || [ -L $(DESTDIR)$(RG_CONF_DIR)/relaygate.conf ]; then \
		echo "kept $(DESTDIR)$(RG_CONF_DIR)/relaygate.conf (the sample is etc/relaygate.conf)"; \
	else \
		echo "install -m 0640 etc/relaygate.conf $(DESTDIR)$(RG_CONF_DIR)/relaygate.conf"; \
		install -m 0640 etc/relaygate.conf $(DESTDIR)$(RG_CONF_DIR)/relaygate.conf; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/relaygatectl $(DESTDIR)$(SBINDIR)/relaygated
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(RG_MAN5)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(RG_MAN8)))
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/relaygated.service
	@[ ! -e $(DESTDIR)$(RG_CONF_DIR)/relaygate.conf ] || \
		echo "kept $(DESTDIR)$(RG_CONF_DIR)/relaygate.conf (yours: remove it by hand)"

clean:
	rm -rf $(OUT)
