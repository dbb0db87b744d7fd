/* Shared by the stand-in driver libraries (tests/stubs/fake_*.c): the switches
 * that make a chosen call fail with a chosen error, the loud end of a contract
 * violation, and the device-memory registry libcuda exports to the others.
 *
 * Switches (environment, read once per library):
 *   LADDERD_STANDIN_FAIL="NAME@N=CODE,NAME@N+=CODE,NAME=CODE"
 *     the N-th call of entry point NAME (1-based, counted per process) returns
 *     CODE; "N+" fails that call and every later one; no "@N" fails them all.
 *     Each injected failure is written to stderr once, as
 *     "ladderd stand-in: injected CODE into NAME (call N)".
 *   A contract violation (out-of-bounds device access, use after free, an
 *   unpaired map/unmap, ...) writes "ladderd stand-in VIOLATION: ..." and
 *   aborts the process: a test can never pass over one. */
#ifndef LADDERD_STANDIN_H
#define LADDERD_STANDIN_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 1, 2), noreturn)) static void standin_violation(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ladderd stand-in VIOLATION: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    abort();
}

#define STANDIN_MAX_SWITCHES 16
struct standin_switch {
    char name[64];
    long nth;   /* 0: every call */
    int onward; /* also every call after the nth */
    int code;
    long calls;
};
static struct standin_switch standin_switches[STANDIN_MAX_SWITCHES];
static int standin_nswitches = -1;
static pthread_mutex_t standin_fail_mu = PTHREAD_MUTEX_INITIALIZER;

static void standin_parse_switches(void) {
    standin_nswitches = 0;
    const char *env = getenv("LADDERD_STANDIN_FAIL");
    if (!env) return;
    char buf[1024];
    strncpy(buf, env, sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    for (char *save = 0, *tok = strtok_r(buf, ",", &save); tok && standin_nswitches < STANDIN_MAX_SWITCHES;
         tok = strtok_r(0, ",", &save)) {
        struct standin_switch *s = &standin_switches[standin_nswitches];
        memset(s, 0, sizeof *s);
        char *eq = strchr(tok, '=');
        if (!eq) standin_violation("LADDERD_STANDIN_FAIL entry %s has no =CODE", tok);
        *eq = 0;
        s->code = atoi(eq + 1);
        char *at = strchr(tok, '@');
        if (at) {
            *at = 0;
            s->nth = strtol(at + 1, 0, 10);
            s->onward = strchr(at + 1, '+') != 0;
        }
        strncpy(s->name, tok, sizeof s->name - 1);
        standin_nswitches++;
    }
}

/* 0, or the error this call of `name` must return. */
static int standin_fail(const char *name) {
    pthread_mutex_lock(&standin_fail_mu);
    if (standin_nswitches < 0) standin_parse_switches();
    int code = 0;
    for (int i = 0; i < standin_nswitches; i++) {
        struct standin_switch *s = &standin_switches[i];
        if (strcmp(s->name, name) != 0) continue;
        long n = ++s->calls;
        if (s->nth == 0 || n == s->nth || (s->onward && n > s->nth)) {
            code = s->code;
            if (s->nth == 0 || n == s->nth)
                fprintf(stderr, "ladderd stand-in: injected %d into %s (call %ld)\n", code, name, n);
        }
    }
    pthread_mutex_unlock(&standin_fail_mu);
    return code;
}

static long standin_env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, 0, 10) : dflt;
}

/* CUresult codes the ffnvcodec header's short enum lacks (values from cuda.h). */
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_NOT_INITIALIZED 3
#define CUDA_ERROR_INVALID_DEVICE 101
#define CUDA_ERROR_INVALID_IMAGE 200
#define CUDA_ERROR_INVALID_PTX 218
#define CUDA_ERROR_UNSUPPORTED_PTX_VERSION 222
#define CUDA_ERROR_NOT_FOUND 500
#define CUDA_ERROR_NOT_SUPPORTED 801

/* Exported by the stand-in libcuda.so.1 for the other two. */
typedef unsigned long long standin_devptr;
/* The host bytes behind [ptr, ptr+len) of one live allocation; a violation
 * naming `who` otherwise. */
void *standin_resolve(standin_devptr ptr, size_t len, const char *who);
/* An allocation outside the switches (the drivers' own surfaces). */
standin_devptr standin_alloc(size_t bytes);
void standin_free(standin_devptr ptr);
/* NVENC holds (+1) / releases (-1) a registration on the allocation holding ptr;
 * cuMemFree of a held allocation is a violation. */
void standin_hold(standin_devptr ptr, int delta);
/* Runs the queued device work (a stream synchronisation). */
void standin_sync(void);
/* Whether queued, unfinished device work writes into [ptr, ptr+len). */
int standin_pending_write(standin_devptr ptr, size_t len);
/* A violation unless `s` is a live non-blocking stream. */
void standin_check_stream(void *s, const char *call);
/* The current context handle (NVENC checks the device it is given). */
void *standin_context(void);

#endif
