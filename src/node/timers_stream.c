/*
 * Timers kept in NATS (see timers.h). A timer message carries everything
 * needed to fire it in its headers, so firing it needs no other lookup
 * than the instance itself:
 *   Orch-Timer: timeout | retry     Orch-Step, Orch-Attempt, Orch-Token
 *   Orch-Due: wall-clock milliseconds since the epoch
 * Its Nats-Msg-Id names the attempt and the kind, so a timer published
 * again from the outbox is stored once.
 *
 * NOTE: on a cluster the repeat stays in the replicated log as a rejected
 * entry. A server killed and started again within about two minutes
 * (before its next stream snapshot) decides on the end of its log once
 * more. If the first copy was already acknowledged and removed, it stores
 * the repeat, so while it leads the timer can fire a second time. Queue
 * tasks (transport_queue.c) share this. Firing a timer twice is harmless,
 * and an answer to a task of an ended attempt is ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "node/node_internal.h"
#include "node/subjects.h"
#include "node/timers.h"

static natsStatus set_headers(natsMsg *msg, const cv_instance *instance,
                              const cv_timer_order *timer)
{
    char attempt[16], due[32], id[160];
    const char *kind =
        timer->kind == CV_TIMER_RETRY ? CV_TIMER_HEADER_RETRY : CV_TIMER_HEADER_TIMEOUT;
    snprintf(attempt, sizeof attempt, "%d", timer->attempt);
    snprintf(due, sizeof due, "%lld", (long long)timer->due_ms);
    snprintf(id, sizeof id, "%s.timer.%s.%s", instance->id, kind, timer->token);
    natsStatus s = natsMsgHeader_Set(msg, "Orch-Timer", kind);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Step", instance->process->steps[timer->step].id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Attempt", attempt);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Token", timer->token);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Due", due);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Nats-Msg-Id", id);
    return s;
}

/* Published asynchronously: the message that caused it is acknowledged only after it is stored. */
static void publish_timer(cv_worker *worker, const cv_instance *instance,
                          const cv_timer_order *timer)
{
    char subject[CV_SUBJECT_MAX];
    natsMsg *msg = NULL;
    natsStatus s = NATS_ERR;
    if (cv_subject_timer(subject, worker->node->config.prefix, instance->id))
        s = natsMsg_Create(&msg, subject, NULL, NULL, 0);
    if (s == NATS_OK)
        s = set_headers(msg, instance, timer);
    if (s == NATS_OK)
        s = js_PublishMsgAsync(worker->js, &msg, NULL); /* takes msg on success */
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
        atomic_store(&worker->event_failed, true);
        CV_ERROR("timer not stored instance=%s step=%s attempt=%d error=%s", instance->id,
                 instance->process->steps[timer->step].id, timer->attempt,
                 cv_log_quote(natsStatus_GetText(s)));
    }
}

void cv_timers_schedule(cv_worker *worker, const cv_instance *instance,
                        const cv_timer_order *timer)
{
    if (worker->node->store->durable)
        publish_timer(worker, instance, timer);
    else
        cv_local_timers_add(worker->node->local_timers, instance, timer);
}

static bool read_number(natsMsg *msg, const char *name, long long min, long long max,
                        long long *out)
{
    const char *value = NULL;
    if (natsMsgHeader_Get(msg, name, &value) != NATS_OK || value == NULL || value[0] == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        return false;
    *out = n;
    return true;
}

/* Fills item from the timer's headers; false when one is missing or malformed. */
static bool read_timer(cv_node *node, natsMsg *msg, cv_work *item)
{
    const char *instance = cv_subject_timer_instance(node->config.prefix, natsMsg_GetSubject(msg));
    const char *kind = NULL, *step = NULL, *token = NULL;
    long long attempt = 0;
    if (instance == NULL || natsMsgHeader_Get(msg, "Orch-Timer", &kind) != NATS_OK ||
        natsMsgHeader_Get(msg, "Orch-Step", &step) != NATS_OK ||
        natsMsgHeader_Get(msg, "Orch-Token", &token) != NATS_OK || kind == NULL ||
        step == NULL || token == NULL || strlen(token) != CV_TOKEN_LEN ||
        !read_number(msg, "Orch-Attempt", 1, 1000000, &attempt))
        return false;
    if (strcmp(kind, CV_TIMER_HEADER_RETRY) == 0)
        item->result_kind = CV_RESULT_RETRY_DUE;
    else if (strcmp(kind, CV_TIMER_HEADER_TIMEOUT) == 0)
        item->result_kind = CV_RESULT_TIMEOUT;
    else
        return false;
    snprintf(item->instance, sizeof item->instance, "%s", instance);
    memcpy(item->token, token, sizeof item->token);
    item->attempt = (int)attempt;
    item->step = strdup(step);
    return item->step != NULL;
}

void cv_timers_take(cv_node *node, natsMsg *msg, atomic_int *in_flight)
{
    long long due = 0;
    if (!read_number(msg, "Orch-Due", 0, INT64_MAX, &due)) {
        CV_WARN("timer dropped subject=%s reason=\"no valid Orch-Due header\"",
                natsMsg_GetSubject(msg));
        natsMsg_Ack(msg, NULL);
        natsMsg_Destroy(msg);
        return;
    }
    int64_t remaining = (int64_t)due - cv_clock_wall_ms();
    if (remaining > 0) {
        natsMsg_NakWithDelay(msg, remaining, NULL);
        natsMsg_Destroy(msg);
        return;
    }
    cv_work *item = calloc(1, sizeof *item);
    if (item == NULL) {
        natsMsg_Destroy(msg); /* not acknowledged: it comes back after the ack wait */
        return;
    }
    item->kind = CV_WORK_TIMER;
    item->msg = msg;
    item->from_stream = true;
    cv_work_count(item, in_flight);
    if (!read_timer(node, msg, item)) {
        CV_WARN("timer dropped subject=%s reason=\"malformed timer headers\"",
                natsMsg_GetSubject(msg));
        natsMsg_Ack(msg, NULL);
        cv_work_free(item);
        return;
    }
    cv_node_route_work(node, item);
}
