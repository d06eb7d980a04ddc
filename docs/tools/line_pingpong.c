/* The cross-core round trip of one cache line, which bounds every hand-off between two cores.
 *
 * Two threads, pinned to CPUs 0 and 1, take turns storing to one 64-byte line: each waits until
 * it sees the other's store, then stores. Prints the mean time of a round trip (two hand-offs).
 *
 *   cc -O2 -pthread docs/tools/line_pingpong.c -o /tmp/line_pingpong && /tmp/line_pingpong
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define ROUNDS 2000000L

static _Alignas(128) _Atomic long turn;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *echo(void *unused) {
    (void)unused;
    pin(1);
    for (long i = 0; i < ROUNDS; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1) {
        }
        atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(void) {
    pthread_t other;
    pthread_create(&other, NULL, echo, NULL);
    pin(0);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < ROUNDS; i++) {
        atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2) {
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    pthread_join(other, NULL);
    double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
    printf("%.1f ns per round trip\n", ns / ROUNDS);
    return 0;
}
