/*
 * bench-module: the module every benchmark chains, for conveyor and for the
 * floor alike. It subscribes to <prefix>.dispatch.<subsystem> in the queue
 * group "bench-module" and replies to each step at once, on the message's
 * reply subject, with one small fixed JSON object. With --silent it never
 * replies, so steps stay parked.
 *
 * It also measures per-step latency. For the whole suite that is the time
 * from this module receiving step k of an instance to it receiving step
 * k+1 of the same instance. It spans one module round trip plus whatever
 * the orchestrator does between the reply and the next dispatch. The instance
 * comes from the Orch-Instance header, which conveyor and the floor both
 * send. The first step of an instance gives no sample.
 *
 * Control requests on --control SUBJECT: "reset" clears the counters and
 * the histogram; "report" replies with
 * `received=N samples=N step_p50_ns=N step_p99_ns=N`.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define PROGRAM "bench-module"
#define QUEUE_GROUP "bench-module"
/* Slots of the instance table; a power of two well above any in-flight count the suite uses. */
#define TABLE_SLOTS 16384
#define INSTANCE_ID_MAX 72

static const char reply_body[] =
    "{\"ID\":\"4127\",\"STAGE_ID\":\"C1:NEW\",\"OPPORTUNITY\":\"15400\",\"ASSIGNED_BY_ID\":\"7\"}";

/* When the module last received a step of one instance. */
typedef struct last_seen {
    char instance[INSTANCE_ID_MAX];
    int64_t at_ns;
} last_seen;

typedef struct module_state {
    natsConnection *nc;
    bool silent;
    /* Written only by the dispatch subscription's thread. */
    last_seen *table;
    /* Guards the counters and histogram, which the control thread reads and resets. */
    pthread_mutex_t lock;
    unsigned long long received;
    bench_hist hist;
} module_state;

static uint32_t hash_text(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

/*
 * Returns the gap since the previous step of instance, or -1 when this is
 * its first step seen. The table is direct-mapped: two instances in flight
 * that share a slot cost a sample, never a wrong one, because the whole id
 * is compared.
 */
static int64_t note_step(module_state *m, const char *instance, int64_t now)
{
    last_seen *slot = &m->table[hash_text(instance) & (TABLE_SLOTS - 1)];
    int64_t gap = -1;
    if (strcmp(slot->instance, instance) == 0)
        gap = now - slot->at_ns;
    else
        snprintf(slot->instance, sizeof slot->instance, "%s", instance);
    slot->at_ns = now;
    return gap;
}

static void on_step(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    module_state *m = closure;
    int64_t now = bench_now_ns();
    const char *instance = NULL;
    int64_t gap = -1;

    if (natsMsgHeader_Get(msg, "Orch-Instance", &instance) == NATS_OK && instance != NULL)
        gap = note_step(m, instance, now);
    pthread_mutex_lock(&m->lock);
    m->received++;
    if (gap >= 0)
        bench_hist_record(&m->hist, gap);
    pthread_mutex_unlock(&m->lock);

    const char *reply = natsMsg_GetReply(msg);
    if (!m->silent && reply != NULL && reply[0] != '\0') {
        natsStatus s = natsConnection_Publish(nc, reply, reply_body, (int)sizeof reply_body - 1);
        if (s != NATS_OK)
            fprintf(stderr, PROGRAM ": reply to %s failed: %s\n", reply, natsStatus_GetText(s));
    }
    natsMsg_Destroy(msg);
}

static void on_control(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    module_state *m = closure;
    char answer[256];
    const char *command = natsMsg_GetData(msg);
    int length = natsMsg_GetDataLength(msg);

    pthread_mutex_lock(&m->lock);
    if (length == 5 && memcmp(command, "reset", 5) == 0) {
        m->received = 0;
        bench_hist_reset(&m->hist);
        snprintf(answer, sizeof answer, "ok");
    } else {
        snprintf(answer, sizeof answer, "received=%llu samples=%llu step_p50_ns=%lld step_p99_ns=%lld",
                 m->received, (unsigned long long)m->hist.count,
                 (long long)bench_hist_quantile(&m->hist, 0.50),
                 (long long)bench_hist_quantile(&m->hist, 0.99));
    }
    pthread_mutex_unlock(&m->lock);
    if (natsMsg_GetReply(msg) != NULL)
        natsConnection_PublishString(nc, natsMsg_GetReply(msg), answer);
    natsMsg_Destroy(msg);
}

static void usage(void)
{
    fprintf(stderr, "usage: " PROGRAM " --nats URL --subsystem NAME [--prefix orch]\n"
                    "                    [--control SUBJECT] [--silent] [--asap on|off]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *subsystem = NULL, *prefix = "orch", *control = NULL;
    bool asap = true;
    module_state m = {.silent = false};

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--silent") == 0) {
            m.silent = true;
            continue;
        }
        if (value == NULL)
            usage();
        if (strcmp(arg, "--nats") == 0)
            url = value;
        else if (strcmp(arg, "--subsystem") == 0)
            subsystem = value;
        else if (strcmp(arg, "--prefix") == 0)
            prefix = value;
        else if (strcmp(arg, "--control") == 0)
            control = value;
        else if (strcmp(arg, "--asap") == 0)
            asap = bench_parse_switch("--asap", value);
        else
            usage();
        i++;
    }
    if (url == NULL || subsystem == NULL)
        usage();

    /* SIGINT and SIGTERM are taken by sigwait below, never by nats.c's threads. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    m.table = calloc(TABLE_SLOTS, sizeof *m.table);
    if (m.table == NULL)
        bench_fail(PROGRAM, "out of memory");
    pthread_mutex_init(&m.lock, NULL);
    m.nc = bench_connect(url, PROGRAM, asap);

    char subject[256];
    snprintf(subject, sizeof subject, "%s.dispatch.%s", prefix, subsystem);
    natsSubscription *steps = NULL, *commands = NULL;
    natsStatus s = natsConnection_QueueSubscribe(&steps, m.nc, subject, QUEUE_GROUP, on_step, &m);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(steps, -1, -1);
    if (s == NATS_OK && control != NULL)
        s = natsConnection_Subscribe(&commands, m.nc, control, on_control, &m);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(m.nc, 5000);
    if (s != NATS_OK)
        bench_fail(PROGRAM, "cannot subscribe to %s: %s", subject, natsStatus_GetText(s));
    printf("ready subject=%s silent=%d asap=%d\n", subject, m.silent, asap);
    fflush(stdout);

    int received_signal = 0;
    sigwait(&signals, &received_signal);

    natsSubscription_Destroy(steps);
    natsSubscription_Destroy(commands);
    natsConnection_Destroy(m.nc);
    nats_Close();
    pthread_mutex_destroy(&m.lock);
    free(m.table);
    return 0;
}
