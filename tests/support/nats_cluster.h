/*
 * The three-server nats-server cluster of deploy/cluster, started on free
 * loopback ports with its own temporary folder, for tests that must see
 * what replication does: leader changes, a server lost, writes proposed
 * by one server and applied by all.
 */
#ifndef CV_TEST_NATS_CLUSTER_H
#define CV_TEST_NATS_CLUSTER_H

#include <sys/types.h>

#include <nats/nats.h>

#include "support/cluster.h"

typedef struct cv_test_nats_cluster {
    cv_test_server all;   /* url: the three client URLs, as nodes are given them */
    cv_test_server first; /* url: server n1 alone */
    char dir[512];
} cv_test_nats_cluster;

/* Runs deploy/cluster/start.sh; fails the test when the servers do not come up. */
void cv_test_nats_cluster_start(cv_test_nats_cluster *cluster);

/* Runs deploy/cluster/stop.sh and removes the folder; safe to call twice. */
void cv_test_nats_cluster_stop(cv_test_nats_cluster *cluster);

/*
 * Starts server name ("n1", "n2" or "n3") again on its configuration and
 * store, after a test killed it, and records its new pid for stop.sh.
 */
void cv_test_nats_cluster_restart(const cv_test_nats_cluster *cluster, const char *name);

/* The pid of server "n1", "n2" or "n3", read from its pid file. */
pid_t cv_test_nats_cluster_pid(const cv_test_nats_cluster *cluster, const char *name);

/*
 * Fails the test unless every server stores the same number of messages up
 * to the same last sequence in stream. Stream info comes from the leader,
 * so leadership is handed to each server in turn; nc may be on any of them.
 */
void cv_test_nats_cluster_assert_replicas_agree(natsConnection *nc, const char *stream);

#endif
