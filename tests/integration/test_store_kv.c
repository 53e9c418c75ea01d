/*
 * The kv store against a real nats-server: the round trip of an instance,
 * create and acquire errors, compare-and-set between two writers, the
 * bucket's creation and reuse, and commits from several threads. Then
 * `conveyor instances list|show|history` run as a user runs them, against
 * a bucket filled through the store and an ORCH_EVENTS stream filled here.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
#include "support/cluster.h"

#define RULES_DIR "tests/integration/rules"

/* 2026-01-01T00:00:00.000Z */
#define BASE_MS 1767225600000LL
#define HOUR_MS 3600000LL

typedef struct fixture {
    cv_test_server server;
    natsConnection *nc;
    jsCtx *js;
    cv_rules *rules;
    cv_store *store; /* the default bucket, orch_instances */
    kvStore *kv;     /* the same bucket, for writes the store would never make */
} fixture;

static fixture fx;

static cv_rules *load_rules(void)
{
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    if (cv_rules_load(&rules, cv_test_source_path(RULES_DIR), NULL, &diag, &err) != CV_OK)
        fail_msg("cannot load %s: %s", RULES_DIR, err.text);
    cv_diag_free(&diag);
    return rules;
}

static cv_store *open_store(const char *bucket, cv_store_kv_storage storage)
{
    cv_store_kv_options options = {.bucket = bucket, .storage = storage};
    cv_store *store = NULL;
    cv_error err = {0};
    if (cv_store_kv_create(&store, fx.nc, &options, &err) != CV_OK)
        fail_msg("cannot create the kv store: %s", err.text);
    assert_string_equal(store->name, "kv");
    return store;
}

static int setup(void **state)
{
    (void)state;
    cv_test_server_start(&fx.server);
    fx.nc = cv_test_connect(&fx.server);
    assert_int_equal(natsConnection_JetStream(&fx.js, fx.nc, NULL), NATS_OK);
    fx.rules = load_rules();
    fx.store = open_store(NULL, CV_STORE_KV_FILE);
    assert_int_equal(js_KeyValue(&fx.kv, fx.js, CV_STORE_KV_DEFAULT_BUCKET), NATS_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kvStore_Destroy(fx.kv);
    cv_store_destroy(fx.store);
    cv_rules_destroy(fx.rules);
    jsCtx_Destroy(fx.js);
    natsConnection_Destroy(fx.nc);
    cv_test_server_stop(&fx.server);
    return 0;
}

static const cv_process *process_named(const char *name)
{
    const cv_process *process = cv_rules_find_process(fx.rules, name);
    assert_non_null(process);
    return process;
}

static int step_named(const cv_process *process, const char *id)
{
    int step = cv_process_find_step(process, id);
    assert_true(step >= 0);
    return step;
}

static cv_instance *new_instance(const char *id, const char *process)
{
    cv_instance *instance =
        cv_instance_create(id, process_named(process), json_pack("{s:s}", "deal_id", "4127"));
    assert_non_null(instance);
    return instance;
}

/*
 * A fan-out half way: split done, left and right in flight (right on its
 * second attempt), merge waiting for both.
 */
static cv_instance *fanout_instance(const char *id)
{
    cv_instance *instance = new_instance(id, "fanout");
    const cv_process *process = instance->process;
    json_object_set_new(instance->data, "split", json_pack("{s:b, s:[i,i]}", "ok", 1, "n", 1, 2));
    json_array_append_new(instance->trail, json_string("split"));
    instance->visits[step_named(process, "split")] = 1;
    instance->visits[step_named(process, "left")] = 1;
    instance->visits[step_named(process, "right")] = 2;
    assert_non_null(cv_instance_add_attempt(instance, step_named(process, "left"), 1));
    assert_non_null(cv_instance_add_attempt(instance, step_named(process, "right"), 2));
    instance->waiting[instance->waiting_count++] = step_named(process, "merge");
    instance->outbox = json_pack("[{s:s, s:[]}]", "key", "reply-1", "events");
    return instance;
}

static void assert_same_instance(const cv_instance *a, const cv_instance *b)
{
    assert_string_equal(a->id, b->id);
    assert_ptr_equal(a->process, b->process);
    assert_int_equal(a->status, b->status);
    assert_true(json_equal(a->data, b->data));
    assert_true(json_equal(a->trail, b->trail));
    if (a->error == NULL)
        assert_null(b->error);
    else
        assert_string_equal(a->error, b->error);
    for (size_t i = 0; i < a->process->step_count; i++)
        assert_int_equal(a->visits[i], b->visits[i]);
    assert_int_equal(a->active_count, b->active_count);
    for (size_t i = 0; i < a->active_count; i++) {
        assert_int_equal(a->active[i].step, b->active[i].step);
        assert_int_equal(a->active[i].attempt, b->active[i].attempt);
        assert_string_equal(a->active[i].token, b->active[i].token);
        assert_int_equal(a->active[i].started_ms, b->active[i].started_ms);
    }
    assert_int_equal(a->waiting_count, b->waiting_count);
    for (size_t i = 0; i < a->waiting_count; i++)
        assert_int_equal(a->waiting[i], b->waiting[i]);
    if (a->outbox == NULL)
        assert_null(b->outbox);
    else
        assert_true(json_equal(a->outbox, b->outbox));
    assert_int_equal(a->created_ms, b->created_ms);
    assert_int_equal(a->updated_ms, b->updated_ms);
    assert_int_equal(a->revision, b->revision);
}

static cv_instance *acquire_ok(cv_store *store, const char *id)
{
    cv_instance *instance = NULL;
    cv_error err = {0};
    if (store->ops->acquire(store, id, fx.rules, &instance, &err) != CV_OK)
        fail_msg("acquire %s: %s", id, err.text);
    return instance;
}

static void create_ok(cv_store *store, cv_instance *instance)
{
    cv_error err = {0};
    if (store->ops->create(store, instance, &err) != CV_OK)
        fail_msg("create %s: %s", instance->id, err.text);
}

static void commit_ok(cv_store *store, cv_instance *instance)
{
    cv_error err = {0};
    if (store->ops->commit(store, instance, &err) != CV_OK)
        fail_msg("commit %s: %s", instance->id, err.text);
}

/* ---- the store ---- */

static void create_then_acquire_round_trip(void **state)
{
    (void)state;
    cv_store *store = fx.store;
    cv_instance *running = fanout_instance("round-trip-1");
    create_ok(store, running);
    assert_true(running->revision > 0);

    cv_instance *copy = acquire_ok(store, "round-trip-1");
    assert_ptr_not_equal(copy, running);
    assert_same_instance(running, copy);
    store->ops->release(store, copy);
    store->ops->release(store, running);

    cv_instance *failed = new_instance("round-trip-2", "failing-hard");
    failed->status = CV_INSTANCE_FAILED;
    failed->error = strdup("step \"try\" failed: contact not found");
    json_object_set_new(failed->data, "try",
                        json_pack("{s:s, s:i}", "error", "contact not found", "attempts", 1));
    create_ok(store, failed);
    copy = acquire_ok(store, "round-trip-2");
    assert_same_instance(failed, copy);
    assert_string_equal(copy->error, "step \"try\" failed: contact not found");
    store->ops->release(store, copy);
    store->ops->release(store, failed);
}

static void create_twice_is_exists(void **state)
{
    (void)state;
    cv_store *store = fx.store;
    cv_instance *first = new_instance("twice-1", "linear");
    create_ok(store, first);

    cv_instance *second = new_instance("twice-1", "linear");
    json_object_set_new(second->data, "marker", json_string("second"));
    cv_error err = {0};
    assert_int_equal(store->ops->create(store, second, &err), CV_ERR_EXISTS);
    assert_int_equal(err.status, CV_ERR_EXISTS);
    assert_non_null(strstr(err.text, "twice-1"));
    assert_int_equal(second->revision, 0);
    cv_instance_destroy(second); /* a failed create leaves the instance with the caller */

    cv_instance *stored = acquire_ok(store, "twice-1");
    assert_null(json_object_get(stored->data, "marker"));
    assert_int_equal(stored->revision, first->revision);
    store->ops->release(store, stored);
    store->ops->release(store, first);
}

static void acquire_unknown_is_not_found(void **state)
{
    (void)state;
    cv_instance *instance = NULL;
    cv_error err = {0};
    assert_int_equal(fx.store->ops->acquire(fx.store, "nobody-made-this", fx.rules, &instance,
                                            &err),
                     CV_ERR_NOT_FOUND);
    assert_null(instance);
    assert_non_null(strstr(err.text, "nobody-made-this"));
    assert_non_null(strstr(err.text, CV_STORE_KV_DEFAULT_BUCKET));
}

static void second_writer_conflicts_then_wins(void **state)
{
    (void)state;
    cv_store *store = fx.store;
    cv_instance *created = new_instance("race-1", "linear");
    create_ok(store, created);
    store->ops->release(store, created);

    /* Two nodes read the same revision and change different parts. */
    cv_instance *node_a = acquire_ok(store, "race-1");
    cv_instance *node_b = acquire_ok(store, "race-1");
    json_object_set_new(node_a->data, "a", json_pack("{s:s}", "by", "node a"));
    json_object_set_new(node_b->data, "b", json_pack("{s:s}", "by", "node b"));
    uint64_t read_at = node_b->revision;

    commit_ok(store, node_a);
    assert_true(node_a->revision > read_at);
    cv_error err = {0};
    assert_int_equal(store->ops->commit(store, node_b, &err), CV_ERR_CONFLICT);
    assert_int_equal(err.status, CV_ERR_CONFLICT);
    assert_non_null(strstr(err.text, "race-1"));
    assert_int_equal(node_b->revision, read_at);
    store->ops->release(store, node_b);

    /* The loser re-reads and re-applies its change. */
    node_b = acquire_ok(store, "race-1");
    assert_int_equal(node_b->revision, node_a->revision);
    json_object_set_new(node_b->data, "b", json_pack("{s:s}", "by", "node b"));
    commit_ok(store, node_b);
    store->ops->release(store, node_b);
    store->ops->release(store, node_a);

    cv_instance *final = acquire_ok(store, "race-1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(final->data, "a"), "by")),
                        "node a");
    assert_string_equal(json_string_value(json_object_get(json_object_get(final->data, "b"), "by")),
                        "node b");
    store->ops->release(store, final);
}

static const char *data_text(const cv_instance *instance, const char *key)
{
    return json_string_value(json_object_get(instance->data, key));
}

/*
 * A node keeps what it committed and reuses it when the bucket still has
 * that revision. Another node's write must win over that copy, and a copy
 * changed but never committed must not come back.
 */
static void acquire_sees_other_writers(void **state)
{
    (void)state;
    cv_store *node_a = fx.store;
    cv_store *node_b = open_store(NULL, CV_STORE_KV_FILE);
    cv_instance *created = new_instance("cached-1", "linear");
    create_ok(node_a, created);
    node_a->ops->release(node_a, created);

    cv_instance *by_a = acquire_ok(node_a, "cached-1");
    json_object_set_new(by_a->data, "who", json_string("a"));
    commit_ok(node_a, by_a);
    node_a->ops->release(node_a, by_a);

    cv_instance *by_b = acquire_ok(node_b, "cached-1");
    assert_string_equal(data_text(by_b, "who"), "a");
    json_object_set_new(by_b->data, "who", json_string("b"));
    commit_ok(node_b, by_b);
    uint64_t written_by_b = by_b->revision;
    node_b->ops->release(node_b, by_b);

    cv_instance *seen = acquire_ok(node_a, "cached-1");
    assert_string_equal(data_text(seen, "who"), "b");
    assert_int_equal(seen->revision, written_by_b);
    json_object_set_new(seen->data, "who", json_string("never committed"));
    node_a->ops->release(node_a, seen);

    seen = acquire_ok(node_a, "cached-1");
    assert_string_equal(data_text(seen, "who"), "b");
    node_a->ops->release(node_a, seen);
    cv_store_destroy(node_b);
}

/* Writes who=name into instance id on store, from the revision it reads. */
static void write_who(cv_store *store, const char *id, const char *name)
{
    cv_instance *instance = acquire_ok(store, id);
    json_object_set_new(instance->data, "who", json_string(name));
    commit_ok(store, instance);
    store->ops->release(store, instance);
}

/* Creates instance id of process "linear", then writes name into it. */
static void create_who(cv_store *store, const char *id, const char *name)
{
    cv_instance *instance = new_instance(id, "linear");
    create_ok(store, instance);
    store->ops->release(store, instance);
    write_who(store, id, name);
}

/*
 * Revisions start again from 1 when an operator deletes the bucket and a
 * node creates it anew, so a revision alone does not show that what a
 * node kept is what the bucket contains.
 */
static void recreated_bucket_is_read_again(void **state)
{
    (void)state;
    cv_store *node_a = open_store("reborn", CV_STORE_KV_FILE);
    create_who(node_a, "phoenix", "first life");

    assert_int_equal(js_DeleteStream(fx.js, "KV_reborn", NULL, NULL), NATS_OK);
    cv_store *node_b = open_store("reborn", CV_STORE_KV_FILE);
    create_who(node_b, "phoenix", "second life");

    cv_instance *seen = acquire_ok(node_a, "phoenix");
    assert_string_equal(data_text(seen, "who"), "second life");
    node_a->ops->release(node_a, seen);
    cv_store_destroy(node_b);
    cv_store_destroy(node_a);
}

/*
 * An operator deletes the bucket under a running store. The next read finds
 * no instance instead of failing, and the next write succeeds. The bucket
 * is back with the store's own settings. An instance cached before the
 * deletion is not returned for an instance of the new bucket.
 */
static void deleted_bucket_is_created_again(void **state)
{
    (void)state;
    cv_store *store = open_store("lazarus", CV_STORE_KV_MEMORY);
    create_who(store, "lazarus-1", "first life");

    assert_int_equal(js_DeleteStream(fx.js, "KV_lazarus", NULL, NULL), NATS_OK);
    cv_instance *missing = NULL;
    cv_error err = {0};
    assert_int_equal(store->ops->acquire(store, "lazarus-1", fx.rules, &missing, &err),
                     CV_ERR_NOT_FOUND);
    assert_null(missing);
    jsStreamInfo *info = NULL;
    assert_int_equal(js_GetStreamInfo(&info, fx.js, "KV_lazarus", NULL, NULL), NATS_OK);
    assert_int_equal(info->Config->Storage, js_MemoryStorage);
    assert_int_equal(info->Config->MaxMsgsPerSubject, 8);
    assert_int_equal(info->Config->Replicas, 1);
    assert_int_equal(info->State.Msgs, 0);
    jsStreamInfo_Destroy(info);

    /* Deleted again, this time the first operation is a write. */
    assert_int_equal(js_DeleteStream(fx.js, "KV_lazarus", NULL, NULL), NATS_OK);
    cv_instance *second = new_instance("lazarus-1", "linear");
    create_ok(store, second);
    assert_int_equal(second->revision, 1);
    store->ops->release(store, second);
    write_who(store, "lazarus-1", "second life");

    /* Same id and revision as the instance written in the first life. */
    cv_instance *seen = acquire_ok(store, "lazarus-1");
    assert_int_equal(seen->revision, 2);
    assert_string_equal(data_text(seen, "who"), "second life");
    store->ops->release(store, seen);
    cv_store_destroy(store);
}

static void bucket_created_then_reused(void **state)
{
    (void)state;
    kvStore *probe = NULL;
    assert_int_equal(js_KeyValue(&probe, fx.js, "reuse_me"), NATS_NOT_FOUND);

    cv_store *store = open_store("reuse_me", CV_STORE_KV_MEMORY);
    jsStreamInfo *info = NULL;
    assert_int_equal(js_GetStreamInfo(&info, fx.js, "KV_reuse_me", NULL, NULL), NATS_OK);
    assert_int_equal(info->Config->Storage, js_MemoryStorage);
    assert_int_equal(info->Config->MaxMsgsPerSubject, 8);
    assert_int_equal(info->Config->Replicas, 1);
    jsStreamInfo_Destroy(info);

    cv_instance *instance = fanout_instance("kept-1");
    create_ok(store, instance);
    uint64_t revision = instance->revision;
    store->ops->release(store, instance);
    cv_store_destroy(store);

    /* A second start requests file storage, but the bucket keeps its own settings and data. */
    store = open_store("reuse_me", CV_STORE_KV_FILE);
    assert_int_equal(js_GetStreamInfo(&info, fx.js, "KV_reuse_me", NULL, NULL), NATS_OK);
    assert_int_equal(info->Config->Storage, js_MemoryStorage);
    assert_int_equal(info->State.Msgs, 1);
    jsStreamInfo_Destroy(info);
    cv_instance *again = acquire_ok(store, "kept-1");
    assert_int_equal(again->revision, revision);
    assert_int_equal(again->active_count, 2);
    store->ops->release(store, again);
    cv_store_destroy(store);
}

static void bad_bucket_name_is_invalid(void **state)
{
    (void)state;
    cv_store_kv_options options = {.bucket = "no.dots"};
    cv_store *store = NULL;
    cv_error err = {0};
    assert_int_equal(cv_store_kv_create(&store, fx.nc, &options, &err), CV_ERR_INVALID);
    assert_null(store);
    assert_non_null(strstr(err.text, "no.dots"));
}

static void unknown_process_is_invalid(void **state)
{
    (void)state;
    assert_int_equal(kvStore_PutString(NULL, fx.kv, "ghost-1",
                                       "{\"id\": \"ghost-1\", \"process\": \"ghost\", "
                                       "\"status\": \"running\", \"data\": {}, \"steps\": []}"),
                     NATS_OK);
    cv_instance *instance = NULL;
    cv_error err = {0};
    assert_int_equal(fx.store->ops->acquire(fx.store, "ghost-1", fx.rules, &instance, &err),
                     CV_ERR_INVALID);
    assert_null(instance);
    assert_non_null(strstr(err.text, "\"ghost\""));

    assert_int_equal(kvStore_PutString(NULL, fx.kv, "junk-1", "not json"), NATS_OK);
    assert_int_equal(fx.store->ops->acquire(fx.store, "junk-1", fx.rules, &instance, &err),
                     CV_ERR_INVALID);
    assert_non_null(strstr(err.text, "junk-1"));

    /* A key that is not an id never reaches the server. */
    assert_int_equal(fx.store->ops->acquire(fx.store, "a.b", fx.rules, &instance, &err),
                     CV_ERR_INVALID);
    assert_null(instance);
}

static void deleted_instance_id_is_reusable(void **state)
{
    (void)state;
    cv_store *store = fx.store;
    cv_instance *instance = new_instance("gone-1", "linear");
    create_ok(store, instance);
    store->ops->release(store, instance);
    cv_instance *stale = acquire_ok(store, "gone-1");

    assert_int_equal(kvStore_Delete(fx.kv, "gone-1"), NATS_OK);
    cv_instance *missing = NULL;
    cv_error err = {0};
    assert_int_equal(store->ops->acquire(store, "gone-1", fx.rules, &missing, &err),
                     CV_ERR_NOT_FOUND);
    /* A writer that read before the delete loses, like any other late writer. */
    assert_int_equal(store->ops->commit(store, stale, &err), CV_ERR_CONFLICT);
    store->ops->release(store, stale);

    cv_instance *again = new_instance("gone-1", "linear");
    json_object_set_new(again->data, "second", json_true());
    create_ok(store, again);
    store->ops->release(store, again);
    cv_instance *found = acquire_ok(store, "gone-1");
    assert_true(json_is_true(json_object_get(found->data, "second")));
    store->ops->release(store, found);
}

#define THREADS 4
#define COMMITS_PER_THREAD 25

typedef struct worker_run {
    int index;
    int ok_commits;
    cv_status first_failure;
    char failure[CV_ERROR_TEXT_MAX];
} worker_run;

/* One worker thread: its own rules, its own instance, many commits. No cmocka asserts here. */
static void *commit_many(void *arg)
{
    worker_run *run = arg;
    cv_diag diag = {0};
    cv_error err = {0};
    cv_rules *rules = NULL;
    run->first_failure = cv_rules_load(&rules, cv_test_source_path(RULES_DIR), NULL, &diag, &err);
    cv_diag_free(&diag);
    char id[32];
    snprintf(id, sizeof id, "thread-%d", run->index);
    cv_instance *instance = NULL;
    if (run->first_failure == CV_OK) {
        instance = cv_instance_create(id, cv_rules_find_process(rules, "loop"), json_object());
        run->first_failure = fx.store->ops->create(fx.store, instance, &err);
        if (run->first_failure != CV_OK)
            cv_instance_destroy(instance);
        else
            fx.store->ops->release(fx.store, instance);
    }
    for (int i = 0; i < COMMITS_PER_THREAD && run->first_failure == CV_OK; i++) {
        run->first_failure = fx.store->ops->acquire(fx.store, id, rules, &instance, &err);
        if (run->first_failure != CV_OK)
            break;
        json_object_set_new(instance->data, "count", json_integer(i + 1));
        instance->visits[0]++;
        run->first_failure = fx.store->ops->commit(fx.store, instance, &err);
        fx.store->ops->release(fx.store, instance);
        if (run->first_failure == CV_OK)
            run->ok_commits++;
    }
    if (run->first_failure != CV_OK)
        snprintf(run->failure, sizeof run->failure, "%s", err.text);
    cv_rules_destroy(rules);
    return NULL;
}

static void concurrent_commits_all_succeed(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    worker_run runs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        runs[i] = (worker_run){.index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, commit_many, &runs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        if (runs[i].first_failure != CV_OK)
            fail_msg("thread %d: %s", i, runs[i].failure);
        assert_int_equal(runs[i].ok_commits, COMMITS_PER_THREAD);

        char id[32];
        snprintf(id, sizeof id, "thread-%d", i);
        cv_instance *instance = acquire_ok(fx.store, id);
        assert_int_equal(json_integer_value(json_object_get(instance->data, "count")),
                         COMMITS_PER_THREAD);
        assert_int_equal(instance->visits[0], COMMITS_PER_THREAD);
        fx.store->ops->release(fx.store, instance);
    }
}

/* ---- the command line ---- */

typedef struct run_result {
    int code;
    char *out;
    char *err;
} run_result;

/* Runs `conveyor instances ARGS... --nats URL`; args is NULL-terminated. */
static run_result run_cli(const char *const *args)
{
    char *argv[24] = {CV_TEST_BINARY, "instances"};
    int n = 2;
    for (int i = 0; args[i] != NULL && n < 20; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = "--nats";
    argv[n++] = fx.server.url;
    argv[n] = NULL;
    run_result r;
    r.code = cv_test_run(argv, NULL, &r.out, &r.err, 30000);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

static void assert_err_contains(const run_result *r, const char *needle)
{
    if (strstr(r->err, needle) == NULL)
        fail_msg("stderr lacks \"%s\"; it was:\n%s", needle, r->err);
}

/* Fills the default bucket with three instances an hour apart, for the CLI tests. */
static int setup_cli(void **state)
{
    setup(state);
    cv_instance *old = new_instance("cli-old", "linear");
    old->status = CV_INSTANCE_COMPLETED;
    json_array_append_new(old->trail, json_string("a"));
    old->updated_ms = BASE_MS;
    create_ok(fx.store, old);
    fx.store->ops->release(fx.store, old);

    cv_instance *mid = fanout_instance("cli-mid");
    mid->updated_ms = BASE_MS + HOUR_MS;
    create_ok(fx.store, mid);
    fx.store->ops->release(fx.store, mid);

    cv_instance *recent = new_instance("cli-new", "failing-hard");
    recent->status = CV_INSTANCE_FAILED;
    recent->error = strdup("step \"try\" failed: contact not found");
    recent->updated_ms = BASE_MS + 2 * HOUR_MS;
    create_ok(fx.store, recent);
    fx.store->ops->release(fx.store, recent);
    return 0;
}

static void list_prints_newest_first(void **state)
{
    (void)state;
    run_result r = run_cli((const char *[]){"list", NULL});
    assert_int_equal(r.code, 0);
    assert_string_equal(
        r.out,
        "ID       PROCESS       STATUS     UPDATED                   IN FLIGHT\n"
        "cli-new  failing-hard  failed     2026-01-01T02:00:00.000Z  -\n"
        "cli-mid  fanout        running    2026-01-01T01:00:00.000Z  left#1,right#2\n"
        "cli-old  linear        completed  2026-01-01T00:00:00.000Z  -\n");
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void list_filters_and_limits(void **state)
{
    (void)state;
    run_result r = run_cli((const char *[]){"list", "--process", "fanout", NULL});
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out,
                        "ID       PROCESS  STATUS   UPDATED                   IN FLIGHT\n"
                        "cli-mid  fanout   running  2026-01-01T01:00:00.000Z  left#1,right#2\n");
    run_free(&r);

    r = run_cli((const char *[]){"list", "--status=completed", NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\ncli-old  linear   completed"));
    assert_null(strstr(r.out, "cli-mid"));
    run_free(&r);

    r = run_cli((const char *[]){"list", "--limit", "2", NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\ncli-new "));
    assert_non_null(strstr(r.out, "\ncli-mid "));
    assert_null(strstr(r.out, "cli-old"));
    assert_err_contains(&r, "showing the newest 2 of 3 matching instances");
    run_free(&r);

    /* Every option also reads CONVEYOR_<NAME>. */
    setenv("CONVEYOR_STATUS", "failed", 1);
    r = run_cli((const char *[]){"list", NULL});
    unsetenv("CONVEYOR_STATUS");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\ncli-new "));
    assert_null(strstr(r.out, "cli-mid"));
    run_free(&r);

    r = run_cli((const char *[]){"list", "--process", "nothing-like-it", NULL});
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "");
    assert_err_contains(&r, "no instances match in bucket orch_instances");
    run_free(&r);
}

static void list_rejects_bad_arguments(void **state)
{
    (void)state;
    run_result r = run_cli((const char *[]){"list", "--status", "done", NULL});
    assert_int_equal(r.code, 2);
    assert_err_contains(&r, "--status takes running, completed, failed or cancelled, got 'done'");
    run_free(&r);

    r = run_cli((const char *[]){"list", "--limit", "0", NULL});
    assert_int_equal(r.code, 2);
    assert_err_contains(&r, "--limit takes 1 to");
    run_free(&r);

    r = run_cli((const char *[]){"list", "--bogus", NULL});
    assert_int_equal(r.code, 2);
    assert_err_contains(&r, "conveyor instances list: unknown option '--bogus'");
    run_free(&r);

    r = run_cli((const char *[]){"frobnicate", NULL});
    assert_int_equal(r.code, 2);
    assert_err_contains(&r, "unknown command 'frobnicate'");
    run_free(&r);
}

static void missing_bucket_is_explained(void **state)
{
    (void)state;
    run_result r = run_cli((const char *[]){"list", "--bucket", "never_made", NULL});
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_err_contains(&r, "no key-value bucket never_made on nats://127.0.0.1:");
    assert_err_contains(&r, "--state kv");
    run_free(&r);

    r = run_cli((const char *[]){"show", "cli-mid", "--bucket", "never_made", NULL});
    assert_int_equal(r.code, 1);
    assert_err_contains(&r, "no key-value bucket never_made");
    run_free(&r);

    /* Without --bucket the name follows the subject prefix, as a node names it. */
    r = run_cli((const char *[]){"list", "--prefix", "billing", NULL});
    assert_int_equal(r.code, 1);
    assert_err_contains(&r, "no key-value bucket billing_instances");
    run_free(&r);
}

static void show_prints_stored_state(void **state)
{
    (void)state;
    run_result r = run_cli((const char *[]){"show", "cli-mid", NULL});
    assert_int_equal(r.code, 0);
    json_error_t error;
    json_t *doc = json_loads(r.out, 0, &error);
    if (doc == NULL)
        fail_msg("show printed no JSON (%s):\n%s", error.text, r.out);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "cli-mid");
    assert_string_equal(json_string_value(json_object_get(doc, "process")), "fanout");
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "running");
    json_t *data = json_object_get(doc, "data");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(data, "request"), "deal_id")), "4127");
    assert_true(json_is_true(json_object_get(json_object_get(data, "split"), "ok")));
    json_t *active = json_object_get(doc, "active");
    assert_int_equal(json_array_size(active), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(active, 1), "step")),
                        "right");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(active, 1), "attempt")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "visits"), "right")),
                     2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "waiting"), 0)),
                        "merge");
    assert_true(json_integer_value(json_object_get(doc, "revision")) > 0);
    /* Pretty: one key a line, indented. */
    assert_non_null(strstr(r.out, "\n  \"status\": \"running\",\n"));
    json_decref(doc);
    run_free(&r);

    r = run_cli((const char *[]){"show", "cli-new", NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"error\": \"step \\\"try\\\" failed: contact not found\""));
    run_free(&r);
}

static void show_unknown_id_fails(void **state)
{
    (void)state;
    run_result r = run_cli((const char *[]){"show", "no-such-instance", NULL});
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "conveyor instances show: no instance no-such-instance in bucket "
                               "orch_instances\n");
    run_free(&r);

    r = run_cli((const char *[]){"show", NULL});
    assert_int_equal(r.code, 2);
    assert_err_contains(&r, "expected an instance id");
    run_free(&r);
}

static void publish_event(const char *subject, const char *body)
{
    jsPubAck *ack = NULL;
    jsErrCode code = 0;
    if (js_Publish(&ack, fx.js, subject, body, (int)strlen(body), NULL, &code) != NATS_OK)
        fail_msg("publish to %s failed with JetStream error %d", subject, (int)code);
    jsPubAck_Destroy(ack);
}

static void delete_events_stream(void)
{
    natsStatus s = js_DeleteStream(fx.js, "ORCH_EVENTS", NULL, NULL);
    assert_true(s == NATS_OK || s == NATS_NOT_FOUND);
}

/* Creates ORCH_EVENTS with the events of cli-mid and one of cli-old. */
static void fill_events_stream(void)
{
    delete_events_stream();
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = "ORCH_EVENTS";
    config.Subjects = (const char *[]){"orch.event.>"};
    config.SubjectsLen = 1;
    config.Storage = js_MemoryStorage;
    jsStreamInfo *info = NULL;
    assert_int_equal(js_AddStream(&info, fx.js, &config, NULL, NULL), NATS_OK);
    jsStreamInfo_Destroy(info);

    publish_event("orch.event.fanout.cli-mid.instance.started",
                  "{\"instance\":\"cli-mid\",\"process\":\"fanout\","
                  "\"at\":\"2026-01-01T00:59:00.000Z\",\"node\":\"n1\"}");
    publish_event("orch.event.fanout.cli-mid.step.dispatched",
                  "{\"instance\":\"cli-mid\",\"process\":\"fanout\","
                  "\"at\":\"2026-01-01T00:59:00.001Z\",\"step\":\"split\",\"attempt\":1,"
                  "\"subsystem\":\"echo\",\"transport\":\"nats\",\"node\":\"n1\"}");
    publish_event("orch.event.linear.cli-old.instance.started",
                  "{\"instance\":\"cli-old\",\"process\":\"linear\","
                  "\"at\":\"2026-01-01T00:59:00.002Z\",\"node\":\"n1\"}");
    publish_event("orch.event.fanout.cli-mid.step.completed",
                  "{\"instance\":\"cli-mid\",\"process\":\"fanout\","
                  "\"at\":\"2026-01-01T00:59:00.010Z\",\"step\":\"split\",\"attempt\":1,"
                  "\"output\":{\"ok\":true},\"decision\":{\"by\":\"next\",\"path\":\"next\","
                  "\"next\":[\"left\",\"right\"]},\"node\":\"n1\"}");
    publish_event("orch.event.fanout.cli-mid.step.failed",
                  "{\"instance\":\"cli-mid\",\"process\":\"fanout\","
                  "\"at\":\"2026-01-01T00:59:00.020Z\",\"step\":\"right\",\"attempt\":1,"
                  "\"error\":\"contact \\\"42\\\" not found\",\"permanent\":false,"
                  "\"node\":\"n2\"}");
    publish_event("orch.event.fanout.cli-mid.reply.ignored",
                  "{\"instance\":\"cli-mid\",\"process\":\"fanout\","
                  "\"at\":\"2026-01-01T00:59:00.030Z\",\"step\":\"right\",\"attempt\":1,"
                  "\"reason\":\"attempt is no longer current\",\"node\":\"n2\"}");
}

static void history_prints_one_line_per_event(void **state)
{
    (void)state;
    fill_events_stream();
    run_result r = run_cli((const char *[]){"history", "cli-mid", NULL});
    assert_int_equal(r.code, 0);
    assert_string_equal(
        r.out,
        "2026-01-01T00:59:00.000Z  instance.started    -      -  node=n1\n"
        "2026-01-01T00:59:00.001Z  step.dispatched     split  1  subsystem=echo transport=nats "
        "node=n1\n"
        "2026-01-01T00:59:00.010Z  step.completed      split  1  next=left,right by=next "
        "node=n1\n"
        "2026-01-01T00:59:00.020Z  step.failed         right  1  error=\"contact \\\"42\\\" not "
        "found\" node=n2\n"
        "2026-01-01T00:59:00.030Z  reply.ignored       right  1  reason=\"attempt is no longer "
        "current\" node=n2\n");
    assert_string_equal(r.err, "");
    run_free(&r);

    r = run_cli((const char *[]){"history", "cli-mid", "--process", "fanout", "--json", NULL});
    assert_int_equal(r.code, 0);
    size_t lines = 0;
    for (const char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    assert_int_equal(lines, 5);
    static const char first[] = "{\"instance\":\"cli-mid\",\"process\":\"fanout\","
                                "\"at\":\"2026-01-01T00:59:00.000Z\",\"node\":\"n1\","
                                "\"kind\":\"instance.started\"}\n";
    assert_true(strncmp(r.out, first, strlen(first)) == 0);
    assert_non_null(strstr(r.out, "\"kind\":\"reply.ignored\"}\n"));
    assert_null(strstr(r.out, "cli-old"));
    run_free(&r);
}

static void history_without_events_fails(void **state)
{
    (void)state;
    fill_events_stream();
    run_result r = run_cli((const char *[]){"history", "cli-mid", "--process", "linear", NULL});
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "conveyor instances history: no events of instance cli-mid in "
                               "stream ORCH_EVENTS (subjects orch.event.linear.cli-mid.>)\n");
    run_free(&r);

    r = run_cli((const char *[]){"history", "no-such-instance", NULL});
    assert_int_equal(r.code, 1);
    assert_err_contains(&r, "no events of instance no-such-instance");
    run_free(&r);
}

static void history_without_stream_fails(void **state)
{
    (void)state;
    delete_events_stream();
    run_result r = run_cli((const char *[]){"history", "cli-mid", NULL});
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_err_contains(&r, "conveyor instances history: no stream ORCH_EVENTS on "
                            "nats://127.0.0.1:");
    run_free(&r);

    fill_events_stream();
    r = run_cli((const char *[]){"history", "cli-mid", "--prefix", "billing", NULL});
    assert_int_equal(r.code, 1);
    assert_err_contains(&r, "no stream BILLING_EVENTS on nats://127.0.0.1:");
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest store_tests[] = {
        cmocka_unit_test(create_then_acquire_round_trip),
        cmocka_unit_test(create_twice_is_exists),
        cmocka_unit_test(acquire_unknown_is_not_found),
        cmocka_unit_test(second_writer_conflicts_then_wins),
        cmocka_unit_test(acquire_sees_other_writers),
        cmocka_unit_test(recreated_bucket_is_read_again),
        cmocka_unit_test(deleted_bucket_is_created_again),
        cmocka_unit_test(bucket_created_then_reused),
        cmocka_unit_test(bad_bucket_name_is_invalid),
        cmocka_unit_test(unknown_process_is_invalid),
        cmocka_unit_test(deleted_instance_id_is_reusable),
        cmocka_unit_test(concurrent_commits_all_succeed),
    };
    const struct CMUnitTest cli_tests[] = {
        cmocka_unit_test(list_prints_newest_first),
        cmocka_unit_test(list_filters_and_limits),
        cmocka_unit_test(list_rejects_bad_arguments),
        cmocka_unit_test(missing_bucket_is_explained),
        cmocka_unit_test(show_prints_stored_state),
        cmocka_unit_test(show_unknown_id_fails),
        cmocka_unit_test(history_prints_one_line_per_event),
        cmocka_unit_test(history_without_events_fails),
        cmocka_unit_test(history_without_stream_fails),
    };
    int failed = cmocka_run_group_tests_name("kv store", store_tests, setup, teardown);
    failed += cmocka_run_group_tests_name("instances command", cli_tests, setup_cli, teardown);
    nats_Close();
    return failed;
}
