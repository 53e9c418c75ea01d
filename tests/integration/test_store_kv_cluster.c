/*
 * The kv store on the three-server cluster of deploy/cluster, bucket
 * replicated three times: writers on two servers read one revision of an
 * instance and commit at the same moment, many times over. Exactly one
 * commit per round may succeed, and the stored document must be the
 * winner's. Anything else is a lost update, which completes a step twice.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"
#include "support/cluster.h"
#include "support/nats_cluster.h"

#define RULES_DIR "tests/integration/rules"
#define WRITERS 4
#define ROUNDS 150

typedef struct fixture {
    cv_test_nats_cluster cluster;
    natsConnection *nc[2];
    cv_store *store[2]; /* one bucket, reached through servers n1 and n3 */
    cv_rules *rules;
} fixture;

static fixture fx;

/* A cluster just started has no JetStream leader for a few seconds: keep trying, as a node does. */
static cv_store *open_store(natsConnection *nc)
{
    cv_store_kv_options options = {.bucket = "race", .replicas = 3};
    cv_store *store = NULL;
    cv_error err = {0};
    for (int tries = 0; tries < 30; tries++) {
        if (cv_store_kv_create(&store, nc, &options, &err) == CV_OK)
            return store;
        sleep(1);
    }
    fail_msg("cannot create the kv store: %s", err.text);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    cv_test_nats_cluster_start(&fx.cluster);
    fx.nc[0] = cv_test_connect(&fx.cluster.first);
    cv_test_server third = fx.cluster.first;
    snprintf(third.url, sizeof third.url, "nats://127.0.0.1:%d", fx.cluster.first.port + 2);
    fx.nc[1] = cv_test_connect(&third);
    fx.store[0] = open_store(fx.nc[0]);
    fx.store[1] = open_store(fx.nc[1]);
    cv_diag diag = {0};
    cv_error err = {0};
    if (cv_rules_load(&fx.rules, cv_test_source_path(RULES_DIR), NULL, &diag, &err) != CV_OK)
        fail_msg("cannot load %s: %s", RULES_DIR, err.text);
    cv_diag_free(&diag);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        cv_store_destroy(fx.store[i]);
        natsConnection_Destroy(fx.nc[i]);
    }
    cv_rules_destroy(fx.rules);
    cv_test_nats_cluster_stop(&fx.cluster);
    return 0;
}

typedef struct writer {
    pthread_barrier_t *start;
    cv_store *store;
    cv_instance *instance; /* read at the round's revision, changed by this writer */
    bool create;           /* create instance instead of committing it */
    cv_status status;
    char failure[CV_ERROR_TEXT_MAX];
} writer;

static void *commit_at_barrier(void *arg)
{
    writer *w = arg;
    cv_error err = {0};
    pthread_barrier_wait(w->start);
    w->status = w->create ? w->store->ops->create(w->store, w->instance, &err)
                          : w->store->ops->commit(w->store, w->instance, &err);
    if (w->status != CV_OK)
        snprintf(w->failure, sizeof w->failure, "%s", err.text);
    return NULL;
}

static cv_instance *acquire_ok(cv_store *store, const char *id)
{
    cv_instance *instance = NULL;
    cv_error err = {0};
    if (store->ops->acquire(store, id, fx.rules, &instance, &err) != CV_OK)
        fail_msg("acquire %s: %s", id, err.text);
    return instance;
}

/* Runs one round; returns the index of the only writer whose commit succeeded. */
static int race_once(const char *id, int round)
{
    writer writers[WRITERS];
    pthread_t threads[WRITERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, WRITERS);
    uint64_t revision = 0;
    for (int i = 0; i < WRITERS; i++) {
        cv_store *store = fx.store[i % 2];
        writers[i] = (writer){.start = &start, .store = store, .instance = acquire_ok(store, id)};
        if (i == 0)
            revision = writers[i].instance->revision;
        assert_int_equal(writers[i].instance->revision, revision);
        json_object_set_new(writers[i].instance->data, "winner", json_integer(i));
        json_object_set_new(writers[i].instance->data, "round", json_integer(round));
        assert_int_equal(pthread_create(&threads[i], NULL, commit_at_barrier, &writers[i]), 0);
    }
    int winner = -1, wins = 0;
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        if (writers[i].status == CV_OK) {
            winner = i;
            wins++;
        } else if (writers[i].status != CV_ERR_CONFLICT) {
            fail_msg("round %d writer %d: %s", round, i, writers[i].failure);
        }
    }
    for (int i = 0; i < WRITERS; i++)
        writers[i].store->ops->release(writers[i].store, writers[i].instance);
    pthread_barrier_destroy(&start);
    if (wins != 1)
        fail_msg("round %d: %d of %d commits from revision %llu succeeded, want exactly 1", round,
                 wins, WRITERS, (unsigned long long)revision);
    return winner;
}

static void writers_from_one_revision_one_wins(void **state)
{
    (void)state;
    const cv_process *process = cv_rules_find_process(fx.rules, "linear");
    assert_non_null(process);
    cv_instance *created = cv_instance_create("contested", process, json_object());
    cv_error err = {0};
    if (fx.store[0]->ops->create(fx.store[0], created, &err) != CV_OK)
        fail_msg("create: %s", err.text);
    fx.store[0]->ops->release(fx.store[0], created);

    for (int round = 1; round <= ROUNDS; round++) {
        int winner = race_once("contested", round);
        cv_instance *stored = acquire_ok(fx.store[round % 2], "contested");
        assert_int_equal(json_integer_value(json_object_get(stored->data, "round")), round);
        assert_int_equal(json_integer_value(json_object_get(stored->data, "winner")), winner);
        fx.store[round % 2]->ops->release(fx.store[round % 2], stored);
    }
}

/* Reads of a replicated bucket go to the stream leader, which shows markers as they are. */
static void deleted_instance_is_not_found(void **state)
{
    (void)state;
    const cv_process *process = cv_rules_find_process(fx.rules, "linear");
    cv_instance *created = cv_instance_create("short-lived", process, json_object());
    cv_error err = {0};
    if (fx.store[1]->ops->create(fx.store[1], created, &err) != CV_OK)
        fail_msg("create: %s", err.text);
    fx.store[1]->ops->release(fx.store[1], created);

    jsCtx *js = NULL;
    kvStore *kv = NULL;
    assert_int_equal(natsConnection_JetStream(&js, fx.nc[0], NULL), NATS_OK);
    assert_int_equal(js_KeyValue(&kv, js, "race"), NATS_OK);
    assert_int_equal(kvStore_Delete(kv, "short-lived"), NATS_OK);

    cv_instance *instance = NULL;
    assert_int_equal(fx.store[0]->ops->acquire(fx.store[0], "short-lived", fx.rules, &instance,
                                               &err),
                     CV_ERR_NOT_FOUND);
    assert_null(instance);
    assert_non_null(strstr(err.text, "no instance short-lived in bucket race"));
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
}

/* Two writers create id at the same moment: one must succeed, the other find it taken. */
static void create_twice(const cv_process *process, const char *id)
{
    writer writers[2];
    pthread_t threads[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++) {
        writers[i] = (writer){.start = &start, .store = fx.store[i], .create = true,
                              .instance = cv_instance_create(id, process, json_object())};
        assert_int_equal(pthread_create(&threads[i], NULL, commit_at_barrier, &writers[i]), 0);
    }
    int created = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        if (writers[i].status == CV_OK)
            created++;
        else if (writers[i].status != CV_ERR_EXISTS)
            fail_msg("creating %s: %s", id, writers[i].failure);
        writers[i].store->ops->release(writers[i].store, writers[i].instance);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(created, 1);
}

static void commit_ok(cv_store *store, const char *id, int n)
{
    cv_instance *instance = acquire_ok(store, id);
    json_object_set_new(instance->data, "n", json_integer(n));
    cv_error err = {0};
    if (store->ops->commit(store, instance, &err) != CV_OK)
        fail_msg("commit %d of %s: %s", n, id, err.text);
    store->ops->release(store, instance);
}

static void kill_server(const char *name)
{
    pid_t victim = cv_test_nats_cluster_pid(&fx.cluster, name);
    assert_int_equal(kill(victim, SIGKILL), 0);
    /* started by deploy/cluster/start.sh, so not this program's child to wait for */
    for (int i = 0; i < 100 && (kill(victim, 0) == 0 || errno != ESRCH); i++)
        usleep(50000);
}

/* Publishes the claim a writer that died right after claiming would leave behind. */
static void leave_dead_claim(const char *key, uint64_t revision)
{
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_JetStream(&js, fx.nc[0], NULL), NATS_OK);
    char subject[128];
    snprintf(subject, sizeof subject, "$CLAIMS.race.%s.%llu", key, (unsigned long long)revision);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectNoMessage = true;
    assert_int_equal(js_Publish(NULL, js, subject, "dead-node", 9, &po, NULL), NATS_OK);
    jsCtx_Destroy(js);
}

/*
 * Creates or commits instance through store, asserting that the first try
 * finds the claim of a dead writer and a later one succeeds once the claim
 * has expired. Each busy try waits inside the store, so 40 of them outlast
 * the claim.
 */
static void write_after_claim_expires(cv_store *store, cv_instance *instance, bool create)
{
    cv_error err = {0};
    cv_status st = CV_ERR_BUSY;
    for (int tries = 0; tries < 40 && st == CV_ERR_BUSY; tries++) {
        st = create ? store->ops->create(store, instance, &err)
                    : store->ops->commit(store, instance, &err);
        if (tries == 0) {
            assert_int_equal(st, CV_ERR_BUSY);
            assert_non_null(strstr(err.text, "another writer claimed its next revision"));
        }
    }
    if (st != CV_OK)
        fail_msg("writing %s after the claim expired: %s", instance->id, err.text);
}

/*
 * A node that dies between claiming a revision and writing it leaves its
 * claim behind. Until the claim expires, other writers get CV_ERR_BUSY, not
 * a conflict; then they write.
 */
static void dead_writers_claim_expires(void **state)
{
    (void)state;
    const cv_process *process = cv_rules_find_process(fx.rules, "linear");
    cv_instance *created = cv_instance_create("orphaned", process, json_object());
    cv_error err = {0};
    if (fx.store[0]->ops->create(fx.store[0], created, &err) != CV_OK)
        fail_msg("create: %s", err.text);
    uint64_t revision = created->revision;
    fx.store[0]->ops->release(fx.store[0], created);
    leave_dead_claim("orphaned", revision);

    cv_instance *instance = acquire_ok(fx.store[1], "orphaned");
    json_object_set_new(instance->data, "writer", json_string("alive"));
    write_after_claim_expires(fx.store[1], instance, false);
    fx.store[1]->ops->release(fx.store[1], instance);

    cv_instance *stored = acquire_ok(fx.store[0], "orphaned");
    assert_string_equal(json_string_value(json_object_get(stored->data, "writer")), "alive");
    fx.store[0]->ops->release(fx.store[0], stored);
}

/* The same for a create: the id is busy, not taken, so its request is not dropped. */
static void dead_creators_claim_expires(void **state)
{
    (void)state;
    const cv_process *process = cv_rules_find_process(fx.rules, "linear");
    leave_dead_claim("unborn", 0);

    cv_instance *instance = cv_instance_create("unborn", process, json_object());
    write_after_claim_expires(fx.store[1], instance, true);
    fx.store[1]->ops->release(fx.store[1], instance);
    fx.store[0]->ops->release(fx.store[0], acquire_ok(fx.store[0], "unborn"));
}

#define HOT_KEYS 30
#define HOT_UPDATES 12 /* more than the bucket keeps revisions of each key */

/*
 * A server killed and started again decides once more on the writes at the
 * end of its log, using what it stored before it died. Each decision must
 * match the first one: for the losers of races, for a second create of one
 * key, and for writes whose message a later revision replaced. Otherwise
 * that server's copy of the bucket differs from the others' from then on.
 */
static void restarted_server_stores_the_same_bucket(void **state)
{
    (void)state;
    const cv_process *process = cv_rules_find_process(fx.rules, "linear");
    for (int key = 0; key < HOT_KEYS; key++) {
        char id[32];
        snprintf(id, sizeof id, "hot-%d", key);
        create_twice(process, id);
        race_once(id, 1);
        for (int n = 0; n < HOT_UPDATES; n++)
            commit_ok(fx.store[n % 2], id, n);
    }
    sleep(1); /* every server applies the last write */
    kill_server("n2");
    cv_test_nats_cluster_restart(&fx.cluster, "n2");
    cv_test_nats_cluster_assert_replicas_agree(fx.nc[0], "KV_race");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writers_from_one_revision_one_wins),
        cmocka_unit_test(deleted_instance_is_not_found),
        cmocka_unit_test(dead_writers_claim_expires),
        cmocka_unit_test(dead_creators_claim_expires),
        cmocka_unit_test(restarted_server_stores_the_same_bucket),
    };
    int failed = cmocka_run_group_tests_name("kv store on a cluster", tests, setup, teardown);
    nats_Close();
    return failed;
}
