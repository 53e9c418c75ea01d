/*
 * bench-driver: drives a running conveyor node from outside, as a client
 * would.
 *
 * --mode run keeps W instances in flight (a closed loop): it publishes a
 * request to <prefix>.request.<process> with Orch-Request-Id, and each
 * <prefix>.event.<process>.<id>.instance.completed (or .failed) it receives
 * starts the next instance in the same slot. After a warm-up it counts
 * completions for a fixed window and prints instances/s, steps/s (instances
 * times --steps), and the p50/p99 instance latency (request published to
 * completion event received). Per-step latency comes from bench-module's
 * control subject; see bench_module.c for its definition.
 *
 * --mode park measures the node's memory for instances that wait on a
 * module that never replies. The driver itself subscribes to the step's
 * dispatch subject and plays that module. For each count in --counts it submits
 * instances until that many have been dispatched, then reads VmRSS of
 * --node-pid and prints the growth over the idle node per instance.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"

#define PROGRAM "bench-driver"
#define MAX_INFLIGHT 4096
/* A run with no completion for this long has stalled, and its numbers are void. */
#define STALL_NS (10LL * 1000000000LL)
/* Park mode: requests submitted but not yet seen dispatched, at most. */
#define PARK_AHEAD 2000
#define PARK_DEADLINE_NS (180LL * 1000000000LL)

typedef struct options {
    const char *mode;
    const char *url;
    const char *prefix;
    const char *process;
    const char *control;
    const char *subsystem;
    const char *counts;
    int inflight;
    int steps;
    int warmup_s;
    int duration_s;
    int body_size;
    int node_pid;
} options;

typedef struct slot {
    unsigned long long seq; /* sequence number of the instance in flight */
    int64_t started_ns;
    bool busy;
} slot;

typedef struct driver {
    const options *opt;
    natsConnection *nc;
    char run[24];
    char request_subject[256];
    char body[8192];
    size_t body_length;

    pthread_mutex_t lock;
    pthread_cond_t changed;
    slot slots[MAX_INFLIGHT];
    int busy_count;
    bool measuring;
    bool stopping;
    unsigned long long completed;     /* in the window */
    unsigned long long failed;        /* in the whole run */
    unsigned long long total;         /* in the whole run */
    int64_t last_completion_ns;
    bench_hist hist;

    /* park mode */
    unsigned long long submitted;
    unsigned long long dispatched;
} driver;

static void publish_request(driver *d, int index, unsigned long long seq)
{
    char id[96];
    natsMsg *msg = NULL;
    snprintf(id, sizeof id, "%s-%d-%llu", d->run, index, seq);
    natsStatus s = natsMsg_Create(&msg, d->request_subject, NULL, d->body, (int)d->body_length);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Request-Id", id);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(d->nc, msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "publish to %s failed: %s", d->request_subject, natsStatus_GetText(s));
}

/* Finds "<run>-<slot>-<seq>" as the fourth token of an event subject. */
static bool parse_event_subject(const driver *d, const char *subject, int *index,
                                unsigned long long *seq)
{
    const char *p = subject;
    for (int dots = 0; dots < 3; p++) {
        if (*p == '\0')
            return false;
        if (*p == '.')
            dots++;
    }
    size_t run_length = strlen(d->run);
    if (strncmp(p, d->run, run_length) != 0 || p[run_length] != '-')
        return false;
    char *end = NULL;
    long n = strtol(p + run_length + 1, &end, 10);
    if (*end != '-' || n < 0 || n >= d->opt->inflight)
        return false;
    *index = (int)n;
    *seq = strtoull(end + 1, &end, 10);
    return *end == '.';
}

static void on_finished(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    driver *d = closure;
    int64_t now = bench_now_ns();
    int index = 0;
    unsigned long long seq = 0;
    bool failed = strstr(natsMsg_GetSubject(msg), ".instance.failed") != NULL;
    bool next = false;

    if (parse_event_subject(d, natsMsg_GetSubject(msg), &index, &seq)) {
        pthread_mutex_lock(&d->lock);
        slot *s = &d->slots[index];
        if (s->busy && s->seq == seq) {
            d->total++;
            d->last_completion_ns = now;
            if (failed)
                d->failed++;
            if (d->measuring) {
                d->completed++;
                bench_hist_record(&d->hist, now - s->started_ns);
            }
            if (d->stopping) {
                s->busy = false;
                d->busy_count--;
                pthread_cond_broadcast(&d->changed);
            } else {
                s->seq++;
                s->started_ns = bench_now_ns();
                seq = s->seq;
                next = true;
            }
        }
        pthread_mutex_unlock(&d->lock);
    }
    if (failed)
        fprintf(stderr, PROGRAM ": instance failed: %.*s\n", natsMsg_GetDataLength(msg),
                natsMsg_GetData(msg));
    natsMsg_Destroy(msg);
    if (next)
        publish_request(d, index, seq);
}

static void control_request(driver *d, const char *command, char *answer, size_t size)
{
    natsMsg *reply = NULL;
    answer[0] = '\0';
    if (d->opt->control == NULL)
        return;
    natsStatus s = natsConnection_RequestString(&reply, d->nc, d->opt->control, command, 5000);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "control request '%s' to %s failed: %s", command, d->opt->control,
                   natsStatus_GetText(s));
    snprintf(answer, size, "%.*s", natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
}

/* Waits seconds while instances complete; fails the run when they stop completing. */
static void wait_running(driver *d, int seconds)
{
    int64_t end = bench_now_ns() + (int64_t)seconds * 1000000000LL;
    while (bench_now_ns() < end) {
        bench_sleep_ms(50);
        pthread_mutex_lock(&d->lock);
        int64_t last = d->last_completion_ns;
        unsigned long long failed = d->failed;
        pthread_mutex_unlock(&d->lock);
        if (bench_now_ns() - last > STALL_NS)
            bench_fail(PROGRAM, "no instance of %s completed for 10 s; is the node running?",
                       d->opt->process);
        if (failed > 0)
            bench_fail(PROGRAM, "%llu instances of %s failed; see the node's log", failed,
                       d->opt->process);
    }
}

static void subscribe_finished(driver *d, natsSubscription **completed, natsSubscription **failed)
{
    char subject[512];
    snprintf(subject, sizeof subject, "%s.event.%s.*.instance.completed", d->opt->prefix,
             d->opt->process);
    natsStatus s = natsConnection_Subscribe(completed, d->nc, subject, on_finished, d);
    snprintf(subject, sizeof subject, "%s.event.%s.*.instance.failed", d->opt->prefix,
             d->opt->process);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(failed, d->nc, subject, on_finished, d);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(*completed, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(d->nc, 5000);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "cannot subscribe to events: %s", natsStatus_GetText(s));
}

static int run_closed_loop(driver *d)
{
    const options *opt = d->opt;
    natsSubscription *completed = NULL, *failed = NULL;
    char report[256];
    subscribe_finished(d, &completed, &failed);

    pthread_mutex_lock(&d->lock);
    d->last_completion_ns = bench_now_ns();
    for (int i = 0; i < opt->inflight; i++) {
        d->slots[i].busy = true;
        d->slots[i].started_ns = bench_now_ns();
        d->busy_count++;
    }
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; i < opt->inflight; i++)
        publish_request(d, i, 0);

    wait_running(d, opt->warmup_s);
    control_request(d, "reset", report, sizeof report);
    pthread_mutex_lock(&d->lock);
    d->measuring = true;
    d->completed = 0;
    bench_hist_reset(&d->hist);
    int64_t start = bench_now_ns();
    pthread_mutex_unlock(&d->lock);

    wait_running(d, opt->duration_s);

    pthread_mutex_lock(&d->lock);
    d->measuring = false;
    int64_t window = bench_now_ns() - start;
    unsigned long long completed_count = d->completed;
    bench_hist hist = d->hist;
    d->stopping = true;
    pthread_mutex_unlock(&d->lock);
    control_request(d, "report", report, sizeof report);

    /* Let the instances in flight finish, so the next run starts on an idle node. */
    int64_t deadline = bench_now_ns() + STALL_NS;
    pthread_mutex_lock(&d->lock);
    while (d->busy_count > 0 && bench_now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->changed, &d->lock, &ts);
    }
    int left = d->busy_count;
    pthread_mutex_unlock(&d->lock);

    double seconds = (double)window / 1e9;
    double rate = (double)completed_count / seconds;
    printf("instances=%llu window_s=%.3f instances_per_s=%.1f steps_per_s=%.1f "
           "inst_p50_us=%.1f inst_p99_us=%.1f left_in_flight=%d %s\n",
           completed_count, seconds, rate, rate * opt->steps,
           (double)bench_hist_quantile(&hist, 0.50) / 1000.0,
           (double)bench_hist_quantile(&hist, 0.99) / 1000.0, left, report);
    natsSubscription_Destroy(completed);
    natsSubscription_Destroy(failed);
    return left == 0 ? 0 : 1;
}

static void on_dispatch(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    driver *d = closure;
    pthread_mutex_lock(&d->lock);
    d->dispatched++;
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    natsMsg_Destroy(msg);
}

/* Waits until cond holds or the deadline passes; returns whether it holds. Called with the lock held. */
static bool wait_until(driver *d, bool (*cond)(const driver *, unsigned long long),
                       unsigned long long target, int64_t deadline)
{
    while (!cond(d, target) && bench_now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->changed, &d->lock, &ts);
    }
    return cond(d, target);
}

static bool room_to_submit(const driver *d, unsigned long long unused)
{
    (void)unused;
    return d->submitted - d->dispatched < PARK_AHEAD;
}

static bool all_dispatched(const driver *d, unsigned long long target)
{
    return d->dispatched >= target;
}

/* Submits instances until target have been dispatched to the silent subscriber. */
static void park_until(driver *d, unsigned long long target, int64_t deadline)
{
    while (d->submitted < target) {
        pthread_mutex_lock(&d->lock);
        bool room = wait_until(d, room_to_submit, 0, deadline);
        pthread_mutex_unlock(&d->lock);
        if (!room)
            bench_fail(PROGRAM, "only %llu of %llu parked instances were dispatched in time",
                       d->dispatched, d->submitted);
        publish_request(d, 0, d->submitted);
        d->submitted++;
    }
    natsConnection_FlushTimeout(d->nc, 5000);
    pthread_mutex_lock(&d->lock);
    bool done = wait_until(d, all_dispatched, target, deadline);
    pthread_mutex_unlock(&d->lock);
    if (!done)
        bench_fail(PROGRAM, "only %llu of %llu parked instances were dispatched in time",
                   d->dispatched, target);
}

static int run_park(driver *d)
{
    const options *opt = d->opt;
    natsSubscription *sub = NULL;
    char subject[256];
    snprintf(subject, sizeof subject, "%s.dispatch.%s", opt->prefix, opt->subsystem);
    natsStatus s = natsConnection_Subscribe(&sub, d->nc, subject, on_dispatch, d);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(d->nc, 5000);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "cannot subscribe to %s: %s", subject, natsStatus_GetText(s));

    long long idle = bench_rss_bytes(opt->node_pid);
    if (idle < 0)
        bench_fail(PROGRAM, "cannot read VmRSS of pid %d", opt->node_pid);
    int64_t deadline = bench_now_ns() + PARK_DEADLINE_NS;
    const char *p = opt->counts;
    while (*p != '\0') {
        char *end = NULL;
        unsigned long long target = strtoull(p, &end, 10);
        if (end == p || target == 0)
            bench_fail(PROGRAM, "--counts must be a comma-separated list of counts, got '%s'",
                       opt->counts);
        int64_t started = bench_now_ns();
        park_until(d, target, deadline);
        /* The node publishes step.dispatched after the dispatch itself; give it a moment. */
        bench_sleep_ms(500);
        long long rss = bench_rss_bytes(opt->node_pid);
        double per = (double)(rss - idle) / (double)target;
        printf("parked=%llu idle_rss=%lld rss=%lld bytes_per_instance=%.0f "
               "beyond_request=%.0f submit_s=%.1f\n",
               target, idle, rss, per, per - (double)d->body_length,
               (double)(bench_now_ns() - started) / 1e9);
        fflush(stdout);
        p = *end == ',' ? end + 1 : end;
    }
    natsSubscription_Destroy(sub);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: " PROGRAM " --mode run --nats URL --process NAME [--inflight W] [--steps N]\n"
            "                    [--warmup S] [--duration S] [--control SUBJECT]\n"
            "       " PROGRAM " --mode park --nats URL --process NAME --subsystem NAME\n"
            "                    --node-pid PID --counts N,N...\n"
            "       common: [--prefix orch] [--body-size BYTES]\n");
    exit(2);
}

static void parse_options(options *opt, int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *arg = argv[i], *value = argv[i + 1];
        if (strcmp(arg, "--mode") == 0)
            opt->mode = value;
        else if (strcmp(arg, "--nats") == 0)
            opt->url = value;
        else if (strcmp(arg, "--prefix") == 0)
            opt->prefix = value;
        else if (strcmp(arg, "--process") == 0)
            opt->process = value;
        else if (strcmp(arg, "--control") == 0)
            opt->control = value;
        else if (strcmp(arg, "--subsystem") == 0)
            opt->subsystem = value;
        else if (strcmp(arg, "--counts") == 0)
            opt->counts = value;
        else if (strcmp(arg, "--inflight") == 0)
            opt->inflight = (int)bench_parse_number(arg, value, 1, MAX_INFLIGHT);
        else if (strcmp(arg, "--steps") == 0)
            opt->steps = (int)bench_parse_number(arg, value, 1, 1000);
        else if (strcmp(arg, "--warmup") == 0)
            opt->warmup_s = (int)bench_parse_number(arg, value, 0, 600);
        else if (strcmp(arg, "--duration") == 0)
            opt->duration_s = (int)bench_parse_number(arg, value, 1, 600);
        else if (strcmp(arg, "--body-size") == 0)
            opt->body_size = (int)bench_parse_number(arg, value, 512, 8000);
        else if (strcmp(arg, "--node-pid") == 0)
            opt->node_pid = (int)bench_parse_number(arg, value, 1, 1 << 30);
        else
            usage();
    }
    if (argc % 2 != 1 || opt->mode == NULL || opt->url == NULL || opt->process == NULL)
        usage();
    /* An empty --control means no module to ask, as for a module served over HTTP. */
    if (opt->control != NULL && opt->control[0] == '\0')
        opt->control = NULL;
    if (strcmp(opt->mode, "park") == 0 &&
        (opt->subsystem == NULL || opt->counts == NULL || opt->node_pid == 0))
        usage();
}

int main(int argc, char **argv)
{
    static driver d;
    options opt = {.prefix = "orch", .inflight = 1, .steps = 3, .warmup_s = 2, .duration_s = 5,
                   .body_size = 1024};
    parse_options(&opt, argc, argv);

    d.opt = &opt;
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.changed, NULL);
    /* Instance ids must be unique across runs against one node: the memory store remembers them. */
    snprintf(d.run, sizeof d.run, "b%lld", (long long)(bench_now_ns() / 1000) % 1000000000000LL);
    snprintf(d.request_subject, sizeof d.request_subject, "%s.request.%s", opt.prefix,
             opt.process);
    d.body_length = bench_request_body(d.body, sizeof d.body, (size_t)opt.body_size);
    if (d.body_length == 0)
        bench_fail(PROGRAM, "cannot build a request body of %d bytes", opt.body_size);
    d.nc = bench_connect(opt.url, PROGRAM, true);

    int code = 0;
    if (strcmp(opt.mode, "run") == 0)
        code = run_closed_loop(&d);
    else if (strcmp(opt.mode, "park") == 0)
        code = run_park(&d);
    else
        usage();
    fflush(stdout);
    natsConnection_Destroy(d.nc);
    nats_Close();
    return code;
}
