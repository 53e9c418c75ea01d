/*
 * The HTTP transport against a real node, a real nats-server and a real
 * HTTP server (tests/support/http_server.py). The tests cover what a module
 * receives, how each kind of response ends the step, url placeholders,
 * redirects, limits, timeouts, retries and connection reuse. Each is checked
 * through the events a user sees and the requests the server recorded.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "core/clock.h"
#include "core/text.h"
#include "support/cluster.h"

typedef struct fixture {
    cv_test_server server;
    cv_test_process http;
    int http_port;
    int refused_socket; /* bound to refused_port and never listening */
    int refused_port;   /* a connection to it is refused */
    char *rules_dir;
    cv_test_node node;
    natsConnection *nc;
    cv_test_recorder events;
} fixture;

static fixture fx;

/* Starts the HTTP server and reads its port from the first line it prints. */
static void start_http_server(void)
{
    char log_path[600];
    snprintf(log_path, sizeof log_path, "%s/http-server.log", fx.server.dir);
    char *argv[] = {"/usr/bin/python3", (char *)cv_test_source_path("tests/support/http_server.py"),
                    NULL};
    assert_true(cv_test_process_start(&fx.http, argv, log_path, NULL));
    if (!cv_test_process_wait_log(&fx.http, "listening port=", 10000))
        fail_msg("the HTTP server did not start within 10 s; see %s", log_path);

    FILE *log = fopen(log_path, "r");
    assert_non_null(log);
    char line[256];
    while (fx.http_port == 0 && fgets(line, sizeof line, log) != NULL) {
        const char *found = strstr(line, "listening port=");
        if (found != NULL)
            fx.http_port = atoi(found + strlen("listening port="));
    }
    fclose(log);
    assert_true(fx.http_port > 0);
}

/*
 * Reserves a port that refuses connections: a socket bound to it that never
 * listens. Holding the binding keeps other programs from taking the port.
 */
static void reserve_refused_port(void)
{
    fx.refused_socket = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fx.refused_socket >= 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fx.refused_socket, (struct sockaddr *)&address, sizeof address), 0);
    socklen_t length = sizeof address;
    assert_int_equal(getsockname(fx.refused_socket, (struct sockaddr *)&address, &length), 0);
    fx.refused_port = ntohs(address.sin_port);
}

/* The rules, with %1$s for the HTTP server's base url and %2$d for a port nothing listens on. */
#define RULES_TEMPLATE \
    "module \"echo-http\" { transport = \"http\", url = \"%1$s/ok/{step}\",\n" \
    "  headers = { [\"X-Api-Key\"] = \"secret-1\", [\"Orch-Step\"] = \"forged\" } }\n" \
    "module \"echo-get\" { transport = \"http\", method = \"GET\", url = \"%1$s/ok/get/{instance}\" }\n" \
    "module \"placeholders\" { transport = \"http\",\n" \
    "  url = \"%1$s/ok/{process}/{request.name}?i={instance}&n={request.count}&vip={request.vip}\" }\n" \
    "module \"missing\" { transport = \"http\", url = \"%1$s/missing\" }\n" \
    "module \"text\" { transport = \"http\", url = \"%1$s/text\" }\n" \
    "module \"big\" { transport = \"http\", max_response = 1000,\n" \
    "  url = \"%1$s/big?bytes={request.bytes}&chunked={request.chunked}\" }\n" \
    "module \"redirect\" { transport = \"http\", url = \"%1$s/redirect\" }\n" \
    "module \"redirect-follow\" { transport = \"http\", url = \"%1$s/redirect\",\n" \
    "  follow_redirects = true }\n" \
    "module \"slow\" { transport = \"http\", url = \"%1$s/slow?ms=2000\", timeout = \"300ms\" }\n" \
    "module \"flaky\" { transport = \"http\", url = \"%1$s/flaky/{instance}\" }\n" \
    "module \"refused\" { transport = \"http\", url = \"http://127.0.0.1:%2$d/ok/x\" }\n" \
    "module \"hang\" { transport = \"http\", url = \"%1$s/slow?ms=5000\", timeout = \"20s\" }\n" \
    "\n" \
    "process \"http-ok\" { start = \"call\", steps = {\n" \
    "  call = { subsystem = \"echo-http\", params = { source = \"web\" }, next = { \"get\" } },\n" \
    "  get = { subsystem = \"echo-get\" } } }\n" \
    "process \"http-placeholders\" { start = \"fill\", steps = {\n" \
    "  fill = { subsystem = \"placeholders\" } } }\n" \
    "process \"http-missing\" { start = \"fetch\", steps = {\n" \
    "  fetch = { subsystem = \"missing\" } } }\n" \
    "process \"http-missing-handled\" { start = \"fetch\", steps = {\n" \
    "  fetch = { subsystem = \"missing\", on_error = { \"recover\" } },\n" \
    "  recover = { subsystem = \"echo-http\" } } }\n" \
    "process \"http-text\" { start = \"read\", steps = { read = { subsystem = \"text\" } } }\n" \
    "process \"http-big\" { start = \"read\", steps = { read = { subsystem = \"big\" } } }\n" \
    "process \"http-redirect\" { start = \"call\", steps = {\n" \
    "  call = { subsystem = \"redirect\" } } }\n" \
    "process \"http-redirect-follow\" { start = \"call\", steps = {\n" \
    "  call = { subsystem = \"redirect-follow\" } } }\n" \
    "process \"http-slow\" { start = \"wait\", steps = { wait = { subsystem = \"slow\" } } }\n" \
    "process \"http-flaky\" { start = \"call\", steps = {\n" \
    "  call = { subsystem = \"flaky\", retry = { max = 2, backoff = \"100ms\" } } } }\n" \
    "process \"http-refused\" { start = \"call\", steps = {\n" \
    "  call = { subsystem = \"refused\" } } }\n" \
    "process \"http-reuse\" { start = \"call\", steps = {\n" \
    "  call = { subsystem = \"echo-http\" } } }\n" \
    "process \"http-hang\" { start = \"wait\", steps = { wait = { subsystem = \"hang\" } } }\n"

static void write_rules(void)
{
    fx.rules_dir = cv_test_temp_dir("conveyor-http-rules");
    assert_non_null(fx.rules_dir);
    char path[600];
    snprintf(path, sizeof path, "%s/http.lua", fx.rules_dir);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", fx.http_port);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fprintf(file, RULES_TEMPLATE, base, fx.refused_port);
    assert_int_equal(fclose(file), 0);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    cv_test_server_start(&fx.server);
    start_http_server();
    reserve_refused_port();
    write_rules();
    cv_test_node_start(&fx.node, &fx.server, fx.rules_dir, "http-test", NULL);
    fx.nc = cv_test_connect(&fx.server);
    cv_test_recorder_start(&fx.events, fx.nc, "orch.event.>");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cv_test_recorder_stop(&fx.events);
    natsConnection_Destroy(fx.nc);
    cv_test_node_stop(&fx.node);
    assert_int_equal(cv_test_process_stop(&fx.http, 5000), 0);
    cv_test_server_stop(&fx.server);
    close(fx.refused_socket);
    cv_test_remove_tree(fx.rules_dir);
    free(fx.rules_dir);
    curl_global_cleanup();
    return 0;
}

/*
 * Submits body to process under a fresh id, waits for the instance to end
 * and returns the final event's body (new reference). *id receives the id.
 */
static json_t *run_instance(const char *process, const char *body, char *id)
{
    cv_text_random_token(id, 22);
    json_t *answer = cv_test_request(fx.nc, process, id, body, (int)strlen(body));
    assert_string_equal(json_string_value(json_object_get(answer, "instance")), id);
    json_decref(answer);

    return cv_test_wait_instance_end(&fx.events, id, 10000);
}

static const char *end_kind(const char *id)
{
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    if (cv_test_recorder_count(&fx.events, infix, "instance.completed") > 0)
        return "completed";
    if (cv_test_recorder_count(&fx.events, infix, "instance.failed") > 0)
        return "failed";
    return "running";
}

static json_t *find_event(const char *id, const char *kind)
{
    char infix[64];
    snprintf(infix, sizeof infix, ".%s.", id);
    return cv_test_recorder_find(&fx.events, infix, kind);
}

static json_t *step_output(const json_t *end, const char *step)
{
    return json_object_get(json_object_get(end, "data"), step);
}

static const char *text_at(const json_t *object, const char *key)
{
    return json_string_value(json_object_get(object, key));
}

static void assert_contains(const char *text, const char *part)
{
    if (text == NULL || strstr(text, part) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text ? text : "(null)", part);
}

/*
 * Runs process, which must fail at step with an error containing part, and
 * checks the permanent flag of its step.failed event.
 */
static void expect_step_failure(const char *process, const char *body, const char *step,
                                const char *part, bool permanent)
{
    char id[32];
    json_t *end = run_instance(process, body, id);
    assert_string_equal(end_kind(id), "failed");
    assert_contains(text_at(end, "error"), part);
    assert_contains(text_at(step_output(end, step), "error"), part);

    json_t *failed = find_event(id, "step.failed");
    assert_non_null(failed);
    assert_string_equal(text_at(failed, "step"), step);
    assert_contains(text_at(failed, "error"), part);
    assert_int_equal(json_is_true(json_object_get(failed, "permanent")), permanent);
    json_decref(failed);
    json_decref(end);
}

static size_t collect(char *data, size_t size, size_t count, void *context)
{
    char **buffer = context;
    size_t old = *buffer ? strlen(*buffer) : 0;
    char *grown = realloc(*buffer, old + size * count + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + old, data, size * count);
    grown[old + size * count] = '\0';
    *buffer = grown;
    return size * count;
}

/* Reads a JSON document from the HTTP server with a plain GET. */
static json_t *http_get_json(const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fx.http_port, path);
    char *text = NULL;
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &text);
    CURLcode rc = curl_easy_perform(easy);
    curl_easy_cleanup(easy);
    if (rc != CURLE_OK)
        fail_msg("GET %s failed: %s", url, curl_easy_strerror(rc));
    json_t *value = json_loads(text ? text : "", 0, NULL);
    free(text);
    assert_non_null(value);
    return value;
}

/* ---- tests ---- */

static void post_reaches_module_with_headers_and_body(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("http-ok", "{\"deal_id\": \"4127\"}", id);
    assert_string_equal(end_kind(id), "completed");

    json_t *call = step_output(end, "call");
    assert_string_equal(text_at(call, "method"), "POST");
    assert_string_equal(text_at(call, "path"), "/ok/call");
    json_t *headers = json_object_get(call, "headers");
    assert_string_equal(text_at(headers, "Orch-Instance"), id);
    assert_string_equal(text_at(headers, "Orch-Process"), "http-ok");
    assert_string_equal(text_at(headers, "Orch-Step"), "call");
    assert_string_equal(text_at(headers, "Orch-Attempt"), "1");
    assert_string_equal(text_at(headers, "X-Api-Key"), "secret-1");
    assert_string_equal(text_at(headers, "Content-Type"), "application/json");

    json_t *body = json_object_get(call, "body");
    assert_string_equal(text_at(body, "instance"), id);
    assert_string_equal(text_at(body, "process"), "http-ok");
    assert_string_equal(text_at(body, "step"), "call");
    assert_int_equal(json_integer_value(json_object_get(body, "attempt")), 1);
    assert_string_equal(text_at(json_object_get(body, "params"), "source"), "web");
    json_t *request = json_object_get(json_object_get(body, "data"), "request");
    assert_string_equal(text_at(request, "deal_id"), "4127");
    json_decref(end);
}

static void get_sends_no_body(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("http-ok", "{}", id);
    assert_string_equal(end_kind(id), "completed");
    json_t *get = step_output(end, "get");
    assert_string_equal(text_at(get, "method"), "GET");
    char path[64];
    snprintf(path, sizeof path, "/ok/get/%s", id);
    assert_string_equal(text_at(get, "path"), path);
    assert_true(json_is_null(json_object_get(get, "body")));
    json_t *headers = json_object_get(get, "headers");
    assert_null(json_object_get(headers, "Content-Type"));
    assert_null(json_object_get(headers, "Content-Length"));
    assert_string_equal(text_at(headers, "Orch-Step"), "get");
    json_decref(end);
}

static void placeholders_arrive_percent_encoded(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("http-placeholders",
                               "{\"name\": \"a b/c\", \"count\": 7, \"vip\": true}", id);
    assert_string_equal(end_kind(id), "completed");
    json_t *fill = step_output(end, "fill");
    assert_string_equal(text_at(fill, "path"), "/ok/http-placeholders/a%20b%2Fc");
    char query[96];
    snprintf(query, sizeof query, "i=%s&n=7&vip=true", id);
    assert_string_equal(text_at(fill, "query"), query);
    json_decref(end);
}

static void missing_placeholder_field_fails(void **state)
{
    (void)state;
    expect_step_failure("http-placeholders", "{\"count\": 7}", "fill",
                        "url placeholder {request.name}: the field is missing from the data",
                        true);
}

static void not_found_fails_instance(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("http-missing", "{}", id);
    assert_string_equal(end_kind(id), "failed");
    assert_string_equal(text_at(end, "error"),
                        "step \"fetch\" failed: HTTP 404 Not Found: no such deal  second line");
    assert_string_equal(text_at(step_output(end, "fetch"), "error"),
                        "HTTP 404 Not Found: no such deal  second line");
    json_t *failed = find_event(id, "step.failed");
    assert_non_null(failed);
    assert_true(json_is_true(json_object_get(failed, "permanent")));
    json_decref(failed);
    json_decref(end);
}

static void not_found_goes_to_on_error(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("http-missing-handled", "{}", id);
    assert_string_equal(end_kind(id), "completed");
    assert_string_equal(text_at(step_output(end, "fetch"), "error"),
                        "HTTP 404 Not Found: no such deal  second line");
    assert_string_equal(text_at(step_output(end, "recover"), "path"), "/ok/recover");
    json_t *steps = json_object_get(end, "steps");
    assert_int_equal(json_array_size(steps), 1);
    assert_string_equal(json_string_value(json_array_get(steps, 0)), "recover");
    json_decref(end);
}

static void text_body_fails_permanently(void **state)
{
    (void)state;
    expect_step_failure("http-text", "{}", "read", "response body rejected: ", true);
}

static void big_body_fails_naming_limit(void **state)
{
    (void)state;
    /*
     * With a Content-Length, which curl checks before the body comes; then
     * chunked, which only the count of bytes received can stop.
     */
    expect_step_failure("http-big", "{\"bytes\": 5000, \"chunked\": 0}", "read",
                        "HTTP 200 response body is larger than max_response (1000 bytes)", true);
    expect_step_failure("http-big", "{\"bytes\": 50000, \"chunked\": 1}", "read",
                        "HTTP 200 response body is larger than max_response (1000 bytes)", true);

    char id[32];
    json_t *end = run_instance("http-big", "{\"bytes\": 1000, \"chunked\": 1}", id);
    assert_string_equal(end_kind(id), "completed");
    assert_int_equal(strlen(text_at(step_output(end, "read"), "pad")), 990);
    json_decref(end);
}

static void redirect_not_followed_by_default(void **state)
{
    (void)state;
    char part[160];
    snprintf(part, sizeof part,
             "HTTP 302 Found: redirect to http://127.0.0.1:%d/ok/redirected not followed",
             fx.http_port);
    expect_step_failure("http-redirect", "{}", "call", part, true);
}

static void redirect_followed_when_asked(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("http-redirect-follow", "{}", id);
    assert_string_equal(end_kind(id), "completed");
    json_t *call = step_output(end, "call");
    assert_string_equal(text_at(call, "path"), "/ok/redirected");
    /* A POST stays a POST, with its body, after a 302. */
    assert_string_equal(text_at(call, "method"), "POST");
    assert_string_equal(text_at(json_object_get(call, "body"), "instance"), id);
    json_decref(end);
}

static void slow_module_times_out(void **state)
{
    (void)state;
    int64_t started = cv_clock_mono_ms();
    expect_step_failure("http-slow", "{}", "wait", "timed out after 300ms", false);
    /* The server responds after 2 s; the step must not have waited for it. */
    assert_true(cv_clock_mono_ms() - started < 1900);

    /*
     * The node's own step timer and the transfer's timeout fire together,
     * and either may fail the attempt first; the transfer must stop too,
     * not hold its connection until the server responds.
     */
    char line[128];
    snprintf(line, sizeof line, "HTTP request to 127.0.0.1:%d timed out after 300ms",
             fx.http_port);
    assert_true(cv_test_process_wait_log(&fx.node.process, line, 1000));
}

static void refused_connection_is_retryable(void **state)
{
    (void)state;
    char part[64];
    snprintf(part, sizeof part, "HTTP request to 127.0.0.1:%d failed: ", fx.refused_port);
    expect_step_failure("http-refused", "{}", "call", part, false);
}

static void flaky_module_completes_on_retry(void **state)
{
    (void)state;
    char id[32];
    json_t *end = run_instance("http-flaky", "{}", id);
    assert_string_equal(end_kind(id), "completed");
    json_t *completed = find_event(id, "step.completed");
    assert_non_null(completed);
    assert_int_equal(json_integer_value(json_object_get(completed, "attempt")), 2);
    assert_string_equal(text_at(json_object_get(step_output(end, "call"), "headers"),
                                "Orch-Attempt"),
                        "2");
    json_decref(completed);
    json_decref(end);
}

static void connections_are_reused(void **state)
{
    (void)state;
    json_t *before = http_get_json("/stats");
    for (int i = 0; i < 20; i++) {
        char id[32];
        json_t *end = run_instance("http-reuse", "{}", id);
        assert_string_equal(end_kind(id), "completed");
        json_decref(end);
    }
    json_t *after = http_get_json("/stats");
    json_int_t requests = json_integer_value(json_object_get(after, "requests")) -
                          json_integer_value(json_object_get(before, "requests"));
    json_int_t connections = json_integer_value(json_object_get(after, "connections")) -
                             json_integer_value(json_object_get(before, "connections"));
    print_message("20 steps: %lld requests on %lld new connections\n", (long long)requests,
                  (long long)connections);
    assert_int_equal(requests, 20);
    assert_true(connections <= 2);
    json_decref(before);
    json_decref(after);
}

static json_int_t requests_seen(void)
{
    json_t *stats = http_get_json("/stats");
    json_int_t requests = json_integer_value(json_object_get(stats, "requests"));
    json_decref(stats);
    return requests;
}

/* Runs last: it stops the node while a transfer is in flight, then starts another. */
static void node_stops_with_transfer_in_flight(void **state)
{
    (void)state;
    json_int_t before = requests_seen();
    char id[32];
    cv_text_random_token(id, 22);
    json_t *answer = cv_test_request(fx.nc, "http-hang", id, "{}", 2);
    json_decref(answer);
    int64_t deadline = cv_clock_mono_ms() + 5000;
    while (requests_seen() == before && cv_clock_mono_ms() < deadline)
        usleep(20000);
    assert_true(requests_seen() > before);

    int64_t started = cv_clock_mono_ms();
    cv_test_node_stop(&fx.node);
    /* The server responds after 5 s; stopping must not wait for it. */
    assert_true(cv_clock_mono_ms() - started < 4000);
    assert_int_equal(cv_test_process_count_log(
                         &fx.node.process,
                         "msg=\"http transfers dropped at stop\" node=http-test count=1"),
                     1);
    cv_test_node_start(&fx.node, &fx.server, fx.rules_dir, "http-test-again", NULL);
}

int main(int argc, char **argv)
{
    cv_test_state_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(post_reaches_module_with_headers_and_body),
        cmocka_unit_test(get_sends_no_body),
        cmocka_unit_test(placeholders_arrive_percent_encoded),
        cmocka_unit_test(missing_placeholder_field_fails),
        cmocka_unit_test(not_found_fails_instance),
        cmocka_unit_test(not_found_goes_to_on_error),
        cmocka_unit_test(text_body_fails_permanently),
        cmocka_unit_test(big_body_fails_naming_limit),
        cmocka_unit_test(redirect_not_followed_by_default),
        cmocka_unit_test(redirect_followed_when_asked),
        cmocka_unit_test(slow_module_times_out),
        cmocka_unit_test(refused_connection_is_retryable),
        cmocka_unit_test(flaky_module_completes_on_retry),
        cmocka_unit_test(connections_are_reused),
        cmocka_unit_test(node_stops_with_transfer_in_flight),
    };
    return cmocka_run_group_tests_name("integration/http", tests, setup, teardown);
}
