/*
 * conveyor submit: sends one request and prints the instance id, or with
 * --wait the final status and data. The instance id is chosen here when
 * --id is not given, so the events of the instance can be subscribed to
 * before the request is sent and none is missed.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "core/clock.h"
#include "core/jsonx.h"
#include "core/text.h"
#include "engine/instance.h"
#include "node/subjects.h"

static const char usage[] =
    "conveyor submit PROCESS [JSON | @FILE | -] [--id ID] [--wait[=SECONDS]] [--nats URL]";

/*
 * How long the node has at least to answer that it recorded the request
 * (with --wait, the whole wait). On a cluster a node that finds the id
 * claimed by a node that died puts the request back until the claim
 * expires, which can take about 12 s.
 */
#define SUBMIT_ANSWER_TIMEOUT_MS 20000
#define SUBMIT_DEFAULT_WAIT_S 60

static char *read_stream(FILE *f)
{
    size_t cap = 65536, len = 0, n;
    char *buf = malloc(cap);
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

/* Returns the request text from the argument, a file or standard input; NULL after an error. */
static char *load_body(const char *arg)
{
    if (arg == NULL)
        return strdup("{}");
    if (strcmp(arg, "-") == 0)
        return read_stream(stdin);
    if (arg[0] != '@')
        return strdup(arg);
    FILE *f = fopen(arg + 1, "rb");
    if (f == NULL) {
        fprintf(stderr, "conveyor submit: cannot open %s: %m\n", arg + 1);
        return NULL;
    }
    char *text = read_stream(f);
    fclose(f);
    return text;
}

static bool check_body(const char *text, const char *source)
{
    cv_error err;
    json_t *value = NULL;
    if (cv_json_parse(&value, text, strlen(text), NULL, &err) != CV_OK) {
        fprintf(stderr, "conveyor submit: request %s: %s\n", source, err.text);
        return false;
    }
    bool is_object = json_is_object(value);
    if (!is_object)
        fprintf(stderr, "conveyor submit: request %s must be a JSON object, got %s\n", source,
                cv_json_type_name(value));
    json_decref(value);
    return is_object;
}

static void print_json(const json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
}

static int exit_code_for(const char *status)
{
    if (strcmp(status, "completed") == 0)
        return CV_EXIT_OK;
    return CV_EXIT_FAILED;
}

/* Sends the request; returns the node's answer as a new object, or NULL after printing why. */
static json_t *send_request(natsConnection *nc, const char *prefix, const char *process,
                            const char *id, const char *body, int64_t timeout_ms)
{
    char subject[CV_SUBJECT_MAX];
    cv_subject_request(subject, prefix, process);
    natsMsg *msg = NULL, *reply = NULL;
    natsStatus s = natsMsg_Create(&msg, subject, NULL, body, (int)strlen(body));
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Orch-Request-Id", id);
    if (s == NATS_OK)
        s = natsConnection_RequestMsg(&reply, nc, msg, timeout_ms);
    natsMsg_Destroy(msg);
    if (s == NATS_NO_RESPONDERS) {
        fprintf(stderr, "conveyor submit: no conveyor node is subscribed to %s\n", subject);
        return NULL;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor submit: request to %s failed: %s\n", subject,
                natsStatus_GetText(s));
        return NULL;
    }
    json_t *answer = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0,
                                NULL);
    natsMsg_Destroy(reply);
    if (!json_is_object(answer)) {
        fprintf(stderr, "conveyor submit: the node's answer is not a JSON object\n");
        json_decref(answer);
        return NULL;
    }
    /* A rejection has no instance; a repeated request for a failed one carries its error. */
    const char *error = json_string_value(json_object_get(answer, "error"));
    if (error != NULL && json_object_get(answer, "instance") == NULL) {
        fprintf(stderr, "conveyor submit: request rejected: %s\n", error);
        json_decref(answer);
        return NULL;
    }
    return answer;
}

static json_t *final_result(natsMsg *event, const char *id, const char *process)
{
    const char *subject = natsMsg_GetSubject(event);
    const char *status = strrchr(subject, '.') + 1;
    json_t *body = json_loadb(natsMsg_GetData(event), (size_t)natsMsg_GetDataLength(event), 0,
                              NULL);
    json_t *result = json_pack("{s:s, s:s, s:s}", "instance", id, "process", process, "status",
                               status);
    json_t *steps = json_object_get(body, "steps");
    json_object_set(result, "steps", steps ? steps : json_array());
    json_t *data = json_object_get(body, "data");
    if (data != NULL)
        json_object_set(result, "data", data);
    json_t *error = json_object_get(body, "error");
    if (error != NULL)
        json_object_set(result, "error", error);
    json_decref(body);
    return result;
}

static int wait_for_end(natsSubscription *sub, const char *id, const char *process,
                        int64_t seconds)
{
    int64_t deadline = cv_clock_mono_ms() + seconds * 1000;
    for (;;) {
        int64_t left = deadline - cv_clock_mono_ms();
        natsMsg *event = NULL;
        natsStatus s = left > 0 ? natsSubscription_NextMsg(&event, sub, left) : NATS_TIMEOUT;
        if (s == NATS_TIMEOUT) {
            fprintf(stderr, "conveyor submit: timed out after %lld s waiting for instance %s\n",
                    (long long)seconds, id);
            return CV_EXIT_TIMEOUT;
        }
        if (s != NATS_OK) {
            fprintf(stderr, "conveyor submit: waiting for instance %s failed: %s\n", id,
                    natsStatus_GetText(s));
            return CV_EXIT_FAILED;
        }
        const char *subject = natsMsg_GetSubject(event);
        const char *kind = strstr(subject, ".instance.");
        if (kind != NULL && strcmp(kind, ".instance.started") != 0) {
            json_t *result = final_result(event, id, process);
            natsMsg_Destroy(event);
            print_json(result);
            int code = exit_code_for(json_string_value(json_object_get(result, "status")));
            json_decref(result);
            return code;
        }
        natsMsg_Destroy(event);
    }
}

static int submit(const char *url, const char *prefix, const char *process, const char *id,
                  const char *body, const char *wait)
{
    int64_t seconds = SUBMIT_DEFAULT_WAIT_S;
    if (wait != NULL && wait[0] != '\0') {
        char *end;
        seconds = strtoll(wait, &end, 10);
        if (*end != '\0' || seconds < 1) {
            fprintf(stderr, "conveyor submit: --wait takes whole seconds, got '%s'\n", wait);
            return CV_EXIT_USAGE;
        }
    }
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor submit: cannot connect to NATS at %s: %s\n", url,
                natsStatus_GetText(s));
        return CV_EXIT_FAILED;
    }
    int code = CV_EXIT_FAILED;
    char events[CV_SUBJECT_MAX];
    cv_subject_event(events, prefix, process, id, "instance.*");
    if (wait != NULL && natsConnection_SubscribeSync(&sub, nc, events) != NATS_OK) {
        fprintf(stderr, "conveyor submit: cannot subscribe to %s\n", events);
        goto out;
    }
    int64_t answer_ms = SUBMIT_ANSWER_TIMEOUT_MS;
    if (wait != NULL && seconds * 1000 > answer_ms)
        answer_ms = seconds * 1000;
    json_t *answer = send_request(nc, prefix, process, id, body, answer_ms);
    if (answer == NULL)
        goto out;
    const char *status = json_string_value(json_object_get(answer, "status"));
    if (wait == NULL) {
        printf("%s\n", json_string_value(json_object_get(answer, "instance")));
        if (json_is_true(json_object_get(answer, "duplicate")))
            fprintf(stderr, "conveyor submit: instance %s already exists (status %s); nothing new "
                            "was started\n",
                    id, status ? status : "unknown");
        code = CV_EXIT_OK;
    } else if (status != NULL && strcmp(status, "running") != 0) {
        /* A repeated request for a finished instance: its events are already gone. */
        print_json(answer);
        code = exit_code_for(status);
    } else {
        code = wait_for_end(sub, id, process, seconds);
    }
    json_decref(answer);
out:
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    return code;
}

int cv_cli_submit(int argc, char **argv)
{
    cv_option options[] = {
        {"nats", CV_OPTION_VALUE, "URL", "NATS server URL", "nats://127.0.0.1:4222", NULL, false},
        {"prefix", CV_OPTION_VALUE, "PREFIX", "first token of every subject", "orch", NULL,
         false},
        {"id", CV_OPTION_VALUE, "ID", "instance id, sent as Orch-Request-Id (default: random)",
         NULL, NULL, false},
        {"wait", CV_OPTION_OPTIONAL, "SECONDS",
         "wait for the instance to end and print its status and data (default 60 s)", NULL,
         NULL, false},
        {NULL, 0, NULL, NULL, NULL, NULL, false},
    };
    const char *positional[2] = {NULL, NULL};
    int count;
    bool help;
    if (!cv_options_parse(argc, argv, options, positional, 2, &count, &help, usage))
        return help ? CV_EXIT_OK : CV_EXIT_USAGE;
    if (count < 1 || !cv_text_is_token(positional[0])) {
        fprintf(stderr, "conveyor submit: expected a process name made of [A-Za-z0-9_-]\nusage: %s\n",
                usage);
        return CV_EXIT_USAGE;
    }
    char id[CV_INSTANCE_ID_MAX + 1];
    const char *given = cv_options_get(options, "id")->value;
    if (given != NULL && (strlen(given) > CV_INSTANCE_ID_MAX || !cv_text_is_token(given))) {
        fprintf(stderr, "conveyor submit: --id must be 1 to %d characters of [A-Za-z0-9_-]\n",
                CV_INSTANCE_ID_MAX);
        return CV_EXIT_USAGE;
    }
    if (given != NULL)
        snprintf(id, sizeof id, "%s", given);
    else
        cv_text_random_token(id, CV_TOKEN_LEN);

    char *body = load_body(positional[1]);
    if (body == NULL)
        return CV_EXIT_USAGE;
    const char *source = positional[1] == NULL ? "{}" : positional[1];
    int code = CV_EXIT_USAGE;
    if (check_body(body, source[0] == '@' || strcmp(source, "-") == 0 ? source : "argument"))
        code = submit(cv_options_get(options, "nats")->value,
                      cv_options_get(options, "prefix")->value, positional[0], id, body,
                      cv_options_get(options, "wait")->given ? cv_options_get(options, "wait")->value
                                                             : NULL);
    free(body);
    nats_Close();
    return code;
}
