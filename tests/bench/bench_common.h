/*
 * Helpers shared by the benchmark programs: a monotonic clock in
 * nanoseconds, a latency histogram, the 1 KB request body every scenario
 * sends, NATS connection set-up, and reading a process's resident memory.
 *
 * The clock is CLOCK_MONOTONIC, which is one clock for the whole machine,
 * so a time taken in the module and one taken in the driver can be
 * subtracted. Every program prints its results as one line of
 * `key=value` pairs on standard output, which tests/bench/run.sh reads.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t bench_now_ns(void);

/* Sleeps for ms milliseconds (used only for paced polling, never to wait for a condition). */
void bench_sleep_ms(int ms);

/*
 * A log-linear histogram of nanosecond values: 64 sub-buckets per power of
 * two, so a reported percentile is within 1/64 (about 1.6%) of the true
 * value. Values from 0 to about 2^40 ns (18 minutes) are kept exactly in
 * their bucket; larger ones land in the last bucket.
 */
#define BENCH_HIST_MAX_SHIFT 34
#define BENCH_HIST_BUCKETS ((BENCH_HIST_MAX_SHIFT + 2) * 64)

typedef struct bench_hist {
    uint64_t count;
    uint64_t counts[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_reset(bench_hist *hist);
void bench_hist_record(bench_hist *hist, int64_t value_ns);
/* Adds every sample of from into into. */
void bench_hist_merge(bench_hist *into, const bench_hist *from);
/* Returns the value at quantile q (0 to 1) in ns: the middle of its bucket; 0 when empty. */
int64_t bench_hist_quantile(const bench_hist *hist, double q);

/*
 * Writes the benchmark request into buf: a CRM-like JSON object of exactly
 * size bytes (at least 512), padded in its COMMENTS field. Returns the
 * length written, or 0 when size is too small or buf too short.
 */
size_t bench_request_body(char *buf, size_t buf_size, size_t size);

/*
 * Connects to url with send_asap as the flush policy. Exits the program
 * with a message naming url when the connection fails.
 */
natsConnection *bench_connect(const char *url, const char *name, bool send_asap);

/* Returns VmRSS of pid in bytes (pid 0: this process), or -1 when it cannot be read. */
long long bench_rss_bytes(int pid);

/* Parses "on"/"off" (also "1"/"0", "true"/"false"); exits with a message naming option otherwise. */
bool bench_parse_switch(const char *option, const char *text);

/* Parses a whole number in [min, max]; exits with a message naming option otherwise. */
long long bench_parse_number(const char *option, const char *text, long long min, long long max);

/* Prints "program: message" to stderr and exits with status 1. */
/* Parses JSON text built into a benchmark; exits through bench_fail when it is invalid. */
json_t *bench_parse_json(const char *program, const char *text);

void bench_fail(const char *program, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
