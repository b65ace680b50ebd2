#include "http/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "util.h"
#include "banned.h"

#define SHARDS 16

struct client {
    struct ratelimit_key key;
    struct client *hnext;             /* hash chain */
    struct client *lru_prev, *lru_next; /* most recently seen at the head */
    uint64_t *log;                    /* ring of accepted request times */
    unsigned head, count, cap;
};

struct shard {
    pthread_mutex_t lock;
    struct client **buckets;
    size_t nbuckets; /* a power of two */
    size_t nclients, max_clients;
    struct client *lru_head, *lru_tail;
};

struct ratelimit {
    unsigned limit;
    uint64_t window_ms;
    uint64_t seed[2];
    struct shard shards[SHARDS];
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* A keyed hash, so a client cannot choose addresses that collide. */
static uint64_t key_hash(const struct ratelimit *rl, const struct ratelimit_key *k)
{
    uint64_t a, b;
    memcpy(&a, k->addr, 8);
    memcpy(&b, k->addr + 8, 8);
    return mix64(mix64(a ^ rl->seed[0]) ^ b ^ rl->seed[1]);
}

struct ratelimit *ratelimit_new(unsigned limit, uint64_t window_ms, size_t max_clients)
{
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));
    rl->limit = limit;
    rl->window_ms = window_ms;
    if (RAND_bytes((unsigned char *)rl->seed, sizeof(rl->seed)) != 1)
        abort();
    size_t per_shard = (max_clients + SHARDS - 1) / SHARDS;
    size_t nb = 16;
    while (nb < per_shard)
        nb <<= 1;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &rl->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = nb;
        s->buckets = xcalloc(nb, sizeof(*s->buckets));
        s->max_clients = per_shard;
    }
    return rl;
}

static void lru_unlink(struct shard *s, struct client *c)
{
    if (c->lru_prev)
        c->lru_prev->lru_next = c->lru_next;
    else
        s->lru_head = c->lru_next;
    if (c->lru_next)
        c->lru_next->lru_prev = c->lru_prev;
    else
        s->lru_tail = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
}

static void lru_push_front(struct shard *s, struct client *c)
{
    c->lru_prev = NULL;
    c->lru_next = s->lru_head;
    if (s->lru_head)
        s->lru_head->lru_prev = c;
    s->lru_head = c;
    if (s->lru_tail == NULL)
        s->lru_tail = c;
}

static void client_remove(struct ratelimit *rl, struct shard *s, struct client *c)
{
    struct client **pp = &s->buckets[key_hash(rl, &c->key) & (s->nbuckets - 1)];
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    lru_unlink(s, c);
    s->nclients--;
    free(c->log);
    free(c);
}

/* Drops the times that have left the window ending at now. */
static void client_expire(const struct ratelimit *rl, struct client *c, uint64_t now)
{
    while (c->count > 0 && c->log[c->head] + rl->window_ms <= now) {
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
}

static void client_append(struct ratelimit *rl, struct client *c, uint64_t now)
{
    if (c->count == c->cap) {
        unsigned ncap = c->cap ? c->cap * 2 : 4;
        if (ncap > rl->limit)
            ncap = rl->limit;
        uint64_t *nlog = xmalloc(ncap * sizeof(*nlog));
        for (unsigned i = 0; i < c->count; i++)
            nlog[i] = c->log[(c->head + i) % c->cap];
        free(c->log);
        c->log = nlog;
        c->cap = ncap;
        c->head = 0;
    }
    c->log[(c->head + c->count) % c->cap] = now;
    c->count++;
}

static struct client *client_find_or_add(struct ratelimit *rl, struct shard *s, const struct ratelimit_key *key,
                                         uint64_t now)
{
    size_t b = key_hash(rl, key) & (s->nbuckets - 1);
    for (struct client *c = s->buckets[b]; c; c = c->hnext)
        if (memcmp(c->key.addr, key->addr, sizeof(key->addr)) == 0)
            return c;
    if (s->nclients >= s->max_clients && s->lru_tail != NULL) {
        /* The least recently seen client is the idlest one there is. */
        client_expire(rl, s->lru_tail, now);
        client_remove(rl, s, s->lru_tail);
    }
    struct client *c = xcalloc(1, sizeof(*c));
    c->key = *key;
    c->hnext = s->buckets[b];
    s->buckets[b] = c;
    lru_push_front(s, c);
    s->nclients++;
    return c;
}

void ratelimit_check(struct ratelimit *rl, const struct ratelimit_key *key, uint64_t now_ms,
                     struct ratelimit_result *out)
{
    struct shard *s = &rl->shards[key_hash(rl, key) >> 60 & (SHARDS - 1)];
    pthread_mutex_lock(&s->lock);
    struct client *c = client_find_or_add(rl, s, key, now_ms);
    lru_unlink(s, c);
    lru_push_front(s, c);
    client_expire(rl, c, now_ms);
    out->limit = rl->limit;
    out->allowed = c->count < rl->limit;
    if (out->allowed)
        client_append(rl, c, now_ms);
    out->remaining = rl->limit - c->count;
    out->reset_ms = c->log[c->head] + rl->window_ms - now_ms;
    out->retry_ms = out->allowed ? 0 : out->reset_ms;
    pthread_mutex_unlock(&s->lock);
}

size_t ratelimit_sweep(struct ratelimit *rl, uint64_t now_ms)
{
    size_t evicted = 0;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &rl->shards[i];
        pthread_mutex_lock(&s->lock);
        /* From the least recently seen end: stop at the first active client. */
        while (s->lru_tail != NULL) {
            struct client *c = s->lru_tail;
            client_expire(rl, c, now_ms);
            if (c->count > 0)
                break;
            client_remove(rl, s, c);
            evicted++;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return evicted;
}

size_t ratelimit_clients(struct ratelimit *rl)
{
    size_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&rl->shards[i].lock);
        n += rl->shards[i].nclients;
        pthread_mutex_unlock(&rl->shards[i].lock);
    }
    return n;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &rl->shards[i];
        while (s->lru_tail)
            client_remove(rl, s, s->lru_tail);
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(rl);
}

unsigned ratelimit_seconds(uint64_t ms)
{
    return (unsigned)((ms + 999) / 1000);
}
