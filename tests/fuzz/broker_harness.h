/* SPDX-License-Identifier: MIT */
/*
 * An in-process pagemapd for the stateful fuzzers: the real broker (every
 * broker/ file but main.c) serving the emulated QEMU machine on a socket in
 * a temporary directory, driven one loop turn at a time from the fuzzer's
 * thread, with raw-protocol clients on the other end. After each input the
 * harness checks the broker's invariants and abort()s when one fails, so
 * libFuzzer reports the input.
 */
#ifndef PAGEMAP_FUZZ_BROKER_HARNESS_H
#define PAGEMAP_FUZZ_BROKER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

extern struct broker fh_broker;

/* Starts the broker once per process (later calls return at once). */
void fh_start(void);
/* A raw control connection, HELLO done when hello; -1 on failure. */
int fh_connect(bool hello);
/* Runs the loop until it has been idle (no event, no job, no copy) for
 * a few turns, or ms milliseconds passed. Whether it went idle. */
bool fh_pump(unsigned ms);
/* Sends one request on a control socket (fds borrowed). 0 or -errno. */
int fh_send(int sock, uint16_t opcode, uint64_t id, const void *p, size_t len, const int *fds,
	    unsigned nfds);
/*
 * Every client gone, the broker must be back where it started: no session,
 * handle, allocation, job, copy, pool byte or per-uid charge left, and as
 * many fds open as before the input. Aborts with a message otherwise.
 */
void fh_check_clean(const char *what);
/* Aborts with a message: a finding. */
void fh_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#endif
