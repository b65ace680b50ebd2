/*
 * Database work for the event loops. A loop must never block on the
 * database, so a request hands a job to a pool of database threads; the
 * thread takes a connection, runs the job, gives the connection back and
 * posts the job to the submitting loop's queue (h2o_multithread), where the
 * job's completion callback answers the request. If the client went away in
 * the meantime the completion is skipped.
 *
 * The wait is bounded: a loop timer answers 503 database_busy when no
 * thread has started the job within the acquire timeout (all threads busy),
 * and a thread that starts a job gives up on the pool at the same deadline.
 *
 * Threads: executor_submit and the completion run on the loop thread;
 * run() runs on a database thread and must not touch the request.
 */
#ifndef DEBATE_DB_EXECUTOR_H
#define DEBATE_DB_EXECUTOR_H

#include <stdatomic.h>

#include <h2o.h>
#include <h2o/multithread.h>

#include "db/pool.h"

struct executor;
struct db_job;

/* Per event loop: where completions arrive, and how many are still due. */
struct executor_loop {
    h2o_multithread_receiver_t receiver;
    h2o_multithread_queue_t *queue;
    h2o_loop_t *loop;
    h2o_timeout_t wait_timeout; /* the acquire timeout, as a loop timer */
    size_t outstanding;         /* loop thread only */
};

typedef void (*db_job_run_cb)(struct db_job *job, PGconn *conn);
typedef void (*db_job_done_cb)(struct db_job *job, h2o_req_t *req);

struct db_job {
    /* set by the submitter */
    db_job_run_cb run;
    db_job_done_cb done;
    void *data;
    void (*release)(void *data); /* frees data after done (or when the client went away); NULL: free() */
    /* results, set on the database thread */
    enum db_status status; /* DB_TIMEOUT / DB_UNAVAILABLE when no connection was had */
    char err[512];
    uint64_t queued_ms, started_ms, finished_ms;
    /* private */
    _Atomic int state; /* JOB_QUEUED, JOB_STARTED or JOB_EXPIRED */
    h2o_timeout_entry_t timer;
    h2o_multithread_message_t msg;
    struct executor_loop *loop;
    struct executor *executor;
    h2o_req_t *req;
    struct db_job_guard *guard;
    struct db_job *next;
};

struct executor *executor_new(struct db_pool *pool, unsigned threads, unsigned acquire_timeout_ms, unsigned max_queue);
/* Stops the threads after the queued jobs have run. */
void executor_free(struct executor *ex);

/*
 * Per loop, on its thread: start and stop receiving completions. A loop
 * must not be disposed while loop->outstanding > 0.
 */
void executor_loop_init(struct executor_loop *loop, h2o_loop_t *evloop, h2o_multithread_queue_t *queue,
                        unsigned acquire_timeout_ms);
void executor_loop_dispose(struct executor_loop *loop);

/*
 * What tells a job that its request went away (the request's pool was
 * cleared: the completion is then skipped). executor_submit makes one in
 * the request's pool for each job when given none. A request that runs
 * one job after another for as long as it lives (an event stream's polls)
 * makes one with executor_guard_new and passes it to each: one per job
 * would stay in the request's pool until the stream ends, a little more
 * memory with every poll. One job at a time per guard.
 */
struct db_job_guard;
struct db_job_guard *executor_guard_new(h2o_req_t *req);

/*
 * Queues a job for req (allocated with executor_job_new), with guard or
 * NULL (see above). On a full queue the job completes at once with
 * DB_TIMEOUT. Ownership of job passes here.
 */
void executor_submit(struct executor *ex, struct executor_loop *loop, h2o_req_t *req, struct db_job *job,
                     struct db_job_guard *guard);
struct db_job *executor_job_new(db_job_run_cb run, db_job_done_cb done, void *data);

struct executor_stats {
    unsigned queued;
    uint64_t completed, rejected, expired;
};
void executor_stats(struct executor *ex, struct executor_stats *out);

#endif
