#include "service/finished.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

#define ID_LEN 36 /* a UUID as text */

struct finished_entry {
    char id[ID_LEN + 1];
    char *text;
    size_t len;
    uint64_t expires; /* clock_monotonic_ms; 0: never */
};

struct finished {
    pthread_mutex_t lock;
    struct finished_entry slots[FINISHED_SLOTS];
};

struct finished *finished_new(void)
{
    struct finished *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void finished_free(struct finished *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < FINISHED_SLOTS; i++)
        free(t->slots[i].text);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

bool finished_status_final(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
}

static size_t slot_of(const char *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)(h % FINISHED_SLOTS);
}

char *finished_lookup(struct finished *t, const char *id, size_t *len)
{
    if (strlen(id) != ID_LEN)
        return NULL;
    char *copy = NULL;
    struct finished_entry *e = &t->slots[slot_of(id)];
    pthread_mutex_lock(&t->lock);
    if (e->text != NULL && strcmp(e->id, id) == 0 && (e->expires == 0 || clock_monotonic_ms() < e->expires)) {
        copy = xmalloc(e->len);
        memcpy(copy, e->text, e->len);
        *len = e->len;
    }
    pthread_mutex_unlock(&t->lock);
    return copy;
}

void finished_forget(struct finished *t, const char *id)
{
    if (strlen(id) != ID_LEN)
        return;
    struct finished_entry *e = &t->slots[slot_of(id)];
    char *old = NULL;
    pthread_mutex_lock(&t->lock);
    if (e->text != NULL && strcmp(e->id, id) == 0) {
        old = e->text;
        e->text = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    free(old);
}

void finished_store(struct finished *t, const char *id, const char *text, size_t len, unsigned ttl_ms)
{
    if (strlen(id) != ID_LEN)
        return;
    struct finished_entry *e = &t->slots[slot_of(id)];
    char *copy = xmalloc(len);
    memcpy(copy, text, len);
    pthread_mutex_lock(&t->lock);
    char *old = e->text;
    memcpy(e->id, id, ID_LEN + 1);
    e->text = copy;
    e->len = len;
    e->expires = ttl_ms ? clock_monotonic_ms() + ttl_ms : 0;
    pthread_mutex_unlock(&t->lock);
    free(old);
}
