#include "node/pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "node/node_internal.h"
#include "node/subjects.h"
#include "node/timers.h"

/* Messages asked for per pull request, and how long one pull waits. */
#define CV_PULL_BATCH 256
#define CV_PULL_EXPIRY_MS 500

/*
 * Messages a puller may have in flight: fetched, and not yet acknowledged
 * (or handed back) and freed. Without a bound a node fetches a whole
 * backlog (requests stored while no node ran, the messages of a lost node)
 * into the workers' queues. The last of them wait there past the ack wait,
 * so the server delivers them again, and each copy is more work: a
 * redelivery storm.
 *
 * One batch. With the backlog of integration/test_backlog (3,000
 * requests) on 2 busy cores, one node with the kv store handled about
 * 1,000 messages a second with 2 workers (600 with sanitizers) and 2,000
 * with 16. In those runs no message outlived an ack wait of 1 s. Twice the
 * bound, or room for every worker's acknowledgement batch, let over a
 * thousand outlive it.
 *
 * The bound is below what tests/bench's 256 instances in flight take with
 * the kv store: about 460 replies on average, because a worker keeps the
 * ones it handled until their acknowledgements are settled together. The
 * rest wait in the stream instead of the queues, and steps per second
 * stayed within the run-to-run noise (paired runs on the same busy
 * machine differed by up to 30%).
 *
 * Timers that are due count too, since they wait in the same queues. A
 * timer not yet due is handed back before a work item is made for it, so
 * it never counts.
 *
 * NOTE: the bound is a count, not a time. A node much slower than that (a
 * slow store, long Lua steps) can still keep messages past a short ack
 * wait. The default of 30 s leaves a wide margin.
 */
#define CV_PULL_IN_FLIGHT CV_PULL_BATCH
#define CV_PULL_ROOM_POLL_MS 2

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Fills the routing key of item; returns false for a message to acknowledge and drop. */
static bool route_key(cv_puller *puller, cv_work *item)
{
    natsMsg *msg = item->msg;
    if (puller->kind == CV_WORK_REPLY) {
        cv_reply_address address;
        if (cv_subject_parse_reply(puller->node->config.prefix, natsMsg_GetSubject(msg),
                                   &address))
            snprintf(item->instance, sizeof item->instance, "%s", address.instance);
        return true;
    }
    /*
     * Requests without Orch-Request-Id are served over core NATS only: a
     * copy here cannot be told apart from the one a node already started.
     */
    const char *id = NULL;
    if (natsMsgHeader_Get(msg, "Orch-Request-Id", &id) != NATS_OK || id == NULL)
        return false;
    cv_intake_instance_id(msg, item->instance);
    return true;
}

static void route_message(cv_puller *puller, natsMsg *msg)
{
    if (puller->kind == CV_WORK_TIMER) {
        cv_timers_take(puller->node, msg, &puller->in_flight);
        return;
    }
    cv_work *item = calloc(1, sizeof *item);
    if (item == NULL) {
        natsMsg_Destroy(msg); /* not acknowledged: it comes back after the ack wait */
        return;
    }
    item->kind = puller->kind;
    item->msg = msg;
    item->from_stream = true;
    cv_work_count(item, &puller->in_flight);
    if (!route_key(puller, item)) {
        natsMsg_Ack(msg, NULL);
        cv_work_free(item);
        return;
    }
    cv_node_route_work(puller->node, item);
}

int cv_pull_batch_size(natsSubscription *sub, int max)
{
    int waiting = 0;
    int bytes = 0;
    if (natsSubscription_GetPending(sub, &waiting, &bytes) == NATS_OK && waiting > 0)
        return waiting < max ? waiting : max;
    return max;
}

/*
 * Returns how many more messages the puller may fetch, first waiting while
 * it has CV_PULL_IN_FLIGHT in flight. Returns 0 once it is stopping. It
 * polls rather than waits for a signal, so cv_work_free stays one atomic
 * operation. The sleep is short next to the time the workers need for
 * the messages they have.
 */
static int wait_for_room(cv_puller *puller)
{
    while (!atomic_load(&puller->stopping)) {
        int room = CV_PULL_IN_FLIGHT - atomic_load(&puller->in_flight);
        if (room > 0)
            return room;
        pause_ms(CV_PULL_ROOM_POLL_MS);
    }
    return 0;
}

static void *pull_main(void *arg)
{
    cv_puller *puller = arg;
    int64_t last_error_log = 0;
    for (;;) {
        int room = wait_for_room(puller);
        if (room == 0)
            break;
        natsMsgList list = {0};
        jsErrCode code = 0;
        int batch = cv_pull_batch_size(puller->sub, room < CV_PULL_BATCH ? room : CV_PULL_BATCH);
        natsStatus s =
            natsSubscription_Fetch(&list, puller->sub, batch, CV_PULL_EXPIRY_MS, &code);
        if (s == NATS_OK) {
            for (int i = 0; i < list.Count; i++) {
                route_message(puller, list.Msgs[i]);
                list.Msgs[i] = NULL;
            }
            natsMsgList_Destroy(&list);
            continue;
        }
        if (s == NATS_TIMEOUT)
            continue;
        /* Disconnected, or the server is restarting: wait a little and pull again. */
        int64_t now = cv_clock_mono_ms();
        if (now - last_error_log > 5000) {
            CV_WARN("fetch failed consumer=%s error=%s", puller->consumer,
                    cv_log_quote(natsStatus_GetText(s)));
            last_error_log = now;
        }
        pause_ms(200);
    }
    return NULL;
}

cv_status cv_puller_start(cv_puller *puller, cv_node *node, jsCtx *js, cv_work_kind kind,
                          const char *stream, const char *consumer, cv_error *err)
{
    memset(puller, 0, sizeof *puller);
    puller->node = node;
    puller->kind = kind;
    snprintf(puller->stream, sizeof puller->stream, "%s", stream);
    puller->consumer = consumer;
    atomic_init(&puller->stopping, false);
    atomic_init(&puller->in_flight, 0);

    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = stream;
    options.Consumer = consumer;
    options.ManualAck = true;
    jsErrCode code = 0;
    natsStatus s = js_PullSubscribe(&puller->sub, js, NULL, consumer, NULL, &options, &code);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "cannot bind to consumer %s of %s: %s (error %d)",
                            consumer, stream, natsStatus_GetText(s), (int)code);
    if (pthread_create(&puller->thread, NULL, pull_main, puller) != 0)
        return cv_error_set(err, CV_ERR_NOMEM, "cannot start the fetch thread for %s", consumer);
    puller->started = true;
    return CV_OK;
}

void cv_puller_stop(cv_puller *puller)
{
    if (puller->started) {
        atomic_store(&puller->stopping, true);
        pthread_join(puller->thread, NULL);
        puller->started = false;
    }
}

void cv_puller_close(cv_puller *puller)
{
    cv_puller_stop(puller);
    natsSubscription_Destroy(puller->sub);
    puller->sub = NULL;
}
