/*
 * The outbox keeps a change's effects while its message could still come
 * back to another node, and the newest few of any age.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/outbox.h"

#define KEEP_MS 120000

typedef struct fixture {
    cv_step step;
    cv_process process;
    cv_instance *instance;
    cv_effects effects;
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof f);
    f.step.id = (char *)"charge";
    f.step.subsystem = (char *)"billing";
    f.step.route_ref = CV_NO_REF;
    f.process.name = (char *)"order";
    f.process.steps = &f.step;
    f.process.step_count = 1;
    f.instance = cv_instance_create("order-1", &f.process, json_object());
    assert_non_null(f.instance);
    cv_attempt attempt = {.step = 0, .attempt = 1};
    memcpy(attempt.token, "abcdefghijABCDEFGHIJ01", CV_TOKEN_LEN);
    cv_effects_add_dispatch(&f.effects, &attempt);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cv_instance_destroy(f->instance);
    cv_effects_free(&f->effects);
    return 0;
}

/* Records change number index at now_ms; returns how many young entries it dropped. */
static size_t record(fixture *f, int index, int64_t now_ms)
{
    char key[32];
    snprintf(key, sizeof key, "change-%d", index);
    size_t dropped = 99;
    cv_outbox_clock clock = {.now_ms = now_ms, .keep_ms = KEEP_MS};
    assert_int_equal(cv_outbox_record(f->instance, key, &f->effects, clock, &dropped), CV_OK);
    return dropped;
}

static bool replayable(fixture *f, int index)
{
    char key[32];
    snprintf(key, sizeof key, "change-%d", index);
    cv_effects out = {0};
    bool found = cv_outbox_replay(f->instance, key, &out);
    if (found)
        assert_int_equal(out.dispatch_count, 1);
    cv_effects_free(&out);
    return found;
}

static void recent_changes_are_all_kept(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 40; i++)
        assert_int_equal(record(f, i, 1000000 + i), 0);
    for (int i = 0; i < 40; i++)
        assert_true(replayable(f, i));
}

static void old_changes_beyond_the_newest_go(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 20; i++)
        record(f, i, 1000000);
    assert_int_equal(record(f, 20, 1000000 + KEEP_MS + 1), 0);
    for (int i = 0; i <= 12; i++)
        assert_false(replayable(f, i));
    for (int i = 13; i <= 20; i++)
        assert_true(replayable(f, i));
    assert_int_equal(json_array_size(f->instance->outbox), CV_OUTBOX_KEEP);
}

static void young_changes_over_the_cap_are_counted(void **state)
{
    fixture *f = *state;
    size_t dropped = 0;
    for (int i = 0; i < CV_OUTBOX_MAX + 6; i++)
        dropped += record(f, i, 1000000);
    assert_int_equal(dropped, 6);
    assert_int_equal(json_array_size(f->instance->outbox), CV_OUTBOX_MAX);
    assert_false(replayable(f, 5));
    assert_true(replayable(f, 6));
}

static void entries_without_time_count_as_old(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 12; i++)
        record(f, i, 1000000);
    size_t i;
    json_t *entry;
    json_array_foreach(f->instance->outbox, i, entry) {
        json_object_del(entry, "at");
    }
    record(f, 12, 1000000);
    assert_int_equal(json_array_size(f->instance->outbox), CV_OUTBOX_KEEP);
    assert_true(replayable(f, 12));
    assert_false(replayable(f, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(recent_changes_are_all_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(old_changes_beyond_the_newest_go, setup, teardown),
        cmocka_unit_test_setup_teardown(young_changes_over_the_cap_are_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(entries_without_time_count_as_old, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
