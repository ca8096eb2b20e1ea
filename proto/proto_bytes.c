/* Bytes on the wire: the {"base64":"…"} value of binary result cells. */
#include "proto/proto_bytes.h"

#include <stdint.h>
#include <stdlib.h>

#include "util/xmalloc.h"

static int proto_bytes_value(int c);

static const char proto_bytes_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json_t *
proto_bytes_encode(const char *data, size_t len)
{
	const unsigned char *in = (const unsigned char *)data;
	size_t outlen = 4 * ((len + 2) / 3);
	char *out = xmalloc(outlen + 1);
	size_t o = 0, i;
	json_t *obj;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned int v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = proto_bytes_alphabet[v >> 18 & 63];
		out[o++] = proto_bytes_alphabet[v >> 12 & 63];
		out[o++] = proto_bytes_alphabet[v >> 6 & 63];
		out[o++] = proto_bytes_alphabet[v & 63];
	}
	if (i < len) {
		unsigned int v = (unsigned)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		out[o++] = proto_bytes_alphabet[v >> 18 & 63];
		out[o++] = proto_bytes_alphabet[v >> 12 & 63];
		out[o++] = i + 1 < len ? proto_bytes_alphabet[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	obj = json_pack("{s:s%}", "base64", out, o);
	free(out);
	return obj;
}

/* The 6-bit value of one base64 character, or -1. */
static int
proto_bytes_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

char *
proto_bytes_decode(const json_t *value, size_t *len)
{
	const json_t *text = json_object_get(value, "base64");
	if (!json_is_string(text))
		return NULL;
	const char *in = json_string_value(text);
	size_t inlen = json_string_length(text);
	char *out = xmalloc(inlen / 4 * 3 + 4);
	uint32_t acc = 0;
	size_t n = 0, bits = 0, i;

	for (i = 0; i < inlen && in[i] != '='; i++) {
		int v = proto_bytes_value((unsigned char)in[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	for (; i < inlen; i++) {
		if (in[i] != '=') {
			free(out);
			return NULL;
		}
	}
	out[n] = '\0';
	*len = n;
	return out;
}
