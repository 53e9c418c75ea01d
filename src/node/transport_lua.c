/*
 * The Lua transport: the module's run(input, params) runs in the worker's
 * own sandboxed Lua state, with the rule budgets. `input` is the same data
 * document a NATS module would receive. A Lua error is a permanent failure:
 * the same code on the same data would fail again.
 */
#include <stdlib.h>
#include <string.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "node/node_internal.h"

void cv_transport_lua_run(cv_worker *worker, const cv_instance *instance,
                          const cv_dispatch_order *order)
{
    const cv_step *step = &instance->process->steps[order->step];
    cv_error err;
    json_t *body = cv_dispatch_body(instance, order, &err);
    json_t *output = NULL;
    cv_status st = body == NULL ? err.status : CV_OK;
    if (st == CV_OK && (step->module == NULL || step->module->run_ref == CV_NO_REF))
        st = cv_error_set(&err, CV_ERR_INVALID, "step \"%s\" has no Lua module with a run function",
                          step->id);
    if (st == CV_OK)
        st = cv_rules_run_module(worker->rules, step->module, json_object_get(body, "data"),
                                 step->params, &output, &err);
    json_decref(body);
    if (st != CV_OK) {
        CV_WARN("lua module failed instance=%s step=%s attempt=%d error=%s", instance->id,
                step->id, order->attempt, cv_log_quote(err.text));
        cv_dispatch_local_result(worker, instance, order, NULL, err.text, true);
        return;
    }
    char *text = cv_json_dump(output);
    size_t size = text ? strlen(text) : 0;
    free(text);
    if (size > worker->node->config.max_body) {
        cv_error_set(&err, CV_ERR_LIMIT,
                     "Lua module output is %zu bytes, over the limit of %zu bytes", size,
                     worker->node->config.max_body);
        json_decref(output);
        CV_WARN("lua module failed instance=%s step=%s attempt=%d error=%s", instance->id,
                step->id, order->attempt, cv_log_quote(err.text));
        cv_dispatch_local_result(worker, instance, order, NULL, err.text, true);
        return;
    }
    cv_dispatch_local_result(worker, instance, order, output, NULL, false);
}
