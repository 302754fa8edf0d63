/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * relaygated's config file (/etc/relaygate/relaygate.conf, INI; SPEC.md
 * "Config"), read with inih and validated strictly into struct
 * rg_config_file:
 *
 *	struct rg_config_file cfg;
 *	char err[512];
 *	if (rg_config_load(path, &cfg, err, sizeof(err)))
 *		die("%s", err);      // one line, e.g.
 *		// relaygate.conf:12: [trust] subnet: "10.0.0.1/8": host bits set below the prefix
 *	...
 *	rg_config_free(&cfg);
 *
 * Every problem is one line "FILE:LINE: [section] key: reason" (or
 * "FILE:LINE: [section]: reason" for a whole section, "FILE: reason" for
 * the file itself): an unknown section or key, a key given twice that does
 * not repeat, a bad value, a source missing its type or path, a custom
 * pattern without its named groups, a missing or unreadable file. Loading
 * stops at the first problem, leaves *out untouched and changes nothing
 * else: the caller keeps its old config (SIGHUP) or does not start.
 *
 * Syntax (inih with these settings): "[section]" headers; "key = value"
 * (surrounding blanks stripped); comments are lines starting with ";" or
 * "#", and " ;" (blank, semicolon) starts a comment anywhere; lines are at
 * most RG_CONFIG_LINE_MAX bytes; no continuation lines. Keys that repeat:
 * [gate] interface, [trust] subnet and interface; those and [gate] ports
 * also take several values on one line, separated by blanks or commas.
 *
 * Not thread-safe: inih's parser settings are process globals (Debian's
 * libinih), set for the call and restored after it.
 */
#ifndef RG_CONFIG_H
#define RG_CONFIG_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include "gatemaps.h"
#include "presets.h"

#define RG_CONFIG_PATH_DEFAULT   "/etc/relaygate/relaygate.conf"
#define RG_CONFIG_MAX_BYTES      (1024 * 1024)
#define RG_CONFIG_LINE_MAX       4096
#define RG_CONFIG_MAX_IFACES     64      /* per list: [gate], [trust] */
#define RG_CONFIG_MAX_PORTS      64
#define RG_CONFIG_MAX_SUBNETS    65536
#define RG_CONFIG_MAX_SOURCES    64
#define RG_SOURCE_NAME_MAX       32      /* NAME in [source.NAME]: [A-Za-z0-9_-] */
#define RG_SUN_PATH_MAX          (sizeof(((struct sockaddr_un *)0)->sun_path))

/* Defaults (SPEC.md "Config"). */
#define RG_CONFIG_PORTS_DEFAULT  { 465, 587 }
#define RG_GRANT_TTL_DEFAULT     (30 * 60)
#define RG_STATE_FILE_DEFAULT    "/var/lib/relaygate/grants.state"
#define RG_DENY_AFTER_DEFAULT    10
#define RG_DENY_WITHIN_DEFAULT   (10 * 60)
#define RG_DENY_TTL_DEFAULT      (60 * 60)
#define RG_CONTROL_GROUP_DEFAULT "relaygate"
#define RG_METRICS_LISTEN_DEFAULT "127.0.0.1:9469"

/* Accepted ranges of [grants]: a shorter prefix would let one login admit
 * far too many addresses. */
#define RG_V4_PREFIX_MIN 16
#define RG_V6_PREFIX_MIN 32
#define RG_GRANTS_MAX_LIMIT (1U << 24)

/* [source.NAME] type: the presets, plus the push source. */
enum rg_source_type {
	RG_SOURCE_DOVECOT = RG_PRESET_DOVECOT,
	RG_SOURCE_POSTFIX_SASL = RG_PRESET_POSTFIX_SASL,
	RG_SOURCE_COURIER = RG_PRESET_COURIER,
	RG_SOURCE_CYRUS = RG_PRESET_CYRUS,
	RG_SOURCE_REGEX = RG_PRESET_REGEX,
	RG_SOURCE_DOVECOT_AUTH_POLICY = RG_PRESET_MAX,  /* HTTP push, not a log */
};

/* A socket address: "unix:/path", or "[inet:]HOST:PORT" with HOST an IPv4
 * address or an IPv6 address in brackets ("[::1]:8088"). */
struct rg_endpoint {
	bool set;                        /* false: not configured / off */
	bool is_unix;
	char path[RG_SUN_PATH_MAX];      /* unix */
	struct sockaddr_storage sa;      /* inet: sockaddr_in or sockaddr_in6 */
	socklen_t salen;
	char text[160];                  /* as written, for messages */
};

struct rg_source_cfg {
	char name[RG_SOURCE_NAME_MAX + 1];   /* NAME of [source.NAME] */
	enum rg_source_type type;
	char path[PATH_MAX];                 /* log: file, FIFO or "-" (stdin) */
	char *match, *failure;               /* type = regex; NULL when not given */
	struct rg_endpoint listen;           /* type = dovecot-auth-policy */
	enum rg_service service;             /* RG_SERVICE_NONE: as the line says */
	unsigned line;                       /* of the [source.NAME] header */
};

struct rg_config_file {
	char path[PATH_MAX];                 /* file name used in messages */

	struct {
		char ifaces[RG_CONFIG_MAX_IFACES][IF_NAMESIZE];   /* none: adopt the pinned gate */
		unsigned iface_line[RG_CONFIG_MAX_IFACES];        /* of each name's key */
		size_t n_ifaces;
		enum rg_mode mode;                            /* xdp */
		uint16_t ports[RG_CONFIG_MAX_PORTS];          /* 465 587 */
		size_t n_ports;
		bool reject_rst;                              /* reject = rst */
		char pin_dir[PATH_MAX];                       /* RG_PIN_DIR_DEFAULT */
	} gate;

	struct {
		struct rg_cidr *subnets;                      /* masked, no duplicates */
		size_t n_subnets;
		char ifaces[RG_CONFIG_MAX_IFACES][IF_NAMESIZE];
		size_t n_ifaces;
	} trust;

	struct {
		uint64_t ttl;                /* seconds, >= 1 */
		uint32_t max;                /* 1 .. RG_GRANTS_MAX_LIMIT */
		unsigned ipv4_prefix;        /* RG_V4_PREFIX_MIN .. 32 */
		unsigned ipv6_prefix;        /* RG_V6_PREFIX_MIN .. 128 */
		char state_file[PATH_MAX];
		unsigned state_file_line;    /* 0: the default */
	} grants;

	struct {
		unsigned after_failures;     /* 0: never deny */
		uint64_t within;             /* seconds, >= 1 */
		uint64_t ttl;                /* seconds, >= 1 */
	} deny;

	struct rg_source_cfg *sources;   /* in file order */
	size_t n_sources;

	struct {
		struct rg_endpoint listen;   /* .set false: no [policy] service */
		char socket_owner[64];       /* "" : not changed */
		uid_t owner_uid;             /* (uid_t)-1: not changed */
		gid_t owner_gid;             /* (gid_t)-1: not changed */
		mode_t socket_mode;          /* 0660 */
		char sender_logins[PATH_MAX];    /* "" : none */
		char audit_log[PATH_MAX];        /* "" : daemon log only */
		unsigned sender_logins_line, audit_log_line;   /* of the keys */
	} policy;

	struct {
		char socket[RG_SUN_PATH_MAX];    /* RG_CONTROL_SOCKET_DEFAULT */
		char socket_group[64];           /* "relaygate" */
		gid_t socket_gid;                /* (gid_t)-1: the default group does
						    not exist here (an explicitly
						    configured one must) */
		mode_t socket_mode;              /* 0660 */
	} control;

	struct {
		struct rg_endpoint listen;   /* 127.0.0.1:9469; "off": .set false */
	} metrics;

	struct {
		char redis[512];             /* URL as written; "": no cluster */
		bool redis_unix;
		char redis_host[256];        /* redis://HOST... (IPv6 without brackets) */
		uint16_t redis_port;         /* 6379 */
		char redis_path[RG_SUN_PATH_MAX];    /* unix:/path */
		unsigned redis_db;           /* /N, 0 */
		char redis_password[256];    /* redis://:PASSWORD@host, "" none */
	} cluster;
};

/*
 * Read and validate path. 0 and *out filled (free it with
 * rg_config_free), or -1 with one line in err and *out untouched.
 * The file must be a regular file, at most RG_CONFIG_MAX_BYTES, and not
 * world-writable.
 */
int rg_config_load(const char *path, struct rg_config_file *out, char *err, size_t errlen);

/* The same from memory (tests, fuzzing): text need not be NUL-terminated;
 * name is used in messages as the file name. */
int rg_config_load_string(const char *text, size_t len, const char *name,
			  struct rg_config_file *out, char *err, size_t errlen);

/* Frees what rg_config_load* allocated and zeroes *c. Safe on a zeroed struct. */
void rg_config_free(struct rg_config_file *c);

/* "dovecot", "postfix-sasl", "courier", "cyrus", "regex", "dovecot-auth-policy". */
const char *rg_source_type_name(enum rg_source_type t);
/* True for the types that follow a log (all but dovecot-auth-policy). */
bool rg_source_is_log(enum rg_source_type t);

#endif
