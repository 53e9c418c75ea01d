/*
 * Replies from modules: the subject names the instance, step, attempt and
 * token; the headers Orch-Error and Orch-Retry mark a failure; the body is
 * the step's output. A body that breaks the limits or is not JSON fails the
 * step permanently, with the parse error as its cause: a module that sends
 * it would send it again.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "node/node_internal.h"
#include "node/subjects.h"

static bool header_says_false(natsMsg *msg, const char *name)
{
    const char *value = NULL;
    return natsMsgHeader_Get(msg, name, &value) == NATS_OK && value != NULL &&
           strcasecmp(value, "false") == 0;
}

void cv_replies_handle(cv_worker *worker, cv_work *item)
{
    cv_node *node = worker->node;
    natsMsg *msg = item->msg;
    cv_reply_address address;
    if (!cv_subject_parse_reply(node->config.prefix, natsMsg_GetSubject(msg), &address)) {
        CV_WARN("reply ignored subject=%s reason=\"not a conveyor reply subject\"",
                natsMsg_GetSubject(msg));
        return;
    }

    cv_step_result result = {
        .step = address.step,
        .attempt = address.attempt,
        .token = address.token,
    };
    char error[CV_ERROR_TEXT_MAX + 64];
    const char *header_error = NULL;
    json_t *output = NULL;

    if (natsMsg_IsNoResponders(msg)) {
        snprintf(error, sizeof error, "no module is subscribed to the step's dispatch subject");
        result.error = error;
        /* Not lost: with JetStream the step waits in the queue for a worker. */
        if (node->queue_available)
            result.kind = CV_RESULT_FALLBACK;
    } else if (natsMsgHeader_Get(msg, "Orch-Error", &header_error) == NATS_OK &&
               header_error != NULL) {
        result.error = header_error[0] != '\0' ? header_error : "module reported an error";
        result.permanent = header_says_false(msg, "Orch-Retry");
    } else if (natsMsg_GetDataLength(msg) > 0) {
        cv_json_limits limits = {.max_bytes = node->config.max_body};
        cv_error err;
        if (cv_json_parse(&output, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                          &limits, &err) != CV_OK) {
            snprintf(error, sizeof error, "reply body rejected: %s", err.text);
            result.error = error;
            result.permanent = true;
            CV_WARN("reply rejected instance=%s step=%s attempt=%d reason=%s",
                    address.instance, address.step, address.attempt,
                    cv_log_quote(err.text));
        }
    }
    result.output = output;
    cv_worker_apply_result(worker, address.instance, &result, item);
    json_decref(output);
}
