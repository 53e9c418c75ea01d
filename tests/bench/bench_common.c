/*
 * Helpers shared by the benchmark programs; see bench_common.h.
 */
#include "bench_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void bench_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

void bench_hist_reset(bench_hist *hist)
{
    memset(hist, 0, sizeof *hist);
}

/*
 * Values below 128 have a bucket each. Above, a value whose highest set
 * bit is b goes to shift e = b - 6, and its top 7 bits (64 to 127) pick
 * one of 64 buckets of width 2^e: bucket e * 64 + (value >> e).
 */
static size_t bucket_of(int64_t value)
{
    if (value < 128)
        return value < 0 ? 0 : (size_t)value;
    uint64_t v = (uint64_t)value;
    int shift = 63 - __builtin_clzll(v) - 6;
    if (shift > BENCH_HIST_MAX_SHIFT)
        return BENCH_HIST_BUCKETS - 1;
    return (size_t)shift * 64 + (size_t)(v >> shift);
}

static int64_t bucket_middle(size_t index)
{
    if (index < 128)
        return (int64_t)index;
    int shift = (int)(index / 64) - 1;
    uint64_t mantissa = index - (size_t)shift * 64;
    return (int64_t)((mantissa << shift) + (1ULL << shift) / 2);
}

void bench_hist_record(bench_hist *hist, int64_t value_ns)
{
    hist->counts[bucket_of(value_ns)]++;
    hist->count++;
}

void bench_hist_merge(bench_hist *into, const bench_hist *from)
{
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->count += from->count;
}

int64_t bench_hist_quantile(const bench_hist *hist, double q)
{
    if (hist->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)hist->count);
    if (rank >= hist->count)
        rank = hist->count - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += hist->counts[i];
        if (seen > rank)
            return bucket_middle(i);
    }
    return bucket_middle(BENCH_HIST_BUCKETS - 1);
}

/*
 * The fields are those a CRM web form sends and that the bench rules test.
 * COMMENTS is filled with repeated sentence text to reach the exact size.
 */
size_t bench_request_body(char *buf, size_t buf_size, size_t size)
{
    static const char head[] =
        "{\"TITLE\":\"Question about delivery dates\",\"NAME\":\"Anna\","
        "\"LAST_NAME\":\"Sokolova\",\"PHONE\":\"+7 900 000-12-34\","
        "\"EMAIL\":\"anna.sokolova@example.com\",\"CONTACT_ID\":\"0\","
        "\"UF_CRM_DEAL_ID\":\"4127\",\"UF_CRM_SOURCE\":\"WEB\",\"UTM_SOURCE\":\"newsletter\","
        "\"AMOUNT\":\"15400\",\"CURRENCY\":\"RUB\",\"CITY\":\"Kazan\","
        "\"TAGS\":[\"wholesale\",\"repeat\"],\"COMMENTS\":\"";
    static const char tail[] = "\"}";
    static const char filler[] = "When will the desks for the new branch arrive? ";
    size_t fixed = sizeof head - 1 + sizeof tail - 1;

    if (size < 512 || size < fixed || buf_size < size + 1)
        return 0;
    memcpy(buf, head, sizeof head - 1);
    size_t at = sizeof head - 1;
    size_t pad = size - fixed;
    for (size_t i = 0; i < pad; i++)
        buf[at + i] = filler[i % (sizeof filler - 1)];
    at += pad;
    memcpy(buf + at, tail, sizeof tail - 1);
    at += sizeof tail - 1;
    buf[at] = '\0';
    return at;
}

void bench_fail(const char *program, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

natsConnection *bench_connect(const char *url, const char *name, bool send_asap)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(opts, send_asap);
    /* A benchmark that loses its server has no result worth keeping. */
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, false);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK)
        bench_fail(name, "cannot connect to NATS at %s: %s", url, natsStatus_GetText(s));
    return nc;
}

long long bench_rss_bytes(int pid)
{
    char path[64];
    char line[256];
    long long kib = -1;

    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/status");
    else
        snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtoll(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

bool bench_parse_switch(const char *option, const char *text)
{
    if (strcasecmp(text, "on") == 0 || strcmp(text, "1") == 0 || strcasecmp(text, "true") == 0)
        return true;
    if (strcasecmp(text, "off") == 0 || strcmp(text, "0") == 0 || strcasecmp(text, "false") == 0)
        return false;
    bench_fail("bench", "%s must be on or off, got '%s'", option, text);
}

long long bench_parse_number(const char *option, const char *text, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < min || n > max)
        bench_fail("bench", "%s must be a whole number from %lld to %lld, got '%s'", option, min,
                   max, text);
    return n;
}

json_t *bench_parse_json(const char *program, const char *text)
{
    json_error_t error;
    json_t *value = json_loads(text, 0, &error);
    if (value == NULL)
        bench_fail(program, "invalid built-in JSON: %s", error.text);
    return value;
}
