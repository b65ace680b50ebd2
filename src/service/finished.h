/*
 * The finished-builds table. A build that has ended (succeeded, failed,
 * cancelled) hardly changes again, so the text that describes it can be
 * kept and handed out again without asking the database: GET
 * /api/v1/builds/{id} answers from here. What may still change (a
 * succeeded build gets a rebuild's verdict, on any server) is kept for a
 * few seconds only, and forgotten by the server that queues the rebuild.
 *
 * The table is bounded and direct-mapped (a build id hashes to one slot;
 * a collision replaces the older entry), so its memory is fixed and a
 * lookup is one hash, one lock, one copy. It holds opaque bytes: the
 * caller decides what it stores (the API's JSON), the table only which
 * builds may be kept (finished_status_final).
 *
 * Ownership: the table owns copies of what it stores; a lookup returns a
 * copy the caller frees. Threads: any; one mutex guards the slots.
 */
#ifndef DEBATE_SERVICE_FINISHED_H
#define DEBATE_SERVICE_FINISHED_H

#include <stdbool.h>
#include <stddef.h>

#define FINISHED_SLOTS 4096

struct finished;

/* A table of FINISHED_SLOTS slots, empty. */
struct finished *finished_new(void);
void finished_free(struct finished *t);

/* True when a build in this status has ended for good: succeeded, failed, cancelled. */
bool finished_status_final(const char *status);

/* The bytes kept for build id (malloc'd, *len set), or NULL. */
char *finished_lookup(struct finished *t, const char *id, size_t *len);

/* Keeps a copy of text under id for ttl_ms milliseconds (0: for good), replacing whatever held its slot. */
void finished_store(struct finished *t, const char *id, const char *text, size_t len, unsigned ttl_ms);
/* Drops what is kept for id. */
void finished_forget(struct finished *t, const char *id);

#endif
