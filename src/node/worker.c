/*
 * Worker threads. Every message of one instance goes to the same worker
 * (chosen by a hash of the instance id), so a node never races with itself
 * over an instance, and each worker's Lua state is used by one thread only.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/failpoint.h"
#include "core/log.h"
#include "engine/outbox.h"
#include "node/node_internal.h"

/* Attempts at a compare-and-set before an instance change is given up. */
#define CV_COMMIT_ATTEMPTS 16

/* Longer than a revision claim lives (kv_claims.h), so a dead writer's claim expires first. */
#define CV_BUSY_WAIT_MS 20000

/*
 * How long a timer waits to come back when its instance is busy: longer
 * than a claim lives (10 s, kv_claims.h), while a reply comes back every
 * second, so that a reply that waited for the same claim goes first.
 */
#define CV_BUSY_TIMER_DELAY_MS 12000

static uint32_t hash_text(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

void cv_node_route_work(cv_node *node, cv_work *item)
{
    size_t index = hash_text(item->instance) % node->worker_count;
    cv_work_queue_push(&node->workers[index]->queue, item);
}

/*
 * Timers go out first: on one connection the server sees messages in the
 * order they were sent, so anyone who has seen an event about a wait knows
 * its timer is already with the server.
 */
void cv_worker_run_effects(cv_worker *worker, cv_instance *instance)
{
    cv_effects *effects = &worker->effects;
    for (size_t i = 0; i < effects->timer_count; i++)
        cv_timers_schedule(worker, instance, &effects->timers[i]);
    for (size_t i = 0; i < effects->event_count; i++)
        cv_events_publish(worker, instance, effects->events[i].kind,
                          effects->events[i].token, effects->events[i].body);
    for (size_t i = 0; i < effects->dispatch_count; i++)
        cv_dispatch_send(worker, instance, &effects->dispatches[i]);
    cv_effects_reset(effects);
}

/*
 * A message whose node died after storing its change comes back after its
 * consumer's ack wait (the timers consumer's is 5 s). Twice the longer one
 * plus a minute leaves room for the time it then waits in a node's queue.
 */
static int64_t outbox_keep_ms(const cv_node *node)
{
    int64_t wait = node->config.ack_wait_ms > 5000 ? node->config.ack_wait_ms : 5000;
    return 2 * wait + 60000;
}

cv_status cv_worker_record_outbox(cv_worker *worker, cv_instance *instance, const char *key)
{
    cv_outbox_clock clock = {.now_ms = cv_clock_wall_ms(),
                             .keep_ms = outbox_keep_ms(worker->node)};
    size_t dropped = 0;
    cv_status st = cv_outbox_record(instance, key, &worker->effects, clock, &dropped);
    worker->outbox_dropped += dropped;
    /* A long loop drops one entry per change, so the warning comes at most every 10 s. */
    int64_t now = cv_clock_mono_ms();
    if (dropped > 0 && now - worker->outbox_logged_ms >= 10000) {
        CV_WARN("outbox full instance=%s process=%s key=%s dropped=%zu keep_ms=%lld",
                instance->id, instance->process->name, key, worker->outbox_dropped,
                (long long)clock.keep_ms);
        worker->outbox_logged_ms = now;
        worker->outbox_dropped = 0;
    }
    return st;
}

/*
 * The outbox key of a result: unique per attempt and kind, and per stream
 * message, so that only the message that made a change, delivered again,
 * replays it. A second reply to one attempt is applied, and ignored, instead.
 */
static void result_key(const cv_step_result *result, const cv_work *item, char *buf,
                       size_t size)
{
    static const char *const suffix[] = {"", ".timeout", ".due", ".queue"};
    uint64_t sequence = item != NULL ? cv_work_stream_sequence(item) : 0;
    snprintf(buf, size, "%s.%d.%s%s.%" PRIu64, result->step, result->attempt, result->token,
             suffix[result->kind], sequence);
}

bool cv_worker_replay(cv_worker *worker, cv_instance *instance, const char *key)
{
    cv_effects_reset(&worker->effects);
    if (!cv_outbox_replay(instance, key, &worker->effects))
        return false;
    CV_INFO("effects replayed instance=%s key=%s", instance->id, key);
    /* The events' own lines were logged when they were first published. */
    worker->replaying = true;
    cv_worker_run_effects(worker, instance);
    worker->replaying = false;
    return true;
}

/*
 * Returns true when a result changed nothing and left only reply.ignored
 * events to publish. Such a result is not stored, because a redelivery is
 * ignored again the same way. Recording it would also push the effects of
 * real changes out of the instance's short outbox, which a redelivery
 * after a crash replays.
 */
static bool only_ignored_replies(const cv_effects *effects)
{
    if (effects->dispatch_count > 0 || effects->timer_count > 0)
        return false;
    for (size_t i = 0; i < effects->event_count; i++)
        if (strcmp(effects->events[i].kind, "reply.ignored") != 0)
            return false;
    return true;
}

/* One try at applying result: acquire, apply, commit, publish. */
static cv_status apply_once(cv_worker *worker, const char *id, const cv_step_result *result,
                            cv_work *item, cv_error *err)
{
    cv_store *store = worker->node->store;
    cv_instance *instance = NULL;
    cv_status st = store->ops->acquire(store, id, worker->rules, &instance, err);
    if (st != CV_OK)
        return st;

    char key[CV_ERROR_TEXT_MAX];
    result_key(result, item, key, sizeof key);
    if (item != NULL && cv_worker_replay(worker, instance, key)) {
        store->ops->release(store, instance);
        return CV_OK;
    }

    cv_effects_reset(&worker->effects);
    st = cv_supervisor_apply(instance, result, cv_rules_script(worker->rules), &worker->effects,
                             err);
    if (st == CV_OK && cv_effects_empty(&worker->effects)) {
        store->ops->release(store, instance); /* a timer that found nothing to do */
        return CV_OK;
    }
    if (st == CV_OK && only_ignored_replies(&worker->effects)) {
        cv_worker_run_effects(worker, instance);
        store->ops->release(store, instance);
        return CV_OK;
    }
    if (st == CV_OK && store->durable)
        st = cv_worker_record_outbox(worker, instance, key);
    if (st == CV_OK)
        st = store->ops->commit(store, instance, err);
    if (st == CV_OK) {
        cv_failpoint("result.stored");
        cv_worker_run_effects(worker, instance);
    }
    store->ops->release(store, instance);
    return st;
}

typedef struct failed_result {
    cv_step_result result;
    char error[CV_ERROR_TEXT_MAX];
} failed_result;

/*
 * Turns a successful result whose output would make the instance too large
 * to store into a permanent failure of its attempt, which fits.
 */
static const cv_step_result *as_failure(const cv_step_result *result, const cv_error *err,
                                        failed_result *out)
{
    snprintf(out->error, sizeof out->error, "%s", err->text);
    out->result = *result;
    out->result.output = NULL;
    out->result.error = out->error;
    out->result.permanent = true;
    return &out->result;
}

/*
 * Decides whether a result made in this node keeps waiting for a revision
 * that another writer claimed (CV_ERR_BUSY). Such a result has no later
 * delivery, so it waits for the claim to expire, up to CV_BUSY_WAIT_MS.
 */
static bool keep_waiting(int64_t *until, const char *id, const cv_step_result *result,
                         const cv_error *err)
{
    int64_t now = cv_clock_mono_ms();
    if (*until == 0) {
        *until = now + CV_BUSY_WAIT_MS;
        CV_WARN("result waits for a claimed revision instance=%s step=%s error=%s", id,
                result->step, cv_log_quote(err->text));
    }
    return now < *until;
}

/*
 * Logs why result was not applied, and marks item for a later delivery
 * when the failure may pass: a NATS failure, or a claim held by another
 * writer (CV_ERR_BUSY).
 */
static void defer_or_drop(const char *id, const cv_step_result *result, cv_status st,
                          const cv_error *err, cv_work *item)
{
    bool timer = result->kind == CV_RESULT_TIMEOUT || result->kind == CV_RESULT_RETRY_DUE;
    if (st == CV_ERR_BUSY && item != NULL) {
        CV_WARN("%s put back for later instance=%s step=%s error=%s", timer ? "timer" : "reply",
                id, result->step, cv_log_quote(err->text));
        /* A reply the module sent before the timeout fell due must win over the timer. */
        if (timer)
            item->retry_delay_ms = CV_BUSY_TIMER_DELAY_MS;
    } else {
        CV_ERROR("reply not applied instance=%s step=%s error=%s", id, result->step,
                 cv_log_quote(err->text));
    }
    if (item != NULL)
        item->retry_later = st == CV_ERR_NATS || st == CV_ERR_BUSY;
}

void cv_worker_apply_result(cv_worker *worker, const char *id, const cv_step_result *result,
                            cv_work *item)
{
    cv_error err;
    failed_result failed;
    int64_t busy_until = 0;
    for (int attempt = 0; attempt < CV_COMMIT_ATTEMPTS; attempt++) {
        cv_status st = apply_once(worker, id, result, item, &err);
        if (st == CV_OK)
            return;
        if (st == CV_ERR_NOT_FOUND && result->kind != CV_RESULT_REPLY) {
            CV_DEBUG("timer dropped instance=%s step=%s reason=\"unknown instance\"", id,
                     result->step);
            return;
        }
        if (st == CV_ERR_NOT_FOUND) {
            CV_INFO("reply ignored instance=%s step=%s attempt=%d reason=\"unknown instance\"",
                    id, result->step, result->attempt);
            return;
        }
        if (st == CV_ERR_LIMIT && result->kind == CV_RESULT_REPLY && result->error == NULL) {
            CV_WARN("step output not stored instance=%s step=%s attempt=%d error=%s", id,
                    result->step, result->attempt, cv_log_quote(err.text));
            result = as_failure(result, &err, &failed);
            continue;
        }
        if (st == CV_ERR_BUSY && item == NULL && keep_waiting(&busy_until, id, result, &err)) {
            attempt--; /* the store already waited before returning busy, and busy is no conflict */
            continue;
        }
        if (st != CV_ERR_CONFLICT) {
            defer_or_drop(id, result, st, &err, item);
            return;
        }
        CV_DEBUG("store conflict, applying again instance=%s step=%s", id, result->step);
    }
    CV_ERROR("reply not applied after %d store conflicts instance=%s step=%s",
             CV_COMMIT_ATTEMPTS, id, result->step);
    if (item != NULL)
        item->retry_later = true;
}

/* A result made inside the node (Lua, HTTP, a failed send) or a timer that fell due. */
static void handle_local_result(cv_worker *worker, cv_work *item)
{
    cv_step_result result = {
        .kind = item->result_kind,
        .step = item->step,
        .attempt = item->attempt,
        .token = item->token,
        .output = item->output,
        .error = item->error,
        .permanent = item->permanent,
    };
    cv_worker_apply_result(worker, item->instance, &result, item->from_stream ? item : NULL);
}

/*
 * A stream message is done with once its effect is stored and its events
 * are in ORCH_EVENTS; until then another delivery must be able to redo it.
 * One confirmation covers every message handled since the last one, so
 * under load a worker waits for the acknowledgements of many events at
 * once instead of once per message.
 */
static void acknowledge_batch(cv_worker *worker, cv_work **done, size_t count)
{
    bool any_stream = false;
    for (size_t i = 0; i < count; i++)
        any_stream = any_stream || (done[i]->from_stream && !done[i]->retry_later);
    cv_flusher_request(&worker->node->flusher);
    bool confirmed = !any_stream || cv_events_confirm(worker);
    for (size_t i = 0; i < count; i++) {
        cv_work *item = done[i];
        if (item->from_stream) {
            bool again = item->retry_later || !confirmed;
            int64_t delay = item->retry_delay_ms > 0 ? item->retry_delay_ms : 1000;
            natsStatus s = again ? natsMsg_NakWithDelay(item->msg, delay, NULL)
                                 : natsMsg_Ack(item->msg, NULL);
            if (s != NATS_OK)
                CV_WARN("acknowledgement failed instance=%s error=%s", item->instance,
                        cv_log_quote(natsStatus_GetText(s)));
        }
        cv_work_free(item);
    }
}

static void handle(cv_worker *worker, cv_work *item)
{
    switch (item->kind) {
    case CV_WORK_REQUEST:
        cv_intake_handle(worker, item);
        break;
    case CV_WORK_REPLY:
        cv_replies_handle(worker, item);
        break;
    case CV_WORK_LOCAL_RESULT:
    case CV_WORK_TIMER:
        handle_local_result(worker, item);
        break;
    case CV_WORK_CANCEL:
        cv_cancel_handle(worker, item);
        break;
    case CV_WORK_RESEND:
        cv_resend_recent(worker);
        break;
    case CV_WORK_STOP:
        break;
    }
}

/* Messages handled before their acknowledgements are settled together. */
#define CV_ACK_BATCH 64

static void *worker_main(void *arg)
{
    cv_worker *worker = arg;
    cv_work *done[CV_ACK_BATCH];
    size_t done_count = 0;
    bool stopping = false;
    while (!stopping) {
        /* Wait only with nothing left to acknowledge: an idle queue ends a batch. */
        cv_work *item = done_count == 0 ? cv_work_queue_pop(&worker->queue)
                                        : cv_work_queue_try_pop(&worker->queue);
        if (item == NULL) {
            acknowledge_batch(worker, done, done_count);
            done_count = 0;
            continue;
        }
        stopping = item->kind == CV_WORK_STOP;
        if (!stopping && atomic_load(&worker->node->abandon)) {
            /* Unacknowledged, a stream message is delivered again once a node can reach NATS. */
            cv_work_free(item);
            continue;
        }
        handle(worker, item);
        done[done_count++] = item;
        if (done_count == CV_ACK_BATCH || stopping) {
            acknowledge_batch(worker, done, done_count);
            done_count = 0;
        }
    }
    return NULL;
}

cv_status cv_worker_create(cv_worker **out, cv_node *node, int index, cv_error *err)
{
    cv_worker *worker = calloc(1, sizeof *worker);
    if (worker == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating worker %d", index);
    worker->node = node;
    worker->index = index;
    cv_work_queue_init(&worker->queue);
    atomic_init(&worker->event_failed, false);
    if (node->store->durable)
        worker->recent = calloc(CV_RECENT_DISPATCHES, sizeof *worker->recent);
    if (node->store->durable && (worker->recent == NULL || cv_events_open(worker, err) != CV_OK)) {
        cv_worker_destroy(worker);
        return err->status;
    }

    cv_diag diag = {0};
    cv_status st = cv_rules_load(&worker->rules, node->config.rules_dir, NULL, &diag, err);
    if (st != CV_OK && diag.count > 0) {
        for (size_t i = 0; i < diag.count; i++)
            CV_ERROR("rules rejected fault=%s", cv_log_quote(diag.messages[i]));
        cv_error_set(err, st, "%zu faults in rules folder %s", diag.count,
                     node->config.rules_dir);
    }
    cv_diag_free(&diag);
    if (st != CV_OK) {
        cv_worker_destroy(worker);
        return st;
    }
    *out = worker;
    return CV_OK;
}

cv_status cv_worker_start(cv_worker *worker, cv_error *err)
{
    if (pthread_create(&worker->thread, NULL, worker_main, worker) != 0)
        return cv_error_set(err, CV_ERR_NOMEM, "cannot start worker thread %d", worker->index);
    worker->started = true;
    return CV_OK;
}

void cv_worker_stop(cv_worker *worker)
{
    if (worker == NULL || !worker->started)
        return;
    cv_work *stop = calloc(1, sizeof *stop);
    if (stop == NULL)
        abort(); /* cannot stop the thread cleanly without it */
    stop->kind = CV_WORK_STOP;
    cv_work_queue_push(&worker->queue, stop);
    pthread_join(worker->thread, NULL);
    worker->started = false;
}

void cv_worker_destroy(cv_worker *worker)
{
    if (worker == NULL)
        return;
    cv_worker_stop(worker);
    cv_work_queue_destroy(&worker->queue);
    cv_effects_free(&worker->effects);
    cv_rules_destroy(worker->rules);
    jsCtx_Destroy(worker->js);
    free(worker->recent);
    free(worker);
}
