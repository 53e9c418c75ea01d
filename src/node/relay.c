/*
 * With a durable store every instance is started from ORCH_REQUESTS, so a
 * node that dies while starting one leaves an unacknowledged message that
 * another node finishes.
 *
 * The core NATS copy of a request carries what the stream copy lacks: the
 * reply subject, and for a request without Orch-Request-Id the chance to
 * give it an id. The node that takes such a core copy stores the request
 * again in ORCH_REQUESTS with both in headers. The node that takes this
 * relayed copy starts the instance and sends the reply. A core copy is not
 * delivered again: a node that dies holding one before relaying it loses
 * it, and the requester times out.
 *
 * ORCH_REQUESTS sends no acknowledgements (requesters expect the node's
 * answer), so a relayed copy the stream could not store, during a leader
 * election say, goes unanswered: the requester times out and may send the
 * request again under the same id.
 */
#include <string.h>

#include "core/log.h"
#include "node/node_internal.h"

#define CV_HEADER_RELAYED_BY "Orch-Relayed-By"
#define CV_HEADER_REPLY_TO "Orch-Reply-To"

static bool has_header(natsMsg *msg, const char *name)
{
    const char *value = NULL;
    return natsMsgHeader_Get(msg, name, &value) == NATS_OK && value != NULL;
}

static bool has_reply(natsMsg *msg)
{
    const char *reply = natsMsg_GetReply(msg);
    return reply != NULL && reply[0] != '\0';
}

bool cv_relay_is_relayed(natsMsg *msg)
{
    return has_header(msg, CV_HEADER_RELAYED_BY);
}

bool cv_relay_left_to_stream(natsMsg *msg)
{
    /*
     * The relayed copy is also delivered over core NATS; its stream copy is
     * the one to serve. A copy marked relayed by a client but without an id
     * would be dropped from the stream, so it is relayed like any other.
     */
    return has_header(msg, "Orch-Request-Id") &&
           (!has_reply(msg) || has_header(msg, CV_HEADER_RELAYED_BY));
}

const char *cv_relay_answer_subject(const cv_work *item)
{
    if (!item->from_stream)
        return has_reply(item->msg) ? natsMsg_GetReply(item->msg) : NULL;
    const char *reply = NULL;
    if (!has_header(item->msg, CV_HEADER_RELAYED_BY) ||
        natsMsgHeader_Get(item->msg, CV_HEADER_REPLY_TO, &reply) != NATS_OK || reply == NULL ||
        reply[0] == '\0')
        return NULL;
    return reply;
}

cv_status cv_relay_forward(cv_worker *worker, const cv_work *item, cv_error *err)
{
    cv_node *node = worker->node;
    natsMsg *copy = NULL;
    natsStatus s = natsMsg_Create(&copy, natsMsg_GetSubject(item->msg), NULL,
                                  natsMsg_GetData(item->msg), natsMsg_GetDataLength(item->msg));
    if (s == NATS_OK)
        s = natsMsgHeader_Set(copy, "Orch-Request-Id", item->instance);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(copy, CV_HEADER_RELAYED_BY, node->config.name);
    if (s == NATS_OK && has_reply(item->msg))
        s = natsMsgHeader_Set(copy, CV_HEADER_REPLY_TO, natsMsg_GetReply(item->msg));
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(node->nc, copy);
    natsMsg_Destroy(copy);
    if (s != NATS_OK)
        return cv_error_set(err, CV_ERR_NATS, "request not stored in ORCH_REQUESTS: %s",
                            natsStatus_GetText(s));
    CV_DEBUG("request relayed instance=%s subject=%s", item->instance,
             natsMsg_GetSubject(item->msg));
    return CV_OK;
}
