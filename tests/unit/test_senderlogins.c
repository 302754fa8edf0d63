// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* sender_logins: parser (accepts, rejects with file:line reasons) and matcher. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "senderlogins.h"

static struct rg_senderlogins *parse_ok(const char *text)
{
	char err[256] = "";
	struct rg_senderlogins *sl = rg_senderlogins_parse(text, strlen(text), "t", err,
							   sizeof(err));

	if (!sl)
		fail_msg("unexpected parse error: %s", err);
	assert_string_equal(err, "");
	return sl;
}

static void parse_fails(const char *text, const char *expect)
{
	char err[256] = "";
	struct rg_senderlogins *sl = rg_senderlogins_parse(text, strlen(text), "f", err,
							   sizeof(err));

	if (sl) {
		rg_senderlogins_free(sl);
		fail_msg("parsed but should fail with '%s': [%s]", expect, text);
	}
	if (!strstr(err, expect))
		fail_msg("error '%s' does not contain '%s'", err, expect);
}

static void test_basic_match(void **state)
{
	struct rg_senderlogins *sl;

	(void)state;
	sl = parse_ok("alice: alice@example.org, @alice.example\n"
		      "bob: bob@example.org\n");
	assert_int_equal(rg_senderlogins_users(sl), 2);
	assert_int_equal(rg_senderlogins_entries(sl), 3);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice@example.org", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "anything@alice.example", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "bob@example.org", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "bob", "bob@example.org", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "bob", "alice@example.org", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "bob", "x@alice.example", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "carol", "carol@example.org", NULL), RG_SL_UNKNOWN_USER);
	/* the null sender is never "owned": the caller decides */
	assert_int_equal(rg_senderlogins_check(sl, "alice", "", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", NULL, NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(NULL, "alice", "alice@example.org", NULL), RG_SL_UNKNOWN_USER);
	rg_senderlogins_free(sl);
}

static void test_domain_rules(void **state)
{
	struct rg_senderlogins *sl;

	(void)state;
	sl = parse_ok("alice: @alice.example\n");
	/* exact domain only: not a subdomain, not a longer name, not a suffix */
	assert_int_equal(rg_senderlogins_check(sl, "alice", "a@sub.alice.example", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "a@alice.example.org", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "a@malice.example", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice.example", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "@alice.example", NULL), RG_SL_NOT_OWNED);
	/* the domain is what follows the last '@' (as Postfix splits) */
	assert_int_equal(rg_senderlogins_check(sl, "alice", "x@evil.example@alice.example", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "x@alice.example@evil.example", NULL), RG_SL_NOT_OWNED);
	rg_senderlogins_free(sl);
}

static void test_case(void **state)
{
	struct rg_senderlogins *sl;

	(void)state;
	sl = parse_ok("Alice: Alice.Smith@Example.ORG, @Alice.Example\n");
	/* addresses and domains: case-insensitive */
	assert_int_equal(rg_senderlogins_check(sl, "Alice", "alice.smith@example.org", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "Alice", "ALICE.SMITH@EXAMPLE.ORG", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "Alice", "X@ALICE.EXAMPLE", NULL), RG_SL_OWNED);
	/* users: exact */
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice.smith@example.org", NULL), RG_SL_UNKNOWN_USER);
	rg_senderlogins_free(sl);
}

static void test_comments_merge_crlf(void **state)
{
	struct rg_senderlogins *sl;

	(void)state;
	sl = parse_ok("# sender_logins for example.org\n"
		      "\n"
		      "   \t\n"
		      "alice: alice@example.org   # her main address\r\n"
		      "bob:bob@example.org,bobby@example.org\n"
		      "  alice :  a.smith@example.org ,  @alice.example  \n"
		      "alice: alice@example.org\n"          /* duplicate: harmless */
		      "carol: carol@example.org");          /* no final newline */
	assert_int_equal(rg_senderlogins_users(sl), 3);
	assert_int_equal(rg_senderlogins_entries(sl), 6);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice@example.org", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "a.smith@example.org", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "z@alice.example", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "bob", "bobby@example.org", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "carol", "carol@example.org", NULL), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "carol", "alice@example.org", NULL), RG_SL_NOT_OWNED);
	rg_senderlogins_free(sl);

	/* only comments: a valid, empty map */
	sl = parse_ok("# nobody yet\n");
	assert_int_equal(rg_senderlogins_users(sl), 0);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice@example.org", NULL), RG_SL_UNKNOWN_USER);
	rg_senderlogins_free(sl);
	sl = parse_ok("");
	assert_int_equal(rg_senderlogins_users(sl), 0);
	rg_senderlogins_free(sl);
}

static void test_delimiter(void **state)
{
	struct rg_senderlogins *sl;

	(void)state;
	sl = parse_ok("alice: alice@example.org\nbob: bob+lists@example.org\n");
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice+news@example.org", NULL), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice+news@example.org", "+"), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice-news@example.org", "+-"), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "alice+news@example.net", "+"), RG_SL_NOT_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "alice", "+alice@example.org", "+"), RG_SL_NOT_OWNED);
	/* an exact entry with the delimiter still matches itself */
	assert_int_equal(rg_senderlogins_check(sl, "bob", "bob+lists@example.org", "+"), RG_SL_OWNED);
	assert_int_equal(rg_senderlogins_check(sl, "bob", "bob@example.org", "+"), RG_SL_NOT_OWNED);
	rg_senderlogins_free(sl);
}

/*
 * Grants keep 63 bytes of a login and cut the rest silently, so a stored
 * name of 63 bytes may be a longer login: U + "x" would be stored as U if
 * U had 63 bytes. Such a name owns nothing, and a user of 63 bytes or
 * more cannot be listed.
 */
static void test_user_length(void **state)
{
	char line[200];
	struct rg_senderlogins *sl;
	char user62[63], user63[64], user64[65], longer[100];

	(void)state;
	memset(user62, 'u', 62);
	user62[62] = '\0';
	memset(user63, 'u', 63);
	user63[63] = '\0';
	memset(user64, 'u', 64);
	user64[64] = '\0';
	memset(longer, 'u', 99);
	longer[99] = '\0';
	snprintf(line, sizeof(line), "%s: a@example.org\n", user62);
	sl = parse_ok(line);
	assert_int_equal(rg_senderlogins_check(sl, user62, "a@example.org", NULL), RG_SL_OWNED);
	/* 63 bytes: maybe user62 + "u" + more, cut by the grant map */
	assert_int_equal(rg_senderlogins_check(sl, user63, "a@example.org", NULL),
			 RG_SL_USER_TOO_LONG);
	assert_int_equal(rg_senderlogins_check(sl, longer, "a@example.org", NULL),
			 RG_SL_USER_TOO_LONG);
	assert_int_equal(rg_senderlogins_check(sl, "uu", "a@example.org", NULL), RG_SL_UNKNOWN_USER);
	rg_senderlogins_free(sl);
	snprintf(line, sizeof(line), "%s: a@example.org\n", user63);
	parse_fails(line, "f:1: user name 'uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu...' longer than 62 bytes "
		    "(grants keep 63 bytes: a 63-byte name may be a longer login cut short)");
	snprintf(line, sizeof(line), "%s: a@example.org\n", user64);
	parse_fails(line, "longer than 62 bytes");
}

static void test_long_sender(void **state)
{
	char sender[400];
	struct rg_senderlogins *sl;

	(void)state;
	sl = parse_ok("alice: @alice.example\n");
	memset(sender, 'a', sizeof(sender));
	strcpy(sender + 310, "@alice.example");
	/* beyond RFC 5321 lengths: never owned, even in an owned domain */
	assert_int_equal(rg_senderlogins_check(sl, "alice", sender, NULL), RG_SL_NOT_OWNED);
	rg_senderlogins_free(sl);
}

static void test_errors(void **state)
{
	(void)state;
	parse_fails("alice alice@example.org\n", "f:1: expected 'user: address, ...'");
	parse_fails("# ok\nalice:\n", "f:2: no addresses for user 'alice'");
	parse_fails("alice:   # nothing\n", "f:1: no addresses for user 'alice'");
	parse_fails(": a@example.org\n", "f:1: missing user name before ':'");
	parse_fails("al ice: a@example.org\n", "f:1: user name 'al ice'");
	parse_fails("alice: a@example.org,\n", "f:1: empty address in the list of 'alice' (stray ','?)");
	parse_fails("alice: a@example.org,,b@example.org\n", "empty address");
	parse_fails("alice: , a@example.org\n", "empty address");
	parse_fails("alice: a@example.org b@example.org\n",
		    "f:1: space inside address 'a@example.org b@example.org' (separate addresses with ',')");
	parse_fails("alice: <a@example.org>\n", "write addresses without <>");
	parse_fails("alice: alice\n", "f:1: 'alice' is not an address (expected local@domain or @domain)");
	parse_fails("alice: a@b@example.org\n", "more than one '@'");
	parse_fails("alice: a@\n", "bad or missing domain");
	parse_fails("alice: @\n", "bad or missing domain");
	parse_fails("alice: a@.example.org\n", "bad or missing domain");
	parse_fails("alice: a@example..org\n", "bad or missing domain");
	parse_fails("alice: a@example.org.\n", "bad or missing domain");
	parse_fails("alice: a@exa(mple.org\n", "bad or missing domain");
	parse_fails("alice: .a@example.org\n", "bad local part");
	parse_fails("alice: a..b@example.org\n", "bad local part");
	parse_fails("alice: a\"b@example.org\n", "bad local part");
	parse_fails("ok: a@example.org\nalice: a\x01@example.org\n", "f:2: control character 0x01");
	{
		char local[80];
		char line[200];

		memset(local, 'l', 65);
		local[65] = '\0';
		snprintf(line, sizeof(line), "alice: %s@example.org\n", local);
		parse_fails(line, "local part longer than 64 bytes");
	}
}

static void test_nul_in_middle(void **state)
{
	static const char text[] = "alice: a@example.org\nbob: b@exa\0mple.org\n";
	char err[256];

	(void)state;
	assert_null(rg_senderlogins_parse(text, sizeof(text) - 1, "m", err, sizeof(err)));
	assert_string_equal(err, "m:2: NUL byte");
}

static void test_long_line(void **state)
{
	size_t n = RG_SENDERLOGINS_MAX_LINE + 100;
	char *text = malloc(n + 1);
	char err[256];

	(void)state;
	assert_non_null(text);
	memset(text, 'a', n);
	memcpy(text, "alice: ", 7);
	text[n] = '\0';
	assert_null(rg_senderlogins_parse(text, n, "big", err, sizeof(err)));
	assert_string_equal(err, "big:1: line longer than 8192 bytes");
	free(text);
}

static void test_error_hides_binary(void **state)
{
	char err[256];

	(void)state;
	/* bytes from the file are shown printable only */
	assert_null(rg_senderlogins_parse("alice: \x80\xff\n", 10, "b", err, sizeof(err)));
	assert_string_equal(err, "b:1: '\?\?' is not an address (expected local@domain or @domain)");
}

static void test_utf8(void **state)
{
	struct rg_senderlogins *sl;

	(void)state;
	/* SMTPUTF8 addresses are bytes: accepted, compared exactly */
	sl = parse_ok("j\xc3\xb6rg: j\xc3\xb6rg@b\xc3\xbc" "cher.example\n");
	assert_int_equal(rg_senderlogins_check(sl, "j\xc3\xb6rg", "j\xc3\xb6rg@b\xc3\xbc" "cher.example", NULL),
			 RG_SL_OWNED);
	rg_senderlogins_free(sl);
}

static void test_load(void **state)
{
	char dir[] = "/tmp/rg-sl-XXXXXX", path[300], err[400];
	struct rg_senderlogins *sl;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sender_logins", dir);

	assert_null(rg_senderlogins_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "sender_logins: No such file or directory"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);

	assert_null(rg_senderlogins_load(dir, err, sizeof(err)));
	assert_non_null(strstr(err, ": not a regular file"));

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("alice: alice@example.org\nbob: bob\n", f);
	fclose(f);
	assert_null(rg_senderlogins_load(path, err, sizeof(err)));
	{
		char want[400];

		snprintf(want, sizeof(want), "%s:2: 'bob' is not an address", path);
		assert_non_null(strstr(err, want));
	}

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("alice: alice@example.org\nbob: bob@example.org\n", f);
	fclose(f);
	sl = rg_senderlogins_load(path, err, sizeof(err));
	assert_non_null(sl);
	assert_int_equal(rg_senderlogins_check(sl, "bob", "bob@example.org", NULL), RG_SL_OWNED);
	rg_senderlogins_free(sl);

	unlink(path);
	rmdir(dir);
}

/* Many users: binary search over a sorted map gives the same answers as a
 * straightforward scan. */
static void test_many_users(void **state)
{
	size_t n = 5000, i, cap = n * 64;
	char *text = malloc(cap), sender[80], user[32];
	struct rg_senderlogins *sl;
	size_t o = 0;

	(void)state;
	assert_non_null(text);
	for (i = 0; i < n; i++)
		o += snprintf(text + o, cap - o, "user%zu: u%zu@example.org, @d%zu.example\n",
			      (i * 7919) % n, (i * 7919) % n, (i * 7919) % n);
	sl = parse_ok(text);
	assert_int_equal(rg_senderlogins_users(sl), n);
	for (i = 0; i < n; i += 37) {
		snprintf(user, sizeof(user), "user%zu", i);
		snprintf(sender, sizeof(sender), "u%zu@example.org", i);
		assert_int_equal(rg_senderlogins_check(sl, user, sender, NULL), RG_SL_OWNED);
		snprintf(sender, sizeof(sender), "x@d%zu.example", i);
		assert_int_equal(rg_senderlogins_check(sl, user, sender, NULL), RG_SL_OWNED);
		snprintf(sender, sizeof(sender), "u%zu@example.org", (i + 1) % n);
		assert_int_equal(rg_senderlogins_check(sl, user, sender, NULL), RG_SL_NOT_OWNED);
	}
	assert_int_equal(rg_senderlogins_check(sl, "user5000", "u1@example.org", NULL), RG_SL_UNKNOWN_USER);
	rg_senderlogins_free(sl);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_match),
		cmocka_unit_test(test_domain_rules),
		cmocka_unit_test(test_case),
		cmocka_unit_test(test_comments_merge_crlf),
		cmocka_unit_test(test_delimiter),
		cmocka_unit_test(test_user_length),
		cmocka_unit_test(test_long_sender),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_in_middle),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_error_hides_binary),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_many_users),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
