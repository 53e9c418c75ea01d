/*
 * The retry schedule against the contract's formula,
 * min(backoff * factor^(n-1), max_backoff) with up to 20% jitter, and which
 * attempts have a timeout at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "engine/reliability.h"

static void schedule_doubles_up_to_the_cap(void **state)
{
    (void)state;
    cv_retry retry = {.max = 10, .backoff_ms = 500, .factor = 2, .max_backoff_ms = 60000};
    const int64_t expected[] = {500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    for (int n = 1; n <= 10; n++)
        assert_int_equal(cv_retry_delay_ms(&retry, n, 0.5), expected[n - 1]);
}

static void factor_one_keeps_the_backoff(void **state)
{
    (void)state;
    cv_retry retry = {.max = 3, .backoff_ms = 250, .factor = 1, .max_backoff_ms = 1000};
    assert_int_equal(cv_retry_delay_ms(&retry, 1, 0.9), 250);
    assert_int_equal(cv_retry_delay_ms(&retry, 3, 0.1), 250);
}

static void fractional_factor_rounds_to_milliseconds(void **state)
{
    (void)state;
    cv_retry retry = {.max = 3, .backoff_ms = 100, .factor = 1.5, .max_backoff_ms = 10000};
    assert_int_equal(cv_retry_delay_ms(&retry, 2, 0), 150);
    assert_int_equal(cv_retry_delay_ms(&retry, 3, 0), 225);
}

static void jitter_stays_within_twenty_percent(void **state)
{
    (void)state;
    cv_retry retry = {.max = 3, .backoff_ms = 1000, .factor = 2, .max_backoff_ms = 4000,
                      .jitter = true};
    assert_int_equal(cv_retry_delay_ms(&retry, 1, 0.0), 800);
    assert_int_equal(cv_retry_delay_ms(&retry, 1, 0.5), 1000);
    assert_int_equal(cv_retry_delay_ms(&retry, 3, 0.0), 3200);
    assert_true(cv_retry_delay_ms(&retry, 3, 0.999999) <= 4800);
    assert_true(cv_retry_delay_ms(&retry, 3, 0.999999) >= 4799);
    for (int i = 0; i < 1000; i++) {
        double u = cv_retry_random_unit();
        assert_true(u >= 0.0 && u < 1.0);
        int64_t d = cv_retry_delay_ms(&retry, 2, u);
        assert_true(d >= 1600 && d <= 2400);
    }
}

static void huge_attempt_numbers_do_not_overflow(void **state)
{
    (void)state;
    cv_retry retry = {.max = 1000000, .backoff_ms = 1000, .factor = 10,
                      .max_backoff_ms = 3600000};
    assert_int_equal(cv_retry_delay_ms(&retry, 1000000, 0.5), 3600000);
}

static void bare_queue_step_never_times_out(void **state)
{
    (void)state;
    cv_step step;
    memset(&step, 0, sizeof step);
    step.timeout_ms = 5000;
    step.transport = CV_TRANSPORT_NATS;
    assert_int_equal(cv_step_timeout_ms(&step), 5000);
    step.transport = CV_TRANSPORT_LUA;
    assert_int_equal(cv_step_timeout_ms(&step), 5000);
    step.transport = CV_TRANSPORT_QUEUE;
    step.timeout_ms = 0;
    assert_int_equal(cv_step_timeout_ms(&step), 0);
}

static void durations_read_like_rules(void **state)
{
    (void)state;
    char buf[32];
    cv_duration_format(300, buf, sizeof buf);
    assert_string_equal(buf, "300ms");
    cv_duration_format(5000, buf, sizeof buf);
    assert_string_equal(buf, "5s");
    cv_duration_format(120000, buf, sizeof buf);
    assert_string_equal(buf, "2m");
    cv_duration_format(1500, buf, sizeof buf);
    assert_string_equal(buf, "1500ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schedule_doubles_up_to_the_cap),
        cmocka_unit_test(factor_one_keeps_the_backoff),
        cmocka_unit_test(fractional_factor_rounds_to_milliseconds),
        cmocka_unit_test(jitter_stays_within_twenty_percent),
        cmocka_unit_test(huge_attempt_numbers_do_not_overflow),
        cmocka_unit_test(bare_queue_step_never_times_out),
        cmocka_unit_test(durations_read_like_rules),
    };
    return cmocka_run_group_tests_name("unit/reliability", tests, NULL, NULL);
}
