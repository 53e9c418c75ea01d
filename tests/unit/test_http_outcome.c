/*
 * What a finished HTTP transfer means for a step: the output of a 2xx, the
 * failures a retry can cure (5xx, timeouts, refused connections) and those
 * it cannot (4xx, unfollowed redirects, bodies that are not JSON or too
 * large). Each failure is checked with the error text a user sees in the
 * step's events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_outcome.h"

static cv_http_response response_with(long status, const char *body)
{
    return (cv_http_response){
        .code = CURLE_OK,
        .status = status,
        .body = body,
        .body_length = body != NULL ? strlen(body) : 0,
        .host = "127.0.0.1:8080",
        .timeout_ms = 5000,
        .max_response = 1000,
    };
}

static cv_http_outcome classify(const cv_http_response *response)
{
    cv_json_limits limits = {.max_bytes = 100};
    cv_http_outcome outcome;
    cv_http_outcome_classify(&outcome, response, &limits);
    return outcome;
}

static void assert_failure(const cv_http_response *response, bool permanent, const char *error)
{
    cv_http_outcome outcome = classify(response);
    assert_true(outcome.failed);
    assert_null(outcome.output);
    assert_string_equal(outcome.error, error);
    if (outcome.permanent != permanent)
        fail_msg("\"%s\" is %s, expected %s", error, outcome.permanent ? "permanent" : "retryable",
                 permanent ? "permanent" : "retryable");
}

static void test_ok_body_is_output(void **state)
{
    cv_http_response response = response_with(200, "{\"ID\": \"17\"}");
    cv_http_outcome outcome = classify(&response);
    assert_false(outcome.failed);
    assert_string_equal(json_string_value(json_object_get(outcome.output, "ID")), "17");
    json_decref(outcome.output);

    response = response_with(201, "[1, 2]");
    outcome = classify(&response);
    assert_false(outcome.failed);
    assert_int_equal(json_array_size(outcome.output), 2);
    json_decref(outcome.output);
}

static void test_empty_ok_body_is_no_output(void **state)
{
    cv_http_response response = response_with(204, NULL);
    cv_http_outcome outcome = classify(&response);
    assert_false(outcome.failed);
    assert_null(outcome.output);

    response = response_with(200, "");
    outcome = classify(&response);
    assert_false(outcome.failed);
    assert_null(outcome.output);
}

static void test_ok_body_not_json_is_permanent(void **state)
{
    cv_http_response response = response_with(200, "hello, this is not JSON");
    cv_http_outcome outcome = classify(&response);
    assert_true(outcome.failed);
    assert_true(outcome.permanent);
    assert_null(outcome.output);
    assert_memory_equal(outcome.error, "response body rejected: ", 24);
}

static void test_ok_body_over_max_body_is_permanent(void **state)
{
    char body[200];
    snprintf(body, sizeof body, "{\"pad\": \"%0120d\"}", 0);
    cv_http_response response = response_with(200, body);
    cv_http_outcome outcome = classify(&response);
    assert_true(outcome.failed);
    assert_true(outcome.permanent);
    assert_memory_equal(outcome.error, "response body rejected: ", 24);
}

static void test_client_error_is_permanent(void **state)
{
    cv_http_response response = response_with(404, "no such deal\r\nsecond line");
    assert_failure(&response, true, "HTTP 404 Not Found: no such deal  second line");
    response = response_with(409, NULL);
    assert_failure(&response, true, "HTTP 409 Conflict");
    response = response_with(429, "slow down");
    assert_failure(&response, true, "HTTP 429 Too Many Requests: slow down");
}

static void test_server_error_is_retryable(void **state)
{
    cv_http_response response = response_with(503, "try again later");
    assert_failure(&response, false, "HTTP 503 Service Unavailable: try again later");
    response = response_with(599, "odd");
    assert_failure(&response, false, "HTTP 599: odd");
}

static void test_error_body_is_cut(void **state)
{
    char body[600];
    memset(body, 'a', 500);
    body[500] = '\0';
    cv_http_response response = response_with(500, body);
    cv_http_outcome outcome = classify(&response);
    const char *prefix = "HTTP 500 Internal Server Error: ";
    assert_int_equal(strlen(outcome.error), strlen(prefix) + CV_HTTP_SNIPPET_MAX + 3);
    assert_string_equal(outcome.error + strlen(outcome.error) - 3, "...");
}

static void test_snippet_cuts_at_character_boundary(void **state)
{
    char text[16];
    char out[16];
    /* "abé!" with é as two bytes: a cut after 3 bytes would split it. */
    snprintf(text, sizeof text, "ab\xc3\xa9!");
    cv_http_safe_snippet(out, text, strlen(text), 3);
    assert_string_equal(out, "ab...");
    cv_http_safe_snippet(out, text, strlen(text), 4);
    assert_string_equal(out, "ab\xc3\xa9...");
    cv_http_safe_snippet(out, text, strlen(text), 5);
    assert_string_equal(out, "ab\xc3\xa9!");
    cv_http_safe_snippet(out, "a\tb\x7f", 4, 10);
    assert_string_equal(out, "a b ");
}

static void test_redirect_not_followed_is_permanent(void **state)
{
    cv_http_response response = response_with(302, "");
    response.location = "http://127.0.0.1:8080/ok/redirected";
    assert_failure(&response, true,
                   "HTTP 302 Found: redirect to http://127.0.0.1:8080/ok/redirected not followed "
                   "(the module does not set follow_redirects)");
    response.location = NULL;
    assert_failure(&response, true, "HTTP 302 Found: the response has no Location to redirect to");
}

static void test_too_many_redirects_is_permanent(void **state)
{
    cv_http_response response = response_with(302, "");
    response.code = CURLE_TOO_MANY_REDIRECTS;
    response.curl_text = "Maximum (5) redirects followed";
    response.follow_redirects = true;
    assert_failure(&response, true,
                   "HTTP request to 127.0.0.1:8080 failed: Maximum (5) redirects followed");
}

static void test_timeout_is_retryable(void **state)
{
    cv_http_response response = response_with(0, NULL);
    response.code = CURLE_OPERATION_TIMEDOUT;
    response.curl_text = "Operation timed out after 300 milliseconds with 0 bytes received";
    response.timeout_ms = 300;
    assert_failure(&response, false, "HTTP request to 127.0.0.1:8080 timed out after 300ms");
    response.timeout_ms = 5000;
    assert_failure(&response, false, "HTTP request to 127.0.0.1:8080 timed out after 5s");
}

static void test_connection_errors_are_retryable(void **state)
{
    cv_http_response response = response_with(0, NULL);
    response.code = CURLE_COULDNT_CONNECT;
    response.curl_text = "Failed to connect to 127.0.0.1 port 8080: Connection refused";
    assert_failure(&response, false,
                   "HTTP request to 127.0.0.1:8080 failed: Failed to connect to 127.0.0.1 port "
                   "8080: Connection refused");

    response.code = CURLE_COULDNT_RESOLVE_HOST;
    response.curl_text = "";
    response.host = "crm.invalid:443";
    char expected[256];
    snprintf(expected, sizeof expected, "HTTP request to crm.invalid:443 failed: %s",
             curl_easy_strerror(CURLE_COULDNT_RESOLVE_HOST));
    assert_failure(&response, false, expected);

    response.code = CURLE_RECV_ERROR;
    response.curl_text = "Recv failure: Connection reset by peer";
    response.host = "127.0.0.1:8080";
    assert_failure(&response, false,
                   "HTTP request to 127.0.0.1:8080 failed: Recv failure: Connection reset by peer");
}

static void test_request_errors_are_permanent(void **state)
{
    cv_http_response response = response_with(0, NULL);
    response.code = CURLE_UNSUPPORTED_PROTOCOL;
    response.curl_text = "Protocol \"ftp\" not supported";
    assert_failure(&response, true,
                   "HTTP request to 127.0.0.1:8080 failed: Protocol \"ftp\" not supported");
    response.code = CURLE_URL_MALFORMAT;
    response.curl_text = "URL rejected: Malformed input to a URL function";
    assert_failure(&response, true,
                   "HTTP request to 127.0.0.1:8080 failed: URL rejected: Malformed input to a "
                   "URL function");
}

static void test_too_large_ok_body_is_permanent(void **state)
{
    cv_http_response response = response_with(200, "{\"pad\": \"xxxx");
    response.code = CURLE_WRITE_ERROR;
    response.body_too_large = true;
    assert_failure(&response, true, "HTTP 200 response body is larger than max_response (1000 bytes)");

    response = response_with(200, NULL);
    response.code = CURLE_FILESIZE_EXCEEDED;
    assert_failure(&response, true, "HTTP 200 response body is larger than max_response (1000 bytes)");
}

static void test_error_status_wins_over_transfer_error(void **state)
{
    cv_http_response response = response_with(503, "overloaded");
    response.code = CURLE_WRITE_ERROR;
    response.body_too_large = true;
    assert_failure(&response, false, "HTTP 503 Service Unavailable: overloaded");

    response = response_with(404, "gone");
    response.code = CURLE_OPERATION_TIMEDOUT;
    assert_failure(&response, true, "HTTP 404 Not Found: gone");
}

static void test_unexpected_status_is_permanent(void **state)
{
    cv_http_response response = response_with(101, NULL);
    assert_failure(&response, true, "unexpected HTTP status 101 from 127.0.0.1:8080");
}

static void test_reason_phrases(void **state)
{
    assert_string_equal(cv_http_reason_phrase(200), "OK");
    assert_string_equal(cv_http_reason_phrase(404), "Not Found");
    assert_string_equal(cv_http_reason_phrase(503), "Service Unavailable");
    assert_string_equal(cv_http_reason_phrase(299), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_body_is_output),
        cmocka_unit_test(test_empty_ok_body_is_no_output),
        cmocka_unit_test(test_ok_body_not_json_is_permanent),
        cmocka_unit_test(test_ok_body_over_max_body_is_permanent),
        cmocka_unit_test(test_client_error_is_permanent),
        cmocka_unit_test(test_server_error_is_retryable),
        cmocka_unit_test(test_error_body_is_cut),
        cmocka_unit_test(test_snippet_cuts_at_character_boundary),
        cmocka_unit_test(test_redirect_not_followed_is_permanent),
        cmocka_unit_test(test_too_many_redirects_is_permanent),
        cmocka_unit_test(test_timeout_is_retryable),
        cmocka_unit_test(test_connection_errors_are_retryable),
        cmocka_unit_test(test_request_errors_are_permanent),
        cmocka_unit_test(test_too_large_ok_body_is_permanent),
        cmocka_unit_test(test_error_status_wins_over_transfer_error),
        cmocka_unit_test(test_unexpected_status_is_permanent),
        cmocka_unit_test(test_reason_phrases),
    };
    return cmocka_run_group_tests_name("unit/http_outcome", tests, NULL, NULL);
}
