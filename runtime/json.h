/* SPDX-License-Identifier: GPL-2.0 */
/*
 * json.h: the JSON lines of the agent protocol, in C (runtime/agent.c). A small reader (one
 * request line into a tree of nodes in a caller's arena, no allocation per node) and a writer
 * (an append-only buffer with JSON string escaping). Enough for the protocol of
 * hwtest/host/agent.ts and hwtest/vm/guest/shim.mjs: objects, arrays, strings (with \uXXXX
 * escapes, decoded to UTF-8), numbers (as double; the protocol's numbers are integers below
 * 2^53), true, false, null. Not a general-purpose library: depth is limited to 32.
 */
#ifndef AUXSPEC_JSON_H
#define AUXSPEC_JSON_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { AJ_NULL, AJ_FALSE, AJ_TRUE, AJ_NUM, AJ_STR, AJ_ARR, AJ_OBJ };

struct aj_node {
	int type;
	double num;
	const char *str;  /* AJ_STR: the decoded string (NUL-terminated, in the line's buffer) */
	const char *key;  /* member of an object: its key */
	struct aj_node *child, *next;
};

struct aj_parser {
	char *p;                 /* parsing position; strings are decoded in place */
	struct aj_node *nodes;
	int n, cap, depth;
	const char *err;
};

static void aj_ws(struct aj_parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n')
		ps->p++;
}

static struct aj_node *aj_new(struct aj_parser *ps, int type)
{
	struct aj_node *n;

	if (ps->n == ps->cap) {
		ps->err = "too many JSON values";
		return NULL;
	}
	n = &ps->nodes[ps->n++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	return n;
}

static int aj_hex4(const char *s, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= c - '0';
		else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
		else return -1;
	}
	*out = v;
	return 0;
}

/* A string at ps->p (after the opening quote), decoded in place; NULL on error. */
static char *aj_string(struct aj_parser *ps)
{
	char *start = ps->p, *w = ps->p;

	for (;;) {
		char c = *ps->p++;
		if (c == '"')
			break;
		if (c == 0 || (unsigned char)c < 0x20) {
			ps->err = "unterminated string";
			return NULL;
		}
		if (c != '\\') {
			*w++ = c;
			continue;
		}
		c = *ps->p++;
		switch (c) {
		case '"': case '\\': case '/': *w++ = c; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u': {
			unsigned u, lo;
			if (aj_hex4(ps->p, &u)) { ps->err = "bad \\u escape"; return NULL; }
			ps->p += 4;
			if (u >= 0xd800 && u < 0xdc00 && ps->p[0] == '\\' && ps->p[1] == 'u' && !aj_hex4(ps->p + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
				ps->p += 6;
			}
			if (u < 0x80) *w++ = (char)u;
			else if (u < 0x800) { *w++ = (char)(0xc0 | u >> 6); *w++ = (char)(0x80 | (u & 0x3f)); }
			else if (u < 0x10000) { *w++ = (char)(0xe0 | u >> 12); *w++ = (char)(0x80 | ((u >> 6) & 0x3f)); *w++ = (char)(0x80 | (u & 0x3f)); }
			else { *w++ = (char)(0xf0 | u >> 18); *w++ = (char)(0x80 | ((u >> 12) & 0x3f)); *w++ = (char)(0x80 | ((u >> 6) & 0x3f)); *w++ = (char)(0x80 | (u & 0x3f)); }
			break;
		}
		default:
			ps->err = "bad escape";
			return NULL;
		}
	}
	/* the decoded string is never longer than its source: terminate it where it ends */
	*w = 0;
	return start;
}

static struct aj_node *aj_value(struct aj_parser *ps)
{
	struct aj_node *n, **tail;

	aj_ws(ps);
	if (++ps->depth > 32) {
		ps->err = "JSON nested too deeply";
		return NULL;
	}
	switch (*ps->p) {
	case '{':
	case '[': {
		int obj = *ps->p == '{';
		char close = obj ? '}' : ']';
		ps->p++;
		if (!(n = aj_new(ps, obj ? AJ_OBJ : AJ_ARR)))
			return NULL;
		tail = &n->child;
		aj_ws(ps);
		if (*ps->p == close) {
			ps->p++;
			break;
		}
		for (;;) {
			const char *key = NULL;
			struct aj_node *v;
			aj_ws(ps);
			if (obj) {
				if (*ps->p != '"') { ps->err = "expected a key"; return NULL; }
				ps->p++;
				if (!(key = aj_string(ps)))
					return NULL;
				aj_ws(ps);
				if (*ps->p != ':') { ps->err = "expected ':'"; return NULL; }
				ps->p++;
			}
			if (!(v = aj_value(ps)))
				return NULL;
			v->key = key;
			*tail = v;
			tail = &v->next;
			aj_ws(ps);
			if (*ps->p == ',') { ps->p++; continue; }
			if (*ps->p == close) { ps->p++; break; }
			ps->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
			return NULL;
		}
		break;
	}
	case '"':
		ps->p++;
		if (!(n = aj_new(ps, AJ_STR)))
			return NULL;
		if (!(n->str = aj_string(ps)))
			return NULL;
		break;
	case 't':
		if (strncmp(ps->p, "true", 4)) goto bad;
		ps->p += 4;
		n = aj_new(ps, AJ_TRUE);
		break;
	case 'f':
		if (strncmp(ps->p, "false", 5)) goto bad;
		ps->p += 5;
		n = aj_new(ps, AJ_FALSE);
		break;
	case 'n':
		if (strncmp(ps->p, "null", 4)) goto bad;
		ps->p += 4;
		n = aj_new(ps, AJ_NULL);
		break;
	default: {
		char *end;
		double d;
		if (*ps->p != '-' && (*ps->p < '0' || *ps->p > '9')) goto bad;
		d = strtod(ps->p, &end);
		if (end == ps->p) goto bad;
		ps->p = end;
		if (!(n = aj_new(ps, AJ_NUM)))
			return NULL;
		n->num = d;
		break;
	}
	}
	ps->depth--;
	return n;
bad:
	ps->err = "unexpected character";
	return NULL;
}

/*
 * Parses `line` (modified in place: strings are decoded there) with up to `cap` nodes from
 * `nodes`. Returns the root, or NULL with *err set.
 */
static struct aj_node *aj_parse(char *line, struct aj_node *nodes, int cap, const char **err)
{
	struct aj_parser ps = { line, nodes, 0, cap, 0, NULL };
	struct aj_node *root = aj_value(&ps);

	if (root) {
		aj_ws(&ps);
		if (*ps.p) {
			ps.err = "text after the JSON value";
			root = NULL;
		}
	}
	*err = ps.err;
	return root;
}

/* The member `key` of object `o`, or NULL. */
static struct aj_node *aj_get(const struct aj_node *o, const char *key)
{
	if (!o || o->type != AJ_OBJ)
		return NULL;
	for (struct aj_node *c = o->child; c; c = c->next)
		if (!strcmp(c->key, key))
			return c;
	return NULL;
}

static int aj_is_int(const struct aj_node *n)
{
	return n && n->type == AJ_NUM && n->num == (double)(long long)n->num;
}

/* ---- writer ---- */

struct aj_buf {
	char *s;
	size_t len, cap;
};

static void aj_reserve(struct aj_buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	while (b->len + more + 1 > b->cap)
		b->cap = b->cap ? b->cap * 2 : 4096;
	b->s = realloc(b->s, b->cap);
	if (!b->s)
		abort();
}

static void aj_raw(struct aj_buf *b, const char *s)
{
	size_t n = strlen(s);

	aj_reserve(b, n);
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

__attribute__((format(printf, 2, 3))) static void aj_printf(struct aj_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	aj_reserve(b, n);
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

/* A JSON string (quoted, escaped as JSON.stringify does: \" \\ \b \f \n \r \t, other controls \u00XX). */
static void aj_str(struct aj_buf *b, const char *s)
{
	aj_reserve(b, strlen(s) * 6 + 2);
	b->s[b->len++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char *w = b->s + b->len;
		switch (c) {
		case '"': memcpy(w, "\\\"", 2); b->len += 2; break;
		case '\\': memcpy(w, "\\\\", 2); b->len += 2; break;
		case '\b': memcpy(w, "\\b", 2); b->len += 2; break;
		case '\f': memcpy(w, "\\f", 2); b->len += 2; break;
		case '\n': memcpy(w, "\\n", 2); b->len += 2; break;
		case '\r': memcpy(w, "\\r", 2); b->len += 2; break;
		case '\t': memcpy(w, "\\t", 2); b->len += 2; break;
		default:
			if (c < 0x20) b->len += sprintf(w, "\\u%04x", c);
			else b->s[b->len++] = (char)c;
		}
	}
	b->s[b->len++] = '"';
	b->s[b->len] = 0;
}

#endif
