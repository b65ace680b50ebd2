/*
 * TLS for the HTTPS listener: TLS 1.2 and 1.3 only, forward-secret AEAD
 * ciphers, no compression or renegotiation, and ALPN that selects
 * "http/1.1" and never "h2" (HTTP/2 stays off: see docs/security.md).
 *
 * When no certificate is configured, an internal CA and a leaf certificate
 * for the trusted host names are made under DATA_DIR/tls at first start
 * (the directory 0711 and the certificates 0644, so that a reverse proxy
 * running as another user can check this server against ca.pem; the keys
 * 0600) and reused afterwards; the leaf is renewed when it is within 30
 * days of expiry.
 */
#ifndef DEBATE_HTTP_TLS_H
#define DEBATE_HTTP_TLS_H

#include <openssl/ssl.h>

#include "config.h"

/*
 * Builds the server context. *ca_path is set (malloc'd) to the internal CA's
 * certificate when one is in use, else NULL. On failure returns NULL with a
 * message in err.
 */
SSL_CTX *tls_context_new(const struct config *cfg, char **ca_path, char *err, size_t errlen);

#endif
