// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The gate from userspace: attach/detach and every operation on the pinned
 * maps, shared by relaygatectl and relaygated.
 *
 * Lifecycle (STYLE 9, 10): open the skeleton with pin_root_path = pin dir so
 * LIBBPF_PIN_BY_NAME maps are created and pinned by the first load and
 * reused by every later one; configure; load; attach by hand (the skeleton's
 * __attach skips XDP and TC); pin the attachment; destroy the skeleton. The
 * pinned bpf_link (xdp modes) or the clsact filter (tc) keeps the gate
 * closed after we exit.
 *
 * Every error fills a one-line, actionable message and returns -errno.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "relaygate.h"           /* before the skeleton: its .bss is struct rg_summary */
#include "relaygate.skel.h"
#include "cidr.h"
#include "gatemaps.h"

#define LOCK_WAIT_MS 10000

/* ---------------------------------------------------------------- errors */

static int __attribute__((format(printf, 4, 5)))
fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

#define gfail(g, rc, ...) fail((g)->err, sizeof((g)->err), rc, __VA_ARGS__)

/* "--pin-dir DIR " unless DIR is the default, for commands we suggest. */
static const char *pin_opt(const char *pin_dir, char *buf, size_t len)
{
	if (!strcmp(pin_dir, RG_PIN_DIR_DEFAULT))
		buf[0] = '\0';
	else
		snprintf(buf, len, "--pin-dir %s ", pin_dir);
	return buf;
}

static int incompatible(char *err, size_t errlen, const char *pin_dir, const char *what)
{
	char opt[PATH_MAX + 16];

	return fail(err, errlen, -EPROTO,
		    "pinned maps under %s do not match this relaygate (%s): detach every interface, then run `relaygatectl %spurge`",
		    pin_dir, what, pin_opt(pin_dir, opt, sizeof(opt)));
}

/* ------------------------------------------------------------ small bits */

uint64_t rg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int pin_path(char *buf, size_t len, const char *dir, const char *prefix,
		    const char *name)
{
	int n = snprintf(buf, len, "%s/%s%s", dir, prefix, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool path_exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

/* mkdir -p */
static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	char *p;

	if (strlen(dir) >= sizeof(tmp))
		return -ENAMETOOLONG;
	strcpy(tmp, dir);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Exclusive flock on a directory, waiting at most LOCK_WAIT_MS. */
static int lock_dir(const char *dir, char *err, size_t errlen)
{
	int fd, waited = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return fail(err, errlen, -ENOENT,
				    "no gate under %s: run `relaygatectl attach IFACE` first", dir);
		return fail(err, errlen, -errno, "pin dir %s: %s", dir, strerror(errno));
	}
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		if (e != EWOULDBLOCK || waited >= LOCK_WAIT_MS) {
			close(fd);
			if (e == EWOULDBLOCK)
				return fail(err, errlen, -EWOULDBLOCK,
					    "pin dir %s: locked by another relaygatectl or relaygated for %d s; try again",
					    dir, LOCK_WAIT_MS / 1000);
			return fail(err, errlen, -e, "pin dir %s: lock: %s", dir, strerror(e));
		}
		usleep(20 * 1000);
		waited += 20;
	}
	return fd;
}

static void unlock_dir(int fd)
{
	if (fd >= 0)
		close(fd);      /* releases the flock */
}

/* ---------------------------------------------------------- name tables */

static const char *const stat_names[RG_STAT_MAX] = RG_STAT_NAMES;

const char *rg_stat_name(unsigned stat)
{
	return stat < RG_STAT_MAX && stat_names[stat] ? stat_names[stat] : "unknown";
}

static const char *const origin_names[RG_ORIGIN_MAX] = {
	[RG_ORIGIN_NONE] = "none",
	[RG_ORIGIN_CLI] = "cli",
	[RG_ORIGIN_LOG] = "log",
	[RG_ORIGIN_PUSH] = "push",
	[RG_ORIGIN_CONTROL] = "control",
	[RG_ORIGIN_CLUSTER] = "cluster",
	[RG_ORIGIN_STATE] = "state",
};

const char *rg_origin_name(enum rg_origin o)
{
	return (unsigned)o < RG_ORIGIN_MAX ? origin_names[o] : "unknown";
}

static const char *const service_names[RG_SERVICE_MAX] = {
	[RG_SERVICE_NONE] = "none",
	[RG_SERVICE_POP3] = "pop3",
	[RG_SERVICE_IMAP] = "imap",
	[RG_SERVICE_SMTP] = "smtp",
	[RG_SERVICE_OTHER] = "other",
};

const char *rg_service_name(enum rg_service s)
{
	return (unsigned)s < RG_SERVICE_MAX ? service_names[s] : "unknown";
}

int rg_service_parse(const char *s, enum rg_service *out)
{
	unsigned i;

	for (i = RG_SERVICE_POP3; i < RG_SERVICE_MAX; i++) {
		if (!strcmp(s, service_names[i])) {
			*out = (enum rg_service)i;
			return 0;
		}
	}
	return -1;
}

static const char *const mode_names[] = {
	[RG_MODE_XDP] = "xdp",
	[RG_MODE_XDP_GENERIC] = "xdp-generic",
	[RG_MODE_TC] = "tc",
};

const char *rg_mode_name(enum rg_mode m)
{
	return (unsigned)m <= RG_MODE_TC ? mode_names[m] : "unknown";
}

int rg_mode_parse(const char *s, enum rg_mode *out)
{
	unsigned i;

	for (i = 0; i <= RG_MODE_TC; i++) {
		if (!strcmp(s, mode_names[i])) {
			*out = (enum rg_mode)i;
			return 0;
		}
	}
	return -1;
}

/* ------------------------------------------------------------ map table */

struct map_desc {
	const char *name;
	size_t fd_off;          /* offsetof(struct rg_gate, ..._fd), or 0: not kept open */
	__u32 type, key_size, value_size;
};

#define FD_OFF(f) offsetof(struct rg_gate, f)

static const struct map_desc maps_desc[] = {
	{ RG_MAP_CONFIG, FD_OFF(config_fd), BPF_MAP_TYPE_ARRAY, 4, sizeof(struct rg_config) },
	{ RG_MAP_PORTS, FD_OFF(ports_fd), BPF_MAP_TYPE_ARRAY, 4, 4 },
	{ RG_MAP_TIFACE, FD_OFF(tiface_fd), BPF_MAP_TYPE_HASH, 4, 4 },
	{ RG_MAP_TRUST4, FD_OFF(trust4_fd), BPF_MAP_TYPE_LPM_TRIE, sizeof(struct rg_lpm4), 4 },
	{ RG_MAP_TRUST6, FD_OFF(trust6_fd), BPF_MAP_TYPE_LPM_TRIE, sizeof(struct rg_lpm6), 4 },
	{ RG_MAP_GRANTS, FD_OFF(grants_fd), BPF_MAP_TYPE_LRU_HASH, sizeof(struct rg_addr), sizeof(struct rg_grant) },
	{ RG_MAP_DENY, FD_OFF(deny_fd), BPF_MAP_TYPE_LRU_HASH, sizeof(struct rg_addr), sizeof(struct rg_deny) },
	{ RG_MAP_FLOWS, FD_OFF(flows_fd), BPF_MAP_TYPE_LRU_HASH, sizeof(struct rg_flow_key), sizeof(struct rg_flow) },
	{ RG_MAP_STATS, FD_OFF(stats_fd), BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct rg_counter) },
	{ RG_MAP_EVENTS, FD_OFF(events_fd), BPF_MAP_TYPE_RINGBUF, 0, 0 },
	{ RG_MAP_EVRATE, 0, BPF_MAP_TYPE_LRU_HASH, sizeof(struct rg_addr), 8 },
	{ RG_MAP_EVBUCKET, 0, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct rg_evbucket) },
	{ RG_MAP_SUMMARY, FD_OFF(summary_fd), BPF_MAP_TYPE_ARRAY, 4, sizeof(struct rg_summary) },
};

#define NMAPS (sizeof(maps_desc) / sizeof(maps_desc[0]))

static size_t desc_index(const char *name)
{
	size_t i;

	for (i = 0; i < NMAPS; i++)
		if (!strcmp(maps_desc[i].name, name))
			break;
	return i;
}

static int *gate_fd(struct rg_gate *g, const struct map_desc *d)
{
	return (int *)((char *)g + d->fd_off);
}

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	if (bpf_obj_get_info_by_fd(fd, info, &len))
		return -errno;
	return 0;
}

long rg_map_max_entries(int map_fd)
{
	struct bpf_map_info info;
	int rc = map_info(map_fd, &info);

	return rc ? rc : (long)info.max_entries;
}

uint32_t rg_map_id(int map_fd)
{
	struct bpf_map_info info;

	return map_info(map_fd, &info) ? 0 : info.id;
}

static bool desc_matches(const struct map_desc *d, const struct bpf_map_info *info)
{
	return info->type == d->type && info->key_size == d->key_size &&
	       info->value_size == d->value_size;
}

/* -------------------------------------------------------------- open/close */

static void gate_init(struct rg_gate *g)
{
	memset(g, 0, sizeof(*g));
	g->config_fd = g->ports_fd = g->tiface_fd = g->trust4_fd = g->trust6_fd = -1;
	g->grants_fd = g->deny_fd = g->flows_fd = g->stats_fd = g->events_fd = -1;
	g->summary_fd = g->lock_fd = -1;
}

/* The summary map's value, mmapped (the map is BPF_F_MMAPABLE). */
static size_t summary_map_len(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	return (sizeof(struct rg_summary) + pg - 1) / pg * pg;
}

/* Map the summary of fd; NULL (errno set) when it cannot be. */
static struct rg_summary *summary_mmap(int fd)
{
	void *p = mmap(NULL, summary_map_len(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void summary_munmap(struct rg_summary *s)
{
	if (s)
		munmap(s, summary_map_len());
}

/* The summary's byte of a port (see ports[] in relaygate.h). */
static void summary_port(struct rg_summary *s, unsigned port, bool on)
{
	__atomic_store_n(&s->ports[rg_sum_port((__u16)port)], on, __ATOMIC_SEQ_CST);
}

static void summary_hint(struct rg_summary *s, __u32 bit, bool on)
{
	if (on)
		__atomic_fetch_or(&s->hints, bit, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&s->hints, ~bit, __ATOMIC_SEQ_CST);
}

/*
 * Write rg_config (fd cfd) and keep RG_SUM_FAST true around it: cleared
 * before a config that does not allow the straight-line drop, set after
 * one that does.
 */
static int config_put(int cfd, struct rg_summary *s, const struct rg_config *c)
{
	__u32 zero = 0;
	bool fast = rg_sum_fast_ok(c);
	struct rg_config cur;
	int rc;

	if (!fast)
		summary_hint(s, RG_SUM_FAST, false);
	if (bpf_map_update_elem(cfd, &zero, c, BPF_ANY)) {
		rc = -errno;
		/* the config stays as it was: so does its hint */
		if (!fast && !bpf_map_lookup_elem(cfd, &zero, &cur))
			summary_hint(s, RG_SUM_FAST, rg_sum_fast_ok(&cur));
		return rc;
	}
	if (fast)
		summary_hint(s, RG_SUM_FAST, true);
	return 0;
}

void rg_gate_close(struct rg_gate *g)
{
	size_t i;

	summary_munmap(g->sum);
	g->sum = NULL;

	for (i = 0; i < NMAPS; i++) {
		int *fd;

		if (!maps_desc[i].fd_off)
			continue;
		fd = gate_fd(g, &maps_desc[i]);
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	unlock_dir(g->lock_fd);
	g->lock_fd = -1;
}

static int check_config(const struct rg_config *c, char *err, size_t errlen,
			const char *pin_dir)
{
	char opt[PATH_MAX + 16];

	if (c->abi_version == 0)
		return fail(err, errlen, -ENODATA,
			    "maps under %s are not configured (an attach was interrupted): run `relaygatectl %sattach IFACE` again",
			    pin_dir, pin_opt(pin_dir, opt, sizeof(opt)));
	if (c->abi_version != RG_ABI_VERSION) {
		char what[64];

		snprintf(what, sizeof(what), "map ABI v%u, this build uses v%u",
			 c->abi_version, RG_ABI_VERSION);
		return incompatible(err, errlen, pin_dir, what);
	}
	return 0;
}

int rg_gate_open(struct rg_gate *g, const char *pin_dir)
{
	char path[PATH_MAX];
	__u32 zero = 0;
	size_t i;
	int rc;

	gate_init(g);
	if (strlen(pin_dir) >= sizeof(g->pin_dir))
		return gfail(g, -ENAMETOOLONG, "pin dir %s: name too long", pin_dir);
	strcpy(g->pin_dir, pin_dir);
	for (i = 0; i < NMAPS; i++) {
		const struct map_desc *d = &maps_desc[i];
		struct bpf_map_info info;
		int fd;

		if (!d->fd_off)
			continue;
		if (pin_path(path, sizeof(path), pin_dir, "", d->name)) {
			rc = gfail(g, -ENAMETOOLONG, "pin dir %s: name too long", pin_dir);
			goto out;
		}
		fd = bpf_obj_get(path);
		if (fd < 0) {
			rc = -errno;
			if (rc == -ENOENT && i > 0) {
				char what[64];

				snprintf(what, sizeof(what), "%s is missing", d->name);
				rc = incompatible(g->err, sizeof(g->err), pin_dir, what);
			} else if (rc == -ENOENT)
				gfail(g, rc, "no gate maps under %s: run `relaygatectl attach IFACE` first",
				      pin_dir);
			else if (rc == -EPERM || rc == -EACCES)
				gfail(g, rc, "%s: permission denied (needs root or CAP_BPF)", path);
			else
				gfail(g, rc, "%s: %s", path, strerror(-rc));
			goto out;
		}
		*gate_fd(g, d) = fd;
		rc = map_info(fd, &info);
		if (rc) {
			gfail(g, rc, "%s: %s", path, strerror(-rc));
			goto out;
		}
		if (!desc_matches(d, &info)) {
			char what[96];

			snprintf(what, sizeof(what), "%s has type %u key %u value %u",
				 d->name, info.type, info.key_size, info.value_size);
			rc = incompatible(g->err, sizeof(g->err), pin_dir, what);
			goto out;
		}
	}
	if (bpf_map_lookup_elem(g->config_fd, &zero, &g->cfg)) {
		rc = gfail(g, -errno, "%s/%s: %s", pin_dir, RG_MAP_CONFIG, strerror(errno));
		goto out;
	}
	rc = check_config(&g->cfg, g->err, sizeof(g->err), pin_dir);
	if (rc)
		goto out;
	g->sum = summary_mmap(g->summary_fd);
	if (!g->sum) {
		rc = gfail(g, -errno, "%s/%s: mmap: %s", pin_dir, RG_MAP_SUMMARY, strerror(errno));
	}
out:
	if (rc) {
		char keep[sizeof(g->err)];

		memcpy(keep, g->err, sizeof(keep));
		rg_gate_close(g);
		memcpy(g->err, keep, sizeof(keep));
	}
	return rc;
}

int rg_gate_trylock(struct rg_gate *g)
{
	int fd;

	if (g->lock_fd >= 0)
		return 0;
	fd = open(g->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return gfail(g, -errno, "pin dir %s: %s", g->pin_dir, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		close(fd);
		return gfail(g, -e, "pin dir %s: lock: %s", g->pin_dir, strerror(e));
	}
	g->lock_fd = fd;
	return 0;
}

void rg_gate_unlock(struct rg_gate *g)
{
	unlock_dir(g->lock_fd);
	g->lock_fd = -1;
}

int rg_gate_lock(struct rg_gate *g)
{
	int fd;

	if (g->lock_fd >= 0)
		return 0;
	fd = lock_dir(g->pin_dir, g->err, sizeof(g->err));
	if (fd < 0)
		return fd;
	g->lock_fd = fd;
	return 0;
}

/* ------------------------------------------------------------ key walks */

/*
 * Collect every key of a map. A hash walk restarts from the first key when
 * the current one is deleted under us (the daemon sweeps concurrently), so
 * the walk is bounded by max_entries * 2 rather than trusted to end.
 */
static int collect_keys(int fd, void **out, size_t *n)
{
	struct bpf_map_info info;
	size_t cap = 64, cnt = 0, limit;
	char *buf = NULL, *tmp;
	void *prev = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	rc = map_info(fd, &info);
	if (rc)
		return rc;
	if (!info.key_size)
		return -EINVAL;
	limit = (size_t)info.max_entries * 2 + 16;
	buf = malloc(cap * info.key_size);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (cnt == cap) {
			cap *= 2;
			tmp = realloc(buf, cap * info.key_size);
			if (!tmp) {
				free(buf);
				return -ENOMEM;
			}
			buf = tmp;
			prev = buf + (cnt - 1) * info.key_size;
		}
		if (bpf_map_get_next_key(fd, prev, buf + cnt * info.key_size)) {
			if (errno == ENOENT)
				break;
			rc = -errno;
			free(buf);
			return rc;
		}
		prev = buf + cnt * info.key_size;
		if (++cnt >= limit)
			break;
	}
	*out = buf;
	*n = cnt;
	return 0;
}

/* A map-full error in words: E2BIG (hash), ENOSPC (LPM trie), ENOMEM. */
static bool is_full(int rc)
{
	return rc == -E2BIG || rc == -ENOSPC || rc == -ENOMEM;
}

/* ------------------------------------------------------ batch operations */

/*
 * Batch map operations (BPF_MAP_*_BATCH), each with a per-key fallback for
 * a kernel or map type without them. On 6.18 the hash and LRU maps have
 * their own batch lookup and the kernel's generic batch update and delete;
 * the LPM tries have the generic lookup, update and delete too (one
 * syscall runs the per-key operation in a loop, so a batch costs the same
 * in the kernel and saves a syscall per key). A batch update takes no
 * BPF_NOEXIST (elem_flags other than BPF_F_LOCK are EINVAL): callers tell
 * new keys from existing ones by reading the map first.
 */
#define BATCH_CHUNK 65536
#define ENOTSUPP_KERNEL 524     /* the kernel's ENOTSUPP, not in libc */

static bool batch_unsupported(int e)
{
	return e == EINVAL || e == EOPNOTSUPP || e == ENOTSUPP_KERNEL;
}

/* Keys and values of every entry, by the key walk and one lookup per key. */
static int dump_walk(int fd, size_t ksz, size_t vsz, void **keys, void **vals, size_t *n)
{
	size_t nk, i, j = 0;
	void *kv;
	char *kb, *vb;
	int rc;

	rc = collect_keys(fd, &kv, &nk);
	if (rc)
		return rc;
	kb = kv;
	vb = malloc((nk + 1) * vsz);
	if (!vb) {
		free(kb);
		return -ENOMEM;
	}
	for (i = 0; i < nk; i++) {
		if (bpf_map_lookup_elem(fd, kb + i * ksz, vb + j * vsz))
			continue;       /* gone meanwhile */
		if (i != j)
			memcpy(kb + j * ksz, kb + i * ksz, ksz);
		j++;
	}
	*keys = kb;
	*vals = vb;
	*n = j;
	return 0;
}

/*
 * Every entry of a map (key size ksz, value size vsz) into two malloc'ed
 * arrays, with BPF_MAP_LOOKUP_BATCH; the key walk where the kernel has no
 * batch lookup for the map (EINVAL, ENOTSUPP). Bounded like collect_keys:
 * a walk that the daemon's deletes restart ends after max_entries * 2.
 * keys NULL: only count them (*n), reading each chunk into one buffer.
 */
static int map_dump(int fd, size_t ksz, size_t vsz, void **keys, void **vals, size_t *n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	char *kb = NULL, *vb = NULL, *tmp, tok_in[64] = { 0 }, tok_out[64] = { 0 };
	size_t cap = 0, cnt = 0, limit;
	struct bpf_map_info info;
	__u32 chunk = 4096, c;
	void *in = NULL;
	int rc, e;

	bool keep = keys != NULL;
	size_t at;

	if (keep)
		*keys = *vals = NULL;
	*n = 0;
	rc = map_info(fd, &info);
	if (rc)
		return rc;
	/* The batch token: a bucket number (hash maps) or a key (generic). */
	if (!ksz || ksz > sizeof(tok_in) || !vsz)
		return -EINVAL;
	limit = (size_t)info.max_entries * 2 + 16;
	for (;;) {
		at = keep ? cnt : 0;
		if (cap - at < chunk) {
			size_t ncap = !keep ? chunk : cap * 2 > cnt + chunk ? cap * 2 : cnt + chunk;

			tmp = realloc(kb, ncap * ksz);
			if (!tmp) {
				rc = -ENOMEM;
				goto fail;
			}
			kb = tmp;
			tmp = realloc(vb, ncap * vsz);
			if (!tmp) {
				rc = -ENOMEM;
				goto fail;
			}
			vb = tmp;
			cap = ncap;
		}
		c = chunk;
		rc = bpf_map_lookup_batch(fd, in, tok_out, kb + at * ksz, vb + at * vsz, &c, &bo);
		e = errno;
		if (!rc || e == ENOENT)
			cnt += c;
		if (rc) {
			if (e == ENOENT)
				break;
			if (e == ENOSPC && !c && chunk < (1U << 24)) {
				chunk *= 2;     /* a hash bucket bigger than the buffer */
				continue;
			}
			if (!in && !cnt && batch_unsupported(e)) {
				void *walked;

				free(kb);
				free(vb);
				if (keep)
					return dump_walk(fd, ksz, vsz, keys, vals, n);
				rc = collect_keys(fd, &walked, n);
				free(walked);
				return rc;
			}
			rc = -e;
			goto fail;
		}
		if (cnt >= limit)
			break;
		memcpy(tok_in, tok_out, ksz);
		in = tok_in;
		chunk = BATCH_CHUNK;
	}
	if (keep) {
		*keys = kb;
		*vals = vb;
	} else {
		free(kb);
		free(vb);
	}
	*n = cnt;
	return 0;
fail:
	free(kb);
	free(vb);
	return rc;
}

/* Entries in a map now: batch reads into one buffer, or the key walk. */
long rg_map_count(int map_fd)
{
	struct bpf_map_info info;
	size_t n;
	int rc;

	rc = map_info(map_fd, &info);
	if (rc)
		return rc;
	/* per-CPU values are value_size per CPU: not a map of ours, walk it */
	if (info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
	    info.type == BPF_MAP_TYPE_PERCPU_ARRAY) {
		void *keys;

		rc = collect_keys(map_fd, &keys, &n);
		free(keys);
	} else {
		rc = map_dump(map_fd, info.key_size, info.value_size, NULL, NULL, &n);
	}
	return rc ? rc : (long)n;
}

/*
 * Write n entries (BPF_ANY) with BPF_MAP_UPDATE_BATCH in chunks, one update
 * per key where the kernel has no batch update. cover(g, key) runs for
 * every key of a chunk before the chunk is written (the summary invariant:
 * covered before inserted). vsz 0: vals is one value for every key.
 * *done: entries written; on error the one at *done failed.
 */
static int batch_update(struct rg_gate *g, int fd, const void *keys, size_t ksz,
			const void *vals, size_t vsz, size_t n,
			void (*cover)(struct rg_gate *, const void *), size_t *done)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	const char *kp = keys, *vp = vals;
	char *same = NULL;
	bool per_key = false;
	size_t i;
	int rc = 0;

	*done = 0;
	if (!vsz && n) {
		/* The kernel wants one value per key: repeat it. */
		size_t m = n < BATCH_CHUNK ? n : BATCH_CHUNK, one = sizeof(__u32);

		same = malloc(m * one);
		if (!same)
			return -ENOMEM;
		for (i = 0; i < m; i++)
			memcpy(same + i * one, vals, one);
		vp = same;
		vsz = one;
	}
	while (*done < n) {
		__u32 c = n - *done < BATCH_CHUNK ? (__u32)(n - *done) : BATCH_CHUNK;
		const char *v = same ? vp : vp + *done * vsz;

		for (i = 0; cover && i < c; i++)
			cover(g, kp + (*done + i) * ksz);
		if (!per_key) {
			__u32 got = c;

			if (!bpf_map_update_batch(fd, kp + *done * ksz, v, &got, &bo)) {
				*done += c;
				continue;
			}
			rc = -errno;
			if (!(got == 0 && *done == 0 && batch_unsupported(-rc))) {
				*done += got < c ? got : c;
				break;
			}
			per_key = true;         /* no batch update here */
			rc = 0;
		}
		for (i = 0; i < c; i++, (*done)++) {
			if (bpf_map_update_elem(fd, kp + *done * ksz, same ? v : v + i * vsz, BPF_ANY)) {
				rc = -errno;
				break;
			}
		}
		if (rc)
			break;
	}
	free(same);
	return rc;
}

/*
 * Delete n keys with BPF_MAP_DELETE_BATCH in chunks (per key where there is
 * none). A key that is not there is passed over (gone[i] false); gone may
 * be NULL. *done: keys handled; on error the one at *done failed.
 */
static int batch_delete(int fd, const void *keys, size_t ksz, size_t n, bool *gone, size_t *done)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	const char *kp = keys;
	bool per_key = false;
	size_t i;

	*done = 0;
	while (*done < n) {
		__u32 c = n - *done < BATCH_CHUNK ? (__u32)(n - *done) : BATCH_CHUNK, got = c;
		int e;

		if (!per_key) {
			if (!bpf_map_delete_batch(fd, kp + *done * ksz, &got, &bo)) {
				if (gone)
					for (i = 0; i < c; i++)
						gone[*done + i] = true;
				*done += c;
				continue;
			}
			e = errno;
			if (got > c)
				got = c;
			if (gone)
				for (i = 0; i < got; i++)
					gone[*done + i] = true;
			*done += got;
			if (e == ENOENT) {
				(*done)++;      /* not there: pass it over */
				continue;
			}
			if (!(got == 0 && batch_unsupported(e)))
				return -e;
			per_key = true;
		}
		for (i = 0; i < c && *done < n; i++, (*done)++) {
			if (!bpf_map_delete_elem(fd, kp + *done * ksz)) {
				if (gone)
					gone[*done] = true;
			} else if (errno != ENOENT) {
				return -errno;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ config */

int rg_config_read(struct rg_gate *g, struct rg_config *c)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(g->config_fd, &zero, c))
		return gfail(g, -errno, "reading %s: %s", RG_MAP_CONFIG, strerror(errno));
	return 0;
}

static int config_valid(const struct rg_config *c, char *err, size_t errlen)
{
	if (c->abi_version != RG_ABI_VERSION)
		return fail(err, errlen, -EINVAL, "config: abi_version %u, want %u",
			    c->abi_version, RG_ABI_VERSION);
	if (c->v4_prefix > 32)
		return fail(err, errlen, -EINVAL, "ipv4_prefix %u: out of range (0..32)", c->v4_prefix);
	if (c->v6_prefix > 128)
		return fail(err, errlen, -EINVAL, "ipv6_prefix %u: out of range (0..128)", c->v6_prefix);
	return 0;
}

int rg_config_write(struct rg_gate *g, const struct rg_config *c)
{
	int rc;

	rc = config_valid(c, g->err, sizeof(g->err));
	if (rc)
		return rc;
	rc = config_put(g->config_fd, g->sum, c);
	if (rc)
		return gfail(g, rc, "writing %s: %s", RG_MAP_CONFIG, strerror(-rc));
	g->cfg = *c;
	return 0;
}

/* ------------------------------------------------------------- ports */

#define NPORTS 65536

/* Read the whole port array into set[NPORTS] (1 = protected). */
static int ports_read_fd(int fd, __u8 *set)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	__u32 *keys, *vals, count = NPORTS, out_batch, i;
	int rc = 0;

	memset(set, 0, NPORTS);
	keys = calloc(NPORTS, sizeof(*keys));
	vals = calloc(NPORTS, sizeof(*vals));
	if (!keys || !vals) {
		rc = -ENOMEM;
		goto out;
	}
	/* One syscall for the whole array; one lookup per port as a fallback. */
	if (!bpf_map_lookup_batch(fd, NULL, &out_batch, keys, vals, &count, &bo) ||
	    errno == ENOENT) {
		for (i = 0; i < count; i++)
			if (keys[i] < NPORTS && vals[i])
				set[keys[i]] = 1;
		goto out;
	}
	for (i = 0; i < NPORTS; i++) {
		__u32 v = 0;

		if (bpf_map_lookup_elem(fd, &i, &v)) {
			rc = -errno;
			goto out;
		}
		set[i] = v != 0;
	}
out:
	free(keys);
	free(vals);
	return rc;
}

/* Protect exactly ports[n] in rg_ports (fd), with the summary's port bytes
 * kept a superset of it (relaygate.h). */
static int ports_set_fd(int fd, struct rg_summary *s, const uint16_t *ports, size_t n,
			char *err, size_t errlen)
{
	__u8 *cur, *want;
	__u32 one = 1, zero = 0, p;
	size_t i;
	int rc;

	if (!n)
		return fail(err, errlen, -EINVAL, "empty port set: give at least one port");
	for (i = 0; i < n; i++)
		if (ports[i] == 0)
			return fail(err, errlen, -EINVAL, "port 0: out of range (1..65535)");
	cur = calloc(NPORTS, 1);
	want = calloc(NPORTS, 1);
	if (!cur || !want) {
		rc = fail(err, errlen, -ENOMEM, "ports: out of memory");
		goto out;
	}
	rc = ports_read_fd(fd, cur);
	if (rc) {
		fail(err, errlen, rc, "reading %s: %s", RG_MAP_PORTS, strerror(-rc));
		goto out;
	}
	for (i = 0; i < n; i++)
		want[ports[i]] = 1;
	/* New first, then clear the old: a port in both sets stays protected.
	 * A port's summary byte is set before the port is protected and
	 * cleared after it is not; one a crash left set is cleared by the
	 * next rebuild. */
	for (p = 1; p < NPORTS; p++) {
		if (!want[p])
			continue;
		summary_port(s, p, true);
		if (!cur[p] && bpf_map_update_elem(fd, &p, &one, BPF_ANY)) {
			rc = fail(err, errlen, -errno, "setting port %u: %s", p, strerror(errno));
			goto out;
		}
	}
	for (p = 0; p < NPORTS; p++) {
		if (want[p])
			continue;
		if (cur[p] && bpf_map_update_elem(fd, &p, &zero, BPF_ANY)) {
			rc = fail(err, errlen, -errno, "clearing port %u: %s", p, strerror(errno));
			goto out;
		}
		summary_port(s, p, false);
	}
out:
	free(cur);
	free(want);
	return rc;
}

int rg_ports_set(struct rg_gate *g, const uint16_t *ports, size_t n)
{
	return ports_set_fd(g->ports_fd, g->sum, ports, n, g->err, sizeof(g->err));
}

/* rg_ports read whole: *out[port] != 0 where protected (caller frees). */
static int ports_snapshot(struct rg_gate *g, __u8 **out)
{
	__u8 *set = malloc(NPORTS);
	int rc;

	*out = NULL;
	if (!set)
		return gfail(g, -ENOMEM, "ports: out of memory");
	rc = ports_read_fd(g->ports_fd, set);
	if (rc) {
		free(set);
		return gfail(g, rc, "reading %s: %s", RG_MAP_PORTS, strerror(-rc));
	}
	*out = set;
	return 0;
}

int rg_ports_list(struct rg_gate *g, uint16_t *ports, size_t max)
{
	size_t n = 0;
	unsigned p;
	__u8 *set;
	int rc;

	rc = ports_snapshot(g, &set);
	if (rc)
		return rc;
	for (p = 1; p < NPORTS; p++) {
		if (!set[p])
			continue;
		if (n < max)
			ports[n] = (uint16_t)p;
		n++;
	}
	free(set);
	return (int)(n < max ? n : max);
}

/* ------------------------------------------------- summary prefilter */

static __u32 addr_top(const struct rg_addr *a)
{
	return (__u32)a->addr[0] << 24 | (__u32)a->addr[1] << 16 | (__u32)a->addr[2] << 8 | a->addr[3];
}

/* OR bits into a slot byte (no store when they are there already: most
 * covers find them set, and the line stays shared between CPUs). */
static void slot_or(__u8 *slot, __u8 bits)
{
	if ((__atomic_load_n(slot, __ATOMIC_RELAXED) & bits) != bits)
		__atomic_fetch_or(slot, bits, __ATOMIC_RELAXED);
}

static void fine_set(__u8 *map, __u32 bit)
{
	slot_or(&map[bit >> 3], (__u8)(1U << (bit & 7)));
}

/*
 * Mark what an entry keyed by a (a prefix of plen bits) can match: its
 * fine bits and FINE on its slot, or COARSE on every slot it spans
 * (maps/relaygate.h, "The summary"). Every writer calls this BEFORE
 * inserting into rg_trust4/6, rg_grants or rg_deny; the insert's syscall
 * orders the stores before the entry becomes visible.
 */
void rg_summary_cover(struct rg_summary *s, const struct rg_addr *a, unsigned plen)
{
	__u32 top = addr_top(a), span, i;

	if (!s)
		return;
	if (a->family == RG_AF_INET) {
		if (plen > 32)
			plen = 32;
		if (plen >= RG_SUM_FINE4_PLEN) {
			/* the /24s it spans: 1 to 256, in one /16 */
			span = plen >= 24 ? 1 : 1U << (24 - plen);
			top &= ~0U << (32 - plen);
			for (i = 0; i < span; i++)
				fine_set(s->v4f, rg_sum_fine4(top) + i);
			slot_or(&s->v4[rg_sum_slot4(top)], RG_SUM_FINE);
			return;
		}
		span = 1U << (16 - plen);
		top = plen ? top & ~((1U << (32 - plen)) - 1) : 0;
		for (i = 0; i < span; i++)
			slot_or(&s->v4[rg_sum_slot4(top) + i], RG_SUM_COARSE);
		return;
	}
	if (plen >= RG_SUM_FINE6_PLEN) {
		/* the /48s it spans: 1 to 256, in one /32 (distinct bits) */
		__u32 next = (__u32)a->addr[4] << 8 | a->addr[5];

		span = plen >= 48 ? 1 : 1U << (48 - plen);
		next &= ~(span - 1);
		for (i = 0; i < span; i++)
			fine_set(s->v6f, rg_sum_fine6(top, next + i));
		slot_or(&s->v6[rg_sum_slot6(top)], RG_SUM_FINE);
		return;
	}
	if (plen >= 32) {
		slot_or(&s->v6[rg_sum_slot6(top)], RG_SUM_COARSE);
		return;
	}
	if (plen <= 16) {
		/* the low 16 bits of top are free: every fold is reachable */
		for (i = 0; i < RG_SUM_SLOTS; i++)
			slot_or(&s->v6[i], RG_SUM_COARSE);
		return;
	}
	span = 1U << (32 - plen);
	top &= ~(span - 1);
	for (i = 0; i < span; i++)
		slot_or(&s->v6[rg_sum_slot6(top + i)], RG_SUM_COARSE);
}

static void summary_cover(struct rg_gate *g, const struct rg_addr *a, unsigned plen)
{
	rg_summary_cover(g->sum, a, plen);
}

/* Before inserting into rg_tiface or rg_deny: "look it up". */
static void summary_unhint(struct rg_gate *g, __u32 bit)
{
	if (g->sum)
		__atomic_fetch_and(&g->sum->hints, ~bit, __ATOMIC_SEQ_CST);
}

/* A grant or deny key: it covers what the gate's key prefix covers. */
static void summary_cover_key(struct rg_gate *g, const struct rg_addr *k)
{
	summary_cover(g, k, k->family == RG_AF_INET ? g->cfg.v4_prefix : g->cfg.v6_prefix);
}

static int cover_trust(const struct rg_cidr *c, void *g)
{
	summary_cover(g, &c->addr, c->prefixlen);
	return 0;
}

static int cover_grant(const struct rg_addr *k, const struct rg_grant *v, void *g)
{
	(void)v;
	summary_cover_key(g, k);
	return 0;
}

static int cover_deny(const struct rg_addr *k, const struct rg_deny *v, void *g)
{
	(void)v;
	summary_cover_key(g, k);
	return 0;
}

static bool map_empty(int fd, size_t key_size)
{
	char k[sizeof(struct rg_lpm6) + sizeof(struct rg_addr)];

	if (key_size > sizeof(k))
		return false;
	return bpf_map_get_next_key(fd, NULL, k) && errno == ENOENT;
}

/* The port bytes again from rg_ports: set for every protected port, clear
 * for the rest (one left set by a writer that died). Under the lock: no
 * other writer of rg_ports runs. */
static int summary_ports_sync(struct rg_gate *g)
{
	unsigned p;
	__u8 *set;
	int rc;

	rc = ports_snapshot(g, &set);
	if (rc)
		return rc;
	for (p = 0; p < NPORTS; p++)
		if (!!g->sum->ports[rg_sum_port((__u16)p)] != !!set[p])
			summary_port(g->sum, p, set[p]);
	free(set);
	return 0;
}

int rg_summary_rebuild(struct rg_gate *g)
{
	__u32 hints = RG_SUM_ON;
	struct rg_config c;
	int rc;

	if (!g->sum)
		return gfail(g, -ENODEV, "summary: not open");
	if (g->lock_fd < 0)
		return gfail(g, -ENOLCK, "summary: rebuild without the pin-dir lock");
	rc = summary_ports_sync(g);
	if (rc)
		return rc;
	rc = rg_config_read(g, &c);
	if (rc)
		return rc;
	if (rg_sum_fast_ok(&c))
		hints |= RG_SUM_FAST;
	/* Full lookups while the slots are being recomputed. */
	__atomic_store_n(&g->sum->hints, 0, __ATOMIC_SEQ_CST);
	memset(g->sum->v4, 0, sizeof(g->sum->v4));
	memset(g->sum->v6, 0, sizeof(g->sum->v6));
	memset(g->sum->v4f, 0, sizeof(g->sum->v4f));
	memset(g->sum->v6f, 0, sizeof(g->sum->v6f));
	if (map_empty(g->tiface_fd, sizeof(__u32)))
		hints |= RG_SUM_NO_TIFACE;
	if (map_empty(g->deny_fd, sizeof(struct rg_addr)))
		hints |= RG_SUM_NO_DENY;
	rc = rg_trust_foreach(g, cover_trust, g);
	if (!rc)
		rc = rg_grant_foreach(g, cover_grant, g);
	if (!rc)
		rc = rg_deny_foreach(g, cover_deny, g);
	if (rc)
		return rc;      /* left off: full lookups, correct and slower */
	__atomic_store_n(&g->sum->hints, hints, __ATOMIC_SEQ_CST);
	return 0;
}

/* Bits set in a fine level (n a multiple of 8): a word at a time, as
 * status and every /metrics scrape count 3 MiB of them. */
static unsigned bits_set(const __u8 *p, size_t n)
{
	unsigned c = 0;
	uint64_t w;
	size_t i;

	for (i = 0; i < n; i += sizeof(w)) {
		memcpy(&w, p + i, sizeof(w));
		c += (unsigned)__builtin_popcountll(w);
	}
	return c;
}

int rg_summary_info(struct rg_gate *g, struct rg_summary_info *out)
{
	__u32 h, i;

	memset(out, 0, sizeof(*out));
	if (!g->sum)
		return gfail(g, -ENODEV, "summary: not open");
	h = __atomic_load_n(&g->sum->hints, __ATOMIC_SEQ_CST);
	out->on = h & RG_SUM_ON;
	out->no_tiface = h & RG_SUM_NO_TIFACE;
	out->no_deny = h & RG_SUM_NO_DENY;
	out->fast = h & RG_SUM_FAST;
	for (i = 0; i < RG_SUM_SLOTS; i++) {
		out->v4_slots += !!g->sum->v4[i];
		out->v6_slots += !!g->sum->v6[i];
	}
	out->v4_fine = bits_set(g->sum->v4f, sizeof(g->sum->v4f));
	out->v6_fine = bits_set(g->sum->v6f, sizeof(g->sum->v6f));
	return 0;
}

/* ------------------------------------------------------ trusted subnets */

struct lpm_key {
	bool v6;
	union {
		struct rg_lpm4 k4;
		struct rg_lpm6 k6;
	};
};

static int cidr_to_key(const struct rg_cidr *c, struct lpm_key *k)
{
	struct rg_addr a = c->addr;

	memset(k, 0, sizeof(*k));
	if (a.family == RG_AF_INET && c->prefixlen <= 32) {
		rg_addr_mask(&a, c->prefixlen);
		k->k4.prefixlen = c->prefixlen;
		memcpy(k->k4.addr, a.addr, 4);
		return 0;
	}
	if (a.family == RG_AF_INET6 && c->prefixlen <= 128) {
		rg_addr_mask(&a, c->prefixlen);
		k->v6 = true;
		k->k6.prefixlen = c->prefixlen;
		memcpy(k->k6.addr, a.addr, 16);
		return 0;
	}
	return -EINVAL;
}

static void key_to_cidr(const struct lpm_key *k, struct rg_cidr *c)
{
	memset(c, 0, sizeof(*c));
	if (k->v6) {
		c->addr.family = RG_AF_INET6;
		memcpy(c->addr.addr, k->k6.addr, 16);
		c->prefixlen = k->k6.prefixlen;
	} else {
		c->addr.family = RG_AF_INET;
		memcpy(c->addr.addr, k->k4.addr, 4);
		c->prefixlen = k->k4.prefixlen;
	}
}

static int key_fd(struct rg_gate *g, const struct lpm_key *k)
{
	return k->v6 ? g->trust6_fd : g->trust4_fd;
}

static const void *key_ptr(const struct lpm_key *k)
{
	return k->v6 ? (const void *)&k->k6 : (const void *)&k->k4;
}

static bool key_eq(const struct lpm_key *a, const struct lpm_key *b)
{
	if (a->v6 != b->v6)
		return false;
	return a->v6 ? !memcmp(&a->k6, &b->k6, sizeof(a->k6)) : !memcmp(&a->k4, &b->k4, sizeof(a->k4));
}

static const char *cidr_text(const struct rg_cidr *c, char *buf, size_t len)
{
	return rg_cidr_str(&c->addr, c->prefixlen, buf, len);
}

/* All keys of both tries (batch lookups: see map_dump). */
static int trust_collect(struct rg_gate *g, struct lpm_key **out, size_t *n)
{
	void *k4 = NULL, *k6 = NULL, *v4 = NULL, *v6 = NULL;
	size_t n4 = 0, n6 = 0, i;
	struct lpm_key *all;
	int rc;

	*out = NULL;
	*n = 0;
	rc = map_dump(g->trust4_fd, sizeof(struct rg_lpm4), sizeof(__u32), &k4, &v4, &n4);
	if (!rc)
		rc = map_dump(g->trust6_fd, sizeof(struct rg_lpm6), sizeof(__u32), &k6, &v6, &n6);
	free(v4);
	free(v6);
	if (rc) {
		free(k4);
		return gfail(g, rc, "reading trusted subnets: %s", strerror(-rc));
	}
	all = calloc(n4 + n6 + 1, sizeof(*all));
	if (!all) {
		free(k4);
		free(k6);
		return gfail(g, -ENOMEM, "trusted subnets: out of memory");
	}
	for (i = 0; i < n4; i++)
		memcpy(&all[i].k4, (char *)k4 + i * sizeof(struct rg_lpm4), sizeof(struct rg_lpm4));
	for (i = 0; i < n6; i++) {
		all[n4 + i].v6 = true;
		memcpy(&all[n4 + i].k6, (char *)k6 + i * sizeof(struct rg_lpm6), sizeof(struct rg_lpm6));
	}
	free(k4);
	free(k6);
	*out = all;
	*n = n4 + n6;
	return 0;
}

/* Order of trie keys for sorted sets: IPv4 first, then the key's bytes. */
static int cmp_lpm_key(const void *a, const void *b)
{
	const struct lpm_key *x = a, *y = b;

	if (x->v6 != y->v6)
		return x->v6 ? 1 : -1;
	return x->v6 ? memcmp(&x->k6, &y->k6, sizeof(x->k6)) : memcmp(&x->k4, &y->k4, sizeof(x->k4));
}

/* Sort a key list and drop repeats; returns the new count. */
static size_t keys_sort_unique(struct lpm_key *k, size_t n)
{
	size_t i, j = 0;

	qsort(k, n, sizeof(*k), cmp_lpm_key);
	for (i = 0; i < n; i++)
		if (!j || !key_eq(&k[j - 1], &k[i]))
			k[j++] = k[i];
	return j;
}

/* k in a list sorted by keys_sort_unique (a binary search: deleting many
 * prefixes from a large set stays n log n). */
static bool key_in(const struct lpm_key *k, const struct lpm_key *set, size_t n)
{
	return n && bsearch(k, set, n, sizeof(*set), cmp_lpm_key) != NULL;
}

static int trust_keys(struct rg_gate *g, const struct rg_cidr *c, size_t n,
		      struct lpm_key **out)
{
	struct lpm_key *keys;
	size_t i;

	keys = calloc(n + 1, sizeof(*keys));
	if (!keys)
		return gfail(g, -ENOMEM, "trusted subnets: out of memory");
	for (i = 0; i < n; i++) {
		if (cidr_to_key(&c[i], &keys[i])) {
			free(keys);
			return gfail(g, -EINVAL, "trusted subnet #%zu: bad family or prefix length", i + 1);
		}
	}
	*out = keys;
	return 0;
}

static void cover_prefix(struct rg_gate *g, __u8 family, const __u8 *addr, size_t len,
			 unsigned plen)
{
	struct rg_addr a;

	memset(&a, 0, sizeof(a));
	a.family = family;
	memcpy(a.addr, addr, len);
	summary_cover(g, &a, plen);
}

static void cover_lpm4(struct rg_gate *g, const void *key)
{
	const struct rg_lpm4 *k = key;

	cover_prefix(g, RG_AF_INET, k->addr, sizeof(k->addr), k->prefixlen);
}

static void cover_lpm6(struct rg_gate *g, const void *key)
{
	const struct rg_lpm6 *k = key;

	cover_prefix(g, RG_AF_INET6, k->addr, sizeof(k->addr), k->prefixlen);
}

/* One family's keys of a trust edit, laid out as its trie takes them. */
struct trie_keys {
	int fd;
	bool v6;
	size_t ksz, n, nmark;
	char *k;                /* n keys of ksz bytes */
	bool *mark;             /* per key: new (add) or removed (del) */
};

static void trie_keys_free(struct trie_keys t[2])
{
	int f;

	for (f = 0; f < 2; f++) {
		free(t[f].k);
		free(t[f].mark);
	}
}

/* Split keys sorted by keys_sort_unique into t[0] (IPv4) and t[1]
 * (IPv6); with have (sorted), mark the keys that are not in it. */
static int trie_split(struct rg_gate *g, const struct lpm_key *keys, size_t n,
		      const struct lpm_key *have, size_t nhave, struct trie_keys t[2])
{
	size_t i, j[2] = { 0, 0 };
	int f;

	memset(t, 0, 2 * sizeof(*t));
	t[0].fd = g->trust4_fd;
	t[0].ksz = sizeof(struct rg_lpm4);
	t[1].fd = g->trust6_fd;
	t[1].v6 = true;
	t[1].ksz = sizeof(struct rg_lpm6);
	for (i = 0; i < n; i++)
		t[keys[i].v6].n++;
	for (f = 0; f < 2; f++) {
		t[f].k = malloc(t[f].n * t[f].ksz + 1);
		t[f].mark = calloc(t[f].n + 1, sizeof(bool));
		if (!t[f].k || !t[f].mark) {
			trie_keys_free(t);
			return gfail(g, -ENOMEM, "trusted subnets: out of memory");
		}
	}
	for (i = 0; i < n; i++) {
		struct trie_keys *x = &t[keys[i].v6];

		memcpy(x->k + j[keys[i].v6] * x->ksz, key_ptr(&keys[i]), x->ksz);
		if (have && !key_in(&keys[i], have, nhave)) {
			x->mark[j[keys[i].v6]] = true;
			x->nmark++;
		}
		j[keys[i].v6]++;
	}
	return 0;
}

static const char *trie_key_text(const struct trie_keys *t, size_t i, char *buf, size_t len)
{
	struct lpm_key k;
	struct rg_cidr c;

	memset(&k, 0, sizeof(k));
	k.v6 = t->v6;
	memcpy(t->v6 ? (void *)&k.k6 : (void *)&k.k4, t->k + i * t->ksz, t->ksz);
	key_to_cidr(&k, &c);
	return cidr_text(&c, buf, len);
}

/* The marked keys among the first upto of t, packed, for an undo. */
static char *trie_marked(const struct trie_keys *t, size_t upto, size_t *n)
{
	char *out = malloc(upto * t->ksz + 1);
	size_t i;

	*n = 0;
	if (!out)
		return NULL;
	for (i = 0; i < upto && i < t->n; i++)
		if (t->mark[i])
			memcpy(out + (*n)++ * t->ksz, t->k + i * t->ksz, t->ksz);
	return out;
}

/* Undo: delete (add undone) or put back (del undone) the marked keys
 * among the first upto of t. Best effort: this is the error path. */
static void trie_undo(struct rg_gate *g, const struct trie_keys *t, size_t upto, bool readd)
{
	__u32 one = 1;
	size_t n, done;
	char *k = trie_marked(t, upto, &n);

	if (!k)
		return;
	if (readd)
		batch_update(g, t->fd, k, t->ksz, &one, 0, n, t->v6 ? cover_lpm6 : cover_lpm4, &done);
	else
		batch_delete(t->fd, k, t->ksz, n, NULL, &done);
	free(k);
}

/* Keep only the marked (new) keys of t. The others are in the trie
 * already; they are covered in the summary again all the same. */
static void trie_keep_marked(struct rg_gate *g, struct trie_keys *t)
{
	size_t i, j = 0;

	for (i = 0; i < t->n; i++) {
		if (!t->mark[i]) {
			(t->v6 ? cover_lpm6 : cover_lpm4)(g, t->k + i * t->ksz);
			continue;
		}
		if (i != j)
			memcpy(t->k + j * t->ksz, t->k + i * t->ksz, t->ksz);
		t->mark[j++] = true;
	}
	t->n = j;
}

/*
 * Add keys, all or nothing: read what the tries hold, refuse before any
 * change when the new ones do not fit, write the new ones of each family
 * with batch updates (every entry covered in the summary before its
 * batch), and on a failure delete again the keys this call added.
 */
static int trust_add_keys(struct rg_gate *g, const struct lpm_key *keys, size_t n)
{
	struct lpm_key *u = NULL, *have = NULL;
	struct trie_keys t[2];
	size_t nu, nhave, held[2] = { 0, 0 }, done = 0, i;
	char buf[RG_ADDRSTRLEN];
	__u32 one = 1;
	int rc, f;

	if (!n)
		return 0;
	u = malloc(n * sizeof(*u));
	if (!u)
		return gfail(g, -ENOMEM, "trusted subnets: out of memory");
	memcpy(u, keys, n * sizeof(*u));
	nu = keys_sort_unique(u, n);
	rc = trust_collect(g, &have, &nhave);
	if (rc)
		goto out_u;
	nhave = keys_sort_unique(have, nhave);
	for (i = 0; i < nhave; i++)
		held[have[i].v6]++;
	rc = trie_split(g, u, nu, have, nhave, t);
	if (rc)
		goto out_u;
	for (f = 0; f < 2; f++) {
		long max = rg_map_max_entries(t[f].fd);

		if (max >= 0 && held[f] + t[f].nmark > (size_t)max) {
			rc = gfail(g, -ENOSPC, "trusted subnet map full (max %ld): remove unused subnets", max);
			goto out;
		}
	}
	for (f = 0; f < 2; f++) {
		trie_keep_marked(g, &t[f]);     /* write only what is new */
		rc = batch_update(g, t[f].fd, t[f].k, t[f].ksz, &one, 0, t[f].n,
				  f ? cover_lpm6 : cover_lpm4, &done);
		if (!rc)
			continue;
		if (is_full(rc))
			gfail(g, rc, "trusted subnet map full (max %ld): remove unused subnets",
			      rg_map_max_entries(t[f].fd));
		else
			gfail(g, rc, "adding trusted subnet %s: %s",
			      done < t[f].n ? trie_key_text(&t[f], done, buf, sizeof(buf)) : "?",
			      strerror(-rc));
		/* All or nothing: take back what this call added. */
		trie_undo(g, &t[f], done, false);
		if (f)
			trie_undo(g, &t[0], t[0].n, false);
		break;
	}
out:
	trie_keys_free(t);
out_u:
	free(have);
	free(u);
	return rc;
}

int rg_trust_add(struct rg_gate *g, const struct rg_cidr *c, size_t n)
{
	struct lpm_key *keys;
	int rc;

	rc = trust_keys(g, c, n, &keys);
	if (rc)
		return rc;
	rc = trust_add_keys(g, keys, n);
	free(keys);
	return rc;
}

int rg_trust_del(struct rg_gate *g, const struct rg_cidr *c, size_t n)
{
	struct lpm_key *keys, *have = NULL;
	struct trie_keys t[2];
	size_t nhave, nu, i, done = 0;
	int rc, f;

	rc = trust_keys(g, c, n, &keys);
	if (rc)
		return rc;
	/* An LPM lookup matches covering prefixes too; check exact presence
	 * against the key list (sorted: a binary search per key) before
	 * deleting anything. */
	rc = trust_collect(g, &have, &nhave);
	if (rc)
		goto out_keys;
	nhave = keys_sort_unique(have, nhave);
	for (i = 0; i < n; i++) {
		if (!key_in(&keys[i], have, nhave)) {
			struct rg_cidr cc;
			char buf[RG_ADDRSTRLEN];

			key_to_cidr(&keys[i], &cc);
			rc = gfail(g, -ENOENT, "%s: not a trusted subnet", cidr_text(&cc, buf, sizeof(buf)));
			goto out_keys;
		}
	}
	nu = keys_sort_unique(keys, n);         /* listed twice: deleted once */
	rc = trie_split(g, keys, nu, NULL, 0, t);
	if (rc)
		goto out_keys;
	for (f = 0; f < 2; f++) {
		rc = batch_delete(t[f].fd, t[f].k, t[f].ksz, t[f].n, t[f].mark, &done);
		if (!rc)
			continue;
		gfail(g, rc, "removing a trusted subnet: %s", strerror(-rc));
		/* All or nothing: put back what this call removed. */
		trie_undo(g, &t[f], done, true);
		if (f)
			trie_undo(g, &t[0], t[0].n, true);
		break;
	}
	trie_keys_free(t);
out_keys:
	free(have);
	free(keys);
	return rc;
}

int rg_trust_replace(struct rg_gate *g, const struct rg_cidr *c, size_t n)
{
	struct lpm_key *keys, *have = NULL;
	size_t nhave, nk, i;
	int rc;

	rc = trust_keys(g, c, n, &keys);
	if (rc)
		return rc;
	rc = trust_add_keys(g, keys, n);
	if (rc)
		goto out;
	nk = keys_sort_unique(keys, n);
	rc = trust_collect(g, &have, &nhave);
	if (rc)
		goto out;
	for (i = 0; i < nhave; i++) {
		if (key_in(&have[i], keys, nk))
			continue;
		if (bpf_map_delete_elem(key_fd(g, &have[i]), key_ptr(&have[i])) && errno != ENOENT) {
			rc = gfail(g, -errno, "removing a stale trusted subnet: %s", strerror(errno));
			goto out;
		}
	}
out:
	free(have);
	free(keys);
	return rc;
}

int rg_trust_foreach(struct rg_gate *g, int (*cb)(const struct rg_cidr *, void *), void *ctx)
{
	struct lpm_key *have;
	size_t n, i;
	int rc;

	rc = trust_collect(g, &have, &n);
	if (rc)
		return rc;
	for (i = 0; i < n && !rc; i++) {
		struct rg_cidr c;

		key_to_cidr(&have[i], &c);
		rc = cb(&c, ctx);
	}
	free(have);
	if (rc < 0)
		gfail(g, rc, "trusted subnets: %s", strerror(-rc));
	return rc;
}

/* -------------------------------------------------- trusted interfaces */

static int tiface_add_fd(struct rg_gate *g, const unsigned *ifindex, size_t n)
{
	__u32 one = 1;
	bool *added;
	size_t i, j;
	int rc = 0;

	for (i = 0; i < n; i++)
		if (!ifindex[i])
			return gfail(g, -EINVAL, "trusted interface: ifindex 0 is not an interface");
	added = calloc(n + 1, sizeof(*added));
	if (!added)
		return gfail(g, -ENOMEM, "trusted interfaces: out of memory");
	if (n)
		summary_unhint(g, RG_SUM_NO_TIFACE);
	for (i = 0; i < n; i++) {
		__u32 k = ifindex[i];

		if (!bpf_map_update_elem(g->tiface_fd, &k, &one, BPF_NOEXIST)) {
			added[i] = true;
			continue;
		}
		if (errno == EEXIST)
			continue;
		rc = -errno;
		if (is_full(rc))
			gfail(g, rc, "trusted interface map full (max %d)", RG_TIFACE_MAX);
		else
			gfail(g, rc, "adding trusted interface %u: %s", k, strerror(-rc));
		for (j = 0; j < i; j++) {
			__u32 kj = ifindex[j];

			if (added[j])
				bpf_map_delete_elem(g->tiface_fd, &kj);
		}
		break;
	}
	free(added);
	return rc;
}

int rg_tiface_add(struct rg_gate *g, const unsigned *ifindex, size_t n)
{
	return tiface_add_fd(g, ifindex, n);
}

int rg_tiface_del(struct rg_gate *g, const unsigned *ifindex, size_t n)
{
	__u32 one = 1, v;
	bool *deleted;
	size_t i, j;
	int rc = 0;

	for (i = 0; i < n; i++) {
		__u32 k = ifindex[i];

		if (bpf_map_lookup_elem(g->tiface_fd, &k, &v)) {
			char name[IF_NAMESIZE];

			if (if_indextoname(k, name))
				return gfail(g, -ENOENT, "%s: not a trusted interface", name);
			return gfail(g, -ENOENT, "interface #%u: not a trusted interface", k);
		}
	}
	deleted = calloc(n + 1, sizeof(*deleted));
	if (!deleted)
		return gfail(g, -ENOMEM, "trusted interfaces: out of memory");
	for (i = 0; i < n; i++) {
		__u32 k = ifindex[i];

		if (!bpf_map_delete_elem(g->tiface_fd, &k)) {
			deleted[i] = true;
			continue;
		}
		if (errno == ENOENT)
			continue;
		rc = gfail(g, -errno, "removing trusted interface %u: %s", k, strerror(errno));
		for (j = 0; j < i; j++) {
			__u32 kj = ifindex[j];

			if (deleted[j])
				bpf_map_update_elem(g->tiface_fd, &kj, &one, BPF_ANY);
		}
		break;
	}
	free(deleted);
	return rc;
}

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

int rg_tiface_list(struct rg_gate *g, unsigned *ifindex, size_t max)
{
	void *keys;
	size_t n, i;
	int rc;

	rc = collect_keys(g->tiface_fd, &keys, &n);
	if (rc)
		return gfail(g, rc, "reading %s: %s", RG_MAP_TIFACE, strerror(-rc));
	qsort(keys, n, sizeof(__u32), cmp_u32);
	for (i = 0; i < n && i < max; i++)
		ifindex[i] = ((__u32 *)keys)[i];
	free(keys);
	return (int)i;
}

int rg_tiface_replace(struct rg_gate *g, const unsigned *ifindex, size_t n)
{
	void *keys;
	size_t nk, i, j;
	int rc;

	rc = tiface_add_fd(g, ifindex, n);
	if (rc)
		return rc;
	rc = collect_keys(g->tiface_fd, &keys, &nk);
	if (rc)
		return gfail(g, rc, "reading %s: %s", RG_MAP_TIFACE, strerror(-rc));
	for (i = 0; i < nk; i++) {
		__u32 k = ((__u32 *)keys)[i];
		bool keep = false;

		for (j = 0; j < n && !keep; j++)
			keep = ifindex[j] == k;
		if (!keep && bpf_map_delete_elem(g->tiface_fd, &k) && errno != ENOENT) {
			rc = gfail(g, -errno, "removing trusted interface %u: %s", k, strerror(errno));
			break;
		}
	}
	free(keys);
	return rc;
}

/* ------------------------------------------------------ grants and denies */

static int make_key(struct rg_gate *g, const struct rg_addr *src, struct rg_addr *key)
{
	if (src->family != RG_AF_INET && src->family != RG_AF_INET6)
		return gfail(g, -EINVAL, "address family %u: not IPv4 or IPv6", src->family);
	memset(key, 0, sizeof(*key));
	key->family = src->family;
	memcpy(key->addr, src->addr, src->family == RG_AF_INET ? 4 : 16);
	rg_addr_key(key, g->cfg.v4_prefix, g->cfg.v6_prefix);
	return 0;
}

/* Text form of a grant/deny key: the address, or the CIDR when masked. */
static const char *key_text(struct rg_gate *g, const struct rg_addr *k, char *buf, size_t len)
{
	unsigned plen = k->family == RG_AF_INET ? g->cfg.v4_prefix : g->cfg.v6_prefix;
	unsigned full = k->family == RG_AF_INET ? 32 : 128;

	if (plen >= full)
		return rg_addr_str(k, buf, len);
	return rg_cidr_str(k, plen, buf, len);
}

static void set_user(char dst[RG_USER_LEN], const char *user)
{
	size_t l = strnlen(user, RG_USER_LEN - 1);

	memset(dst, 0, RG_USER_LEN);
	memcpy(dst, user, l);
}

static int grant_write(struct rg_gate *g, const struct rg_addr *key, const struct rg_grant *v)
{
	char buf[RG_ADDRSTRLEN];
	int rc;

	summary_cover_key(g, key);
	if (!bpf_map_update_elem(g->grants_fd, key, v, BPF_ANY))
		return 0;
	rc = -errno;
	if (is_full(rc))
		return gfail(g, rc, "grant map full (max %ld): raise [grants] max",
			     rg_map_max_entries(g->grants_fd));
	return gfail(g, rc, "grant for %s: %s", key_text(g, key, buf, sizeof(buf)), strerror(-rc));
}

int rg_grant_put(struct rg_gate *g, const struct rg_addr *src, uint64_t ttl_ns,
		 const char *user, enum rg_origin origin, enum rg_service service,
		 bool *created)
{
	struct rg_addr key;
	struct rg_grant v;
	uint64_t now, exp;
	bool found;
	int rc;

	if (!ttl_ns)
		return gfail(g, -EINVAL, "grant: TTL must be more than 0");
	rc = make_key(g, src, &key);
	if (rc)
		return rc;
	now = rg_now_ns();
	exp = now + ttl_ns < now ? UINT64_MAX : now + ttl_ns;
	found = !bpf_map_lookup_elem(g->grants_fd, &key, &v);
	if (!found)
		memset(&v, 0, sizeof(v));
	if (exp > v.expires)
		v.expires = exp;
	v.granted = now;
	v.origin = origin;
	v.service = service;
	if (user && *user)
		set_user(v.user, user);
	rc = grant_write(g, &key, &v);
	if (!rc && created)
		*created = !found;
	return rc;
}

int rg_grant_put_abs(struct rg_gate *g, const struct rg_addr *k, const struct rg_grant *v)
{
	struct rg_grant old, nv = *v;
	struct rg_addr key;
	int rc;

	rc = make_key(g, k, &key);
	if (rc)
		return rc;
	nv.user[RG_USER_LEN - 1] = '\0';
	if (!bpf_map_lookup_elem(g->grants_fd, &key, &old) && old.expires > nv.expires)
		nv.expires = old.expires;
	return grant_write(g, &key, &nv);
}

int rg_grant_get(struct rg_gate *g, const struct rg_addr *src, struct rg_grant *v)
{
	char buf[RG_ADDRSTRLEN];
	struct rg_addr key;
	int rc;

	rc = make_key(g, src, &key);
	if (rc)
		return rc;
	if (bpf_map_lookup_elem(g->grants_fd, &key, v)) {
		rc = -errno;
		if (rc == -ENOENT)
			return gfail(g, rc, "%s: no grant", key_text(g, &key, buf, sizeof(buf)));
		return gfail(g, rc, "reading %s: %s", RG_MAP_GRANTS, strerror(-rc));
	}
	return 0;
}

static int del_key(struct rg_gate *g, int fd, const struct rg_addr *src, const char *what)
{
	char buf[RG_ADDRSTRLEN];
	struct rg_addr key;
	int rc;

	rc = make_key(g, src, &key);
	if (rc)
		return rc;
	if (bpf_map_delete_elem(fd, &key)) {
		rc = -errno;
		if (rc == -ENOENT)
			return gfail(g, rc, "%s: no %s", key_text(g, &key, buf, sizeof(buf)), what);
		return gfail(g, rc, "removing %s for %s: %s", what,
			     key_text(g, &key, buf, sizeof(buf)), strerror(-rc));
	}
	return 0;
}

int rg_grant_del(struct rg_gate *g, const struct rg_addr *src)
{
	return del_key(g, g->grants_fd, src, "grant");
}

int rg_grant_del_user(struct rg_gate *g, const char *user, unsigned *count)
{
	char want[RG_USER_LEN];
	struct rg_addr *keys;
	struct rg_grant v;
	size_t n, i;
	int rc;

	*count = 0;
	set_user(want, user);
	rc = collect_keys(g->grants_fd, (void **)&keys, &n);
	if (rc)
		return gfail(g, rc, "reading %s: %s", RG_MAP_GRANTS, strerror(-rc));
	for (i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(g->grants_fd, &keys[i], &v))
			continue;
		v.user[RG_USER_LEN - 1] = '\0';
		if (strcmp(v.user, want))
			continue;
		if (bpf_map_delete_elem(g->grants_fd, &keys[i])) {
			if (errno == ENOENT)
				continue;
			rc = gfail(g, -errno, "removing a grant of %s: %s", want, strerror(errno));
			break;
		}
		(*count)++;
	}
	free(keys);
	return rc;
}

int rg_grant_foreach(struct rg_gate *g,
		     int (*cb)(const struct rg_addr *, const struct rg_grant *, void *),
		     void *ctx)
{
	struct rg_addr *keys;
	struct rg_grant *v;
	size_t n, i;
	int rc;

	/* One batch lookup per 64k entries, not a syscall per key. */
	rc = map_dump(g->grants_fd, sizeof(*keys), sizeof(*v), (void **)&keys, (void **)&v, &n);
	if (rc)
		return gfail(g, rc, "reading %s: %s", RG_MAP_GRANTS, strerror(-rc));
	for (i = 0; i < n; i++) {
		v[i].user[RG_USER_LEN - 1] = '\0';
		if (cb(&keys[i], &v[i], ctx))
			break;
	}
	free(keys);
	free(v);
	return 0;
}

/* ------------------------------------------------------------ bulk grants */

/*
 * An index over an array of rg_addr keys: open addressing, a slot holds the
 * key's array index + 1 (0: empty). Keys are canonical (make_key, or as the
 * kernel holds them), so comparing whole structs is equality.
 */
struct addr_index {
	__u32 *slot;
	size_t mask;
	const struct rg_addr *keys;
};

static uint64_t addr_hash(const struct rg_addr *a)
{
	uint64_t w[3] = { 0, 0, 0 }, h;

	memcpy(w, a, sizeof(*a));
	h = w[0] * 0x9e3779b97f4a7c15ULL;
	h = (h ^ (h >> 31) ^ w[1]) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 29) ^ w[2]) * 0x94d049bb133111ebULL;
	return h ^ (h >> 32);
}

static int aidx_init(struct addr_index *x, const struct rg_addr *keys, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2)
		cap *= 2;
	x->slot = calloc(cap, sizeof(*x->slot));
	x->mask = cap - 1;
	x->keys = keys;
	return x->slot ? 0 : -ENOMEM;
}

/* The slot of k: holding its index + 1, or 0 where it would go. */
static __u32 *aidx_slot(const struct addr_index *x, const struct rg_addr *k)
{
	size_t i = addr_hash(k) & x->mask;

	while (x->slot[i] && memcmp(&x->keys[x->slot[i] - 1], k, sizeof(*k)))
		i = (i + 1) & x->mask;
	return &x->slot[i];
}

static bool aidx_has(const struct addr_index *x, const struct rg_addr *k)
{
	return *aidx_slot(x, k) != 0;
}

/* Index all of keys[0..n). */
static int aidx_build(struct addr_index *x, const struct rg_addr *keys, size_t n)
{
	size_t i;

	if (aidx_init(x, keys, n))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		__u32 *s = aidx_slot(x, &keys[i]);

		if (!*s)
			*s = (__u32)i + 1;
	}
	return 0;
}

static void bulk_cover_grant(struct rg_gate *g, const void *key)
{
	summary_cover_key(g, key);
}

/*
 * How far short of max_entries an LRU map may already evict: each CPU
 * keeps free nodes of its own (up to 128, kernel/bpf/bpf_lru_list.c, more
 * after deletes), and an insert that finds the shared free list short
 * evicts rather than borrow them. Within this of full, a bulk put checks
 * afterwards that nothing was evicted.
 */
static size_t lru_slack(void)
{
	int ncpu = libbpf_num_possible_cpus();

	return (size_t)(ncpu > 0 ? ncpu + 1 : 64) * 256 + 1024;
}

/* The grants map's entries, and an index over their keys. */
struct grant_set {
	struct rg_addr *k;
	struct rg_grant *v;
	size_t n;
	struct addr_index x;
};

static void grant_set_free(struct grant_set *s)
{
	free(s->k);
	free(s->v);
	free(s->x.slot);
	memset(s, 0, sizeof(*s));
}

static int grant_set_read(struct rg_gate *g, struct grant_set *s, bool index)
{
	int rc;

	memset(s, 0, sizeof(*s));
	rc = map_dump(g->grants_fd, sizeof(*s->k), sizeof(*s->v), (void **)&s->k, (void **)&s->v, &s->n);
	if (!rc && index)
		rc = aidx_build(&s->x, s->k, s->n);
	if (rc)
		grant_set_free(s);
	return rc;
}

/*
 * After writing uk[0..nu): are they all there, and every grant that was
 * there before (ok, ov) and has not expired since? An LRU map evicts
 * silently: this is how a map too full shows.
 */
static int grants_all_there(struct rg_gate *g, const struct rg_addr *uk, size_t nu,
			    const struct grant_set *before)
{
	uint64_t soon = rg_now_ns() + 1000000000ULL;
	struct grant_set now;
	size_t i;
	int rc;

	rc = grant_set_read(g, &now, true);
	if (rc)
		return rc;
	for (i = 0; i < nu && !rc; i++)
		if (!aidx_has(&now.x, &uk[i]))
			rc = -E2BIG;
	for (i = 0; i < before->n && !rc; i++)
		if (before->v[i].expires > soon && !aidx_has(&now.x, &before->k[i]))
			rc = -E2BIG;
	grant_set_free(&now);
	return rc;
}

/*
 * Undo a bulk put that wrote uk[0..upto): delete the keys it created
 * (old[j] == 0), then put back, as they were, the grants it overwrote and
 * any unexpired grant an eviction took. Best effort: the error path.
 */
static void grants_undo(struct rg_gate *g, const struct rg_addr *uk, const __u32 *old,
			const struct addr_index *ux, size_t upto, const struct grant_set *before)
{
	struct rg_addr *k = malloc((upto + before->n + 1) * sizeof(*k));
	struct rg_grant *v = malloc((before->n + 1) * sizeof(*v));
	uint64_t now = rg_now_ns();
	struct grant_set after;
	size_t i, m = 0, done;
	bool have_after;

	if (!k || !v)
		goto out;
	for (i = 0; i < upto; i++)
		if (!old[i])
			k[m++] = uk[i];
	batch_delete(g->grants_fd, k, sizeof(*k), m, NULL, &done);
	have_after = !grant_set_read(g, &after, true);
	m = 0;
	for (i = 0; i < before->n; i++) {
		__u32 j = *aidx_slot(ux, &before->k[i]);
		bool ours = j && j - 1 < upto;
		bool gone = have_after && before->v[i].expires > now && !aidx_has(&after.x, &before->k[i]);

		if (ours || gone) {
			k[m] = before->k[i];
			v[m++] = before->v[i];
		}
	}
	if (have_after)
		grant_set_free(&after);
	batch_update(g, g->grants_fd, k, sizeof(*k), v, sizeof(*v), m, bulk_cover_grant, &done);
out:
	free(k);
	free(v);
}

int rg_grant_put_many(struct rg_gate *g, const struct rg_grant_req *r, size_t n,
		      enum rg_origin origin, enum rg_service service,
		      size_t *created, size_t *renewed, size_t *kept)
{
	struct grant_set before = { 0 };
	struct addr_index ux = { 0 };
	struct rg_addr *uk = NULL;
	struct rg_grant *uv = NULL;
	__u32 *old = NULL;
	bool *given = NULL;
	size_t nu = 0, nnew = 0, nkept = 0, done = 0, i;
	uint64_t now = rg_now_ns();
	long max;
	int rc = 0;

	if (created)
		*created = 0;
	if (renewed)
		*renewed = 0;
	if (kept)
		*kept = 0;
	if (!n)
		return 0;
	uk = malloc(n * sizeof(*uk));
	uv = malloc(n * sizeof(*uv));
	given = calloc(n, sizeof(*given));
	if (!uk || !uv || !given || aidx_init(&ux, uk, n)) {
		rc = gfail(g, -ENOMEM, "grants: out of memory");
		goto out;
	}
	/* One entry per key, in order: the longest expiry, the last user. */
	for (i = 0; i < n; i++) {
		struct rg_addr key;
		uint64_t exp;
		__u32 *s, j;

		if (!r[i].ttl_ns) {
			rc = gfail(g, -EINVAL, "grant #%zu: TTL must be more than 0", i + 1);
			goto out;
		}
		rc = make_key(g, &r[i].src, &key);
		if (rc)
			goto out;
		exp = now + r[i].ttl_ns < now ? UINT64_MAX : now + r[i].ttl_ns;
		s = aidx_slot(&ux, &key);
		if (!*s) {
			j = (__u32)nu++;
			uk[j] = key;
			*s = j + 1;
			memset(&uv[j], 0, sizeof(uv[j]));
			uv[j].granted = now;
			uv[j].origin = origin;
			uv[j].service = service;
		} else {
			j = *s - 1;
		}
		if (exp > uv[j].expires)
			uv[j].expires = exp;
		if (r[i].user && *r[i].user) {
			set_user(uv[j].user, r[i].user);
			given[j] = true;
		}
	}
	/* The map as it is: never shorten; keep the user unless one is given. */
	rc = grant_set_read(g, &before, false);
	if (rc) {
		gfail(g, rc, "reading %s: %s", RG_MAP_GRANTS, strerror(-rc));
		goto out;
	}
	old = calloc(nu + 1, sizeof(*old));
	if (!old) {
		rc = gfail(g, -ENOMEM, "grants: out of memory");
		goto out;
	}
	for (i = 0; i < before.n; i++) {
		__u32 s = *aidx_slot(&ux, &before.k[i]), j;

		if (!s)
			continue;
		j = s - 1;
		old[j] = (__u32)i + 1;
		if (before.v[i].expires >= uv[j].expires)
			nkept++;        /* its expiry does not move */
		if (before.v[i].expires > uv[j].expires)
			uv[j].expires = before.v[i].expires;
		if (!given[j]) {
			memcpy(uv[j].user, before.v[i].user, RG_USER_LEN);
			uv[j].user[RG_USER_LEN - 1] = '\0';
		}
	}
	for (i = 0; i < nu; i++)
		nnew += !old[i];
	max = rg_map_max_entries(g->grants_fd);
	if (max < 0) {
		rc = gfail(g, (int)max, "reading %s: %s", RG_MAP_GRANTS, strerror((int)-max));
		goto out;
	}
	if (before.n + nnew > (size_t)max) {
		rc = gfail(g, -E2BIG, "grant map full (max %ld): raise [grants] max", max);
		goto out;
	}
	rc = batch_update(g, g->grants_fd, uk, sizeof(*uk), uv, sizeof(*uv), nu, bulk_cover_grant, &done);
	if (!rc && before.n + nnew + lru_slack() > (size_t)max)
		rc = grants_all_there(g, uk, nu, &before);
	if (rc) {
		char buf[RG_ADDRSTRLEN];

		grants_undo(g, uk, old, &ux, done < nu ? done + 1 : nu, &before);
		if (is_full(rc))
			gfail(g, rc, "grant map full (max %ld): raise [grants] max", max);
		else
			gfail(g, rc, "grant for %s: %s",
			      key_text(g, &uk[done < nu ? done : 0], buf, sizeof(buf)), strerror(-rc));
		goto out;
	}
	if (created)
		*created = nnew;
	if (renewed)
		*renewed = nu - nnew - nkept;
	if (kept)
		*kept = nkept;
out:
	grant_set_free(&before);
	free(ux.slot);
	free(old);
	free(given);
	free(uv);
	free(uk);
	return rc;
}

int rg_deny_put(struct rg_gate *g, const struct rg_addr *src, uint64_t ttl_ns,
		enum rg_origin origin, uint32_t failures)
{
	char buf[RG_ADDRSTRLEN];
	struct rg_addr key;
	struct rg_deny v;
	uint64_t now, exp;
	int rc;

	if (!ttl_ns)
		return gfail(g, -EINVAL, "deny: TTL must be more than 0");
	rc = make_key(g, src, &key);
	if (rc)
		return rc;
	now = rg_now_ns();
	exp = now + ttl_ns < now ? UINT64_MAX : now + ttl_ns;
	if (bpf_map_lookup_elem(g->deny_fd, &key, &v)) {
		memset(&v, 0, sizeof(v));
		v.created = now;
	}
	if (exp > v.expires)
		v.expires = exp;
	v.origin = origin;
	if (failures)
		v.failures = failures;
	summary_cover_key(g, &key);
	summary_unhint(g, RG_SUM_NO_DENY);
	if (!bpf_map_update_elem(g->deny_fd, &key, &v, BPF_ANY))
		return 0;
	rc = -errno;
	if (is_full(rc))
		return gfail(g, rc, "deny map full (max %ld)", rg_map_max_entries(g->deny_fd));
	return gfail(g, rc, "deny for %s: %s", key_text(g, &key, buf, sizeof(buf)), strerror(-rc));
}

int rg_deny_del(struct rg_gate *g, const struct rg_addr *src)
{
	return del_key(g, g->deny_fd, src, "deny entry");
}

int rg_deny_foreach(struct rg_gate *g,
		    int (*cb)(const struct rg_addr *, const struct rg_deny *, void *),
		    void *ctx)
{
	struct rg_addr *keys;
	struct rg_deny *v;
	size_t n, i;
	int rc;

	rc = map_dump(g->deny_fd, sizeof(*keys), sizeof(*v), (void **)&keys, (void **)&v, &n);
	if (rc)
		return gfail(g, rc, "reading %s: %s", RG_MAP_DENY, strerror(-rc));
	for (i = 0; i < n; i++)
		if (cb(&keys[i], &v[i], ctx))
			break;
	free(keys);
	free(v);
	return 0;
}

/* Delete every entry of an addr-keyed map whose u64 expiry (first field)
 * is at or before now. */
static int sweep_map(struct rg_gate *g, int fd, size_t vsize, uint64_t now, int *removed)
{
	struct rg_addr *keys;
	size_t n, i;
	__u64 *v;
	int rc;

	v = malloc(vsize);
	if (!v)
		return -ENOMEM;
	rc = collect_keys(fd, (void **)&keys, &n);
	if (rc) {
		free(v);
		return gfail(g, rc, "sweeping expired entries: %s", strerror(-rc));
	}
	for (i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &keys[i], v) || v[0] > now)
			continue;
		if (!bpf_map_delete_elem(fd, &keys[i]))
			(*removed)++;
	}
	free(keys);
	free(v);
	return 0;
}

int rg_sweep(struct rg_gate *g, uint64_t now_ns)
{
	int removed = 0, rc;

	rc = sweep_map(g, g->grants_fd, sizeof(struct rg_grant), now_ns, &removed);
	if (!rc)
		rc = sweep_map(g, g->deny_fd, sizeof(struct rg_deny), now_ns, &removed);
	return rc ? rc : removed;
}

/* ------------------------------------------------------------- counters */

int rg_stats_read(struct rg_gate *g, struct rg_counter out[RG_STAT_MAX])
{
	int ncpu = libbpf_num_possible_cpus(), cpu;
	struct rg_counter *per;
	__u32 i;

	memset(out, 0, sizeof(struct rg_counter) * RG_STAT_MAX);
	if (ncpu <= 0)
		return gfail(g, ncpu ? ncpu : -EINVAL, "counting CPUs failed");
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return gfail(g, -ENOMEM, "counters: out of memory");
	for (i = 0; i < RG_STAT_MAX; i++) {
		if (bpf_map_lookup_elem(g->stats_fd, &i, per)) {
			int rc = -errno;

			free(per);
			return gfail(g, rc, "reading %s: %s", RG_MAP_STATS, strerror(-rc));
		}
		for (cpu = 0; cpu < ncpu; cpu++) {
			out[i].packets += per[cpu].packets;
			out[i].bytes += per[cpu].bytes;
		}
	}
	free(per);
	return 0;
}

/* ------------------------------------------------ loading and pinning */

/* What is pinned already, and whether the set is compatible. */
struct pinned {
	bool any;               /* at least one map pinned */
	bool configured;        /* rg_config carries our ABI version */
	__u32 max_entries[NMAPS];
};

static int probe_pins(const char *pin_dir, struct pinned *p, const struct relaygate *skel,
		      char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t i;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < NMAPS && !rc; i++) {
		const struct map_desc *d = &maps_desc[i];
		struct bpf_map_info info;
		struct bpf_map *m;
		int fd;

		if (pin_path(path, sizeof(path), pin_dir, "", d->name))
			return fail(err, errlen, -ENAMETOOLONG, "pin dir %s: name too long", pin_dir);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		}
		p->any = true;
		rc = map_info(fd, &info);
		if (rc) {
			close(fd);
			return fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
		}
		m = !strcmp(d->name, RG_MAP_SUMMARY) ? skel->maps.bss :
			bpf_object__find_map_by_name(skel->obj, d->name);
		/* What libbpf will demand to reuse the pin: same type, key,
		 * value and flags (max_entries we adopt from the pin). */
		if (!m || info.type != bpf_map__type(m) || info.key_size != bpf_map__key_size(m) ||
		    info.value_size != bpf_map__value_size(m) || info.map_flags != bpf_map__map_flags(m)) {
			char what[96];

			snprintf(what, sizeof(what), "%s has type %u key %u value %u flags %#x",
				 d->name, info.type, info.key_size, info.value_size, info.map_flags);
			close(fd);
			return incompatible(err, errlen, pin_dir, what);
		}
		p->max_entries[i] = info.max_entries;
		if (!strcmp(d->name, RG_MAP_CONFIG)) {
			struct rg_config c;
			__u32 zero = 0;

			if (bpf_map_lookup_elem(fd, &zero, &c)) {
				rc = fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
			} else if (c.abi_version == RG_ABI_VERSION) {
				p->configured = true;
			} else if (c.abi_version != 0) {
				char what[64];

				snprintf(what, sizeof(what), "map ABI v%u, this build uses v%u",
					 c.abi_version, RG_ABI_VERSION);
				rc = incompatible(err, errlen, pin_dir, what);
			}
		}
		close(fd);
	}
	return rc;
}

enum load_prog { LOAD_NONE, LOAD_XDP, LOAD_TC };

/* What gate_load changed on maps that existed, to take back when the
 * attach that follows fails (all or nothing). */
struct gate_undo {
	bool cfg_changed;
	struct rg_config old_cfg;
	uint16_t *old_ports;         /* non-NULL: ports were replaced */
	size_t n_old_ports;
	struct rg_summary *sum;      /* the summary, mapped while the undo may run */
};

static void undo_free(struct gate_undo *u)
{
	free(u->old_ports);
	summary_munmap(u->sum);
	memset(u, 0, sizeof(*u));
}

static void undo_apply(struct gate_undo *u, struct relaygate *skel)
{
	char ignore[8];

	if (!u->sum)
		return;         /* gate_load changed nothing */
	if (u->cfg_changed)
		config_put(bpf_map__fd(skel->maps.rg_config), u->sum, &u->old_cfg);
	if (u->old_ports)
		ports_set_fd(bpf_map__fd(skel->maps.rg_ports), u->sum, u->old_ports, u->n_old_ports,
			     ignore, sizeof(ignore));
}

/* Remember the protected ports of an existing set before replacing them. */
static int undo_save_ports(struct gate_undo *u, int fd)
{
	__u8 *set = malloc(NPORTS);
	unsigned p;

	if (!set)
		return -ENOMEM;
	u->old_ports = calloc(NPORTS, sizeof(*u->old_ports));
	if (!u->old_ports || ports_read_fd(fd, set)) {
		free(set);
		free(u->old_ports);
		u->old_ports = NULL;
		return -ENOMEM;
	}
	for (p = 1; p < NPORTS; p++)
		if (set[p])
			u->old_ports[u->n_old_ports++] = (uint16_t)p;
	free(set);
	return 0;
}

/*
 * Open the skeleton with the pin dir, adopt the sizes of maps already
 * pinned, load (creating and pinning what is missing), and configure a
 * fresh set. Caller holds the pin dir lock.
 */
static int summary_init(int fd, char *err, size_t errlen)
{
	struct rg_summary *s = calloc(1, sizeof(*s));
	__u32 zero = 0;
	int rc = 0;

	if (!s)
		return fail(err, errlen, -ENOMEM, "writing %s: out of memory", RG_MAP_SUMMARY);
	s->hints = RG_SUM_ON | RG_SUM_NO_TIFACE | RG_SUM_NO_DENY;
	if (bpf_map_update_elem(fd, &zero, s, BPF_ANY))
		rc = fail(err, errlen, -errno, "writing %s: %s", RG_MAP_SUMMARY, strerror(errno));
	free(s);
	return rc;
}

/*
 * The summary is the programs' global data (maps/maps.bpf.h), which libbpf
 * pins only by path: pin it as rg_summary beside the maps it pins by name.
 * A pinned summary is reused (its type, sizes and flags are those of the
 * section's map), so every hook of the pin dir reads the same one.
 */
static int summary_pin(struct relaygate *skel, const char *pin_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int rc;

	if (bpf_map__value_size(skel->maps.bss) != sizeof(struct rg_summary))
		return fail(err, errlen, -EINVAL,
			    "the BPF object's global data is %u bytes, not the summary's %zu",
			    bpf_map__value_size(skel->maps.bss), sizeof(struct rg_summary));
	if (pin_path(path, sizeof(path), pin_dir, "", RG_MAP_SUMMARY))
		return fail(err, errlen, -ENAMETOOLONG, "%s: path too long", pin_dir);
	rc = bpf_map__set_pin_path(skel->maps.bss, path);
	return rc ? fail(err, errlen, rc, "%s: %s", path, strerror(-rc)) : 0;
}

static int gate_load(const char *pin_dir, const struct rg_load_opts *o, enum load_prog which,
		     struct relaygate **out, struct gate_undo *undo, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = pin_dir);
	struct rg_load_opts defaults = { 0 };
	struct rg_config fresh;         /* the config of a fresh set */
	struct rg_summary *sum;
	struct relaygate *skel;
	struct pinned p;
	size_t i;
	int rc;

	*out = NULL;
	if (!o)
		o = &defaults;
	fresh = (struct rg_config){
		.abi_version = RG_ABI_VERSION,
		.flags = o->reject_rst ? RG_CFG_REJECT_RST : 0,
		.v4_prefix = o->v4_prefix ? o->v4_prefix : 32,
		.v6_prefix = o->v6_prefix ? o->v6_prefix : 64,
		.event_interval = RG_EVENT_INTERVAL_DEFAULT_NS,
		.event_burst = RG_EVENT_BURST_DEFAULT,
	};
	skel = relaygate__open_opts(&oo);
	if (!skel)
		return fail(err, errlen, -errno, "opening the BPF object: %s", strerror(errno));
	rc = summary_pin(skel, pin_dir, err, errlen);
	if (rc)
		goto fail;
	rc = probe_pins(pin_dir, &p, skel, err, errlen);
	if (rc)
		goto fail;
	for (i = 0; i < NMAPS; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(skel->obj, maps_desc[i].name);

		if (m && p.max_entries[i])
			bpf_map__set_max_entries(m, p.max_entries[i]);
	}
	if (!p.max_entries[desc_index(RG_MAP_GRANTS)] && o->grants_max)
		bpf_map__set_max_entries(skel->maps.rg_grants, o->grants_max);
	bpf_program__set_autoload(skel->progs.rg_xdp, which == LOAD_XDP);
	bpf_program__set_autoload(skel->progs.rg_tc, which == LOAD_TC);
	rc = relaygate__load(skel);
	if (rc) {
		if (rc == -EPERM || rc == -EACCES)
			fail(err, errlen, rc, "loading the BPF object: %s (needs root or CAP_BPF + CAP_NET_ADMIN; run with -v for libbpf's log)",
			     strerror(-rc));
		else
			fail(err, errlen, rc, "loading the BPF object: %s (run with -v for libbpf's log)",
			     strerror(-rc));
		goto fail;
	}
	if (!p.configured) {
		rc = config_valid(&fresh, err, errlen);
		if (rc)
			goto fail;
		/* Fresh maps are empty: the prefilter is on with no slot set,
		 * and both hints are true. */
		rc = summary_init(bpf_map__fd(skel->maps.bss), err, errlen);
		if (rc)
			goto fail;
	}
	/* The summary is kept beside rg_ports and rg_config (relaygate.h),
	 * mapped until the undo is freed: an attach that fails after this
	 * load puts both back through it. */
	undo->sum = sum = summary_mmap(bpf_map__fd(skel->maps.bss));
	if (!sum) {
		rc = fail(err, errlen, -errno, "%s/%s: mmap: %s", pin_dir, RG_MAP_SUMMARY,
			  strerror(errno));
		goto fail;
	}
	if (!p.configured) {
		static const uint16_t def_ports[] = { 465, 587 };

		/* Ports before the config: the config's ABI version marks the
		 * set as complete. */
		rc = ports_set_fd(bpf_map__fd(skel->maps.rg_ports), sum,
				  o->ports ? o->ports : def_ports, o->ports ? o->nports : 2, err, errlen);
		if (rc)
			goto fail;
		rc = config_put(bpf_map__fd(skel->maps.rg_config), sum, &fresh);
		if (rc) {
			fail(err, errlen, rc, "writing %s: %s", RG_MAP_CONFIG, strerror(-rc));
			goto fail;
		}
	} else {
		int cfd = bpf_map__fd(skel->maps.rg_config), pfd = bpf_map__fd(skel->maps.rg_ports);
		struct rg_config c;
		__u32 zero = 0;

		if (o->ports && !o->fresh_only) {
			if (undo_save_ports(undo, pfd)) {
				rc = fail(err, errlen, -ENOMEM, "reading %s: out of memory", RG_MAP_PORTS);
				goto fail;
			}
			rc = ports_set_fd(pfd, sum, o->ports, o->nports, err, errlen);
			if (rc)
				goto fail;
		}
		if (o->apply_reject && !o->fresh_only) {
			if (bpf_map_lookup_elem(cfd, &zero, &c)) {
				rc = fail(err, errlen, -errno, "reading %s: %s", RG_MAP_CONFIG, strerror(errno));
				goto fail;
			}
			undo->old_cfg = c;
			undo->cfg_changed = true;
			c.flags = o->reject_rst ? c.flags | RG_CFG_REJECT_RST : c.flags & ~RG_CFG_REJECT_RST;
			rc = config_put(cfd, sum, &c);
			if (rc) {
				fail(err, errlen, rc, "writing %s: %s", RG_MAP_CONFIG, strerror(-rc));
				goto fail;
			}
		}
	}
	*out = skel;
	return 0;
fail:
	undo_apply(undo, skel);
	undo_free(undo);
	relaygate__destroy(skel);
	return rc;
}

static int prepare_pin_dir(const char *pin_dir, char *err, size_t errlen)
{
	char anc[PATH_MAX];
	struct statfs sf;
	char *slash;
	int rc;

	if (!*pin_dir || strlen(pin_dir) >= PATH_MAX - 32)
		return fail(err, errlen, -ENAMETOOLONG, "pin dir '%s': bad path", pin_dir);
	/* Check the filesystem before creating anything: most often a wrong
	 * one is sysfs because /sys/fs/bpf is not mounted. */
	strcpy(anc, pin_dir);
	while (!path_exists(anc) && (slash = strrchr(anc, '/')) && slash != anc)
		*slash = '\0';
	if (statfs(anc, &sf))
		return fail(err, errlen, -errno, "pin dir %s: %s", pin_dir, strerror(errno));
	if ((unsigned long)sf.f_type != (unsigned long)BPF_FS_MAGIC)
		return fail(err, errlen, -EINVAL,
			    "pin dir %s is not on a BPF filesystem: mount one with `mount -t bpf bpf /sys/fs/bpf`",
			    pin_dir);
	rc = mkdir_p(pin_dir);
	if (rc)
		return fail(err, errlen, rc, "pin dir %s: %s", pin_dir, strerror(-rc));
	return 0;
}

int rg_gate_daemon_lock(const char *pin_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int rc, fd;

	rc = prepare_pin_dir(pin_dir, err, errlen);
	if (rc)
		return rc;
	if (pin_path(path, sizeof(path), pin_dir, "", RG_PIN_DAEMON_LOCK))
		return fail(err, errlen, -ENAMETOOLONG, "pin dir '%s': bad path", pin_dir);
	for (int tries = 0;; tries++) {
		struct stat a, b;

		if (mkdir(path, 0700) && errno != EEXIST)
			return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			rc = -errno;
			close(fd);
			if (rc == -EWOULDBLOCK)
				return fail(err, errlen, rc,
					    "pin dir %s: another relaygated manages this gate; stop it first, or give this one a [gate] pin_dir of its own",
					    pin_dir);
			return fail(err, errlen, rc, "%s: lock: %s", path, strerror(-rc));
		}
		/* Still the directory at path (a purge may have removed the
		 * one we opened, and another daemon made a new one)? */
		if (!fstat(fd, &a) && !stat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd);
		if (tries == 3)
			return fail(err, errlen, -EAGAIN, "%s: removed while locking; try again", path);
	}
}

int rg_gate_create(const char *pin_dir, const struct rg_load_opts *o, char *err, size_t errlen)
{
	struct gate_undo undo = { 0 };
	struct relaygate *skel;
	int rc, lfd;

	rc = prepare_pin_dir(pin_dir, err, errlen);
	if (rc)
		return rc;
	lfd = lock_dir(pin_dir, err, errlen);
	if (lfd < 0)
		return lfd;
	rc = gate_load(pin_dir, o, LOAD_NONE, &skel, &undo, err, errlen);
	if (!rc) {
		undo_free(&undo);
		relaygate__destroy(skel);
	}
	unlock_dir(lfd);
	return rc;
}

/* ----------------------------------------------------- attach / detach */

enum pin_kind { PIN_NONE, PIN_LINK, PIN_TC, PIN_TCQ };

static const char *const pin_prefix[] = {
	[PIN_LINK] = RG_PIN_LINK_PREFIX,
	[PIN_TC] = RG_PIN_TC_PREFIX,
	[PIN_TCQ] = RG_PIN_TCQ_PREFIX,
};

static enum pin_kind find_pin(const char *pin_dir, const char *ifname, char *path, size_t len)
{
	enum pin_kind k;

	for (k = PIN_LINK; k <= PIN_TCQ; k++) {
		if (pin_path(path, len, pin_dir, pin_prefix[k], ifname))
			return PIN_NONE;
		if (path_exists(path))
			return k;
	}
	return PIN_NONE;
}

static bool valid_ifname(const char *ifname)
{
	size_t l = strnlen(ifname, IF_NAMESIZE);

	return l > 0 && l < IF_NAMESIZE && !strchr(ifname, '/');
}

static void tc_hook_init(struct bpf_tc_hook *h, unsigned ifindex)
{
	memset(h, 0, sizeof(*h));
	h->sz = sizeof(*h);
	h->ifindex = (int)ifindex;
	h->attach_point = BPF_TC_INGRESS;
}

static void tc_opts_init(struct bpf_tc_opts *t)
{
	memset(t, 0, sizeof(*t));
	t->sz = sizeof(*t);
	t->handle = RG_TC_HANDLE;
	t->priority = RG_TC_PRIORITY;
}

/* The prog id of our filter on ifindex's ingress, 0 if none. */
static __u32 tc_query_ours(unsigned ifindex)
{
	struct bpf_tc_hook h;
	struct bpf_tc_opts t;

	tc_hook_init(&h, ifindex);
	tc_opts_init(&t);
	if (bpf_tc_query(&h, &t))
		return 0;
	return t.prog_id;
}

static __u32 xdp_prog_on(unsigned ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query((int)ifindex, 0, &q))
		return 0;
	if (q.prog_id)
		return q.prog_id;
	if (q.drv_prog_id)
		return q.drv_prog_id;
	if (q.skb_prog_id)
		return q.skb_prog_id;
	return q.hw_prog_id;
}

/* An interface ioctl (SIOCGIF*) in our network namespace: 0 or -errno. */
static int if_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
	int fd, rc;

	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", ifname);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = ioctl(fd, req, ifr) ? -errno : 0;
	close(fd);
	return rc;
}

/* The interface's MTU (in our network namespace): 0 when unknown. */
static unsigned if_mtu(const char *ifname)
{
	struct ifreq ifr;

	if (if_ioctl(ifname, SIOCGIFMTU, &ifr) || ifr.ifr_mtu <= 0)
		return 0;
	return (unsigned)ifr.ifr_mtu;
}

/*
 * The interface's link type (ARPHRD_*, in our network namespace), or
 * -errno. The program reads Ethernet frames: on a device without a MAC
 * header (tun, WireGuard, PPP, IP tunnels) XDP and TC hand it packets that
 * start at the IP header, which it would take for Ethernet and pass.
 */
static int if_link_type(const char *ifname)
{
	struct ifreq ifr;
	int rc = if_ioctl(ifname, SIOCGIFHWADDR, &ifr);

	return rc ? rc : ifr.ifr_hwaddr.sa_family;
}

static const char *link_type_name(int t, char *buf, size_t len)
{
	switch (t) {
	case ARPHRD_NONE: return "none: tun, WireGuard";
	case ARPHRD_PPP: return "ppp";
	case ARPHRD_TUNNEL: return "ipip";
	case ARPHRD_TUNNEL6: return "ip6tnl";
	case ARPHRD_SIT: return "sit";
	case ARPHRD_IPGRE: return "gre";
	case ARPHRD_RAWIP: return "raw IP";
	default:
		snprintf(buf, len, "ARPHRD %d", t);
		return buf;
	}
}

static int attach_xdp(const char *pin_dir, const char *ifname, unsigned ifindex,
		      enum rg_mode mode, struct relaygate *skel, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_link_create_opts, lo);
	char path[PATH_MAX];
	int link_fd, rc;
	__u32 other;

	lo.flags = mode == RG_MODE_XDP ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	link_fd = bpf_link_create(bpf_program__fd(skel->progs.rg_xdp), (int)ifindex, BPF_XDP, &lo);
	if (link_fd < 0) {
		rc = -errno;
		if (rc == -EOPNOTSUPP && mode == RG_MODE_XDP)
			return fail(err, errlen, rc,
				    "attach %s: the driver has no native XDP: use --mode xdp-generic or --mode tc",
				    ifname);
		/* Drivers refuse native XDP when a frame at the MTU would not
		 * fit a page (veth: ERANGE, also for its peer's MTU). */
		if (rc == -ERANGE && mode == RG_MODE_XDP)
			return fail(err, errlen, rc,
				    "attach %s (xdp): the driver refuses native XDP at this MTU (%u; a veth also checks its peer's): lower the MTU or use --mode tc",
				    ifname, if_mtu(ifname));
		if (rc == -EBUSY || rc == -EEXIST) {
			other = xdp_prog_on(ifindex);
			return fail(err, errlen, rc,
				    "attach %s: the interface already has an XDP program (id %u); relaygate will not replace it: remove it or use --mode tc",
				    ifname, other);
		}
		return fail(err, errlen, rc, "attach %s (%s): %s", ifname, rg_mode_name(mode),
			    strerror(-rc));
	}
	rc = pin_path(path, sizeof(path), pin_dir, RG_PIN_LINK_PREFIX, ifname);
	if (!rc && bpf_obj_pin(link_fd, path))
		rc = -errno;
	if (rc) {
		close(link_fd);        /* the last reference: detaches again */
		return fail(err, errlen, rc, "attach %s: pinning the link as %s: %s", ifname, path,
			    strerror(-rc));
	}
	close(link_fd);
	return 0;
}

static int attach_tc(const char *pin_dir, const char *ifname, unsigned ifindex,
		     struct relaygate *skel, char *err, size_t errlen)
{
	struct bpf_tc_hook h;
	struct bpf_tc_opts t;
	char path[PATH_MAX];
	bool created;
	int rc;

	tc_hook_init(&h, ifindex);
	rc = bpf_tc_hook_create(&h);
	if (rc && rc != -EEXIST)
		return fail(err, errlen, rc, "attach %s: creating the clsact qdisc: %s", ifname,
			    strerror(-rc));
	created = rc == 0;
	tc_opts_init(&t);
	t.prog_fd = bpf_program__fd(skel->progs.rg_tc);
	rc = bpf_tc_attach(&h, &t);
	if (rc) {
		fail(err, errlen, rc, rc == -EEXIST ?
		     "attach %s: a tc filter with relaygate's handle already exists: %s" :
		     "attach %s: adding the tc filter: %s", ifname, strerror(-rc));
		goto undo_hook;
	}
	rc = pin_path(path, sizeof(path), pin_dir,
		      created ? RG_PIN_TCQ_PREFIX : RG_PIN_TC_PREFIX, ifname);
	if (!rc && bpf_obj_pin(t.prog_fd, path))
		rc = -errno;
	if (rc) {
		fail(err, errlen, rc, "attach %s: pinning the tc program: %s", ifname, strerror(-rc));
		tc_opts_init(&t);
		bpf_tc_detach(&h, &t);
		goto undo_hook;
	}
	return 0;
undo_hook:
	if (created) {
		h.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&h);
	}
	return rc;
}

int rg_gate_attach(const char *pin_dir, const char *ifname, enum rg_mode mode,
		   const struct rg_load_opts *o, char *err, size_t errlen)
{
	struct gate_undo undo = { 0 };
	struct relaygate *skel = NULL;
	char path[PATH_MAX];
	enum pin_kind k;
	unsigned ifindex;
	int rc, lfd;
	__u32 id;

	if ((unsigned)mode > RG_MODE_TC)
		return fail(err, errlen, -EINVAL, "attach: unknown mode %d", (int)mode);
	ifindex = valid_ifname(ifname) ? if_nametoindex(ifname) : 0;
	if (!ifindex)
		return fail(err, errlen, -ENODEV, "interface %s: no such interface", ifname);
	rc = if_link_type(ifname);
	if (rc < 0)
		return fail(err, errlen, rc, "attach %s: link type: %s", ifname, strerror(-rc));
	if (rc != ARPHRD_ETHER && rc != ARPHRD_LOOPBACK) {
		char b[32];

		return fail(err, errlen, -EOPNOTSUPP,
			    "attach %s: not an Ethernet interface (link type %s): attach the gate to the Ethernet interface the mail traffic arrives on",
			    ifname, link_type_name(rc, b, sizeof(b)));
	}
	rc = prepare_pin_dir(pin_dir, err, errlen);
	if (rc)
		return rc;
	lfd = lock_dir(pin_dir, err, errlen);
	if (lfd < 0)
		return lfd;
	k = find_pin(pin_dir, ifname, path, sizeof(path));
	if (k != PIN_NONE) {
		char opt[PATH_MAX + 16];

		rc = fail(err, errlen, -EEXIST, "attach %s: already attached (%s); run `relaygatectl %sdetach %s` first",
			  ifname, path, pin_opt(pin_dir, opt, sizeof(opt)), ifname);
		goto out;
	}
	if (mode != RG_MODE_TC) {
		id = xdp_prog_on(ifindex);
		if (id) {
			rc = fail(err, errlen, -EBUSY,
				  "attach %s: the interface already has an XDP program (id %u); relaygate will not replace it: remove it or use --mode tc",
				  ifname, id);
			goto out;
		}
	} else if ((id = tc_query_ours(ifindex))) {
		rc = fail(err, errlen, -EEXIST,
			  "attach %s: a tc filter with relaygate's handle is already there (prog id %u) but not pinned under %s: remove it with `tc filter del dev %s ingress`",
			  ifname, id, pin_dir, ifname);
		goto out;
	}
	rc = gate_load(pin_dir, o, mode == RG_MODE_TC ? LOAD_TC : LOAD_XDP, &skel, &undo, err, errlen);
	if (rc)
		goto out;
	if (mode == RG_MODE_TC)
		rc = attach_tc(pin_dir, ifname, ifindex, skel, err, errlen);
	else
		rc = attach_xdp(pin_dir, ifname, ifindex, mode, skel, err, errlen);
	if (rc)
		undo_apply(&undo, skel);
	undo_free(&undo);
	relaygate__destroy(skel);
out:
	unlock_dir(lfd);
	return rc;
}

int rg_gate_detach(const char *pin_dir, const char *ifname, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct bpf_tc_hook h;
	struct bpf_tc_opts t;
	enum pin_kind k;
	unsigned ifindex;
	int rc = 0, lfd, fd;

	if (!valid_ifname(ifname))
		return fail(err, errlen, -ENODEV, "interface %s: no such interface", ifname);
	ifindex = if_nametoindex(ifname);
	lfd = lock_dir(pin_dir, err, errlen);
	if (lfd < 0) {
		if (lfd == -ENOENT && !ifindex)
			return fail(err, errlen, -ENODEV, "interface %s: no such interface", ifname);
		if (lfd == -ENOENT)
			return fail(err, errlen, -ENOENT, "detach %s: not attached (no gate under %s)",
				    ifname, pin_dir);
		return lfd;
	}
	k = find_pin(pin_dir, ifname, path, sizeof(path));
	switch (k) {
	case PIN_NONE:
		if (!ifindex)
			rc = fail(err, errlen, -ENODEV, "interface %s: no such interface", ifname);
		else
			rc = fail(err, errlen, -ENOENT, "detach %s: not attached (nothing pinned for it under %s)",
				  ifname, pin_dir);
		break;
	case PIN_LINK:
		/* Detach even if someone else holds the link open; then drop the pin. */
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			if (bpf_link_detach(fd) && errno != EINVAL && errno != ENOLINK)
				rc = fail(err, errlen, -errno, "detach %s: %s", ifname, strerror(errno));
			close(fd);
		}
		if (!rc && unlink(path))
			rc = fail(err, errlen, -errno, "detach %s: removing %s: %s", ifname, path,
				  strerror(errno));
		break;
	case PIN_TC:
	case PIN_TCQ:
		if (ifindex) {
			struct bpf_prog_info info;
			__u32 len = sizeof(info), ours = 0;

			memset(&info, 0, sizeof(info));
			fd = bpf_obj_get(path);
			if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len))
				ours = info.id;
			if (fd >= 0)
				close(fd);
			tc_hook_init(&h, ifindex);
			/* Remove the filter at our handle only if it runs our program. */
			if (ours && tc_query_ours(ifindex) == ours) {
				tc_opts_init(&t);
				rc = bpf_tc_detach(&h, &t);
				if (rc && rc != -ENOENT) {
					fail(err, errlen, rc, "detach %s: removing the tc filter: %s", ifname,
					     strerror(-rc));
					break;
				}
				rc = 0;
			}
			if (k == PIN_TCQ) {
				/* We created clsact: remove it again. */
				h.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
				bpf_tc_hook_destroy(&h);
			}
		}
		if (unlink(path))
			rc = fail(err, errlen, -errno, "detach %s: removing %s: %s", ifname, path,
				  strerror(errno));
		break;
	}
	unlock_dir(lfd);
	return rc;
}

static int cmp_att(const void *a, const void *b)
{
	return strcmp(((const struct rg_attachment *)a)->ifname,
		      ((const struct rg_attachment *)b)->ifname);
}

static bool parse_pin_name(const char *name, enum pin_kind *k, const char **ifname)
{
	enum pin_kind i;

	for (i = PIN_LINK; i <= PIN_TCQ; i++) {
		size_t l = strlen(pin_prefix[i]);

		if (!strncmp(name, pin_prefix[i], l) && name[l]) {
			*k = i;
			*ifname = name + l;
			return true;
		}
	}
	return false;
}

static void describe_attachment(const char *pin_dir, const char *name, enum pin_kind k,
				struct rg_attachment *a)
{
	char path[PATH_MAX];
	int fd;

	if (pin_path(path, sizeof(path), pin_dir, "", name))
		return;
	fd = bpf_obj_get(path);
	if (k == PIN_LINK) {
		struct bpf_link_info li;
		__u32 len = sizeof(li);

		a->mode = RG_MODE_XDP;
		memset(&li, 0, sizeof(li));
		if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &li, &len)) {
			LIBBPF_OPTS(bpf_xdp_query_opts, q);

			a->ifindex = li.xdp.ifindex;    /* 0 once the interface is gone */
			a->prog_id = a->ifindex ? li.prog_id : 0;
			if (a->ifindex && !bpf_xdp_query((int)a->ifindex, 0, &q) &&
			    q.attach_mode == XDP_ATTACHED_SKB)
				a->mode = RG_MODE_XDP_GENERIC;
		}
	} else {
		struct bpf_prog_info pi;
		__u32 len = sizeof(pi);

		a->mode = RG_MODE_TC;
		a->ifindex = if_nametoindex(a->ifname);
		memset(&pi, 0, sizeof(pi));
		if (fd >= 0 && a->ifindex && !bpf_obj_get_info_by_fd(fd, &pi, &len) &&
		    tc_query_ours(a->ifindex) == pi.id)
			a->prog_id = pi.id;     /* 0: the filter was removed by hand */
	}
	if (fd >= 0)
		close(fd);
}

int rg_gate_attachments(const char *pin_dir, struct rg_attachment *a, size_t max)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	d = opendir(pin_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) && n < max) {
		const char *ifname;
		enum pin_kind k;

		if (!parse_pin_name(de->d_name, &k, &ifname) || strlen(ifname) >= sizeof(a->ifname))
			continue;
		memset(&a[n], 0, sizeof(a[n]));
		strcpy(a[n].ifname, ifname);
		describe_attachment(pin_dir, de->d_name, k, &a[n]);
		n++;
	}
	closedir(d);
	qsort(a, n, sizeof(*a), cmp_att);
	return (int)n;
}

int rg_gate_purge(const char *pin_dir, char *err, size_t errlen)
{
	struct rg_attachment att[4];
	char path[PATH_MAX], opt[PATH_MAX + 16];
	int rc = 0, lfd, n;
	size_t i;

	lfd = lock_dir(pin_dir, err, errlen);
	if (lfd == -ENOENT)
		return 0;       /* nothing pinned */
	if (lfd < 0)
		return lfd;
	n = rg_gate_attachments(pin_dir, att, sizeof(att) / sizeof(att[0]));
	if (n < 0) {
		rc = fail(err, errlen, n, "pin dir %s: %s", pin_dir, strerror(-n));
		goto out;
	}
	if (n > 0) {
		rc = fail(err, errlen, -EBUSY, "purge: %s is still attached: run `relaygatectl %sdetach %s` first",
			  att[0].ifname, pin_opt(pin_dir, opt, sizeof(opt)), att[0].ifname);
		goto out;
	}
	for (i = 0; i < NMAPS; i++) {
		if (pin_path(path, sizeof(path), pin_dir, "", maps_desc[i].name))
			continue;
		if (unlink(path) && errno != ENOENT) {
			rc = fail(err, errlen, -errno, "purge: removing %s: %s", path, strerror(errno));
			goto out;
		}
	}
	/* The daemon's lock directory, unless a daemon holds it. */
	if (!pin_path(path, sizeof(path), pin_dir, "", RG_PIN_DAEMON_LOCK)) {
		int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0 && !flock(dfd, LOCK_EX | LOCK_NB))
			rmdir(path);
		if (dfd >= 0)
			close(dfd);
	}
	/* Remove the directory when nothing else lives in it. */
	if (rmdir(pin_dir) && errno != ENOTEMPTY && errno != EEXIST && errno != EBUSY)
		rc = fail(err, errlen, -errno, "purge: removing %s: %s", pin_dir, strerror(errno));
out:
	unlock_dir(lfd);
	return rc;
}
