/*
 * bench-floor: the floor conveyor is measured against, an ideal
 * orchestrator with no state store, no rules and no events. Each instance
 * is a chain of --steps request/reply calls to bench-module over plain
 * NATS. Every call sends the same request body and the same four Orch-*
 * headers that conveyor sends.
 *
 * --mode run keeps W instances in flight. By default (--drive callbacks)
 * all of them share one connection and one wildcard reply subscription,
 * <run inbox>.<slot>; a reply's callback sends the slot's next step at
 * once, and after the last step starts the slot's next instance. With
 * --drive threads each instance has its own thread making blocking
 * requests instead. On the 2-core machine of docs/benchmarks.md the two
 * were equal at W=1 and callbacks were faster at W=16 and W=256, so
 * run.sh uses callbacks. --asap sets nats.c's flush policy: on, every
 * publish is written at once; off, nats.c's flusher thread batches writes
 * after a short sleep (1 ms in nats.c 3.4.1).
 *
 * --mode park holds --counts instances, each with its own copy of the
 * request, waiting for replies that never come (run bench-module --silent
 * on the subsystem), and prints its own VmRSS growth per instance.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define PROGRAM "bench-floor"
#define MAX_INFLIGHT 4096
#define STALL_NS (10LL * 1000000000LL)

typedef struct options {
    const char *mode;
    const char *url;
    const char *prefix;
    const char *subsystem;
    const char *control;
    const char *counts;
    int inflight;
    int steps;
    int warmup_s;
    int duration_s;
    int body_size;
    bool asap;
    bool threads; /* --drive threads: one thread per instance, blocking requests */
} options;

typedef struct slot {
    unsigned long long seq;
    int step; /* 1-based step in flight */
    int64_t started_ns;
    bool busy;
} slot;

typedef struct floor_state {
    const options *opt;
    natsConnection *nc;
    char run[24];
    char inbox[64];
    char subject[256];
    char body[8192];
    size_t body_length;

    pthread_mutex_t lock;
    slot slots[MAX_INFLIGHT];
    int busy_count;
    bool measuring;
    bool stopping;
    unsigned long long completed;
    int64_t last_completion_ns;
    bench_hist hist;
    pthread_t *threads;
} floor_state;

/* A parked instance: what an orchestrator without a store must keep at least. */
typedef struct parked {
    char id[48];
    char *request;
} parked;

/* Builds step number step of an instance, with reply (NULL for none) as its reply subject. */
static natsStatus create_step(natsMsg **out, floor_state *f, const char *reply, int index,
                              unsigned long long seq, int step)
{
    char id[96], step_id[16];
    natsMsg *msg = NULL;
    snprintf(id, sizeof id, "%s-%d-%llu", f->run, index, seq);
    snprintf(step_id, sizeof step_id, "s%d", step);
    natsStatus s = natsMsg_Create(&msg, f->subject, reply, f->body, (int)f->body_length);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Instance", id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Process", "bench-floor");
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Step", step_id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Attempt", "1");
    if (s == NATS_OK)
        *out = msg;
    else
        natsMsg_Destroy(msg);
    return s;
}

static void send_step(floor_state *f, int index, unsigned long long seq, int step)
{
    char reply[128];
    natsMsg *msg = NULL;
    snprintf(reply, sizeof reply, "%s.%d", f->inbox, index);
    natsStatus s = create_step(&msg, f, reply, index, seq, step);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(f->nc, msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "publish to %s failed: %s", f->subject, natsStatus_GetText(s));
}

typedef struct thread_arg {
    floor_state *f;
    int index;
} thread_arg;

/* --drive threads: one instance after another with blocking requests, until stopping. */
static void *drive_slot(void *closure)
{
    thread_arg *arg = closure;
    floor_state *f = arg->f;
    for (unsigned long long seq = 0;; seq++) {
        int64_t started = bench_now_ns();
        for (int step = 1; step <= f->opt->steps; step++) {
            natsMsg *msg = NULL, *reply = NULL;
            natsStatus s = create_step(&msg, f, NULL, arg->index, seq, step);
            if (s == NATS_OK)
                s = natsConnection_RequestMsg(&reply, f->nc, msg, 10000);
            natsMsg_Destroy(msg);
            if (s != NATS_OK)
                bench_fail(PROGRAM, "request to %s failed: %s", f->subject, natsStatus_GetText(s));
            natsMsg_Destroy(reply);
        }
        int64_t now = bench_now_ns();
        pthread_mutex_lock(&f->lock);
        f->last_completion_ns = now;
        if (f->measuring) {
            f->completed++;
            bench_hist_record(&f->hist, now - started);
        }
        bool stop = f->stopping;
        if (stop)
            f->busy_count--;
        pthread_mutex_unlock(&f->lock);
        if (stop)
            return NULL;
    }
}

static void start_threads(floor_state *f)
{
    static thread_arg args[MAX_INFLIGHT];
    f->threads = calloc((size_t)f->opt->inflight, sizeof *f->threads);
    if (f->threads == NULL)
        bench_fail(PROGRAM, "out of memory starting %d threads", f->opt->inflight);
    for (int i = 0; i < f->opt->inflight; i++) {
        args[i] = (thread_arg){.f = f, .index = i};
        if (pthread_create(&f->threads[i], NULL, drive_slot, &args[i]) != 0)
            bench_fail(PROGRAM, "cannot start thread %d", i);
    }
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    floor_state *f = closure;
    const char *subject = natsMsg_GetSubject(msg);
    const char *last = strrchr(subject, '.');
    int index = last != NULL ? atoi(last + 1) : -1;
    bool send = false;
    unsigned long long seq = 0;
    int step = 0;

    if (natsMsg_IsNoResponders(msg))
        bench_fail(PROGRAM, "no module is subscribed to %s", f->subject);
    natsMsg_Destroy(msg);
    if (index < 0 || index >= f->opt->inflight)
        return;

    int64_t now = bench_now_ns();
    pthread_mutex_lock(&f->lock);
    slot *s = &f->slots[index];
    if (s->busy && s->step < f->opt->steps) {
        s->step++;
        send = true;
    } else if (s->busy) {
        f->last_completion_ns = now;
        if (f->measuring) {
            f->completed++;
            bench_hist_record(&f->hist, now - s->started_ns);
        }
        if (f->stopping) {
            s->busy = false;
            f->busy_count--;
        } else {
            s->seq++;
            s->step = 1;
            s->started_ns = now;
            send = true;
        }
    }
    seq = s->seq;
    step = s->step;
    pthread_mutex_unlock(&f->lock);
    if (send)
        send_step(f, index, seq, step);
}

static void control_request(floor_state *f, const char *command, char *answer, size_t size)
{
    natsMsg *reply = NULL;
    answer[0] = '\0';
    if (f->opt->control == NULL)
        return;
    natsStatus s = natsConnection_RequestString(&reply, f->nc, f->opt->control, command, 5000);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "control request '%s' to %s failed: %s", command, f->opt->control,
                   natsStatus_GetText(s));
    snprintf(answer, size, "%.*s", natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
}

static void wait_running(floor_state *f, int seconds)
{
    int64_t end = bench_now_ns() + (int64_t)seconds * 1000000000LL;
    while (bench_now_ns() < end) {
        bench_sleep_ms(50);
        pthread_mutex_lock(&f->lock);
        int64_t last = f->last_completion_ns;
        pthread_mutex_unlock(&f->lock);
        if (bench_now_ns() - last > STALL_NS)
            bench_fail(PROGRAM, "no instance completed for 10 s; is bench-module running?");
    }
}

static int run_chain(floor_state *f)
{
    const options *opt = f->opt;
    natsSubscription *sub = NULL;
    char wildcard[80], report[256];
    snprintf(wildcard, sizeof wildcard, "%s.*", f->inbox);
    natsStatus s = natsConnection_Subscribe(&sub, f->nc, wildcard, on_reply, f);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(f->nc, 5000);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "cannot subscribe to %s: %s", wildcard, natsStatus_GetText(s));

    pthread_mutex_lock(&f->lock);
    f->last_completion_ns = bench_now_ns();
    for (int i = 0; i < opt->inflight; i++) {
        f->slots[i] = (slot){.seq = 0, .step = 1, .started_ns = bench_now_ns(), .busy = true};
        f->busy_count++;
    }
    pthread_mutex_unlock(&f->lock);
    if (opt->threads)
        start_threads(f);
    else {
        for (int i = 0; i < opt->inflight; i++)
            send_step(f, i, 0, 1);
    }

    wait_running(f, opt->warmup_s);
    control_request(f, "reset", report, sizeof report);
    pthread_mutex_lock(&f->lock);
    f->measuring = true;
    f->completed = 0;
    bench_hist_reset(&f->hist);
    int64_t start = bench_now_ns();
    pthread_mutex_unlock(&f->lock);

    wait_running(f, opt->duration_s);

    pthread_mutex_lock(&f->lock);
    f->measuring = false;
    int64_t window = bench_now_ns() - start;
    unsigned long long completed = f->completed;
    bench_hist hist = f->hist;
    f->stopping = true;
    pthread_mutex_unlock(&f->lock);
    control_request(f, "report", report, sizeof report);

    int64_t deadline = bench_now_ns() + STALL_NS;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        int busy = f->busy_count;
        pthread_mutex_unlock(&f->lock);
        if (busy == 0 || bench_now_ns() > deadline)
            break;
        bench_sleep_ms(10);
    }
    if (opt->threads) {
        for (int i = 0; i < opt->inflight; i++)
            pthread_join(f->threads[i], NULL);
        free(f->threads);
    }

    double seconds = (double)window / 1e9;
    double rate = (double)completed / seconds;
    printf("instances=%llu window_s=%.3f instances_per_s=%.1f steps_per_s=%.1f "
           "inst_p50_us=%.1f inst_p99_us=%.1f asap=%d drive=%s %s\n",
           completed, seconds, rate, rate * opt->steps,
           (double)bench_hist_quantile(&hist, 0.50) / 1000.0,
           (double)bench_hist_quantile(&hist, 0.99) / 1000.0, opt->asap,
           opt->threads ? "threads" : "callbacks", report);
    natsSubscription_Destroy(sub);
    return 0;
}

static int run_park(floor_state *f)
{
    const options *opt = f->opt;
    natsSubscription *sub = NULL;
    char wildcard[80];
    snprintf(wildcard, sizeof wildcard, "%s.*", f->inbox);
    /* Replies never come; the subscription is there because an orchestrator would hold one. */
    natsStatus s = natsConnection_Subscribe(&sub, f->nc, wildcard, on_reply, f);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(f->nc, 5000);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "cannot subscribe to %s: %s", wildcard, natsStatus_GetText(s));

    long long idle = bench_rss_bytes(0);
    size_t capacity = 0, count = 0;
    parked *instances = NULL;
    const char *p = opt->counts;
    while (*p != '\0') {
        char *end = NULL;
        unsigned long long target = strtoull(p, &end, 10);
        if (end == p || target == 0)
            bench_fail(PROGRAM, "--counts must be a comma-separated list of counts, got '%s'",
                       opt->counts);
        if (target > capacity) {
            parked *bigger = realloc(instances, target * sizeof *instances);
            if (bigger == NULL)
                bench_fail(PROGRAM, "out of memory parking %llu instances", target);
            instances = bigger;
            capacity = target;
        }
        while (count < target) {
            parked *one = &instances[count];
            snprintf(one->id, sizeof one->id, "%s-0-%zu", f->run, count);
            one->request = malloc(f->body_length + 1);
            if (one->request == NULL)
                bench_fail(PROGRAM, "out of memory parking %llu instances", target);
            memcpy(one->request, f->body, f->body_length + 1);
            send_step(f, 0, count, 1);
            count++;
        }
        natsConnection_FlushTimeout(f->nc, 5000);
        long long rss = bench_rss_bytes(0);
        double per = (double)(rss - idle) / (double)target;
        printf("parked=%llu idle_rss=%lld rss=%lld bytes_per_instance=%.0f beyond_request=%.0f\n",
               target, idle, rss, per, per - (double)f->body_length);
        fflush(stdout);
        p = *end == ',' ? end + 1 : end;
    }
    for (size_t i = 0; i < count; i++)
        free(instances[i].request);
    free(instances);
    natsSubscription_Destroy(sub);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: " PROGRAM " --mode run --nats URL --subsystem NAME [--inflight W] [--steps N]\n"
            "                   [--asap on|off] [--drive callbacks|threads] [--warmup S]\n"
            "                   [--duration S] [--control SUBJECT]\n"
            "       " PROGRAM " --mode park --nats URL --subsystem NAME --counts N,N...\n"
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
        else if (strcmp(arg, "--subsystem") == 0)
            opt->subsystem = value;
        else if (strcmp(arg, "--control") == 0)
            opt->control = value;
        else if (strcmp(arg, "--counts") == 0)
            opt->counts = value;
        else if (strcmp(arg, "--asap") == 0)
            opt->asap = bench_parse_switch(arg, value);
        else if (strcmp(arg, "--drive") == 0 && strcmp(value, "threads") == 0)
            opt->threads = true;
        else if (strcmp(arg, "--drive") == 0 && strcmp(value, "callbacks") == 0)
            opt->threads = false;
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
        else
            usage();
    }
    if (argc % 2 != 1 || opt->mode == NULL || opt->url == NULL || opt->subsystem == NULL)
        usage();
    if (strcmp(opt->mode, "park") == 0 && opt->counts == NULL)
        usage();
}

int main(int argc, char **argv)
{
    static floor_state f;
    options opt = {.prefix = "orch", .inflight = 1, .steps = 3, .warmup_s = 2, .duration_s = 5,
                   .body_size = 1024, .asap = true};
    parse_options(&opt, argc, argv);

    f.opt = &opt;
    pthread_mutex_init(&f.lock, NULL);
    snprintf(f.run, sizeof f.run, "f%lld", (long long)(bench_now_ns() / 1000) % 1000000000000LL);
    snprintf(f.inbox, sizeof f.inbox, "_FLOOR.%s", f.run);
    snprintf(f.subject, sizeof f.subject, "%s.dispatch.%s", opt.prefix, opt.subsystem);
    f.body_length = bench_request_body(f.body, sizeof f.body, (size_t)opt.body_size);
    if (f.body_length == 0)
        bench_fail(PROGRAM, "cannot build a request body of %d bytes", opt.body_size);
    f.nc = bench_connect(opt.url, PROGRAM, opt.asap);

    int code = 0;
    if (strcmp(opt.mode, "run") == 0)
        code = run_chain(&f);
    else if (strcmp(opt.mode, "park") == 0)
        code = run_park(&f);
    else
        usage();
    fflush(stdout);
    natsConnection_Destroy(f.nc);
    nats_Close();
    return code;
}
