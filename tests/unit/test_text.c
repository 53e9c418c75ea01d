/* Tokens, durations, sizes and random ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/text.h"
#include "node/subjects.h"

static void token_accepts_subject_tokens(void **state)
{
    (void)state;
    assert_true(cv_text_is_token("get-bitrix-deal"));
    assert_true(cv_text_is_token("A_9"));
    assert_false(cv_text_is_token(""));
    assert_false(cv_text_is_token("a.b"));
    assert_false(cv_text_is_token("a b"));
    assert_false(cv_text_is_token("a*"));
    assert_false(cv_text_is_token("a>"));
    assert_false(cv_text_is_token(NULL));
}

static void duration_parses_units(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cv_text_parse_duration("500ms", &ms, NULL), CV_OK);
    assert_int_equal(ms, 500);
    assert_int_equal(cv_text_parse_duration("30s", &ms, NULL), CV_OK);
    assert_int_equal(ms, 30000);
    assert_int_equal(cv_text_parse_duration("1.5", &ms, NULL), CV_OK);
    assert_int_equal(ms, 1500);
    assert_int_equal(cv_text_parse_duration("2m", &ms, NULL), CV_OK);
    assert_int_equal(ms, 120000);
    assert_int_equal(cv_text_parse_duration("1h", &ms, NULL), CV_OK);
    assert_int_equal(ms, 3600000);
}

static void duration_rejects_bad_text(void **state)
{
    (void)state;
    int64_t ms;
    cv_error err;
    assert_int_equal(cv_text_parse_duration("-1s", &ms, &err), CV_ERR_INVALID);
    assert_int_equal(cv_text_parse_duration("", &ms, &err), CV_ERR_INVALID);
    assert_int_equal(cv_text_parse_duration("10 s", &ms, &err), CV_ERR_INVALID);
    assert_int_equal(cv_text_parse_duration("5d", &ms, &err), CV_ERR_INVALID);
    assert_string_equal(err.text, "invalid duration \"5d\": the unit must be ms, s, m or h");
}

static void size_parses_units(void **state)
{
    (void)state;
    size_t n;
    assert_int_equal(cv_text_parse_size("1048576", &n, NULL), CV_OK);
    assert_int_equal(n, 1048576);
    assert_int_equal(cv_text_parse_size("1MiB", &n, NULL), CV_OK);
    assert_int_equal(n, 1048576);
    assert_int_equal(cv_text_parse_size("512k", &n, NULL), CV_OK);
    assert_int_equal(n, 524288);
    assert_int_equal(cv_text_parse_size("1x", &n, NULL), CV_ERR_INVALID);
}

static void random_tokens_differ(void **state)
{
    (void)state;
    char a[23], b[23];
    cv_text_random_token(a, 22);
    cv_text_random_token(b, 22);
    assert_int_equal(strlen(a), 22);
    assert_true(cv_text_is_token(a));
    assert_string_not_equal(a, b);
}

static void reply_subject_round_trips(void **state)
{
    (void)state;
    char subject[CV_SUBJECT_MAX];
    assert_true(cv_subject_reply(subject, "orch", "inst-1", "get-deal", 3,
                                 "abcdefghijABCDEFGHIJ01"));
    assert_string_equal(subject, "orch.reply.inst-1.get-deal.3.abcdefghijABCDEFGHIJ01");
    cv_reply_address address;
    assert_true(cv_subject_parse_reply("orch", subject, &address));
    assert_string_equal(address.instance, "inst-1");
    assert_string_equal(address.step, "get-deal");
    assert_int_equal(address.attempt, 3);
    assert_string_equal(address.token, "abcdefghijABCDEFGHIJ01");
}

static void reply_subject_rejects_other_shapes(void **state)
{
    (void)state;
    cv_reply_address a;
    assert_false(cv_subject_parse_reply("orch", "orch.reply.i.s.1", &a));
    assert_false(cv_subject_parse_reply("orch", "orch.reply.i.s.0.abcdefghijABCDEFGHIJ01", &a));
    assert_false(cv_subject_parse_reply("orch", "orch.reply.i.s.x.abcdefghijABCDEFGHIJ01", &a));
    assert_false(cv_subject_parse_reply("orch", "orch.reply.i.s.1.short", &a));
    assert_false(cv_subject_parse_reply("orch", "other.reply.i.s.1.abcdefghijABCDEFGHIJ01", &a));
    assert_false(
        cv_subject_parse_reply("orch", "orch.reply.i.s.1.abcdefghijABCDEFGHIJ01.extra", &a));
}

static void request_subject_yields_process(void **state)
{
    (void)state;
    assert_string_equal(cv_subject_request_process("orch", "orch.request.deal-sync"), "deal-sync");
    assert_null(cv_subject_request_process("orch", "orch.request.a.b"));
    assert_null(cv_subject_request_process("orch", "orch.request."));
    assert_null(cv_subject_request_process("orch", "orchx.request.a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_accepts_subject_tokens),
        cmocka_unit_test(duration_parses_units),
        cmocka_unit_test(duration_rejects_bad_text),
        cmocka_unit_test(size_parses_units),
        cmocka_unit_test(random_tokens_differ),
        cmocka_unit_test(reply_subject_round_trips),
        cmocka_unit_test(reply_subject_rejects_other_shapes),
        cmocka_unit_test(request_subject_yields_process),
    };
    return cmocka_run_group_tests_name("unit/text", tests, NULL, NULL);
}
