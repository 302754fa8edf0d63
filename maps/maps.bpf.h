/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * BPF-side map definitions (BTF-defined, pinned by name; the summary, the
 * global variable at the end, is pinned by path). Sizes here are the
 * defaults; userspace resizes with bpf_map__set_max_entries() before load
 * ([grants] max). Pinned maps are reused by every program instance, so all
 * attached interfaces share one set of maps.
 */
#ifndef RELAYGATE_MAPS_BPF_H
#define RELAYGATE_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "relaygate.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rg_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RG_TIFACE_MAX);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_tiface SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, RG_TRUST_MAX_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rg_lpm4);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_trust4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, RG_TRUST_MAX_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rg_lpm6);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_trust6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RG_GRANTS_MAX_DEFAULT);
	__type(key, struct rg_addr);
	__type(value, struct rg_grant);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_grants SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RG_DENY_MAX_DEFAULT);
	__type(key, struct rg_addr);
	__type(value, struct rg_deny);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RG_FLOWS_MAX_DEFAULT);
	__type(key, struct rg_flow_key);
	__type(value, struct rg_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RG_STAT_MAX);
	__type(key, __u32);
	__type(value, struct rg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RG_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RG_EVRATE_MAX);
	__type(key, struct rg_addr);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_evrate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rg_evbucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rg_evbucket SEC(".maps");

/*
 * The summary is the object's only global variable, so its .bss section is
 * exactly struct rg_summary. libbpf makes that section a 1-entry mmapable
 * array map (kernel name "relaygat.bss"), which the loader pins as
 * rg_summary beside the others (user/gatemaps.c). The programs reach it by
 * address, with no map lookup: on the drop path of a flood that lookup was
 * about a nanosecond of BPF_PROG_TEST_RUN's time (docs/BENCHMARKS.md).
 */
struct rg_summary rg_summary;

#endif /* RELAYGATE_MAPS_BPF_H */
