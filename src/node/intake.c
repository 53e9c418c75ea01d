/*
 * Requests: <prefix>.request.<process> with a JSON object body. Every
 * request is answered when it has a reply subject, and logged when it is
 * rejected, so bad input is never dropped silently. With a durable store
 * instances start only from the requests stream (relay.c explains why).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/failpoint.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/text.h"
#include "node/node_internal.h"
#include "node/subjects.h"

void cv_intake_instance_id(natsMsg *msg, char *out)
{
    const char *requested = NULL;
    if (natsMsgHeader_Get(msg, "Orch-Request-Id", &requested) != NATS_OK || requested == NULL) {
        cv_text_random_token(out, CV_TOKEN_LEN);
        return;
    }
    if (strlen(requested) > CV_INSTANCE_ID_MAX || !cv_text_is_token(requested)) {
        /* An empty header is invalid too: cv_text_is_token rejects "". */
        out[0] = '\0';
        return;
    }
    strcpy(out, requested);
}

/* Sends body (taken) to subject, the requester's reply subject, unless it is NULL or refused. */
static void answer(cv_node *node, const char *subject, json_t *body)
{
    const char *fault = subject != NULL ? cv_subject_answer_fault(node->config.prefix, subject)
                                        : NULL;
    if (fault != NULL)
        CV_WARN("request answer not sent subject=%s reason=%s",
                cv_log_quote(subject), cv_log_quote(fault));
    if (subject == NULL || fault != NULL) {
        json_decref(body);
        return;
    }
    char *text = cv_json_dump(body);
    size_t limit = (size_t)atomic_load(&node->max_payload);
    if (text != NULL && limit > 0 && strlen(text) > limit) {
        /* A finished instance's data may not fit one message; its id and status always do. */
        free(text);
        json_object_del(body, "data");
        json_object_del(body, "steps");
        json_object_set_new(body, "omitted", json_string("data and steps exceed max_payload"));
        text = cv_json_dump(body);
    }
    json_decref(body);
    if (text == NULL)
        return;
    natsStatus s = natsConnection_PublishString(node->nc, subject, text);
    if (s != NATS_OK)
        CV_WARN("request answer not sent subject=%s error=%s", subject,
                cv_log_quote(natsStatus_GetText(s)));
    free(text);
}

static void reject(cv_node *node, const cv_work *item, const char *reason)
{
    CV_WARN("request rejected subject=%s reason=%s", natsMsg_GetSubject(item->msg),
            cv_log_quote(reason));
    answer(node, cv_relay_answer_subject(item), json_pack("{s:s}", "error", reason));
}

static void answer_started(cv_node *node, const cv_work *item, const char *process)
{
    answer(node, cv_relay_answer_subject(item),
           json_pack("{s:s, s:s}", "instance", item->instance, "process", process));
}

static void known_processes(const cv_rules *rules, char *buf, size_t size)
{
    size_t n = 0;
    size_t count = cv_rules_process_count(rules);
    buf[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *name = cv_rules_process_at(rules, i)->name;
        if (n + strlen(name) + 16 >= size) {
            snprintf(buf + n, size - n, "%s... %zu more", i ? ", " : "", count - i);
            return;
        }
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", name);
    }
}

/* Finds the process a request names; NULL after rejecting it. */
static const cv_process *find_process(cv_worker *worker, const cv_work *item)
{
    cv_node *node = worker->node;
    char reason[CV_ERROR_TEXT_MAX + 64];
    const char *subject = natsMsg_GetSubject(item->msg);
    const char *name = cv_subject_request_process(node->config.prefix, subject);
    if (name == NULL) {
        snprintf(reason, sizeof reason,
                 "invalid request subject \"%s\": expected %s.request.<process>", subject,
                 node->config.prefix);
        reject(node, item, reason);
        return NULL;
    }
    const cv_process *process = cv_rules_find_process(worker->rules, name);
    if (process == NULL) {
        char known[256];
        known_processes(worker->rules, known, sizeof known);
        snprintf(reason, sizeof reason, "unknown process \"%s\" (known: %s)", name, known);
        reject(node, item, reason);
    }
    return process;
}

/* Checks the request body; returns it as a new object, or NULL after rejecting it. */
static json_t *accept_body(cv_worker *worker, const cv_work *item)
{
    cv_node *node = worker->node;
    char reason[CV_ERROR_TEXT_MAX + 64];
    cv_json_limits limits = {.max_bytes = node->config.max_body};
    cv_error err;
    json_t *body = NULL;
    if (cv_json_parse(&body, natsMsg_GetData(item->msg), (size_t)natsMsg_GetDataLength(item->msg),
                      &limits, &err) != CV_OK) {
        snprintf(reason, sizeof reason, "request body rejected: %s", err.text);
        reject(node, item, reason);
        return NULL;
    }
    if (!json_is_object(body)) {
        snprintf(reason, sizeof reason, "request body must be a JSON object, got %s",
                 cv_json_type_name(body));
        json_decref(body);
        reject(node, item, reason);
        return NULL;
    }
    return body;
}

/* Rejects a request whose Orch-Request-Id header is malformed; returns false then. */
static bool accept_id(cv_node *node, const cv_work *item)
{
    if (item->instance[0] != '\0')
        return true;
    char reason[160];
    snprintf(reason, sizeof reason,
             "invalid Orch-Request-Id header: expected 1 to %d characters of [A-Za-z0-9_-]",
             CV_INSTANCE_ID_MAX);
    reject(node, item, reason);
    return false;
}

/*
 * Answers with the existing instance's process and status, and, once it
 * has ended, its steps and data so that a client waiting for the result
 * gets it even though the events are gone. existing is NULL when it could
 * not be read. A repeated request is marked "duplicate".
 */
static void answer_existing(cv_worker *worker, const cv_work *item, const cv_process *process,
                            const cv_instance *existing, bool duplicate)
{
    json_t *body = json_pack("{s:s, s:s, s:s}", "instance", item->instance, "process",
                             process->name, "status", "running");
    if (duplicate)
        json_object_set_new(body, "duplicate", json_true());
    if (existing != NULL) {
        json_object_set_new(body, "process", json_string(existing->process->name));
        json_object_set_new(body, "status",
                            json_string(cv_instance_status_name(existing->status)));
        if (existing->status != CV_INSTANCE_RUNNING) {
            json_object_set(body, "steps", existing->trail);
            json_object_set(body, "data", existing->data);
            if (existing->error != NULL)
                json_object_set_new(body, "error", cv_json_text(existing->error));
        }
    }
    /* The second stream copy of a relayed request is expected, so it logs at debug. */
    const char *subject = cv_relay_answer_subject(item);
    if (duplicate)
        CV_LOG(subject != NULL ? CV_LOG_INFO : CV_LOG_DEBUG,
               "request repeated instance=%s process=%s status=%s", item->instance,
               json_string_value(json_object_get(body, "process")),
               json_string_value(json_object_get(body, "status")));
    answer(worker->node, subject, body);
}

/*
 * Answers a request whose instance exists. A request with a reply subject
 * and an id reaches ORCH_REQUESTS twice: as sent, and relayed with its
 * reply subject. Either copy may start the instance, and the relayed one
 * must not be answered as a duplicate even when it comes second. So the
 * first copy with a reply subject to find an instance nobody was answered
 * for claims it. A repeat of a request sent without a reply subject claims
 * it too, and its answer carries the instance's status (and result, once
 * ended) without the duplicate mark.
 */
static void answer_or_claim(cv_worker *worker, const cv_work *item, const cv_process *process)
{
    cv_store *store = worker->node->store;
    bool wants_answer = cv_relay_answer_subject(item) != NULL;
    for (int attempt = 0; attempt < 8; attempt++) {
        cv_instance *existing = NULL;
        if (store->ops->acquire(store, item->instance, worker->rules, &existing, NULL) != CV_OK)
            break;
        bool claimed = wants_answer && !existing->answered;
        cv_status st = CV_OK;
        if (claimed) {
            existing->answered = true;
            st = store->ops->commit(store, existing, NULL);
        }
        if (st != CV_ERR_CONFLICT)
            answer_existing(worker, item, process, existing, !(claimed && st == CV_OK));
        store->ops->release(store, existing);
        if (st != CV_ERR_CONFLICT)
            return;
    }
    answer_existing(worker, item, process, NULL, true);
}

/*
 * Writes the outbox key of a request's start into buf: the stream sequence
 * of the message that started the instance. Only that message, delivered
 * again after its node died, finds the key and publishes the stored
 * effects. The other stream copy of a relayed request and a repeated
 * request under the same id have sequences of their own. The delivery
 * count decided this before, but in one test run the copy that came back
 * after its node died was taken for a first delivery, and the instance
 * never sent its first steps.
 */
static void start_key(const cv_work *item, char *buf, size_t size)
{
    snprintf(buf, size, "request.%" PRIu64, cv_work_stream_sequence(item));
}

/*
 * Publishes again the first effects of an instance that a dead node may
 * have stored only, when this message is the one that started it. Returns
 * false when it is not.
 */
static bool replay_start(cv_worker *worker, const cv_work *item)
{
    cv_store *store = worker->node->store;
    cv_instance *instance = NULL;
    if (store->ops->acquire(store, item->instance, worker->rules, &instance, NULL) != CV_OK)
        return false;
    char key[64];
    start_key(item, key, sizeof key);
    bool replayed = cv_worker_replay(worker, instance, key);
    store->ops->release(store, instance);
    return replayed;
}

/*
 * The instance exists already. A copy delivered again may be the one whose
 * node stored the instance and died before publishing or answering, so it
 * finishes both; the requester may get the answer twice.
 */
static void handle_existing(cv_worker *worker, cv_work *item, const cv_process *process)
{
    if (replay_start(worker, item)) {
        answer_started(worker->node, item, process->name);
        return;
    }
    answer_or_claim(worker, item, process);
}

static cv_status start_instance(cv_worker *worker, cv_work *item, cv_instance *instance,
                                cv_error *err)
{
    cv_store *store = worker->node->store;
    instance->answered = cv_relay_answer_subject(item) != NULL;
    cv_effects_reset(&worker->effects);
    cv_status st = cv_supervisor_start(instance, cv_rules_script(worker->rules),
                                       &worker->effects, err);
    char key[64];
    start_key(item, key, sizeof key);
    if (st == CV_OK && store->durable)
        st = cv_worker_record_outbox(worker, instance, key);
    if (st == CV_OK)
        st = store->ops->create(store, instance, err);
    return st;
}

/* A core NATS copy with a durable store: left to the stream copy, or relayed to the stream. */
static void take_core_copy(cv_worker *worker, cv_work *item)
{
    if (cv_relay_left_to_stream(item->msg) || !accept_id(worker->node, item) ||
        find_process(worker, item) == NULL)
        return;
    cv_error err;
    if (cv_relay_forward(worker, item, &err) != CV_OK)
        reject(worker->node, item, err.text);
}

void cv_intake_handle(cv_worker *worker, cv_work *item)
{
    cv_node *node = worker->node;
    if (node->store->durable && !item->from_stream) {
        take_core_copy(worker, item);
        return;
    }
    const cv_process *process = NULL;
    json_t *body = NULL;
    if (!accept_id(node, item) || (process = find_process(worker, item)) == NULL ||
        (body = accept_body(worker, item)) == NULL)
        return;

    cv_error err;
    cv_instance *instance = cv_instance_create(item->instance, process, body);
    if (instance == NULL) {
        reject(node, item, "out of memory");
        return;
    }
    cv_status st = start_instance(worker, item, instance, &err);
    if (st != CV_OK) {
        cv_instance_destroy(instance);
        cv_effects_reset(&worker->effects);
    }
    if (st == CV_ERR_EXISTS) {
        handle_existing(worker, item, process);
        return;
    }
    if (item->from_stream && (st == CV_ERR_BUSY || st == CV_ERR_NATS)) {
        /*
         * The failure may pass: a claim left by a node that died expires,
         * NATS comes back. A later delivery starts the instance and sends
         * the answer then, so no rejection is sent to the requester.
         */
        if (st == CV_ERR_BUSY)
            CV_WARN("request put back for later instance=%s process=%s error=%s",
                    item->instance, process->name, cv_log_quote(err.text));
        else
            CV_ERROR("instance not started, request put back for later instance=%s process=%s "
                     "error=%s",
                     item->instance, process->name, cv_log_quote(err.text));
        item->retry_later = true;
        return;
    }
    if (st != CV_OK) {
        CV_ERROR("instance not started instance=%s process=%s error=%s", item->instance,
                 process->name, cv_log_quote(err.text));
        /* An instance too large to store never fits. */
        reject(node, item, err.text);
        return;
    }
    cv_failpoint("request.stored");
    answer_started(node, item, process->name);
    cv_worker_run_effects(worker, instance);
    node->store->ops->release(node->store, instance);
}
