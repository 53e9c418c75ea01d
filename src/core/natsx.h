/* Small helpers around nats.c options shared by the node and the commands. */
#ifndef CV_CORE_NATSX_H
#define CV_CORE_NATSX_H

#include <nats/nats.h>

/*
 * Sets the servers to connect to from urls, one URL or a comma-separated
 * list ("nats://127.0.0.1:4222,nats://127.0.0.1:4223"); natsOptions_SetURL
 * takes only one. Spaces around the commas are ignored.
 */
natsStatus cv_nats_set_urls(natsOptions *options, const char *urls);

/*
 * Returns nats.c's text for the failure s: the detailed one it kept for
 * this thread (a JetStream error's description) when that belongs to s,
 * else the generic text of s.
 */
const char *cv_nats_failure_text(natsStatus s);

#endif
