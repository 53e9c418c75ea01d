/*
 * conveyor node: runs one orchestrator node until SIGINT or SIGTERM. The
 * signals are blocked in every thread and taken by one waiting thread, so
 * nats.c's threads never run a handler and stopping is an ordinary call.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "core/failpoint.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/text.h"
#include "node/node.h"

static const char usage[] =
    "conveyor node [--nats URL] [--rules DIR] [--name NAME] [--state kv|memory]\n"
    "                     [--storage file|memory] [--replicas N] [--ack-wait DURATION]\n"
    "                     [--workers N] [--prefix orch] [--max-body SIZE]\n"
    "                     [--log-level debug|info|warn|error]";

typedef struct signal_waiter {
    sigset_t signals;
    cv_node *node;
} signal_waiter;

static void *wait_for_signal(void *arg)
{
    signal_waiter *waiter = arg;
    int received = 0;
    sigwait(&waiter->signals, &received);
    CV_INFO("signal received signal=%s", received == SIGINT ? "SIGINT" : "SIGTERM");
    cv_node_stop(waiter->node);
    return NULL;
}

static bool parse_whole(const char *text, long low, long high, int *out)
{
    char *end;
    long n = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || n < low || n > high)
        return false;
    *out = (int)n;
    return true;
}

static bool read_durable_config(cv_option *options, cv_node_config *config)
{
    cv_error err;
    const char *storage = cv_options_get(options, "storage")->value;
    if (strcmp(storage, "file") != 0 && strcmp(storage, "memory") != 0) {
        fprintf(stderr, "conveyor node: --storage must be file or memory, got '%s'\n", storage);
        return false;
    }
    config->memory_storage = strcmp(storage, "memory") == 0;
    const char *replicas = cv_options_get(options, "replicas")->value;
    if (!parse_whole(replicas, 1, 5, &config->replicas)) {
        fprintf(stderr, "conveyor node: --replicas must be a whole number from 1 to 5, got '%s'\n",
                replicas);
        return false;
    }
    if (cv_text_parse_duration(cv_options_get(options, "ack-wait")->value, &config->ack_wait_ms,
                               &err) != CV_OK || config->ack_wait_ms < 1000) {
        fprintf(stderr, "conveyor node: --ack-wait must be a duration of at least 1s\n");
        return false;
    }
    return true;
}

/*
 * Eight worker threads per CPU, 4 to 64. A worker spends most of a step
 * waiting: for the socket while it publishes and, with the kv store, for
 * JetStream round trips. On a 2-core machine, with 256 instances in
 * flight, one node made about 9,500 steps/s with 2 workers and 14,000 to
 * 17,000 with 16 (memory store). With the kv store it made 1,300 and 1,900.
 * A worker costs about 100 KB, mostly its Lua state.
 */
static int default_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long workers = cpus > 0 ? cpus * 8 : 16;
    if (workers < 4)
        workers = 4;
    if (workers > 64)
        workers = 64;
    return (int)workers;
}
static bool read_config(cv_option *options, cv_node_config *config, char *default_name,
                        size_t name_size)
{
    cv_error err;
    config->nats_url = cv_options_get(options, "nats")->value;
    config->rules_dir = cv_options_get(options, "rules")->value;
    config->state = cv_options_get(options, "state")->value;
    config->prefix = cv_options_get(options, "prefix")->value;
    config->name = cv_options_get(options, "name")->value;
    if (config->name == NULL) {
        char host[128] = "node";
        gethostname(host, sizeof host - 1);
        snprintf(default_name, name_size, "%s-%d", host, (int)getpid());
        config->name = default_name;
    }
    if (!cv_text_is_token(config->prefix) || !cv_text_is_token(config->name)) {
        fprintf(stderr, "conveyor node: --prefix and --name must be made of [A-Za-z0-9_-]\n");
        return false;
    }
    const char *workers = cv_options_get(options, "workers")->value;
    config->workers = default_workers();
    if (workers != NULL && !parse_whole(workers, 1, 256, &config->workers)) {
        fprintf(stderr, "conveyor node: --workers must be a whole number from 1 to 256, got '%s'\n",
                workers);
        return false;
    }
    if (cv_text_parse_size(cv_options_get(options, "max-body")->value, &config->max_body, &err) !=
        CV_OK) {
        fprintf(stderr, "conveyor node: --max-body: %s\n", err.text);
        return false;
    }
    if (config->max_body < 1024) {
        fprintf(stderr, "conveyor node: --max-body must be at least 1KiB, got '%s'\n",
                cv_options_get(options, "max-body")->value);
        return false;
    }
    const char *level = cv_options_get(options, "log-level")->value;
    if (!cv_log_parse_level(level, &cv_log_threshold)) {
        fprintf(stderr, "conveyor node: --log-level must be debug, info, warn or error, got '%s'\n",
                level);
        return false;
    }
    config->keep_finished = 100000;
    return read_durable_config(options, config);
}

static int serve(const cv_node_config *config)
{
    signal_waiter waiter;
    sigemptyset(&waiter.signals);
    sigaddset(&waiter.signals, SIGINT);
    sigaddset(&waiter.signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &waiter.signals, NULL);
    cv_failpoint_init();

    cv_error err;
    cv_node *node = NULL;
    if (cv_node_create(&node, config, &err) != CV_OK) {
        CV_ERROR("node not started error=%s", cv_log_quote(err.text));
        nats_Close();
        return CV_EXIT_FAILED;
    }
    waiter.node = node;
    pthread_t thread;
    pthread_create(&thread, NULL, wait_for_signal, &waiter);

    int code = CV_EXIT_OK;
    if (cv_node_run(node, &err) != CV_OK) {
        CV_ERROR("node failed error=%s", cv_log_quote(err.text));
        code = CV_EXIT_FAILED;
        pthread_kill(thread, SIGTERM);
    }
    pthread_join(thread, NULL);
    cv_node_destroy(node);
    nats_Close();
    return code;
}

int cv_cli_node(int argc, char **argv)
{
    cv_option options[] = {
        {"nats", CV_OPTION_VALUE, "URL", "NATS server URL", "nats://127.0.0.1:4222", NULL, false},
        {"rules", CV_OPTION_VALUE, "DIR", "folder of .lua rules, searched recursively", "rules",
         NULL, false},
        {"name", CV_OPTION_VALUE, "NAME", "node name in logs and events (default: HOST-PID)",
         NULL, NULL, false},
        {"state", CV_OPTION_VALUE, "STORE",
         "where instance state lives: kv (JetStream, shared by nodes) or memory (one node)", "kv",
         NULL, false},
        {"storage", CV_OPTION_VALUE, "TYPE",
         "kv: file or memory storage for streams and bucket it creates", "file", NULL, false},
        {"replicas", CV_OPTION_VALUE, "N", "kv: replicas of the streams and bucket it creates",
         "1", NULL, false},
        {"ack-wait", CV_OPTION_VALUE, "DURATION",
         "kv: how long a message taken by a node that died waits before another node gets it",
         "30s", NULL, false},
        {"workers", CV_OPTION_VALUE, "N", "worker threads (default: 8 per CPU, 4 to 64)", NULL, NULL,
         false},
        {"prefix", CV_OPTION_VALUE, "PREFIX", "first token of every subject", "orch", NULL,
         false},
        {"max-body", CV_OPTION_VALUE, "BYTES", "largest request or reply body", "1MiB", NULL,
         false},
        {"log-level", CV_OPTION_VALUE, "LEVEL", "debug, info, warn or error", "info", NULL,
         false},
        {NULL, 0, NULL, NULL, NULL, NULL, false},
    };
    const char *positional[1];
    int count;
    bool help;
    if (!cv_options_parse(argc, argv, options, positional, 0, &count, &help, usage))
        return help ? CV_EXIT_OK : CV_EXIT_USAGE;

    cv_node_config config = {0};
    char default_name[160];
    if (!read_config(options, &config, default_name, sizeof default_name))
        return CV_EXIT_USAGE;
    cv_log_set_node(config.name);
    return serve(&config);
}
