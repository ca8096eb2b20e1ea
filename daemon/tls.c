/* TLS: the server context for tls: listeners, and client certificate names. */
#include "daemon/tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"

static SSL_CTX *tls_ctx;
static bool tls_require_certs;

static void tls_error(char *err, size_t errsize, const char *what, const char *path);

static void
tls_error(char *err, size_t errsize, const char *what, const char *path)
{
	char reason[256];
	ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
	snprintf(err, errsize, "[tls] %s %s: %s", what, path, reason);
}

int
tls_init(const struct conf *c, char *err, size_t errsize)
{
	bool wanted = false;

	for (size_t i = 0; i < c->nlisten; i++)
		if (strncmp(c->listen[i], "tls:", 4) == 0)
			wanted = true;
	if (!wanted)
		return 0;
	tls_ctx = SSL_CTX_new(TLS_server_method());
	if (tls_ctx == NULL) {
		snprintf(err, errsize, "[tls]: cannot create a TLS context");
		return -1;
	}
	/* TLS 1.2 is the oldest version without known protocol breaks. */
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(tls_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(tls_ctx, c->tls_cert) != 1) {
		tls_error(err, errsize, "cert", c->tls_cert);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(tls_ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(tls_ctx) != 1) {
		tls_error(err, errsize, "key", c->tls_key);
		return -1;
	}
	if (c->tls_client_ca != NULL) {
		if (SSL_CTX_load_verify_locations(tls_ctx, c->tls_client_ca, NULL) != 1) {
			tls_error(err, errsize, "client_ca", c->tls_client_ca);
			return -1;
		}
		SSL_CTX_set_client_CA_list(tls_ctx, SSL_load_client_CA_file(c->tls_client_ca));
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		tls_require_certs = true;
	}
	return 0;
}

SSL *
tls_new(void)
{
	return tls_ctx != NULL ? SSL_new(tls_ctx) : NULL;
}

bool
tls_client_certs(void)
{
	return tls_require_certs;
}

bool
tls_peer_cn(SSL *ssl, char *out, size_t outsize)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	int n;

	if (cert == NULL)
		return false;
	if (SSL_get_verify_result(ssl) != X509_V_OK) {
		X509_free(cert);
		return false;
	}
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out,
				      (int)outsize);
	X509_free(cert);
	/* A CN with an embedded NUL would read as a shorter, other name. */
	return n > 0 && (size_t)n < outsize && strlen(out) == (size_t)n;
}

void
tls_free(void)
{
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}
