/*
 * Lifecycle events on <prefix>.event.<process>.<instance>.<kind>. An event
 * whose body would exceed the server's max_payload is sent with its "data"
 * and "output" replaced by a note, so the event itself is never lost.
 */
#include <string.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "node/node_internal.h"
#include "node/subjects.h"

static char *shrink(json_t *body, size_t limit, size_t size)
{
    json_t *copy = json_copy(body);
    char note[128];
    snprintf(note, sizeof note, "omitted: the event was %zu bytes, over the %zu-byte max_payload",
             size, limit);
    if (json_object_get(copy, "data") != NULL)
        json_object_set_new(copy, "data", json_string(note));
    if (json_object_get(copy, "output") != NULL)
        json_object_set_new(copy, "output", json_string(note));
    char *text = cv_json_dump(copy);
    json_decref(copy);
    return text;
}

void cv_events_publish(cv_node *node, const cv_instance *instance, const char *kind,
                       json_t *body)
{
    char subject[CV_SUBJECT_MAX];
    if (!cv_subject_event(subject, node->config.prefix, instance->process->name, instance->id,
                          kind))
        return;
    json_object_set_new(body, "node", json_string(node->config.name));

    char *text = cv_json_dump(body);
    size_t size = text ? strlen(text) : 0;
    size_t limit = (size_t)natsConnection_GetMaxPayload(node->nc);
    if (text != NULL && limit > 0 && size > limit) {
        free(text);
        text = shrink(body, limit, size);
    }
    if (text == NULL) {
        CV_ERROR("event not sent instance=%s kind=%s error=\"out of memory\"", instance->id, kind);
        return;
    }
    natsStatus s = natsConnection_PublishString(node->nc, subject, text);
    if (s != NATS_OK)
        CV_ERROR("event not sent instance=%s kind=%s error=\"%s\"", instance->id, kind,
                 natsStatus_GetText(s));
    free(text);
}
