/* TLS: the server context for tls: listeners, and client certificate names. */
#ifndef TABLELOCK_TLS_H
#define TABLELOCK_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

struct conf;

/* Loads certificate, key and client CA when a tls: listener exists.
 * Returns 0, or -1 with a reason in err. */
int tls_init(const struct conf *c, char *err, size_t errsize);
/* A new server-side SSL for an accepted connection, or NULL. */
SSL *tls_new(void);
/* True when client certificates are required (their CN is the identity). */
bool tls_client_certs(void);
/* The verified peer certificate's subject CN, or false. */
bool tls_peer_cn(SSL *ssl, char *out, size_t outsize);
void tls_free(void);

#endif
