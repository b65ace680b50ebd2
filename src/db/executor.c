#include "db/executor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

struct executor {
    struct db_pool *pool;
    unsigned acquire_timeout_ms, max_queue;
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct db_job *head, *tail;
    unsigned queued;
    bool stopping;
    uint64_t completed, rejected;
    _Atomic uint64_t expired; /* answered 503 by the loop timer */
    unsigned nthreads;
    pthread_t *threads;
};

enum { JOB_QUEUED, JOB_STARTED, JOB_EXPIRED };

/* Lives in the request's pool: tells the job when the request is gone. */
struct db_job_guard {
    struct db_job *job;
};

static void post(struct db_job *job)
{
    job->finished_ms = clock_monotonic_ms();
    h2o_multithread_send_message(&job->loop->receiver, &job->msg);
}

static void *worker(void *arg)
{
    struct executor *ex = arg;
    for (;;) {
        pthread_mutex_lock(&ex->lock);
        while (ex->head == NULL && !ex->stopping)
            pthread_cond_wait(&ex->work, &ex->lock);
        struct db_job *job = ex->head;
        if (job == NULL) {
            pthread_mutex_unlock(&ex->lock);
            return NULL;
        }
        ex->head = job->next;
        if (ex->head == NULL)
            ex->tail = NULL;
        ex->queued--;
        pthread_mutex_unlock(&ex->lock);

        int expect = JOB_QUEUED;
        if (!atomic_compare_exchange_strong(&job->state, &expect, JOB_STARTED)) {
            post(job); /* its loop already answered 503: only hand it back */
            continue;
        }
        job->started_ms = clock_monotonic_ms();
        PGconn *c = db_pool_acquire(ex->pool, job->queued_ms + ex->acquire_timeout_ms, &job->status, job->err,
                                    sizeof(job->err));
        if (c != NULL) {
            job->status = DB_OK;
            job->run(job, c);
            db_pool_release(ex->pool, c);
        }
        pthread_mutex_lock(&ex->lock);
        ex->completed++;
        pthread_mutex_unlock(&ex->lock);
        post(job);
    }
}

struct executor *executor_new(struct db_pool *pool, unsigned threads, unsigned acquire_timeout_ms, unsigned max_queue)
{
    struct executor *ex = xcalloc(1, sizeof(*ex));
    ex->pool = pool;
    ex->acquire_timeout_ms = acquire_timeout_ms;
    ex->max_queue = max_queue;
    pthread_mutex_init(&ex->lock, NULL);
    pthread_cond_init(&ex->work, NULL);
    ex->nthreads = threads;
    ex->threads = xcalloc(threads, sizeof(*ex->threads));
    for (unsigned i = 0; i < threads; i++)
        pthread_create(&ex->threads[i], NULL, worker, ex);
    return ex;
}

void executor_free(struct executor *ex)
{
    if (ex == NULL)
        return;
    pthread_mutex_lock(&ex->lock);
    ex->stopping = true;
    pthread_cond_broadcast(&ex->work);
    pthread_mutex_unlock(&ex->lock);
    for (unsigned i = 0; i < ex->nthreads; i++)
        pthread_join(ex->threads[i], NULL);
    free(ex->threads);
    pthread_mutex_destroy(&ex->lock);
    pthread_cond_destroy(&ex->work);
    free(ex);
}

static void on_guard_dispose(void *p)
{
    struct db_job_guard *g = p;
    if (g->job != NULL)
        g->job->req = NULL; /* the client went away: skip the completion */
}

static void on_completions(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct executor_loop *loop = H2O_STRUCT_FROM_MEMBER(struct executor_loop, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct db_job *job = H2O_STRUCT_FROM_MEMBER(struct db_job, msg, m);
        loop->outstanding--;
        h2o_timeout_unlink(&job->timer);
        if (job->req != NULL) {
            job->guard->job = NULL;
            job->done(job, job->req);
        }
        if (job->release != NULL)
            job->release(job->data);
        else
            free(job->data);
        free(job);
    }
}

void executor_loop_init(struct executor_loop *loop, h2o_loop_t *evloop, h2o_multithread_queue_t *queue,
                        unsigned acquire_timeout_ms)
{
    memset(loop, 0, sizeof(*loop));
    loop->queue = queue;
    loop->loop = evloop;
    h2o_timeout_init(evloop, &loop->wait_timeout, acquire_timeout_ms);
    h2o_multithread_register_receiver(queue, &loop->receiver, on_completions);
}

void executor_loop_dispose(struct executor_loop *loop)
{
    h2o_multithread_unregister_receiver(loop->queue, &loop->receiver);
    h2o_timeout_dispose(loop->loop, &loop->wait_timeout);
}

/* On the loop: no database thread took the job in time. */
static void on_job_expired(h2o_timeout_entry_t *entry)
{
    struct db_job *job = H2O_STRUCT_FROM_MEMBER(struct db_job, timer, entry);
    int expect = JOB_QUEUED;
    if (!atomic_compare_exchange_strong(&job->state, &expect, JOB_EXPIRED))
        return; /* a thread has it: its own deadline applies */
    atomic_fetch_add(&job->executor->expired, 1);
    if (job->req != NULL) {
        h2o_req_t *req = job->req;
        job->req = NULL;
        job->guard->job = NULL;
        job->status = DB_TIMEOUT;
        snprintf(job->err, sizeof(job->err), "no database connection was free within the acquire timeout");
        job->done(job, req);
    }
    /* The job stays queued until a thread hands it back; it is freed then. */
}

struct db_job *executor_job_new(db_job_run_cb run, db_job_done_cb done, void *data)
{
    struct db_job *job = xcalloc(1, sizeof(*job));
    job->run = run;
    job->done = done;
    job->data = data;
    return job;
}

struct db_job_guard *executor_guard_new(h2o_req_t *req)
{
    struct db_job_guard *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), on_guard_dispose);
    g->job = NULL;
    return g;
}

void executor_submit(struct executor *ex, struct executor_loop *loop, h2o_req_t *req, struct db_job *job,
                     struct db_job_guard *guard)
{
    job->loop = loop;
    job->executor = ex;
    loop->outstanding++;
    atomic_init(&job->state, JOB_QUEUED);
    job->timer.cb = on_job_expired;
    h2o_timeout_link(loop->loop, &loop->wait_timeout, &job->timer);
    job->req = req;
    job->guard = guard != NULL ? guard : executor_guard_new(req);
    job->guard->job = job;
    job->queued_ms = clock_monotonic_ms();
    pthread_mutex_lock(&ex->lock);
    if (ex->queued >= ex->max_queue || ex->stopping) {
        ex->rejected++;
        pthread_mutex_unlock(&ex->lock);
        atomic_store(&job->state, JOB_STARTED);
        job->status = DB_TIMEOUT;
        snprintf(job->err, sizeof(job->err), "the database queue is full");
        post(job);
        return;
    }
    job->next = NULL;
    if (ex->tail)
        ex->tail->next = job;
    else
        ex->head = job;
    ex->tail = job;
    ex->queued++;
    pthread_cond_signal(&ex->work);
    pthread_mutex_unlock(&ex->lock);
}

void executor_stats(struct executor *ex, struct executor_stats *out)
{
    pthread_mutex_lock(&ex->lock);
    out->queued = ex->queued;
    out->completed = ex->completed;
    out->rejected = ex->rejected;
    out->expired = atomic_load(&ex->expired);
    pthread_mutex_unlock(&ex->lock);
}
