/* team.c: a team of threads for one wide GRU computation: started per call, synchronised by a spinning barrier. */
#define _POSIX_C_SOURCE 200112L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "gru_internal.h"

enum { MAX_THREADS = 64 };

typedef struct {
    gruinfer_team_fn fn;
    void *arg;
    int n;                      /* the team's final size */
    atomic_int arrived, sense;  /* the barrier: see barrier_sync */
    pthread_mutex_t gate_lock;
    pthread_cond_t gate;
    int gate_open;
} team_ctx;

typedef struct {
    team_ctx *c;
    gruinfer_team team;
    int sense;  /* this thread's view of the barrier's phase */
} member;

/* A sense-reversing barrier: the last thread to arrive flips the phase; the
 * others spin briefly (a step of a wide layer is short), then yield the core.
 * A sleeping barrier costs tens of microseconds to wake from, every step. */
static void barrier_sync(void *arg)
{
    member *me = arg;
    team_ctx *c = me->c;
    me->sense = !me->sense;
    if (atomic_fetch_add(&c->arrived, 1) == c->n - 1) {
        atomic_store(&c->arrived, 0);
        atomic_store(&c->sense, me->sense);
        return;
    }
    for (int spins = 0; atomic_load(&c->sense) != me->sense;)
        if (++spins == 2000) {
            spins = 0;
            sched_yield();
        }
}

static void *worker(void *arg)
{
    member *me = arg;
    team_ctx *c = me->c;
    pthread_mutex_lock(&c->gate_lock);  /* wait until the team's size is final */
    while (!c->gate_open)
        pthread_cond_wait(&c->gate, &c->gate_lock);
    pthread_mutex_unlock(&c->gate_lock);
    if (me->team.tid < c->n) {  /* else the team had to shrink */
        me->team.n = c->n;
        c->fn(c->arg, &me->team);
    }
    return NULL;
}

/* Workers wait at a gate until all are started, so a thread that cannot be
 * started shrinks the team (and its barrier count) before anyone depends on
 * its size; with one thread fn runs alone with a NULL team. */
void gruinfer_team_run(int threads, gruinfer_team_fn fn, void *arg)
{
    if (threads <= 1) {
        fn(arg, NULL);
        return;
    }
    pthread_t ids[MAX_THREADS];
    member members[MAX_THREADS];
    team_ctx c = {.fn = fn, .arg = arg, .n = threads < MAX_THREADS ? threads : MAX_THREADS};
    atomic_init(&c.arrived, 0);
    atomic_init(&c.sense, 0);
    pthread_mutex_init(&c.gate_lock, NULL);
    pthread_cond_init(&c.gate, NULL);
    for (int t = 0; t < c.n; t++)
        members[t] = (member){&c, {t, c.n, barrier_sync, &members[t]}, 0};
    int started = 1;
    for (; started < c.n; started++)
        if (pthread_create(&ids[started], NULL, worker, &members[started]) != 0)
            break;
    pthread_mutex_lock(&c.gate_lock);
    c.n = started;
    c.gate_open = 1;
    pthread_cond_broadcast(&c.gate);
    pthread_mutex_unlock(&c.gate_lock);
    members[0].team.n = c.n;
    fn(arg, c.n > 1 ? &members[0].team : NULL);
    for (int t = 1; t < started; t++)
        pthread_join(ids[t], NULL);
    pthread_cond_destroy(&c.gate);
    pthread_mutex_destroy(&c.gate_lock);
}
