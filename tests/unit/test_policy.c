// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Policy service, the pure parts and the map lookup: request framing and
 * parsing, the decision table, audit formatting (injection safety) and the
 * audit file, and rg_policy_lookup_maps over real BPF maps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "audit.h"
#include "cidr.h"
#include "gatemaps.h"
#include "log.h"
#include "policy.h"
#include "senderlogins.h"

/* ---- framing and parsing ---- */

static void test_frame(void **state)
{
	char buf[64];
	size_t scan = 0;

	(void)state;
	strcpy(buf, "a=b\n");
	assert_int_equal(rg_policy_frame(buf, 4, &scan), 0);
	assert_int_equal(scan, 4);
	strcat(buf, "\n");
	assert_int_equal(rg_policy_frame(buf, 5, &scan), 5);
	assert_int_equal(scan, 0);

	/* partial line: resume from its start */
	scan = 0;
	strcpy(buf, "a=b\nc=");
	assert_int_equal(rg_policy_frame(buf, 6, &scan), 0);
	assert_int_equal(scan, 4);
	strcpy(buf, "a=b\nc=d\n\nx=y\n\n");
	assert_int_equal(rg_policy_frame(buf, strlen(buf), &scan), 9);

	/* CRLF (an admin typing into nc) */
	scan = 0;
	strcpy(buf, "a=b\r\n\r\n");
	assert_int_equal(rg_policy_frame(buf, strlen(buf), &scan), 7);
	/* an empty request is a request */
	scan = 0;
	assert_int_equal(rg_policy_frame("\n", 1, &scan), 1);
	/* "\r" alone on a line ends it; "\r" inside a value does not */
	scan = 0;
	strcpy(buf, "a=\r\rb\n");
	assert_int_equal(rg_policy_frame(buf, strlen(buf), &scan), 0);
}

static char *dupbuf(const char *s, size_t *len)
{
	*len = strlen(s);
	return memcpy(malloc(*len + 1), s, *len + 1);
}

static const char POSTFIX_REQ[] =
	"request=smtpd_access_policy\n"
	"protocol_state=RCPT\n"
	"protocol_name=ESMTP\n"
	"helo_name=roaming.example\n"
	"queue_id=4XyZ1\n"
	"sender=alice@example.org\n"
	"recipient=bob@example.net\n"
	"recipient_count=0\n"
	"client_address=198.51.100.7\n"
	"client_name=unknown\n"
	"reverse_client_name=unknown\n"
	"instance=8c1.6a2b1c3d.0\n"
	"sasl_method=\n"
	"sasl_username=\n"
	"sasl_sender=\n"
	"size=0\n"
	"ccert_subject=\n"
	"encryption_protocol=TLSv1.3\n"
	"client_port=40112\n"
	"policy_context=\n"
	"server_address=192.0.2.25\n"
	"server_port=587\n"
	"compatibility_level=3.6\n"
	"mail_version=3.7.11\n"
	"\n";

static void test_parse_postfix(void **state)
{
	struct rg_policy_request r;
	const char *why = NULL;
	size_t len, scan = 0;
	char *b = dupbuf(POSTFIX_REQ, &len);

	(void)state;
	assert_int_equal(rg_policy_frame(b, len, &scan), len);
	assert_int_equal(rg_policy_parse(b, len, 100, &r, &why), 0);
	assert_string_equal(r.request, "smtpd_access_policy");
	assert_string_equal(r.protocol_state, "RCPT");
	assert_string_equal(r.client_address, "198.51.100.7");
	assert_string_equal(r.sender, "alice@example.org");
	assert_string_equal(r.recipient, "bob@example.net");
	assert_string_equal(r.recipient_count, "0");
	assert_string_equal(r.queue_id, "4XyZ1");
	assert_string_equal(r.instance, "8c1.6a2b1c3d.0");
	assert_string_equal(r.sasl_username, "");
	assert_int_equal(r.nattrs, 24);
	assert_true(rg_policy_wants_lookup(&r));
	free(b);
}

static int parse_str(const char *s, unsigned max_attrs, struct rg_policy_request *r,
		     const char **why, char **keep)
{
	size_t len;

	*keep = dupbuf(s, &len);
	return rg_policy_parse(*keep, len, max_attrs, r, why);
}

static void test_parse_values(void **state)
{
	struct rg_policy_request r;
	const char *why;
	char *b;

	(void)state;
	/* '=' inside a value; empty value; first of repeated names wins */
	assert_int_equal(parse_str("sender=a=b@example.org\nrecipient=\nsender=evil@x\n"
				   "client_address=10.0.0.1\nclient_address=10.9.9.9\n\n",
				   100, &r, &why, &b), 0);
	assert_string_equal(r.sender, "a=b@example.org");
	assert_string_equal(r.recipient, "");
	assert_string_equal(r.client_address, "10.0.0.1");
	assert_null(r.request);
	assert_null(r.queue_id);
	assert_int_equal(r.nattrs, 5);
	assert_false(rg_policy_wants_lookup(&r));
	free(b);

	/* CRLF lines */
	assert_int_equal(parse_str("request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n\r\n",
				   100, &r, &why, &b), 0);
	assert_string_equal(r.request, "smtpd_access_policy");
	assert_string_equal(r.protocol_state, "RCPT");
	free(b);

	/* the empty request */
	assert_int_equal(parse_str("\n", 100, &r, &why, &b), 0);
	assert_int_equal(r.nattrs, 0);
	free(b);

	/* names are exact: no prefix or case games */
	assert_int_equal(parse_str("Sender=x@y\nsender_x=x@y\nsende=x@y\n\n", 100, &r, &why, &b), 0);
	assert_null(r.sender);
	free(b);
}

static void test_parse_errors(void **state)
{
	struct rg_policy_request r;
	const char *why = NULL;
	char *b;
	size_t len;

	(void)state;
	assert_int_equal(parse_str("request=smtpd_access_policy\nbogus line\n\n", 100, &r, &why, &b), -1);
	assert_string_equal(why, "attribute line without '='");
	free(b);
	assert_int_equal(parse_str("=value\n\n", 100, &r, &why, &b), -1);
	assert_string_equal(why, "empty attribute name");
	free(b);
	assert_int_equal(parse_str("a=1\nb=2\nc=3\nd=4\n\n", 3, &r, &why, &b), -1);
	assert_string_equal(why, "too many attributes");
	free(b);
	assert_int_equal(parse_str("a=1\nb=2\nc=3\n\n", 3, &r, &why, &b), 0);
	free(b);

	b = malloc(32);
	memcpy(b, "sender=a\0b@x\n\n", 15);
	len = 15;
	assert_int_equal(rg_policy_parse(b, len, 100, &r, &why), -1);
	assert_string_equal(why, "NUL byte in request");
	free(b);
}

/* Input that is not a framed request: the last line has no newline, and
 * the buffer not a byte more (under ASan/valgrind a write past it shows). */
static void test_parse_unterminated(void **state)
{
	static const char *const bad[] = {
		"sender=alice@example.org",
		"request=smtpd_access_policy\nsender=alice@example.org",
		"request=smtpd_access_policy\r\nsender=x@y\r",
		"x",
	};
	struct rg_policy_request r;
	const char *why;
	size_t i, len;
	char *b;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = strlen(bad[i]);
		b = malloc(len);
		assert_non_null(b);
		memcpy(b, bad[i], len);
		why = NULL;
		assert_int_equal(rg_policy_parse(b, len, 100, &r, &why), -1);
		assert_string_equal(why, "last line without a newline");
		free(b);
	}
	/* what follows the empty line is not looked at; no empty line at
	 * the end is still fine when the last line has its newline */
	b = malloc(11);
	memcpy(b, "a=b\n\nsender", 11);
	assert_int_equal(rg_policy_parse(b, 11, 100, &r, &why), 0);
	assert_null(r.sender);
	assert_int_equal(r.nattrs, 1);
	memcpy(b, "sender=x@y\n", 11);
	assert_int_equal(rg_policy_parse(b, 11, 100, &r, &why), 0);
	assert_string_equal(r.sender, "x@y");
	free(b);
}

/* ---- decision ---- */

struct dcase {
	const char *name;
	const char *request, *state, *sender;
	enum rg_policy_kind kind;
	const char *user;
	bool with_map, reject_null;
	enum rg_policy_answer answer;
	const char *action, *event, *reason;
};

static void test_decide_table(void **state)
{
	static const char map[] = "alice: alice@example.org, @alice.example\n"
				  "bob: bob@example.org\n";
	static const struct dcase cases[] = {
		{ "not a policy request", "junk", "RCPT", "x@y", RG_POLICY_GRANT, "alice", true, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "no request attribute", NULL, "RCPT", "x@y", RG_POLICY_TRUSTED, NULL, false, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "unknown client", "smtpd_access_policy", "RCPT", "x@y", RG_POLICY_NONE, NULL, true, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "trusted", "smtpd_access_policy", "RCPT", "x@y", RG_POLICY_TRUSTED, NULL, false, false,
		  RG_ANSWER_OK, "OK", "relay", NULL },
		{ "trusted: no sender check", "smtpd_access_policy", "RCPT", "x@y", RG_POLICY_TRUSTED, NULL,
		  true, false, RG_ANSWER_OK, "OK", "relay", NULL },
		{ "grant, no map", "smtpd_access_policy", "RCPT", "x@y", RG_POLICY_GRANT, "alice", false,
		  false, RG_ANSWER_OK, "OK", "relay", NULL },
		{ "grant, own address", "smtpd_access_policy", "RCPT", "alice@example.org", RG_POLICY_GRANT,
		  "alice", true, false, RG_ANSWER_OK, "OK", "relay", NULL },
		{ "grant, own domain", "smtpd_access_policy", "RCPT", "Info@Alice.Example", RG_POLICY_GRANT,
		  "alice", true, false, RG_ANSWER_OK, "OK", "relay", NULL },
		{ "grant, someone else's address", "smtpd_access_policy", "RCPT", "bob@example.org",
		  RG_POLICY_GRANT, "alice", true, false, RG_ANSWER_REJECT,
		  "REJECT 5.7.1 <bob@example.org> not owned by user alice", "reject", "sender_not_owned" },
		{ "grant, user not in map", "smtpd_access_policy", "RCPT", "carol@example.org",
		  RG_POLICY_GRANT, "carol", true, false, RG_ANSWER_REJECT,
		  "REJECT 5.7.1 <carol@example.org> not owned by user carol", "reject",
		  "user_not_in_sender_logins" },
		{ "grant without a user, with a map", "smtpd_access_policy", "RCPT", "alice@example.org",
		  RG_POLICY_GRANT, "", true, false, RG_ANSWER_REJECT,
		  "REJECT 5.7.1 <alice@example.org> not owned: the client's grant names no user",
		  "reject", "grant_without_user" },
		{ "grant without a user, no map", "smtpd_access_policy", "RCPT", "alice@example.org",
		  RG_POLICY_GRANT, "", false, false, RG_ANSWER_OK, "OK", "relay", NULL },
		{ "grant, null sender", "smtpd_access_policy", "RCPT", "", RG_POLICY_GRANT, "alice", true,
		  false, RG_ANSWER_OK, "OK", "relay", NULL },
		{ "grant, null sender, strict", "smtpd_access_policy", "RCPT", "", RG_POLICY_GRANT, "alice",
		  true, true, RG_ANSWER_REJECT, "REJECT 5.7.1 <> not owned by user alice", "reject",
		  "null_sender" },
		{ "grant, sender attribute absent = null sender", "smtpd_access_policy", "RCPT", NULL,
		  RG_POLICY_GRANT, "alice", true, false, RG_ANSWER_OK, "OK", "relay", NULL },
		{ "end of message, own sender", "smtpd_access_policy", "END-OF-MESSAGE",
		  "alice@example.org", RG_POLICY_GRANT, "alice", true, false, RG_ANSWER_DUNNO, "DUNNO",
		  "message", NULL },
		{ "end of message, trusted", "smtpd_access_policy", "END-OF-MESSAGE", "x@y",
		  RG_POLICY_TRUSTED, NULL, true, false, RG_ANSWER_DUNNO, "DUNNO", "message", NULL },
		{ "end of message, foreign sender", "smtpd_access_policy", "END-OF-MESSAGE",
		  "bob@example.org", RG_POLICY_GRANT, "alice", true, false, RG_ANSWER_REJECT,
		  "REJECT 5.7.1 <bob@example.org> not owned by user alice", "reject", "sender_not_owned" },
		{ "end of message, unknown client", "smtpd_access_policy", "END-OF-MESSAGE", "x@y",
		  RG_POLICY_NONE, NULL, true, false, RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "CONNECT", "smtpd_access_policy", "CONNECT", "", RG_POLICY_TRUSTED, NULL, true, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "EHLO", "smtpd_access_policy", "EHLO", "", RG_POLICY_GRANT, "alice", true, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "MAIL, foreign sender: not decided here", "smtpd_access_policy", "MAIL",
		  "bob@example.org", RG_POLICY_GRANT, "alice", true, false, RG_ANSWER_DUNNO, "DUNNO",
		  NULL, NULL },
		{ "DATA", "smtpd_access_policy", "DATA", "alice@example.org", RG_POLICY_GRANT, "alice",
		  true, false, RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "VRFY", "smtpd_access_policy", "VRFY", "", RG_POLICY_TRUSTED, NULL, true, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "ETRN", "smtpd_access_policy", "ETRN", "", RG_POLICY_TRUSTED, NULL, true, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
		{ "no state", "smtpd_access_policy", NULL, "", RG_POLICY_TRUSTED, NULL, true, false,
		  RG_ANSWER_DUNNO, "DUNNO", NULL, NULL },
	};
	struct rg_senderlogins *sl;
	char err[200];
	size_t i;

	(void)state;
	sl = rg_senderlogins_parse(map, strlen(map), "map", err, sizeof(err));
	assert_non_null(sl);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dcase *c = &cases[i];
		struct rg_policy_request r = {
			.request = c->request, .protocol_state = c->state, .sender = c->sender,
			.client_address = "198.51.100.7",
		};
		struct rg_policy_auth a = { .kind = c->kind, .service = RG_SERVICE_POP3 };
		struct rg_policy_rules rules = {
			.sender_logins = c->with_map ? sl : NULL,
			.reject_null_sender = c->reject_null,
		};
		struct rg_policy_decision d;

		if (c->user)
			strcpy(a.user, c->user);
		rg_policy_decide(&r, &a, &rules, &d);
		if (d.answer != c->answer || strcmp(d.action, c->action) ||
		    (c->event ? !d.event || strcmp(d.event, c->event) : d.event != NULL) ||
		    (c->reason ? !d.reason || strcmp(d.reason, c->reason) : d.reason != NULL))
			fail_msg("case '%s': got answer %d action '%s' event %s reason %s",
				 c->name, d.answer, d.action, d.event ? d.event : "NULL",
				 d.reason ? d.reason : "NULL");
		/* only RCPT and END-OF-MESSAGE cost a lookup */
		if (c->request && !strcmp(c->request, "smtpd_access_policy") && c->state)
			assert_int_equal(rg_policy_wants_lookup(&r),
					 !strcmp(c->state, "RCPT") || !strcmp(c->state, "END-OF-MESSAGE"));
	}
	rg_senderlogins_free(sl);
}

static void test_reject_text_safe(void **state)
{
	static const char map[] = "alice: alice@example.org\n";
	struct rg_senderlogins *sl;
	struct rg_policy_request r = { .request = "smtpd_access_policy", .protocol_state = "RCPT" };
	struct rg_policy_auth a = { .kind = RG_POLICY_GRANT, .user = "alice" };
	struct rg_policy_rules rules;
	struct rg_policy_decision d;
	char err[100], longs[1000];
	size_t i;

	(void)state;
	sl = rg_senderlogins_parse(map, strlen(map), "m", err, sizeof(err));
	assert_non_null(sl);
	rules = (struct rg_policy_rules){ .sender_logins = sl };
	/* spaces, controls and 8-bit bytes never reach the SMTP reply */
	r.sender = "a b\t\x1b[31m\xc3\xa9@x";
	rg_policy_decide(&r, &a, &rules, &d);
	assert_string_equal(d.action, "REJECT 5.7.1 <a?b??[31m??@x> not owned by user alice");
	/* a long sender is cut */
	memset(longs, 'x', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	r.sender = longs;
	rg_policy_decide(&r, &a, &rules, &d);
	assert_int_equal(d.answer, RG_ANSWER_REJECT);
	assert_true(strlen(d.action) < 300);
	assert_non_null(strstr(d.action, "xxx...> not owned by user alice"));
	for (i = 0; d.action[i]; i++)
		assert_true(d.action[i] >= 0x20 && d.action[i] < 0x7f);
	rg_senderlogins_free(sl);
}

static void test_auth_str(void **state)
{
	struct rg_policy_auth a = { .kind = RG_POLICY_TRUSTED, .subnet = "10.0.0.0/24" };
	char buf[128];

	(void)state;
	assert_string_equal(rg_policy_auth_str(&a, buf, sizeof(buf)), "trusted(10.0.0.0/24)");
	a.subnet[0] = '\0';
	assert_string_equal(rg_policy_auth_str(&a, buf, sizeof(buf)), "trusted");
	a = (struct rg_policy_auth){ .kind = RG_POLICY_GRANT, .service = RG_SERVICE_POP3,
				     .granted = 1795942800 };   /* 2026-11-29T09:00:00Z */
	assert_string_equal(rg_policy_auth_str(&a, buf, sizeof(buf)),
			    "grant(pop3,2026-11-29T09:00:00Z)");
	a.service = RG_SERVICE_IMAP;
	a.granted = 0;
	assert_string_equal(rg_policy_auth_str(&a, buf, sizeof(buf)), "grant(imap)");
	a.service = 99;
	assert_string_equal(rg_policy_auth_str(&a, buf, sizeof(buf)), "grant(login)");
	a.kind = RG_POLICY_NONE;
	assert_string_equal(rg_policy_auth_str(&a, buf, sizeof(buf)), "none");
}

/* ---- audit ---- */

static void test_audit_format(void **state)
{
	char line[RG_AUDIT_LINE_MAX];
	struct rg_audit_rec r = {
		.event = "relay", .client = "198.51.100.7", .user = "alice",
		.auth = "grant(pop3,2026-11-29T09:00:00Z)", .sender = "alice@example.org",
		.recipient = "bob@example.net", .queue_id = "4XyZ1", .instance = "8c1.6a2b.0",
		.state = "RCPT", .action = "OK",
	};

	(void)state;
	rg_audit_format(line, sizeof(line), &r);
	assert_string_equal(line,
		"relay client=198.51.100.7 user=alice auth=grant(pop3,2026-11-29T09:00:00Z) "
		"sender=<alice@example.org> recipient=<bob@example.net> queue_id=4XyZ1 "
		"instance=8c1.6a2b.0 state=RCPT action=OK");

	/* trusted: no user; null sender; no recipient, no queue id; a reason */
	r = (struct rg_audit_rec){ .event = "reject", .client = "2001:db8::7",
				   .auth = "trusted(2001:db8::/48)", .sender = "",
				   .state = "END-OF-MESSAGE", .action = "REJECT",
				   .reason = "null_sender" };
	rg_audit_format(line, sizeof(line), &r);
	assert_string_equal(line,
		"reject client=2001:db8::7 user=- auth=trusted(2001:db8::/48) sender=<> "
		"recipient=- queue_id=- instance=- state=END-OF-MESSAGE action=REJECT "
		"reason=null_sender");
}

/* Split a formatted line into KEY=VALUE tokens the way a log parser would. */
static int tokens(const char *line, char keys[][32], int max)
{
	int n = 0;
	const char *p = line, *sp;

	while (*p && n < max) {
		sp = strchr(p, ' ');
		if (n > 0) {
			const char *eq = memchr(p, '=', sp ? (size_t)(sp - p) : strlen(p));

			if (!eq)
				return -1;
			snprintf(keys[n], 32, "%.*s", (int)(eq - p), p);
		} else {
			snprintf(keys[n], 32, "%.*s", sp ? (int)(sp - p) : (int)strlen(p), p);
		}
		n++;
		if (!sp)
			break;
		p = sp + 1;
	}
	return n;
}

static void test_audit_injection(void **state)
{
	static const char *const want[] = { "relay", "client", "user", "auth", "sender",
					    "recipient", "queue_id", "instance", "state",
					    "action" };
	char line[RG_AUDIT_LINE_MAX], keys[20][32];
	struct rg_audit_rec r = {
		.event = "relay", .client = "198.51.100.7",
		.user = "mallory action=OK",
		.auth = "grant(pop3)",
		.sender = "a b=c\nrelay client=1.2.3.4 user=root\r\x01\x7f\xff\"\\<>",
		.recipient = "x> user=bob <y",
		.queue_id = "-", .instance = "=", .state = "RCPT", .action = "OK",
	};
	int i, n;

	(void)state;
	rg_audit_format(line, sizeof(line), &r);
	assert_string_equal(line,
		"relay client=198.51.100.7 user=mallory\\x20action\\x3dOK auth=grant(pop3) "
		"sender=<a\\x20b\\x3dc\\x0arelay\\x20client\\x3d1.2.3.4\\x20user\\x3droot"
		"\\x0d\\x01\\x7f\\xff\\x22\\x5c\\x3c\\x3e> "
		"recipient=<x\\x3e\\x20user\\x3dbob\\x20\\x3cy> queue_id=\\x2d instance=\\x3d "
		"state=RCPT action=OK");
	n = tokens(line, keys, 20);
	assert_int_equal(n, 10);
	for (i = 0; i < n; i++)
		assert_string_equal(keys[i], want[i]);
	for (i = 0; line[i]; i++)
		assert_true(line[i] > 0x20 || line[i] == ' ');
}

static void test_audit_escape_cut(void **state)
{
	char big[2000], out[64], line[RG_AUDIT_LINE_MAX];
	struct rg_audit_rec r = { .event = "relay" };
	size_t n;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = rg_audit_escape(out, sizeof(out), big, false);
	assert_int_equal(n, 63);
	assert_string_equal(out + 60, "...");
	n = rg_audit_escape(out, sizeof(out), big, true);
	assert_int_equal(n, 63);
	assert_string_equal(out + 59, "...>");
	assert_int_equal(out[0], '<');
	/* an escape is never cut in half */
	memset(big, ' ', 100);
	big[100] = '\0';
	n = rg_audit_escape(out, sizeof(out), big, false);
	assert_string_equal(out + n - 3, "...");
	assert_int_equal((n - 3) % 4, 0);
	/* exactly fitting: no cut */
	memset(big, 'b', 63);
	big[63] = '\0';
	assert_int_equal(rg_audit_escape(out, sizeof(out), big, false), 63);
	assert_string_equal(out, big);
	/* whole lines stay bounded with every value huge */
	memset(big, 'q', sizeof(big) - 1);
	r.client = r.user = r.auth = r.sender = r.recipient = r.queue_id = r.instance =
		r.state = r.action = r.reason = big;
	n = rg_audit_format(line, sizeof(line), &r);
	assert_true(n < sizeof(line));
	assert_int_equal(strlen(line), n);
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_audit_file(void **state)
{
	char dir[] = "/tmp/rg-audit-XXXXXX", path[300], rotated[300], err[400], buf[8192];
	struct rg_audit_rec r = { .event = "relay", .client = "10.0.0.5", .auth = "trusted(10.0.0.0/24)",
				  .sender = "a@example.org", .recipient = "b@example.net",
				  .state = "RCPT", .action = "OK" };
	struct rg_audit *a;
	const char *l;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/audit.log.1", dir);

	a = rg_audit_open("/nonexistent-dir/x/audit.log", err, sizeof(err));
	assert_null(a);
	assert_string_equal(err, "audit_log /nonexistent-dir/x/audit.log: No such file or directory");

	a = rg_audit_open(path, err, sizeof(err));
	assert_non_null(a);
	rg_audit_set_log(a, false);
	rg_audit_emit(a, &r);
	rg_audit_emit(a, &r);
	assert_true(read_file(path, buf, sizeof(buf)) > 0);
	assert_int_equal(count_lines(buf), 2);
	/* "2026-11-29T09:00:00.123Z relay client=..." */
	assert_int_equal(buf[4], '-');
	assert_int_equal(buf[10], 'T');
	assert_int_equal(buf[23], 'Z');
	l = buf + 25;
	assert_int_equal(strncmp(l, "relay client=10.0.0.5 user=- auth=trusted(10.0.0.0/24) "
				 "sender=<a@example.org> recipient=<b@example.net> queue_id=- "
				 "instance=- state=RCPT action=OK\n", 144), 0);

	/* logrotate: move it away, reopen, new lines go to the new file */
	assert_int_equal(rename(path, rotated), 0);
	rg_audit_emit(a, &r);                /* still the old (renamed) file */
	assert_int_equal(rg_audit_reopen(a, err, sizeof(err)), 0);
	rg_audit_emit(a, &r);
	assert_true(read_file(rotated, buf, sizeof(buf)) > 0);
	assert_int_equal(count_lines(buf), 3);
	assert_true(read_file(path, buf, sizeof(buf)) > 0);
	assert_int_equal(count_lines(buf), 1);

	/* a failed reopen keeps the old file */
	unlink(path);
	unlink(rotated);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(rg_audit_reopen(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	rg_audit_emit(a, &r);                /* no crash; writes to the unlinked file */
	rg_audit_close(a);

	/* log-only audit: NULL path */
	a = rg_audit_open(NULL, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(rg_audit_reopen(a, err, sizeof(err)), 0);
	rg_audit_emit(a, &r);
	rg_audit_close(a);
	rg_audit_emit(NULL, &r);             /* log only, too */
}

/* ---- the lookup over real BPF maps ---- */

struct maps {
	struct rg_gate g;
	struct rg_policy_maps m;
};

static int mkmap(enum bpf_map_type t, const char *name, size_t k, size_t v, unsigned flags)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);

	/* No name: a named map makes libbpf 1.1 probe the kernel with a
	 * partly initialised bpf_attr, which valgrind reports. */
	(void)name;
	return bpf_map_create(t, NULL, k, v, t == BPF_MAP_TYPE_ARRAY ? 1 : 1024, &o);
}

static uint64_t boot_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void addr(const char *s, struct rg_addr *a)
{
	const char *why;

	if (rg_addr_parse(s, a, &why))
		fail_msg("bad test address %s: %s", s, why);
}

static void put_trust(struct maps *mp, const char *cidr)
{
	struct rg_addr a;
	unsigned plen;
	const char *why;
	__u32 one = 1;

	assert_int_equal(rg_cidr_parse(cidr, &a, &plen, &why), 0);
	if (a.family == RG_AF_INET) {
		struct rg_lpm4 k = { .prefixlen = plen };

		memcpy(k.addr, a.addr, 4);
		assert_int_equal(bpf_map_update_elem(mp->g.trust4_fd, &k, &one, 0), 0);
	} else {
		struct rg_lpm6 k = { .prefixlen = plen };

		memcpy(k.addr, a.addr, 16);
		assert_int_equal(bpf_map_update_elem(mp->g.trust6_fd, &k, &one, 0), 0);
	}
}

static void put_grant(struct maps *mp, const char *key, const char *user, int64_t granted_ago_s,
		      int64_t expires_in_s)
{
	struct rg_addr a;
	struct rg_grant g = { .origin = RG_ORIGIN_LOG, .service = RG_SERVICE_POP3 };
	uint64_t now = boot_ns();

	addr(key, &a);
	g.granted = now - granted_ago_s * 1000000000LL;
	g.expires = now + expires_in_s * 1000000000LL;
	/* a longer login is cut to RG_USER_LEN - 1 bytes, as set_user does */
	snprintf(g.user, sizeof(g.user), "%s", user);
	assert_int_equal(bpf_map_update_elem(mp->g.grants_fd, &a, &g, 0), 0);
}

static void put_deny(struct maps *mp, const char *key, int64_t expires_in_s)
{
	struct rg_addr a;
	struct rg_deny d = { .origin = RG_ORIGIN_LOG, .failures = 10 };

	addr(key, &a);
	d.expires = boot_ns() + expires_in_s * 1000000000LL;
	assert_int_equal(bpf_map_update_elem(mp->g.deny_fd, &a, &d, 0), 0);
}

static int maps_setup(void **state)
{
	struct maps *mp = calloc(1, sizeof(*mp));
	struct rg_config cfg = { .abi_version = RG_ABI_VERSION, .v4_prefix = 24, .v6_prefix = 64 };
	__u32 zero = 0;

	mp->g.config_fd = mp->g.ports_fd = mp->g.tiface_fd = mp->g.trust4_fd = -1;
	mp->g.trust6_fd = mp->g.grants_fd = mp->g.deny_fd = mp->g.flows_fd = -1;
	mp->g.stats_fd = mp->g.events_fd = mp->g.lock_fd = -1;
	mp->g.config_fd = mkmap(BPF_MAP_TYPE_ARRAY, "t_config", 4, sizeof(cfg), 0);
	mp->g.trust4_fd = mkmap(BPF_MAP_TYPE_LPM_TRIE, "t_trust4", sizeof(struct rg_lpm4), 4,
				BPF_F_NO_PREALLOC);
	mp->g.trust6_fd = mkmap(BPF_MAP_TYPE_LPM_TRIE, "t_trust6", sizeof(struct rg_lpm6), 4,
				BPF_F_NO_PREALLOC);
	mp->g.grants_fd = mkmap(BPF_MAP_TYPE_HASH, "t_grants", sizeof(struct rg_addr),
				sizeof(struct rg_grant), 0);
	mp->g.deny_fd = mkmap(BPF_MAP_TYPE_HASH, "t_deny", sizeof(struct rg_addr),
			      sizeof(struct rg_deny), 0);
	if (mp->g.config_fd < 0 || mp->g.trust4_fd < 0 || mp->g.trust6_fd < 0 ||
	    mp->g.grants_fd < 0 || mp->g.deny_fd < 0) {
		fprintf(stderr, "# cannot create BPF maps: %s\n", strerror(errno));
		free(mp);
		return -1;
	}
	assert_int_equal(bpf_map_update_elem(mp->g.config_fd, &zero, &cfg, 0), 0);
	rg_policy_maps_init(&mp->m, &mp->g);
	*state = mp;
	return 0;
}

static int maps_teardown(void **state)
{
	struct maps *mp = *state;

	close(mp->g.config_fd);
	close(mp->g.trust4_fd);
	close(mp->g.trust6_fd);
	close(mp->g.grants_fd);
	close(mp->g.deny_fd);
	free(mp);
	return 0;
}

static int lookup(struct maps *mp, const char *client, struct rg_policy_auth *out)
{
	struct rg_addr a;

	addr(client, &a);
	memset(out, 0, sizeof(*out));
	return rg_policy_lookup_maps(&mp->m, &a, out);
}

static void test_maps_lookup(void **state)
{
	struct maps *mp = *state;
	struct rg_policy_auth out;
	int64_t wall = time(NULL);

	put_trust(mp, "10.0.0.0/8");
	put_trust(mp, "10.1.0.0/16");
	put_trust(mp, "192.0.2.7/32");
	put_trust(mp, "2001:db8:1::/48");
	put_grant(mp, "198.51.100.0", "alice", 60, 600);      /* /24 key */
	put_grant(mp, "203.0.113.0", "old", 4000, -5);        /* expired */
	put_grant(mp, "2001:db8:2::", "bob", 1, 60);          /* /64 key */
	put_grant(mp, "192.0.2.0", "trusted-too", 1, 60);
	put_grant(mp, "198.18.0.0", "denied", 1, 60);
	put_deny(mp, "198.18.0.0", 3600);
	put_grant(mp, "198.18.1.0", "was-denied", 1, 60);
	put_deny(mp, "198.18.1.0", -1);                       /* expired deny */

	assert_int_equal(lookup(mp, "198.51.100.7", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_string_equal(out.user, "alice");
	assert_int_equal(out.service, RG_SERVICE_POP3);
	assert_true(out.granted >= wall - 62 && out.granted <= wall - 58);
	assert_true(out.expires >= wall + 598 && out.expires <= wall + 602);
	/* the whole /24 shares the grant (rg_config v4_prefix = 24) */
	assert_int_equal(lookup(mp, "198.51.100.254", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_int_equal(lookup(mp, "198.51.101.1", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_NONE);

	assert_int_equal(lookup(mp, "203.0.113.9", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_NONE);

	assert_int_equal(lookup(mp, "2001:db8:2::abcd", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_string_equal(out.user, "bob");
	assert_int_equal(lookup(mp, "2001:db8:2:1::1", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_NONE);

	/* trusted: the widest trusted subnet holding the client is named */
	assert_int_equal(lookup(mp, "10.1.2.3", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_TRUSTED);
	assert_string_equal(out.subnet, "10.0.0.0/8");
	assert_int_equal(lookup(mp, "10.200.0.1", &out), 0);
	assert_string_equal(out.subnet, "10.0.0.0/8");
	assert_int_equal(lookup(mp, "192.0.2.7", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_TRUSTED);        /* trusted beats its grant */
	assert_string_equal(out.subnet, "192.0.2.7/32");
	assert_int_equal(lookup(mp, "192.0.2.8", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_int_equal(lookup(mp, "2001:db8:1:ffff::1", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_TRUSTED);
	assert_string_equal(out.subnet, "2001:db8:1::/48");
	assert_int_equal(lookup(mp, "11.0.0.1", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_NONE);

	/* the deny list wins over a grant, as in the gate; expired denies don't */
	assert_int_equal(lookup(mp, "198.18.0.9", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_NONE);
	assert_int_equal(lookup(mp, "198.18.1.9", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_string_equal(out.user, "was-denied");

	/* the subnet's name is cached, the decision never is: a trusted
	 * subnet removed is untrusted at once */
	assert_int_equal(lookup(mp, "10.1.2.3", &out), 0);
	assert_string_equal(out.subnet, "10.0.0.0/8");
	{
		struct rg_lpm4 k = { .prefixlen = 8, .addr = { 10 } };

		assert_int_equal(bpf_map_delete_elem(mp->g.trust4_fd, &k), 0);
	}
	assert_int_equal(lookup(mp, "10.200.0.1", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_NONE);
	assert_int_equal(lookup(mp, "10.1.2.3", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_TRUSTED);       /* still in 10.1.0.0/16 */
	mp->m.names[0].at_ns = 0;                            /* (cache aside) */
	memset(mp->m.names, 0, sizeof(mp->m.names));
	assert_int_equal(lookup(mp, "10.1.2.3", &out), 0);
	assert_string_equal(out.subnet, "10.1.0.0/16");

	/* IPv4-mapped IPv6 is the IPv4 address */
	assert_int_equal(lookup(mp, "::ffff:198.51.100.7", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_string_equal(out.user, "alice");
}

/*
 * A login longer than a grant keeps: the grant map stores its first
 * RG_USER_LEN - 1 (63) bytes, as gatemaps.c set_user does. That stored
 * name could be a listed user's name with more after it ("U" + "x"), so it
 * owns no sender, and a 63-byte name cannot be listed at all.
 */
static void test_maps_long_login(void **state)
{
	struct maps *mp = *state;
	struct rg_policy_request r = { .request = "smtpd_access_policy", .protocol_state = "RCPT",
				       .client_address = "198.51.100.7",
				       .sender = "u@example.org" };
	struct rg_policy_rules rules = { 0 };
	struct rg_policy_decision d;
	struct rg_policy_auth out;
	char u63[64], u62[63], login[100], text[200], err[256], line[RG_AUDIT_LINE_MAX];
	struct rg_senderlogins *sl;

	memset(u63, 'u', 63);
	u63[63] = '\0';
	memset(u62, 'u', 62);
	u62[62] = '\0';

	/* a 63-byte user in sender_logins: refused, it could match a cut login */
	snprintf(text, sizeof(text), "%s: u@example.org\n", u63);
	sl = rg_senderlogins_parse(text, strlen(text), "sl", err, sizeof(err));
	if (sl)
		fail_msg("a 63-byte user was accepted in sender_logins");
	assert_non_null(strstr(err, "sl:1: user name"));
	assert_non_null(strstr(err, "longer than 62 bytes"));

	/* a 62-byte user is fine, and owns its address */
	snprintf(text, sizeof(text), "%s: u@example.org\n", u62);
	sl = rg_senderlogins_parse(text, strlen(text), "sl", err, sizeof(err));
	assert_non_null(sl);
	rules.sender_logins = sl;
	put_grant(mp, "198.51.100.0", u62, 1, 60);
	assert_int_equal(lookup(mp, "198.51.100.7", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_string_equal(out.user, u62);
	rg_policy_decide(&r, &out, &rules, &d);
	assert_int_equal(d.answer, RG_ANSWER_OK);

	/* the login u62 + "xx" is stored as u62 + "x" (63 bytes): it may be
	 * anybody's, so it owns nothing; the answer and the audit say why */
	snprintf(login, sizeof(login), "%sxx", u62);
	put_grant(mp, "198.51.100.0", login, 1, 60);
	assert_int_equal(lookup(mp, "198.51.100.7", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_int_equal(strlen(out.user), 63);
	rg_policy_decide(&r, &out, &rules, &d);
	assert_int_equal(d.answer, RG_ANSWER_REJECT);
	assert_string_equal(d.event, "reject");
	assert_string_equal(d.reason, "user_name_too_long_to_check");
	assert_non_null(strstr(d.action, "REJECT 5.7.1 <u@example.org> not owned by user uuu"));
	assert_non_null(strstr(d.action, "(login name too long to check)"));
	{
		struct rg_audit_rec ar = { .event = d.event, .client = r.client_address,
					   .user = out.user, .auth = "grant(pop3)",
					   .sender = r.sender, .state = r.protocol_state,
					   .action = "REJECT", .reason = d.reason };

		rg_audit_format(line, sizeof(line), &ar);
		assert_non_null(strstr(line, " reason=user_name_too_long_to_check"));
	}
	/* the null sender impersonates no one: still accepted */
	r.sender = "";
	rg_policy_decide(&r, &out, &rules, &d);
	assert_int_equal(d.answer, RG_ANSWER_OK);
	rg_senderlogins_free(sl);
}

static void test_maps_prefix_reload(void **state)
{
	struct maps *mp = *state;
	struct rg_config cfg = { .abi_version = RG_ABI_VERSION, .v4_prefix = 32, .v6_prefix = 64 };
	struct rg_policy_auth out;
	__u32 zero = 0;

	put_grant(mp, "198.51.100.7", "exact", 1, 60);
	assert_int_equal(lookup(mp, "198.51.100.7", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_NONE);            /* /24 keys for now */
	assert_int_equal(bpf_map_update_elem(mp->g.config_fd, &zero, &cfg, 0), 0);
	mp->m.cfg_read_ns = 0;                                 /* as if a second passed */
	assert_int_equal(lookup(mp, "198.51.100.7", &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_string_equal(out.user, "exact");
}

static void test_maps_missing_and_errors(void **state)
{
	struct maps *mp = *state;
	struct rg_gate g = mp->g;
	struct rg_policy_maps m;
	struct rg_policy_auth out = { 0 };
	struct rg_addr a;
	int devnull;

	/* absent maps are skipped: defaults /32 and /64 without rg_config */
	g.config_fd = g.trust4_fd = g.trust6_fd = g.deny_fd = -1;
	rg_policy_maps_init(&m, &g);
	put_grant(mp, "198.51.100.8", "solo", 1, 60);
	addr("198.51.100.8", &a);
	assert_int_equal(rg_policy_lookup_maps(&m, &a, &out), 0);
	assert_int_equal(out.kind, RG_POLICY_GRANT);
	assert_string_equal(out.user, "solo");

	/* a broken map fd is an error, not a NONE */
	devnull = open("/dev/null", O_RDONLY);
	assert_true(devnull >= 0);
	g.grants_fd = devnull;
	memset(&out, 0, sizeof(out));
	assert_true(rg_policy_lookup_maps(&m, &a, &out) < 0);
	g.grants_fd = mp->g.grants_fd;
	g.trust4_fd = devnull;
	assert_true(rg_policy_lookup_maps(&m, &a, &out) < 0);
	close(devnull);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_parse_postfix),
		cmocka_unit_test(test_parse_values),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_unterminated),
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_reject_text_safe),
		cmocka_unit_test(test_auth_str),
		cmocka_unit_test(test_audit_format),
		cmocka_unit_test(test_audit_injection),
		cmocka_unit_test(test_audit_escape_cut),
		cmocka_unit_test(test_audit_file),
		cmocka_unit_test_setup_teardown(test_maps_lookup, maps_setup, maps_teardown),
		cmocka_unit_test_setup_teardown(test_maps_long_login, maps_setup, maps_teardown),
		cmocka_unit_test_setup_teardown(test_maps_prefix_reload, maps_setup, maps_teardown),
		cmocka_unit_test_setup_teardown(test_maps_missing_and_errors, maps_setup, maps_teardown),
	};

	rg_log_init("test_policy", false, RG_LOG_WARN);
	return cmocka_run_group_tests(pure, NULL, NULL);
}
