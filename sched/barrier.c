/*
 * sched/barrier.c: spin-then-block waiting and the generation-counter barrier.
 *
 * Owns: ts_waitword (a 32-bit word waiters spin on for a bounded time, then
 * futex-wait on) and ts_barrier. Does not: create threads or know about tiles.
 * Why spin then block: a dispatch to spinning workers costs a cache-line
 * transfer (~100 ns); a futex wake costs microseconds. Blocking after the spin
 * budget frees the cores while the orchestrating thread runs OpenBLAS.
 * Lost-wakeup freedom (Dekker): a waiter increments `sleepers` then re-reads
 * `val`; a storer writes `val` then reads `sleepers`, all seq_cst, so at
 * least one of them sees the other. FUTEX_WAIT re-checks `val` in the kernel.
 */
#include "sched.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A spin-loop hint (x86 PAUSE / arm YIELD): lets the sibling hyperthread run
 * and avoids the memory-order mis-speculation flush on loop exit. Inline asm,
 * not an intrinsic, so it needs no ISA flags. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t old)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

void ts_waitword_wait(ts_waitword *w, uint32_t old, uint64_t spin_ns)
{
    if (atomic_load_explicit(&w->val, memory_order_acquire) != old)
        return;
    if (spin_ns) {
        uint64_t t0 = now_ns();
        for (;;) {
            /* One clock read per 64 pauses keeps the vDSO call off the spin path. */
            for (int k = 0; k < 64; k++) {
                cpu_relax();
                if (atomic_load_explicit(&w->val, memory_order_acquire) != old)
                    return;
            }
            if (now_ns() - t0 >= spin_ns)
                break;
        }
    }
    atomic_fetch_add_explicit(&w->sleepers, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&w->val, memory_order_seq_cst) == old)
        futex_wait(&w->val, old);
    atomic_fetch_sub_explicit(&w->sleepers, 1, memory_order_relaxed);
}

void ts_waitword_store(ts_waitword *w, uint32_t v)
{
    atomic_store_explicit(&w->val, v, memory_order_seq_cst);
    if (atomic_load_explicit(&w->sleepers, memory_order_seq_cst) != 0)
        futex_wake_all(&w->val);
}

uint32_t ts_waitword_dec(ts_waitword *w)
{
    uint32_t v = atomic_fetch_sub_explicit(&w->val, 1, memory_order_seq_cst) - 1;
    if (v == 0 && atomic_load_explicit(&w->sleepers, memory_order_seq_cst) != 0)
        futex_wake_all(&w->val);
    return v;
}

void ts_barrier_init(ts_barrier *b, uint32_t n, uint64_t spin_ns)
{
    atomic_init(&b->arrived, 0);
    atomic_init(&b->gen.val, 0);
    atomic_init(&b->gen.sleepers, 0);
    b->n = n ? n : 1;
    b->spin_ns = spin_ns;
}

/* The last arriver resets `arrived` before publishing the new generation, and
 * nobody can arrive for the next round before seeing that generation, so the
 * reset never races with an arrival. acq_rel on `arrived` orders every
 * thread's pre-barrier writes before the last arriver's release of `gen`. */
void ts_barrier_wait(ts_barrier *b)
{
    uint32_t gen = atomic_load_explicit(&b->gen.val, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) + 1 == b->n) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        ts_waitword_store(&b->gen, gen + 1);
        return;
    }
    ts_waitword_wait(&b->gen, gen, b->spin_ns);
}
