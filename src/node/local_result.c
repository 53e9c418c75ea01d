/*
 * Results made inside the node: a Lua module's output, an HTTP response, a
 * step that could not be sent. With the memory store they go straight to
 * the worker that owns the instance. With a durable store they go through
 * ORCH_REPLIES, as a module's reply would. A result kept only in this
 * node's memory was lost when the node died after storing the change that
 * made it, so nothing published its effects. From the stream, any node
 * applies it, and a redelivery replays what it caused.
 */
#include <stdlib.h>
#include <string.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "node/node_internal.h"
#include "node/subjects.h"

/* Header values end at CR or LF, so an error text is kept to one line. */
static void one_line(char *text)
{
    for (char *c = text; *c != '\0'; c++)
        if (*c == '\r' || *c == '\n')
            *c = ' ';
}

/* Builds the reply a module would send for this result; NULL when it cannot. */
static natsMsg *reply_message(const cv_node *node, const char *instance, const char *step,
                              int attempt, const char *token, const json_t *output,
                              const char *error, bool permanent)
{
    char subject[CV_SUBJECT_MAX];
    if (!cv_subject_reply(subject, node->config.prefix, instance, step, attempt, token))
        return NULL;
    char *text = output != NULL ? cv_json_dump(output) : NULL;
    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create(&msg, subject, NULL, text, text ? (int)strlen(text) : 0);
    free(text);
    if (s == NATS_OK && error != NULL) {
        char *line = strdup(error[0] != '\0' ? error : "step failed");
        if (line == NULL) {
            s = NATS_NO_MEMORY;
        } else {
            one_line(line);
            s = natsMsgHeader_Set(msg, "Orch-Error", line);
        }
        free(line);
    }
    if (s == NATS_OK && error != NULL && permanent)
        s = natsMsgHeader_Set(msg, "Orch-Retry", "false");
    if (s != NATS_OK) {
        natsMsg_Destroy(msg);
        return NULL;
    }
    return msg;
}

/* Publishes the result into ORCH_REPLIES through js; false when it could not be handed over. */
static bool post_through_stream(cv_node *node, jsCtx *js, const char *instance,
                                const char *step, int attempt, const char *token,
                                const json_t *output, const char *error, bool permanent)
{
    natsMsg *msg = reply_message(node, instance, step, attempt, token, output, error, permanent);
    if (msg == NULL)
        return false;
    natsStatus s = js_PublishMsgAsync(js, &msg, NULL); /* takes msg on success */
    natsMsg_Destroy(msg);
    if (s != NATS_OK)
        CV_WARN("step result kept in the node instance=%s step=%s attempt=%d error=%s", instance,
                step, attempt, cv_log_quote(natsStatus_GetText(s)));
    return s == NATS_OK;
}

static void post_to_worker(cv_node *node, const char *instance, const char *step, int attempt,
                           const char *token, json_t *output, const char *error, bool permanent)
{
    cv_work *item = calloc(1, sizeof *item);
    if (item != NULL) {
        item->step = strdup(step);
        item->error = error ? strdup(error) : NULL;
    }
    if (item == NULL || item->step == NULL || (error != NULL && item->error == NULL)) {
        json_decref(output);
        cv_work_free(item);
        CV_ERROR("step result lost instance=%s step=%s attempt=%d error=\"out of memory\"",
                 instance, step, attempt);
        return;
    }
    item->kind = CV_WORK_LOCAL_RESULT;
    snprintf(item->instance, sizeof item->instance, "%s", instance);
    item->attempt = attempt;
    snprintf(item->token, sizeof item->token, "%s", token);
    item->output = output;
    item->permanent = permanent;
    cv_node_route_work(node, item);
}

static void post_result(cv_node *node, jsCtx *js, const char *instance, const char *step,
                        int attempt, const char *token, json_t *output, const char *error,
                        bool permanent)
{
    if (node->store->durable && js != NULL &&
        post_through_stream(node, js, instance, step, attempt, token, output, error, permanent)) {
        json_decref(output);
        return;
    }
    post_to_worker(node, instance, step, attempt, token, output, error, permanent);
}

void cv_node_post_result(cv_node *node, const char *instance, const char *step, int attempt,
                         const char *token, json_t *output, const char *error, bool permanent)
{
    post_result(node, node->js, instance, step, attempt, token, output, error, permanent);
}

/*
 * From a worker the result goes out on the worker's own JetStream context,
 * so the confirmation that ends the worker's batch covers it: the message
 * that caused the step is acknowledged only once its result is stored.
 */
void cv_dispatch_local_result(cv_worker *worker, const cv_instance *instance,
                              const cv_dispatch_order *order, json_t *output, const char *error,
                              bool permanent)
{
    post_result(worker->node, worker->js, instance->id,
                instance->process->steps[order->step].id, order->attempt, order->token, output,
                error, permanent);
}
