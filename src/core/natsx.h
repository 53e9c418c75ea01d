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

#endif
