// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target: the policy request path as the server runs it on bytes
 * from a connection: frame, parse, decide (for each kind of client, with a
 * sender_logins map), build the reply and the audit line. Checks the
 * invariants a client must never break: frames end in an empty line, the
 * reply is one printable line, the audit line splits into exactly its
 * fields in order. The parser also gets the whole input unframed, in a
 * buffer of exactly its size (a last line without a newline, bytes after
 * the empty line): it must stay inside it, and every value it returns must
 * be a string inside it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "audit.h"
#include "log.h"
#include "policy.h"
#include "senderlogins.h"

static struct rg_senderlogins *map;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char text[] = "alice: alice@example.org, @alice.example\n"
				   "bob: bob@example.org\n";
	char err[200];

	(void)argc;
	(void)argv;
	rg_log_init("fuzz_policy", false, RG_LOG_ERR);
	map = rg_senderlogins_parse(text, strlen(text), "fuzz", err, sizeof(err));
	if (!map)
		abort();
	return 0;
}

static void check_audit(const struct rg_policy_request *req, const struct rg_policy_auth *auth,
			const struct rg_policy_decision *d)
{
	static const char *const keys[] = { "client", "user", "auth", "sender", "recipient",
					    "queue_id", "instance", "state", "action", "reason" };
	char line[RG_AUDIT_LINE_MAX], authbuf[128];
	struct rg_audit_rec r = {
		.event = d->event, .client = req->client_address,
		.user = auth->kind == RG_POLICY_GRANT ? auth->user : NULL,
		.auth = rg_policy_auth_str(auth, authbuf, sizeof(authbuf)),
		.sender = req->sender ? req->sender : "", .recipient = req->recipient,
		.queue_id = req->queue_id, .instance = req->instance,
		.state = req->protocol_state, .action = "OK", .reason = d->reason,
	};
	size_t n = rg_audit_format(line, sizeof(line), &r), i, k = 0;
	char *tok, *save = NULL;

	if (n != strlen(line) || n >= sizeof(line))
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
			abort();
	/* event, then KEY=VALUE tokens in order, nothing else */
	tok = strtok_r(line, " ", &save);
	if (!tok || strcmp(tok, d->event))
		abort();
	while ((tok = strtok_r(NULL, " ", &save))) {
		char *eq = strchr(tok, '=');

		if (!eq || k >= sizeof(keys) / sizeof(keys[0]))
			abort();
		*eq = '\0';
		if (strcmp(tok, keys[k++]) || strchr(eq + 1, '='))
			abort();
	}
	if (k != (d->reason ? 10u : 9u))
		abort();
}

/* rg_policy_parse on any bytes, in a buffer without a byte to spare. */
static void check_unframed(const uint8_t *data, size_t size)
{
	struct rg_policy_request req;
	const char *why = NULL;
	char *buf = malloc(size ? size : 1);
	size_t i;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	if (rg_policy_parse(buf, size, 100, &req, &why)) {
		if (!why || !*why)
			abort();
	} else {
		const char *v[] = { req.request, req.protocol_state, req.client_address,
				    req.sender, req.recipient, req.recipient_count,
				    req.queue_id, req.instance, req.sasl_username };

		if (req.nattrs > 100)
			abort();
		for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			if (v[i] && (v[i] < buf || v[i] >= buf + size ||
				     !memchr(v[i], '\0', (size_t)(buf + size - v[i]))))
				abort();
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;
	size_t off = 0, scan = 0;

	if (size > 65536)
		return 0;
	check_unframed(data, size);
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	while (off < size) {
		size_t n = rg_policy_frame(buf + off, size - off, &scan);
		struct rg_policy_request req;
		const char *why = NULL;
		int kind;

		if (!n)
			break;
		if (n > size - off || buf[off + n - 1] != '\n' || scan != 0)
			abort();
		if (rg_policy_parse(buf + off, n, 100, &req, &why)) {
			if (!why)
				abort();
			break;                  /* the server closes here */
		}
		if (req.nattrs > 100)
			abort();
		for (kind = RG_POLICY_NONE; kind <= RG_POLICY_GRANT; kind++) {
			struct rg_policy_auth auth = { .kind = kind, .service = size % 6,
						       .granted = (int64_t)size * 86400 };
			struct rg_policy_rules rules = { .sender_logins = map,
							 .recipient_delimiter = "+",
							 .reject_null_sender = size & 1 };
			struct rg_policy_decision d;
			size_t i;

			strcpy(auth.subnet, "10.0.0.0/8");
			snprintf(auth.user, sizeof(auth.user), "%s",
				 size & 2 ? "alice" : "mallory\x01 x=y");
			rg_policy_decide(&req, &auth, &rules, &d);
			for (i = 0; d.action[i]; i++)
				if ((unsigned char)d.action[i] < 0x20 || (unsigned char)d.action[i] >= 0x7f)
					abort();
			if ((d.answer == RG_ANSWER_OK) != !strcmp(d.action, "OK"))
				abort();
			if ((d.answer == RG_ANSWER_REJECT) != !strncmp(d.action, "REJECT 5.7.1 <", 14))
				abort();
			if (kind == RG_POLICY_NONE && d.answer != RG_ANSWER_DUNNO)
				abort();
			if (d.answer != RG_ANSWER_DUNNO && !d.event)
				abort();
			if (d.event)
				check_audit(&req, &auth, &d);
		}
		off += n;
	}
	free(buf);
	return 0;
}
