#include "http/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <arpa/inet.h>
#include <stdbool.h>

#include <openssl/bn.h>
#include <openssl/rand.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "util.h"
#include "banned.h"

#define CA_DAYS 3650
#define LEAF_DAYS 397
#define RENEW_BEFORE_DAYS 30

static const char alpn_http11[] = "\x08http/1.1";

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, (const unsigned char *)alpn_http11, sizeof(alpn_http11) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* carry on without ALPN: HTTP/1.1 */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

static EVP_PKEY *key_new(void)
{
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static void set_name(X509_NAME *name, const char *cn)
{
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"debate", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
}

/* Makes a certificate for key, signed by issuer_key (self-signed when issuer is NULL). */
static X509 *cert_new(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn, int days,
                      const char *const *exts)
{
    X509 *cert = X509_new();
    uint8_t serial[16];
    if (cert == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_set_version(cert, 2);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400);
    X509_set_pubkey(cert, key);
    set_name(X509_get_subject_name(cert), cn);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(cert));
    for (size_t i = 0; exts[i] != NULL; i += 2)
        if (add_ext(cert, issuer ? issuer : cert, OBJ_txt2nid(exts[i]), exts[i + 1]) < 0)
            goto fail;
    if (X509_sign(cert, issuer_key, EVP_sha256()) == 0)
        goto fail;
    return cert;
fail:
    X509_free(cert);
    return NULL;
}

static int write_pem(const char *path, EVP_PKEY *key, X509 *cert, X509 *chain)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int ok = bio != NULL;
    if (ok && key)
        ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    if (ok && cert)
        ok = PEM_write_bio_X509(bio, cert);
    if (ok && chain)
        ok = PEM_write_bio_X509(bio, chain);
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    int rc = ok ? write_file_atomic(path, data, (size_t)len, key ? 0600 : 0644) : -EIO;
    BIO_free(bio);
    return rc;
}

/* The first certificate (or, with key, the private key) of a PEM file; NULL when there is none. */
static void *read_pem(const char *path, bool key)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    if (read_file(path, 1 << 20, &data, &len) < 0)
        return NULL;
    BIO *bio = BIO_new_mem_buf(data, (int)len); /* borrows data */
    if (bio == NULL)
        return NULL;
    void *v = key ? (void *)PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : (void *)PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return v;
}

static X509 *read_cert(const char *path)
{
    return read_pem(path, false);
}

static EVP_PKEY *read_key(const char *path)
{
    return read_pem(path, true);
}

static bool expires_soon(X509 *cert)
{
    int day, sec;
    if (!ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(cert)))
        return true;
    return day < RENEW_BEFORE_DAYS;
}

/* subjectAltName for every trusted host: DNS names and IP addresses. */
static char *san_for(const struct config *cfg)
{
    size_t cap = 64;
    char *s = xcalloc(1, cap);
    for (size_t i = 0; i < cfg->trusted_hosts.count; i++) {
        const char *h = cfg->trusted_hosts.items[i];
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, h, ip) == 1 || inet_pton(AF_INET6, h, ip) == 1;
        _cleanup_free_ char *item = xasprintf("%s%s:%s", s[0] ? "," : "", is_ip ? "IP" : "DNS", h);
        if (strlen(s) + strlen(item) + 1 > cap) {
            cap = (strlen(s) + strlen(item) + 1) * 2;
            s = xrealloc(s, cap);
        }
        strncat(s, item, cap - strlen(s) - 1);
    }
    return s;
}

static int ensure_ca(const char *dir, X509 **ca, EVP_PKEY **ca_key, char *err, size_t errlen)
{
    _cleanup_free_ char *crt = xasprintf("%s/ca.pem", dir), *key = xasprintf("%s/ca.key", dir);
    *ca = read_cert(crt);
    *ca_key = read_key(key);
    if (*ca && *ca_key && !expires_soon(*ca))
        return 0;
    X509_free(*ca);
    EVP_PKEY_free(*ca_key);
    static const char *const exts[] = {"basicConstraints", "critical,CA:TRUE,pathlen:0", "keyUsage",
                                       "critical,keyCertSign,cRLSign", "subjectKeyIdentifier", "hash", NULL};
    *ca_key = key_new();
    *ca = *ca_key ? cert_new(*ca_key, NULL, *ca_key, "debate internal CA", CA_DAYS, exts) : NULL;
    int rc;
    if (*ca == NULL || (rc = write_pem(key, *ca_key, NULL, NULL)) < 0 || (rc = write_pem(crt, NULL, *ca, NULL)) < 0) {
        ssl_error(err, errlen, "cannot create the internal CA");
        return -1;
    }
    return 0;
}

static int ensure_leaf(const struct config *cfg, const char *dir, char *err, size_t errlen)
{
    _cleanup_free_ char *crt = xasprintf("%s/server.pem", dir), *key = xasprintf("%s/server.key", dir);
    _cleanup_free_ char *san = san_for(cfg);
    _cleanup_free_ char *san_file = xasprintf("%s/server.san", dir);
    _cleanup_free_ char *old_san = NULL;
    size_t len;
    X509 *leaf = read_cert(crt);
    bool fresh = leaf != NULL && !expires_soon(leaf) && read_file(san_file, 65536, &old_san, &len) == 0 &&
                 strcmp(old_san, san) == 0;
    X509_free(leaf);
    if (fresh)
        return 0;
    /* Both before the first jump to out, which frees them: a stale leaf must not be freed twice. */
    leaf = NULL;
    _cleanup_free_ char *san_ext = xasprintf("%s", san);
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL, *leaf_key = NULL;
    int rc = -1;
    if (ensure_ca(dir, &ca, &ca_key, err, errlen) < 0)
        goto out;
    const char *const exts[] = {"basicConstraints", "critical,CA:FALSE", "keyUsage", "critical,digitalSignature",
                                "extendedKeyUsage", "serverAuth", "subjectAltName", san_ext, NULL};
    leaf_key = key_new();
    leaf = leaf_key ? cert_new(leaf_key, ca, ca_key, cfg->trusted_hosts.items[0], LEAF_DAYS, exts) : NULL;
    if (leaf == NULL || write_pem(key, leaf_key, NULL, NULL) < 0 || write_pem(crt, NULL, leaf, ca) < 0 ||
        write_file_atomic(san_file, san, strlen(san), 0644) < 0) {
        ssl_error(err, errlen, "cannot create the server certificate");
        goto out;
    }
    rc = 0;
out:
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(leaf_key);
    return rc;
}

SSL_CTX *tls_context_new(const struct config *cfg, char **ca_path, char *err, size_t errlen)
{
    _cleanup_free_ char *dir = xasprintf("%s/tls", cfg->data_dir);
    _cleanup_free_ char *cert = NULL, *key = NULL;
    *ca_path = NULL;
    if (cfg->tls_cert[0] != '\0') {
        cert = xstrdup(cfg->tls_cert);
        key = xstrdup(cfg->tls_key);
    } else {
        /*
         * 0711 whatever the umask, and also for a directory made 0700 by an
         * older version: a proxy running as another user (Caddy) reads
         * ca.pem to check this server. The keys are 0600.
         */
        int rc = mkdir_p(dir, 0711);
        if (rc == 0 && chmod(dir, 0711) < 0)
            rc = -errno;
        if (rc < 0) {
            snprintf(err, errlen, "cannot create \"%s\": %s", dir, strerror(-rc));
            return NULL;
        }
        if (ensure_leaf(cfg, dir, err, errlen) < 0)
            return NULL;
        cert = xasprintf("%s/server.pem", dir);
        key = xasprintf("%s/server.key", dir);
        *ca_path = xasprintf("%s/ca.pem", dir);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_error(err, errlen, "cannot create the TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    /* A connection waiting for its next request holds no record buffers (about 34 KiB each otherwise). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        _cleanup_free_ char *what = xasprintf("cannot load the certificate \"%s\"", cert);
        ssl_error(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        _cleanup_free_ char *what = xasprintf("cannot load the key \"%s\" or it does not match the certificate", key);
        ssl_error(err, errlen, what);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    free(*ca_path);
    *ca_path = NULL;
    return NULL;
}
