/* Block loops of the spec kernels on a process-wide pool of worker threads (spec_kernels.c).
 *
 * A fit runs ~7 loops of 4-40 blocks of ~0.1 ms each, with a little Python between them. Handing
 * each loop's shares to Python threads cost ~0.25 ms a loop (set-up, submit, the worker waking
 * from a futex); here the caller publishes the loop in one atomic store, the workers spin for
 * POOL_SPIN_NS after each loop (the next one usually starts within it) before sleeping, and the
 * blocks go to whichever thread asks first. Each block writes its own results, so they do not
 * depend on which thread ran it.
 *
 * claim packs (generation << 32 | next block): a thread takes a block with a compare-and-swap that
 * also checks the generation, so a worker late for one loop can never take a block of the next.
 * The loops are kept by generation parity: the caller writes the next loop's slot while a late
 * worker may still read the current one. The caller waits only for the blocks taken, never for a
 * worker to wake. One loop runs at a time; a caller that finds the pool busy (another thread of the
 * process making a spec) runs its blocks alone. A forked child starts with no workers
 * (pthread_atfork) and makes its own: no OpenMP here, whose runtime breaks in forked children.
 */
#ifndef LWM_BLOCK_POOL_H
#define LWM_BLOCK_POOL_H

/* needs _GNU_SOURCE (pthread_setname_np), defined before the first system header of the file that includes this */

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define POOL_MAX_WORKERS 63
#define POOL_THREAD_NAME "lwm-spec-pool" /* what top -H and /proc/PID/task/TID/comm show */
#define POOL_SPIN_NS 1000000      /* a worker's spin after a loop before it sleeps */
#define POOL_YIELD_AFTER_NS 50000 /* the caller's wait for a taken block spins this long, then yields its core */

typedef void (*block_fn)(const void *job, int64_t block);

struct pool_loop {
    block_fn run;    /* run and job are read only after a block of this loop is claimed */
    const void *job;
    _Atomic int64_t blocks; /* blocks and workers may be read by a worker late by two loops, while the slot is rewritten */
    _Atomic int workers;    /* workers 0 .. workers - 1 take part */
};

static struct {
    pthread_mutex_t lock; /* guards started, sleeping and the wake-up */
    pthread_cond_t wake;
    pthread_mutex_t busy; /* held by the caller of the loop that runs */
    _Atomic uint64_t claim;
    _Atomic int64_t finished; /* blocks of the running loop done */
    struct pool_loop loops[2];
    int started;
    int sleeping;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, 0, 0, {{0}}, 0, 0};

static pthread_once_t pool_fork_handler = PTHREAD_ONCE_INIT;

static inline uint32_t generation_of(uint64_t claim) { return (uint32_t)(claim >> 32); }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Runs blocks of the loop of this generation until none is left or the generation has passed. */
static void take_blocks(uint32_t generation) {
    const struct pool_loop *loop = &pool.loops[generation & 1];
    uint64_t claim = atomic_load_explicit(&pool.claim, memory_order_acquire);
    while (generation_of(claim) == generation && (int64_t)(claim & 0xffffffffu) < atomic_load_explicit(&loop->blocks, memory_order_relaxed)) {
        if (atomic_compare_exchange_weak_explicit(&pool.claim, &claim, claim + 1, memory_order_acq_rel, memory_order_acquire)) {
            loop->run(loop->job, (int64_t)(claim & 0xffffffffu));
            atomic_fetch_add_explicit(&pool.finished, 1, memory_order_release);
            claim = atomic_load_explicit(&pool.claim, memory_order_acquire);
        }
    }
}

struct worker_start {
    int index;
    uint32_t seen; /* the generation before the first loop it is to run */
};

static void *pool_worker(void *start) {
    const int index = ((struct worker_start *)start)->index;
    uint32_t seen = ((struct worker_start *)start)->seen;
    free(start);
    for (;;) {
        const uint64_t spin_until = now_ns() + POOL_SPIN_NS;
        uint32_t generation;
        while ((generation = generation_of(atomic_load_explicit(&pool.claim, memory_order_acquire))) == seen) {
            if (now_ns() > spin_until) {
                pthread_mutex_lock(&pool.lock);
                pool.sleeping++;
                while ((generation = generation_of(atomic_load(&pool.claim))) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
                pool.sleeping--;
                pthread_mutex_unlock(&pool.lock);
                break;
            }
            cpu_relax();
        }
        seen = generation;
        if (index < atomic_load_explicit(&pool.loops[generation & 1].workers, memory_order_relaxed)) take_blocks(generation);
    }
    return NULL;
}

static void pool_reset_in_child(void) {
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_mutex_init(&pool.busy, NULL);
    pool.started = 0;
    pool.sleeping = 0;
}

static void pool_register_fork_handler(void) { pthread_atfork(NULL, NULL, pool_reset_in_child); }

/* Starts workers up to ``workers`` (fewer when a thread cannot be made). Called holding busy. */
static int pool_start_workers(int workers, uint32_t seen) {
    pthread_once(&pool_fork_handler, pool_register_fork_handler);
    pthread_mutex_lock(&pool.lock);
    while (pool.started < workers) {
        struct worker_start *start = malloc(sizeof *start);
        pthread_t thread;
        if (start == NULL) break;
        *start = (struct worker_start){pool.started, seen};
        if (pthread_create(&thread, NULL, pool_worker, start) != 0) {
            free(start);
            break;
        }
        pthread_setname_np(thread, POOL_THREAD_NAME);
        pthread_detach(thread);
        pool.started++;
    }
    const int started = pool.started < workers ? pool.started : workers;
    pthread_mutex_unlock(&pool.lock);
    return started;
}

/* run(job, block) for every block in [0, blocks), on up to ``threads`` threads: this one and workers. */
static void run_blocks(int threads, int64_t blocks, block_fn run, const void *job) {
    if (threads <= 1 || blocks <= 1 || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int64_t block = 0; block < blocks; block++) run(job, block);
        return;
    }
    const uint32_t current = generation_of(atomic_load(&pool.claim));
    const int workers = pool_start_workers(threads - 1 < POOL_MAX_WORKERS ? threads - 1 : POOL_MAX_WORKERS, current);
    const uint32_t generation = current + 1;
    struct pool_loop *loop = &pool.loops[generation & 1];
    loop->run = run;
    loop->job = job;
    atomic_store_explicit(&loop->blocks, blocks, memory_order_relaxed);
    atomic_store_explicit(&loop->workers, workers, memory_order_relaxed);
    atomic_store_explicit(&pool.finished, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.claim, (uint64_t)generation << 32, memory_order_release);
    pthread_mutex_lock(&pool.lock);
    if (pool.sleeping) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    take_blocks(generation);
    const uint64_t yield_after = now_ns() + POOL_YIELD_AFTER_NS;
    while (atomic_load_explicit(&pool.finished, memory_order_acquire) < blocks) {
        if (now_ns() > yield_after) sched_yield(); /* a worker that lost its core mid-block needs one */
        else cpu_relax();
    }
    pthread_mutex_unlock(&pool.busy);
}

#endif
