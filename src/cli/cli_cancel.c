/* conveyor cancel: stops a running instance through <prefix>.cancel.<instance>. */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "core/jsonx.h"
#include "core/natsx.h"
#include "core/text.h"
#include "engine/instance.h"
#include "node/subjects.h"

static const char usage[] = "conveyor cancel ID [--reason TEXT] [--nats URL] [--prefix orch]";

static int send_cancel(const char *urls, const char *prefix, const char *id, const char *reason)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = cv_nats_set_urls(opts, urls);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor cancel: cannot connect to NATS at %s: %s\n", urls,
                natsStatus_GetText(s));
        return CV_EXIT_FAILED;
    }
    char subject[CV_SUBJECT_MAX];
    snprintf(subject, sizeof subject, "%s.cancel.%s", prefix, id);
    json_t *body = json_pack("{s:o}", "reason", cv_json_text(reason));
    char *text = cv_json_dump(body);
    json_decref(body);
    s = natsConnection_RequestString(&reply, nc, subject, text, 10000);
    free(text);

    int code = CV_EXIT_FAILED;
    if (s == NATS_NO_RESPONDERS) {
        fprintf(stderr, "conveyor cancel: no conveyor node is subscribed to %s\n", subject);
    } else if (s != NATS_OK) {
        fprintf(stderr, "conveyor cancel: request to %s failed: %s\n", subject,
                natsStatus_GetText(s));
    } else {
        json_t *answer = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply),
                                    0, NULL);
        const char *error = json_string_value(json_object_get(answer, "error"));
        if (error != NULL) {
            fprintf(stderr, "conveyor cancel: %s\n", error);
        } else {
            printf("%s cancelled\n", id);
            code = CV_EXIT_OK;
        }
        json_decref(answer);
    }
    natsMsg_Destroy(reply);
    natsConnection_Destroy(nc);
    return code;
}

int cv_cli_cancel(int argc, char **argv)
{
    cv_option options[] = {
        {"nats", CV_OPTION_VALUE, "URL", "NATS server URL, or a comma-separated list",
         "nats://127.0.0.1:4222", NULL, false},
        {"prefix", CV_OPTION_VALUE, "PREFIX", "first token of every subject", "orch", NULL,
         false},
        {"reason", CV_OPTION_VALUE, "TEXT", "why, recorded in the instance.cancelled event",
         "cancelled by an operator", NULL, false},
        {NULL, 0, NULL, NULL, NULL, NULL, false},
    };
    const char *positional[1] = {NULL};
    int count;
    bool help;
    if (!cv_options_parse(argc, argv, options, positional, 1, &count, &help, usage))
        return help ? CV_EXIT_OK : CV_EXIT_USAGE;
    if (count < 1 || strlen(positional[0]) > CV_INSTANCE_ID_MAX ||
        !cv_text_is_token(positional[0])) {
        fprintf(stderr, "conveyor cancel: expected an instance id of 1 to %d characters of "
                        "[A-Za-z0-9_-]\nusage: %s\n",
                CV_INSTANCE_ID_MAX, usage);
        return CV_EXIT_USAGE;
    }
    int code = send_cancel(cv_options_get(options, "nats")->value,
                           cv_options_get(options, "prefix")->value, positional[0],
                           cv_options_get(options, "reason")->value);
    nats_Close();
    return code;
}
