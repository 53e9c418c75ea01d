#include "support/nats_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/process.h"

/* Returns a port p with p, p+1 and p+2 all free on 127.0.0.1 a moment ago. */
static int free_port_run(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int base = cv_test_free_port();
        if (base <= 0 || base > 65000)
            continue;
        bool all_free = true;
        for (int i = 1; i < 3 && all_free; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in addr = {.sin_family = AF_INET,
                                       .sin_port = htons((uint16_t)(base + i)),
                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            all_free = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
            close(fd);
        }
        if (all_free)
            return base;
    }
    fail_msg("no three consecutive free ports found");
    return -1;
}

void cv_test_nats_cluster_start(cv_test_nats_cluster *cluster)
{
    memset(cluster, 0, sizeof *cluster);
    char *dir = cv_test_temp_dir("conveyor-cluster");
    snprintf(cluster->dir, sizeof cluster->dir, "%s", dir);
    free(dir);
    char client_base[16], route_base[16];
    int client_port = free_port_run();
    snprintf(client_base, sizeof client_base, "%d", client_port);
    snprintf(route_base, sizeof route_base, "%d", free_port_run());
    char *argv[] = {"/bin/bash", (char *)cv_test_source_path("deploy/cluster/start.sh"),
                    cluster->dir, client_base, route_base, NULL};
    char *urls = NULL, *err = NULL;
    int code = cv_test_run(argv, NULL, &urls, &err, 60000);
    if (code != 0)
        fail_msg("deploy/cluster/start.sh failed: %s", err);
    urls[strcspn(urls, "\n")] = '\0';
    cluster->all.dir = cluster->dir;
    snprintf(cluster->all.url, sizeof cluster->all.url, "%s", urls);
    cluster->first.dir = cluster->dir;
    cluster->first.port = client_port;
    snprintf(cluster->first.url, sizeof cluster->first.url, "nats://127.0.0.1:%d", client_port);
    free(urls);
    free(err);
}

void cv_test_nats_cluster_stop(cv_test_nats_cluster *cluster)
{
    if (cluster->dir[0] == '\0')
        return;
    char *argv[] = {"/bin/bash", (char *)cv_test_source_path("deploy/cluster/stop.sh"),
                    cluster->dir, NULL};
    char *out = NULL, *err = NULL;
    cv_test_run(argv, NULL, &out, &err, 30000);
    free(out);
    free(err);
    cv_test_remove_tree(cluster->dir);
    cluster->dir[0] = '\0';
}

void cv_test_nats_cluster_restart(const cv_test_nats_cluster *cluster, const char *name)
{
    char conf[600], log[600], pid_path[600];
    snprintf(conf, sizeof conf, "%s/%s.conf", cluster->dir, name);
    snprintf(log, sizeof log, "%s/%s-restarted.log", cluster->dir, name);
    snprintf(pid_path, sizeof pid_path, "%s/%s.pid", cluster->dir, name);
    char *argv[] = {(char *)cv_test_server_binary(), "-c", conf, NULL};
    cv_test_process server;
    assert_true(cv_test_process_start(&server, argv, log, NULL));
    FILE *f = fopen(pid_path, "w");
    assert_non_null(f);
    fprintf(f, "%d\n", (int)server.pid);
    fclose(f);
}

pid_t cv_test_nats_cluster_pid(const cv_test_nats_cluster *cluster, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.pid", cluster->dir, name);
    FILE *f = fopen(path, "r");
    int pid = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

typedef struct stream_view {
    uint64_t msgs;
    uint64_t last_seq;
} stream_view;

/* The state of stream as server name stores it: leadership moves on until name has it. */
static stream_view view_of(natsConnection *nc, jsCtx *js, const char *stream, const char *name)
{
    char step_down[300];
    snprintf(step_down, sizeof step_down, "$JS.API.STREAM.LEADER.STEPDOWN.%s", stream);
    for (int tries = 0; tries < 20; tries++) {
        jsStreamInfo *info = NULL;
        if (js_GetStreamInfo(&info, js, stream, NULL, NULL) == NATS_OK && info->Cluster != NULL &&
            info->Cluster->Leader != NULL && strcmp(info->Cluster->Leader, name) == 0) {
            stream_view view = {info->State.Msgs, info->State.LastSeq};
            jsStreamInfo_Destroy(info);
            return view;
        }
        jsStreamInfo_Destroy(info);
        natsMsg *reply = NULL;
        natsConnection_RequestString(&reply, nc, step_down, "", 5000);
        natsMsg_Destroy(reply);
        sleep(2);
    }
    fail_msg("server %s never became leader of %s", name, stream);
    return (stream_view){0};
}

void cv_test_nats_cluster_assert_replicas_agree(natsConnection *nc, const char *stream)
{
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    sleep(3); /* a restarted server catches up */
    stream_view views[3];
    const char *names[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3; i++)
        views[i] = view_of(nc, js, stream, names[i]);
    for (int i = 1; i < 3; i++) {
        if (views[i].msgs != views[0].msgs || views[i].last_seq != views[0].last_seq)
            fail_msg("%s: server %s holds %llu messages up to %llu, server n1 %llu up to %llu",
                     stream, names[i], (unsigned long long)views[i].msgs,
                     (unsigned long long)views[i].last_seq, (unsigned long long)views[0].msgs,
                     (unsigned long long)views[0].last_seq);
    }
    jsCtx_Destroy(js);
}
