/*
 * The node's life: load rules once per worker, connect, subscribe to
 * requests (queue group "conveyor") and replies, serve until asked to
 * stop, then drain the subscriptions so that messages already received are
 * handled before the workers exit.
 *
 * Flush policy: publishes are buffered (no SendAsap), so under load many
 * messages share one write (flusher.h describes who writes them and when).
 * With 256 instances in flight on a 2-core machine this took one node
 * from about 17,000 to 22,000-27,000 steps/s, with the per-step latency
 * of a single instance unchanged (about 245 µs).
 */
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/natsx.h"
#include "node/node_internal.h"
#include "node/streams.h"
#include "node/subjects.h"

#define CV_QUEUE_GROUP "conveyor"

/* Wraps msg (taken) in a work item of kind; NULL, with msg destroyed, when out of memory. */
static cv_work *new_work(cv_work_kind kind, natsMsg *msg)
{
    cv_work *item = calloc(1, sizeof *item);
    if (item == NULL) {
        natsMsg_Destroy(msg);
        return NULL;
    }
    item->kind = kind;
    item->msg = msg;
    return item;
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    cv_node *node = closure;
    cv_work *item = new_work(CV_WORK_REQUEST, msg);
    if (item == NULL)
        return;
    cv_intake_instance_id(msg, item->instance);
    cv_node_route_work(node, item);
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    cv_node *node = closure;
    /* With the kv store replies arrive through ORCH_REPLIES; only no-responders statuses come here. */
    if (node->store->durable && !natsMsg_IsNoResponders(msg)) {
        natsMsg_Destroy(msg);
        return;
    }
    cv_work *item = new_work(CV_WORK_REPLY, msg);
    if (item == NULL)
        return;
    /* A malformed subject still goes to a worker, which records why it is ignored. */
    cv_reply_address address;
    if (cv_subject_parse_reply(node->config.prefix, natsMsg_GetSubject(msg), &address))
        snprintf(item->instance, sizeof item->instance, "%s", address.instance);
    cv_node_route_work(node, item);
}

static void on_cancel(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    cv_node *node = closure;
    cv_work *item = new_work(CV_WORK_CANCEL, msg);
    if (item == NULL)
        return;
    const char *id = strrchr(natsMsg_GetSubject(msg), '.');
    snprintf(item->instance, sizeof item->instance, "%s", id ? id + 1 : "");
    cv_node_route_work(node, item);
}

/*
 * The subscription is not named: nats.c 3.4.1 hands this callback a
 * subscription it does not keep alive, and one destroyed meanwhile (the
 * short-lived ones of kv reads, say) crashed the node when asked for its
 * subject. nats.c fixed that in 3.10.
 */
static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    CV_ERROR("nats error error=%s", cv_log_quote(natsStatus_GetText(err)));
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    cv_node *node = closure;
    if (atomic_load(&node->closing) || natsConnection_IsClosed(nc))
        return; /* our own shutdown, not a lost server */
    CV_WARN("nats disconnected; reconnecting");
}

/*
 * nats.c runs connection callbacks on its own thread, possibly after
 * natsConnection_Destroy returns; the closed callback is the last one, so
 * the node is freed only after it ran.
 */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    cv_node *node = closure;
    /*
     * A connection closed without our asking (after a protocol error, for
     * example) never comes back. The node stops and exits non-zero, so that
     * whatever supervises it starts a fresh one.
     */
    bool unexpected = !atomic_load(&node->closing);
    if (unexpected)
        CV_ERROR("nats connection closed for good; the node stops");
    pthread_mutex_lock(&node->stop_lock);
    node->closed = true;
    node->connection_lost = node->connection_lost || unexpected;
    node->stop_requested = true;
    pthread_cond_broadcast(&node->stop_cond);
    pthread_mutex_unlock(&node->stop_lock);
}

static void wait_closed(cv_node *node)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&node->stop_lock);
    while (!node->closed) {
        if (pthread_cond_timedwait(&node->stop_cond, &node->stop_lock, &deadline) != 0)
            break;
    }
    pthread_mutex_unlock(&node->stop_lock);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    cv_node *node = closure;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    CV_INFO("nats reconnected url=%s", url);
    atomic_store(&node->max_payload, natsConnection_GetMaxPayload(nc));
    for (size_t i = 0; i < node->worker_count; i++) {
        cv_work *item = calloc(1, sizeof *item);
        if (item == NULL)
            return;
        item->kind = CV_WORK_RESEND;
        cv_work_queue_push(&node->workers[i]->queue, item);
    }
}

static cv_status connect_nats(cv_node *node, cv_error *err)
{
    natsOptions *opts = NULL;
    char name[256];
    snprintf(name, sizeof name, "conveyor node %s", node->config.name);
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = cv_nats_set_urls(opts, node->config.nats_url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(opts, false);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, on_error, node);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, node);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, node);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, node);
    if (s == NATS_OK)
        s = natsConnection_Connect(&node->nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "cannot connect to NATS at %s: %s",
                            node->config.nats_url, natsStatus_GetText(s));
    atomic_store(&node->max_payload, natsConnection_GetMaxPayload(node->nc));
    return CV_OK;
}

static cv_status start_workers(cv_node *node, cv_error *err)
{
    node->workers = calloc((size_t)node->config.workers, sizeof *node->workers);
    if (node->workers == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating workers");
    for (int i = 0; i < node->config.workers; i++) {
        cv_status st = cv_worker_create(&node->workers[i], node, i, err);
        if (st != CV_OK)
            return st;
        node->worker_count++;
    }
    for (size_t i = 0; i < node->worker_count; i++) {
        cv_status st = cv_worker_start(node->workers[i], err);
        if (st != CV_OK)
            return st;
    }
    return CV_OK;
}

/*
 * With the memory store the queue transport still needs the TASKS stream;
 * a server without JetStream simply has no queue, and the node logs that once.
 */
static void open_memory_queue(cv_node *node)
{
    cv_error err;
    natsStatus s = natsConnection_JetStream(&node->js, node->nc, NULL);
    if (s == NATS_OK && cv_streams_ensure_tasks(node->js, &node->streams, &err) == CV_OK) {
        node->queue_available = true;
        return;
    }
    CV_WARN("queue transport unavailable error=%s",
            cv_log_quote(s != NATS_OK ? natsStatus_GetText(s) : err.text));
}

static cv_status create_store(cv_node *node, cv_error *err)
{
    const cv_node_config *config = &node->config;
    node->streams = (cv_streams_config){
        .prefix = config->prefix,
        .memory_storage = config->memory_storage,
        .replicas = config->replicas,
        .ack_wait_ms = config->ack_wait_ms,
        .events_max_age_ms = 7LL * 24 * 3600 * 1000,
    };
    if (strcmp(config->state, "memory") == 0) {
        open_memory_queue(node);
        return cv_store_memory_create(&node->store, config->keep_finished, err);
    }
    if (strcmp(config->state, "kv") != 0)
        return cv_error_set(err, CV_ERR_INVALID, "unknown state store \"%s\": use kv or memory",
                            config->state);

    char bucket[CV_STREAM_NAME_MAX];
    cv_streams_bucket_name(bucket, config->prefix);
    cv_store_kv_options options = {
        .bucket = bucket,
        .storage = config->memory_storage ? CV_STORE_KV_MEMORY : CV_STORE_KV_FILE,
        .replicas = config->replicas,
    };
    cv_status st = cv_store_kv_create(&node->store, node->nc, &options, err);
    if (st != CV_OK)
        return st;
    natsStatus s = natsConnection_JetStream(&node->js, node->nc, NULL);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "JetStream is not available: %s",
                            natsStatus_GetText(s));
    st = cv_streams_ensure(node->js, &node->streams, err);
    node->queue_available = st == CV_OK;
    return st;
}

/*
 * A cluster that has just started needs a few seconds to elect the
 * JetStream leader; until then stream and bucket requests fail. Keep
 * trying for up to a minute before giving up.
 */
static cv_status create_store_patiently(cv_node *node, cv_error *err)
{
    int64_t deadline = cv_clock_mono_ms() + 60000;
    for (;;) {
        cv_status st = create_store(node, err);
        if (st != CV_ERR_NATS || cv_clock_mono_ms() > deadline)
            return st;
        CV_WARN("JetStream not ready, trying again error=%s", cv_log_quote(err->text));
        cv_store_destroy(node->store);
        node->store = NULL;
        jsCtx_Destroy(node->js);
        node->js = NULL;
        struct timespec pause = {1, 0};
        nanosleep(&pause, NULL);
    }
}

cv_status cv_node_create(cv_node **out, const cv_node_config *config, cv_error *err)
{
    cv_node *node = calloc(1, sizeof *node);
    if (node == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the node");
    node->config = *config;
    pthread_mutex_init(&node->stop_lock, NULL);
    pthread_cond_init(&node->stop_cond, NULL);

    cv_status st = connect_nats(node, err);
    if (st == CV_OK)
        st = cv_flusher_start(&node->flusher, node->nc, err);
    if (st == CV_OK)
        st = create_store_patiently(node, err);
    if (st == CV_OK && !node->store->durable)
        st = cv_local_timers_create(&node->local_timers, node, err);
    if (st == CV_OK)
        st = cv_http_client_create(&node->http, node, err);
    if (st == CV_OK)
        st = start_workers(node, err);
    if (st == CV_OK && node->queue_available)
        st = cv_transport_queue_prepare(node, err);
    if (st != CV_OK) {
        cv_node_destroy(node);
        return st;
    }
    *out = node;
    return CV_OK;
}

static cv_status subscribe(cv_node *node, cv_error *err)
{
    char requests[CV_SUBJECT_MAX], replies[CV_SUBJECT_MAX];
    snprintf(requests, sizeof requests, "%s.request.>", node->config.prefix);
    snprintf(replies, sizeof replies, "%s.reply.>", node->config.prefix);

    natsStatus s = natsConnection_QueueSubscribe(&node->request_sub, node->nc, requests,
                                                 CV_QUEUE_GROUP, on_request, node);
    /*
     * Replies use a plain subscription: nats-server sends the no-responders
     * status of a dispatch only to a plain subscription of the publishing
     * connection, never to a queue subscription. That is right for the
     * memory store, where one node owns every instance it started.
     */
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&node->reply_sub, node->nc, replies, on_reply, node);
    /* Callbacks only queue work, so the client-side limits exist only to survive a flood. */
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(node->request_sub, 1000000, 1024 * 1024 * 1024);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(node->reply_sub, 1000000, 1024 * 1024 * 1024);
    char cancels[CV_SUBJECT_MAX];
    snprintf(cancels, sizeof cancels, "%s.cancel.*", node->config.prefix);
    if (s == NATS_OK)
        s = natsConnection_QueueSubscribe(&node->cancel_sub, node->nc, cancels, CV_QUEUE_GROUP,
                                          on_cancel, node);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(node->nc, 5000);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "cannot subscribe to %s, %s and %s: %s", requests,
                            replies, cancels, natsStatus_GetText(s));
    if (!node->store->durable)
        return CV_OK;
    char stream[CV_STREAM_NAME_MAX];
    cv_streams_name(stream, node->config.prefix, "REQUESTS");
    cv_status st = cv_puller_start(&node->request_puller, node, node->js, CV_WORK_REQUEST, stream,
                                   CV_CONSUMER_REQUESTS, err);
    cv_streams_name(stream, node->config.prefix, "REPLIES");
    if (st == CV_OK)
        st = cv_puller_start(&node->reply_puller, node, node->js, CV_WORK_REPLY, stream,
                             CV_CONSUMER_REPLIES, err);
    cv_streams_name(stream, node->config.prefix, "TIMERS");
    if (st == CV_OK)
        st = cv_puller_start(&node->timer_puller, node, node->js, CV_WORK_TIMER, stream,
                             CV_CONSUMER_TIMERS, err);
    return st;
}

static void drain(natsSubscription *sub)
{
    if (sub == NULL)
        return;
    if (natsSubscription_Drain(sub) == NATS_OK)
        natsSubscription_WaitForDrainCompletion(sub, 10000);
}

cv_status cv_node_run(cv_node *node, cv_error *err)
{
    cv_status st = subscribe(node, err);
    if (st != CV_OK)
        return st;
    CV_INFO("node ready nats=%s rules=%s state=%s workers=%zu prefix=%s", node->config.nats_url,
            node->config.rules_dir, node->store->name, node->worker_count, node->config.prefix);

    pthread_mutex_lock(&node->stop_lock);
    while (!node->stop_requested)
        pthread_cond_wait(&node->stop_cond, &node->stop_lock);
    pthread_mutex_unlock(&node->stop_lock);

    bool connected = natsConnection_Status(node->nc) == NATS_CONN_STATUS_CONNECTED;
    cv_puller_stop(&node->request_puller);
    cv_puller_stop(&node->reply_puller);
    cv_puller_stop(&node->timer_puller);
    if (connected) {
        CV_INFO("node stopping: draining subscriptions");
        drain(node->request_sub);
        drain(node->reply_sub);
        drain(node->cancel_sub);
    } else {
        /* Draining and every store call would wait for a server that is not there. */
        CV_WARN("node stopping without a NATS server: queued messages are left for redelivery");
        atomic_store(&node->abandon, true);
    }
    for (size_t i = 0; i < node->worker_count; i++)
        cv_worker_stop(node->workers[i]);
    cv_puller_close(&node->request_puller);
    cv_puller_close(&node->reply_puller);
    cv_puller_close(&node->timer_puller);
    if (connected)
        natsConnection_FlushTimeout(node->nc, 5000);
    atomic_store(&node->closing, true);
    CV_INFO("node stopped");
    pthread_mutex_lock(&node->stop_lock);
    bool lost = node->connection_lost;
    pthread_mutex_unlock(&node->stop_lock);
    if (lost)
        return cv_error_set(err, CV_ERR_NATS, "the NATS connection was closed for good");
    return CV_OK;
}

void cv_node_stop(cv_node *node)
{
    pthread_mutex_lock(&node->stop_lock);
    node->stop_requested = true;
    pthread_cond_signal(&node->stop_cond);
    pthread_mutex_unlock(&node->stop_lock);
}

void cv_node_destroy(cv_node *node)
{
    if (node == NULL)
        return;
    cv_puller_stop(&node->request_puller);
    cv_puller_stop(&node->reply_puller);
    cv_puller_stop(&node->timer_puller);
    natsSubscription_Destroy(node->request_sub);
    natsSubscription_Destroy(node->reply_sub);
    natsSubscription_Destroy(node->cancel_sub);
    /*
     * Workers stop before the connection closes: their last effects still
     * publish. The HTTP and timer threads stop after the workers (nothing
     * new is sent) and before their queues go (nothing is posted to freed
     * memory).
     */
    for (size_t i = 0; i < node->worker_count; i++)
        cv_worker_stop(node->workers[i]);
    cv_puller_close(&node->request_puller);
    cv_puller_close(&node->reply_puller);
    cv_puller_close(&node->timer_puller);
    cv_http_client_destroy(node->http);
    cv_local_timers_destroy(node->local_timers);
    for (size_t i = 0; i < node->worker_count; i++)
        cv_worker_destroy(node->workers[i]);
    free(node->workers);
    cv_flusher_stop(&node->flusher);
    cv_store_destroy(node->store);
    jsCtx_Destroy(node->js);
    atomic_store(&node->closing, true);
    if (node->nc != NULL) {
        natsConnection_Close(node->nc);
        wait_closed(node);
    }
    natsConnection_Destroy(node->nc);
    pthread_cond_destroy(&node->stop_cond);
    pthread_mutex_destroy(&node->stop_lock);
    free(node);
}
