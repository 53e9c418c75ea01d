#include "support/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/natsx.h"

const char *cv_test_state = "kv";

void cv_test_state_from_args(int argc, char **argv)
{
    if (argc > 1)
        cv_test_state = argv[1];
    const char *filter = getenv("CV_TEST_FILTER");
    if (filter != NULL)
        cmocka_set_test_filter(filter);
}

const char *cv_test_server_binary(void)
{
    const char *given = getenv("CV_NATS_SERVER");
    if (given != NULL)
        return given;
    if (access("/usr/sbin/nats-server", X_OK) == 0)
        return "/usr/sbin/nats-server";
    return "/usr/bin/nats-server";
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    bool open = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0)
        close(fd);
    return open;
}

static void launch_server(cv_test_server *server)
{
    char port[16], store[600], log[600];
    snprintf(port, sizeof port, "%d", server->port);
    snprintf(store, sizeof store, "%s/jetstream", server->dir);
    snprintf(log, sizeof log, "%s/nats-server.log", server->dir);
    char *argv[] = {(char *)cv_test_server_binary(), "-a", "127.0.0.1", "-p", port, "-js", "-sd", store,
                    server->config[0] != '\0' ? "-c" : NULL, server->config, NULL};
    assert_true(cv_test_process_start(&server->process, argv, log, NULL));

    int64_t deadline = cv_clock_mono_ms() + 10000;
    while (!port_open(server->port) && cv_clock_mono_ms() < deadline)
        usleep(20000);
    if (!port_open(server->port))
        fail_msg("nats-server did not listen on port %d within 10 s; see %s", server->port, log);
}

/* Gives server a temporary folder and a free port. */
static void prepare_server(cv_test_server *server)
{
    memset(server, 0, sizeof *server);
    server->dir = cv_test_temp_dir("conveyor-test");
    assert_non_null(server->dir);
    server->port = cv_test_free_port();
    assert_true(server->port > 0);
    snprintf(server->url, sizeof server->url, "nats://127.0.0.1:%d", server->port);
}

void cv_test_server_start(cv_test_server *server)
{
    prepare_server(server);
    launch_server(server);
}

void cv_test_server_start_config(cv_test_server *server, const char *config_text)
{
    prepare_server(server);
    snprintf(server->config, sizeof server->config, "%s/server.conf", server->dir);
    FILE *f = fopen(server->config, "w");
    assert_non_null(f);
    fputs(config_text, f);
    fclose(f);
    launch_server(server);
}

void cv_test_server_restart(cv_test_server *server)
{
    cv_test_process_stop(&server->process, 10000);
    launch_server(server);
}

void cv_test_server_stop(cv_test_server *server)
{
    cv_test_process_stop(&server->process, 5000);
    if (getenv("CV_TEST_KEEP") == NULL)
        cv_test_remove_tree(server->dir);
    free(server->dir);
    server->dir = NULL;
}

void cv_test_node_start(cv_test_node *node, const cv_test_server *server, const char *rules_dir,
                        const char *name, char *const extra_args[])
{
    cv_test_node_start_env(node, server, rules_dir, name, extra_args, NULL);
}

void cv_test_node_start_env(cv_test_node *node, const cv_test_server *server,
                            const char *rules_dir, const char *name, char *const extra_args[],
                            char *const extra_env[])
{
    char *argv[32];
    int n = 0;
    argv[n++] = CV_TEST_BINARY;
    argv[n++] = "node";
    argv[n++] = "--nats";
    argv[n++] = (char *)server->url;
    argv[n++] = "--rules";
    argv[n++] = (char *)rules_dir;
    argv[n++] = "--name";
    argv[n++] = (char *)name;
    argv[n++] = "--state";
    argv[n++] = (char *)cv_test_state;
    for (int i = 0; extra_args != NULL && extra_args[i] != NULL && n < 30; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;

    snprintf(node->log_path, sizeof node->log_path, "%s/node-%s.log", server->dir, name);
    assert_true(cv_test_process_start(&node->process, argv, node->log_path, extra_env));
    if (!cv_test_process_wait_log(&node->process, "node ready", 60000)) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "tail -n 30 %s >&2", node->log_path);
        int ignored = system(cmd);
        (void)ignored;
        cv_test_process_kill(&node->process);
        fail_msg("node %s did not become ready within 60 s", name);
    }
}

void cv_test_node_stop(cv_test_node *node)
{
    int code = cv_test_process_stop(&node->process, 10000);
    if (code != 0) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "tail -n 30 %s >&2", node->log_path);
        int ignored = system(cmd);
        (void)ignored;
    }
    assert_int_equal(code, 0);
}

natsConnection *cv_test_connect(const cv_test_server *server)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    assert_int_equal(natsOptions_Create(&opts), NATS_OK);
    assert_int_equal(cv_nats_set_urls(opts, server->url), NATS_OK);
    assert_int_equal(natsOptions_SetSendAsap(opts, true), NATS_OK);
    assert_int_equal(natsConnection_Connect(&nc, opts), NATS_OK);
    natsOptions_Destroy(opts);
    return nc;
}

static void on_recorded(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    cv_test_recorder *r = closure;
    json_t *body = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                              JSON_DECODE_ANY, NULL);
    pthread_mutex_lock(&r->lock);
    if (r->count == r->capacity) {
        r->capacity = r->capacity ? r->capacity * 2 : 64;
        r->subjects = realloc(r->subjects, r->capacity * sizeof *r->subjects);
        r->bodies = realloc(r->bodies, r->capacity * sizeof *r->bodies);
        r->msg_ids = realloc(r->msg_ids, r->capacity * sizeof *r->msg_ids);
    }
    const char *msg_id = NULL;
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &msg_id);
    r->msg_ids[r->count] = msg_id ? strdup(msg_id) : NULL;
    r->subjects[r->count] = strdup(natsMsg_GetSubject(msg));
    r->bodies[r->count] = body;
    r->count++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    natsMsg_Destroy(msg);
}

void cv_test_recorder_start(cv_test_recorder *recorder, natsConnection *nc, const char *subject)
{
    memset(recorder, 0, sizeof *recorder);
    pthread_mutex_init(&recorder->lock, NULL);
    pthread_cond_init(&recorder->changed, NULL);
    assert_int_equal(natsConnection_Subscribe(&recorder->sub, nc, subject, on_recorded, recorder),
                     NATS_OK);
    natsSubscription_SetPendingLimits(recorder->sub, -1, -1);
    assert_int_equal(natsConnection_FlushTimeout(nc, 5000), NATS_OK);
}

void cv_test_recorder_stop(cv_test_recorder *recorder)
{
    natsSubscription_Unsubscribe(recorder->sub);
    natsSubscription_Destroy(recorder->sub);
    for (size_t i = 0; i < recorder->count; i++) {
        free(recorder->subjects[i]);
        free(recorder->msg_ids[i]);
        json_decref(recorder->bodies[i]);
    }
    free(recorder->msg_ids);
    free(recorder->subjects);
    free(recorder->bodies);
    pthread_cond_destroy(&recorder->changed);
    pthread_mutex_destroy(&recorder->lock);
}

static bool matches(const char *subject, const char *infix, const char *suffix)
{
    if (infix != NULL && strstr(subject, infix) == NULL)
        return false;
    if (suffix == NULL)
        return true;
    size_t n = strlen(subject), m = strlen(suffix);
    return n >= m && strcmp(subject + n - m, suffix) == 0;
}

static size_t count_locked(cv_test_recorder *r, const char *infix, const char *suffix)
{
    size_t count = 0;
    for (size_t i = 0; i < r->count; i++) {
        if (matches(r->subjects[i], infix, suffix))
            count++;
    }
    return count;
}

size_t cv_test_recorder_count(cv_test_recorder *recorder, const char *infix, const char *suffix)
{
    pthread_mutex_lock(&recorder->lock);
    size_t count = count_locked(recorder, infix, suffix);
    pthread_mutex_unlock(&recorder->lock);
    return count;
}

bool cv_test_recorder_wait(cv_test_recorder *recorder, const char *infix, const char *suffix,
                           size_t want, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&recorder->lock);
    bool reached = count_locked(recorder, infix, suffix) >= want;
    while (!reached) {
        if (pthread_cond_timedwait(&recorder->changed, &recorder->lock, &deadline) != 0) {
            reached = count_locked(recorder, infix, suffix) >= want;
            break;
        }
        reached = count_locked(recorder, infix, suffix) >= want;
    }
    pthread_mutex_unlock(&recorder->lock);
    return reached;
}

json_t *cv_test_recorder_find(cv_test_recorder *recorder, const char *infix, const char *suffix)
{
    json_t *found = NULL;
    pthread_mutex_lock(&recorder->lock);
    for (size_t i = 0; i < recorder->count && found == NULL; i++) {
        if (matches(recorder->subjects[i], infix, suffix))
            found = json_incref(recorder->bodies[i]);
    }
    pthread_mutex_unlock(&recorder->lock);
    return found;
}

json_t *cv_test_request(natsConnection *nc, const char *process, const char *request_id,
                        const char *body, int length)
{
    char subject[256];
    snprintf(subject, sizeof subject, "orch.request.%s", process);
    natsMsg *msg = NULL, *reply = NULL;
    assert_int_equal(natsMsg_Create(&msg, subject, NULL, body, length), NATS_OK);
    if (request_id != NULL)
        assert_int_equal(natsMsgHeader_Set(msg, "Orch-Request-Id", request_id), NATS_OK);
    natsStatus s = natsConnection_RequestMsg(&reply, nc, msg, 10000);
    natsMsg_Destroy(msg);
    if (s != NATS_OK)
        fail_msg("request to %s got no answer: %s", subject, natsStatus_GetText(s));
    json_t *answer = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0,
                                NULL);
    natsMsg_Destroy(reply);
    assert_non_null(answer);
    return answer;
}

const char *cv_test_source_path(const char *relative)
{
    static __thread char path[1024];
    snprintf(path, sizeof path, "%s/%s", CV_TEST_SOURCE_DIR, relative);
    return path;
}

json_t *cv_test_wait_instance_end(cv_test_recorder *recorder, const char *id, int timeout_ms)
{
    char infix[128];
    snprintf(infix, sizeof infix, ".%s.instance.", id);
    if (!cv_test_recorder_wait(recorder, infix, NULL, 2, timeout_ms))
        fail_msg("instance %s did not end within %d ms", id, timeout_ms);
    json_t *end = cv_test_recorder_find(recorder, infix, "completed");
    if (end == NULL)
        end = cv_test_recorder_find(recorder, infix, "failed");
    assert_non_null(end);
    return end;
}
