/*
 * The HTTP transport: one thread per node drives every HTTP step through a
 * libcurl multi handle, so a thousand steps in flight cost one thread and
 * their sockets, not a thousand threads.
 *
 * A worker builds the whole request in its own thread, because only the
 * worker may read the instance: the url with its placeholders expanded, the
 * step body, the headers. It queues that request under the client's lock
 * and wakes the HTTP thread with curl_multi_wakeup. The HTTP thread adds
 * the request to the multi handle, and when the transfer ends it
 * classifies the response (src/http/http_outcome.c) and posts the result
 * to the worker that owns the instance with cv_node_post_result.
 *
 * Choices made here:
 * - Body: GET, HEAD and DELETE send no body. Every other method sends the
 *   step body, the same JSON object the NATS transport sends, with
 *   Content-Type: application/json.
 * - Headers: the module's headers, then Orch-Instance, Orch-Process,
 *   Orch-Step and Orch-Attempt. A module header with the name of a header
 *   the node sets is left out, so a module always receives the node's values.
 * - Redirects are followed only when the module sets follow_redirects, at
 *   most MAX_REDIRECTS of them, and only to http and https. A POST stays a
 *   POST, with its body, after a 301 or 302; a 303 turns it into a GET.
 * - No proxy, whatever http_proxy, https_proxy or all_proxy contain: where the
 *   step data goes is decided by the rules alone, and a proxy variable
 *   left in a service's environment would otherwise send every step,
 *   personal data included, through another host. The rules have no
 *   proxy setting yet.
 * - Connections are kept alive in the multi handle's connection cache and
 *   reused by later steps to the same host; finished easy handles are kept
 *   for reuse too.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/jsonx.h"
#include "core/log.h"
#include "http/http_outcome.h"
#include "http/url_template.h"
#include "node/node_internal.h"

#define MAX_REDIRECTS 5L
/* Idle easy handles kept for reuse. */
#define IDLE_HANDLES_MAX 16
/*
 * Maximum open connections per host. Steps beyond it wait inside curl for a
 * free connection, and that wait counts against their timeout. Without a
 * cap, a burst of steps could run the node out of file descriptors, whose
 * soft limit is often 1024.
 */
#define MAX_HOST_CONNECTIONS 256L
/*
 * Maximum idle connections kept open for reuse, over all hosts. Without it
 * the cache keeps four connections per transfer added to the multi handle
 * (libcurl's CURLMOPT_MAXCONNECTS manual page), a size that follows the
 * load instead of staying put between bursts.
 */
#define MAX_IDLE_CONNECTIONS 256L
/* Bytes kept of a response that is not 2xx: only the start is quoted in the error. */
#define ERROR_BODY_KEEP 1024
/* Maximum wait of the HTTP thread in curl_multi_poll when no transfer needs it sooner. */
#define POLL_MS 1000

typedef struct http_transfer {
    struct http_transfer *prev;
    struct http_transfer *next;
    CURL *easy; /* set by the HTTP thread when the transfer starts */

    /* The attempt the result is for. */
    char instance[CV_INSTANCE_ID_MAX + 1];
    char *step;
    int attempt;
    char token[CV_TOKEN_LEN + 1];

    /* The request, built by the worker. */
    char *url;
    char *host; /* "host:port", for messages */
    char *method;
    char *body; /* NULL: no body */
    size_t body_length;
    struct curl_slist *headers;
    int64_t timeout_ms;
    size_t max_response;
    bool follow_redirects;

    /* The response, written by the HTTP thread. */
    char *response;
    size_t response_length;
    size_t response_capacity;
    size_t received; /* body bytes of the current response, kept or not */
    long response_status;
    bool too_large;
    bool out_of_memory;
    char curl_text[CURL_ERROR_SIZE];
} http_transfer;

struct cv_http_client {
    cv_node *node;
    size_t max_body;
    CURLM *multi;
    pthread_t thread;
    bool started;

    pthread_mutex_t lock;
    bool stopping;                /* under lock */
    http_transfer *pending;       /* under lock: built, not yet started */
    http_transfer *pending_tail;  /* under lock */

    /* Owned by the HTTP thread while it runs, then by cv_http_client_destroy. */
    http_transfer *running;
    CURL *idle[IDLE_HANDLES_MAX];
    size_t idle_count;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

/*
 * NOTE: the node calls this after its NATS threads have started. That is
 * safe with a libcurl that reports CURL_VERSION_THREADSAFE (7.84 or later,
 * and Debian 12's 7.88.1 does). An older libcurl wants curl_global_init
 * before any other thread exists.
 */
static void init_curl(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void transfer_free(http_transfer *t)
{
    if (t == NULL)
        return;
    free(t->step);
    free(t->url);
    free(t->host);
    free(t->method);
    free(t->body);
    curl_slist_free_all(t->headers);
    free(t->response);
    free(t);
}

/* ---- building the request (worker thread) ---- */

static bool sends_body(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "DELETE") != 0;
}

/* Sets t->host to "host:port" of t->url. */
static cv_status find_host(http_transfer *t, cv_error *err)
{
    CURLU *parsed = curl_url();
    char *host = NULL;
    char *port = NULL;
    cv_status st = CV_OK;
    if (parsed == NULL) {
        st = cv_error_set(err, CV_ERR_NOMEM, "out of memory parsing the url");
        goto out;
    }
    CURLUcode rc = curl_url_set(parsed, CURLUPART_URL, t->url, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(parsed, CURLUPART_HOST, &host, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(parsed, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (rc != CURLUE_OK) {
        st = cv_error_set(err, CV_ERR_INVALID, "invalid url \"%s\": %s", t->url,
                          curl_url_strerror(rc));
        goto out;
    }
    size_t size = strlen(host) + strlen(port) + 2;
    t->host = malloc(size);
    if (t->host == NULL) {
        st = cv_error_set(err, CV_ERR_NOMEM, "out of memory parsing the url");
        goto out;
    }
    snprintf(t->host, size, "%s:%s", host, port);
out:
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(parsed);
    return st;
}

static cv_status encode_body(http_transfer *t, const cv_instance *instance,
                             const cv_dispatch_order *order, cv_error *err)
{
    json_t *body = cv_dispatch_body(instance, order, err);
    if (body == NULL)
        return err->status;
    t->body = cv_json_dump(body);
    json_decref(body);
    if (t->body == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory encoding the step body");
    t->body_length = strlen(t->body);
    return CV_OK;
}

/* Adds "name: value" to t->headers; an empty value is sent as "name;", curl's form for it. */
static cv_status add_header(http_transfer *t, const char *name, const char *value, cv_error *err)
{
    size_t size = strlen(name) + strlen(value) + 3;
    char *line = malloc(size);
    if (line == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory building the request headers");
    if (value[0] == '\0')
        snprintf(line, size, "%s;", name);
    else
        snprintf(line, size, "%s: %s", name, value);
    struct curl_slist *grown = curl_slist_append(t->headers, line);
    free(line);
    if (grown == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory building the request headers");
    t->headers = grown;
    return CV_OK;
}

static bool node_sets_header(const char *name, bool has_body)
{
    static const char *const names[] = {"Orch-Instance", "Orch-Process", "Orch-Step",
                                        "Orch-Attempt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i]) == 0)
            return true;
    }
    return has_body && (strcasecmp(name, "Content-Type") == 0 || strcasecmp(name, "Expect") == 0);
}

static cv_status build_headers(http_transfer *t, const cv_instance *instance,
                               const cv_step *step, cv_error *err)
{
    const json_t *headers = step->module->headers;
    bool has_body = t->body != NULL;
    bool module_accept = false;
    const char *name;
    json_t *value;
    cv_status st = CV_OK;

    json_object_foreach((json_t *)headers, name, value) {
        module_accept = module_accept || strcasecmp(name, "Accept") == 0;
        if (st == CV_OK && !node_sets_header(name, has_body))
            st = add_header(t, name, json_string_value(value), err);
    }
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%d", t->attempt);
    if (st == CV_OK)
        st = add_header(t, "Orch-Instance", instance->id, err);
    if (st == CV_OK)
        st = add_header(t, "Orch-Process", instance->process->name, err);
    if (st == CV_OK)
        st = add_header(t, "Orch-Step", step->id, err);
    if (st == CV_OK)
        st = add_header(t, "Orch-Attempt", attempt, err);
    if (st == CV_OK && has_body)
        st = add_header(t, "Content-Type", "application/json", err);
    if (st == CV_OK && !module_accept)
        st = add_header(t, "Accept", "application/json", err);
    /*
     * "Expect:" (a name with a colon and no value) stops curl from asking for
     * 100-continue before a large body, which costs a one-second wait with
     * servers that never send "100 Continue".
     */
    if (st == CV_OK && has_body) {
        struct curl_slist *grown = curl_slist_append(t->headers, "Expect:");
        if (grown == NULL)
            st = cv_error_set(err, CV_ERR_NOMEM, "out of memory building the request headers");
        else
            t->headers = grown;
    }
    return st;
}

static cv_status build_transfer(http_transfer **out, const cv_instance *instance,
                                const cv_dispatch_order *order, cv_error *err)
{
    const cv_step *step = &instance->process->steps[order->step];
    const cv_module *module = step->module;
    if (module == NULL || module->url == NULL)
        return cv_error_set(err, CV_ERR_INVALID, "step \"%s\" has no http module with a url",
                            step->id);

    http_transfer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory building the HTTP request");
    snprintf(t->instance, sizeof t->instance, "%s", instance->id);
    snprintf(t->token, sizeof t->token, "%s", order->token);
    t->attempt = order->attempt;
    t->timeout_ms = step->timeout_ms;
    t->max_response = module->max_response;
    t->follow_redirects = module->follow_redirects;
    t->step = strdup(step->id);
    t->method = strdup(module->method != NULL ? module->method : "POST");

    cv_status st = CV_OK;
    if (t->step == NULL || t->method == NULL)
        st = cv_error_set(err, CV_ERR_NOMEM, "out of memory building the HTTP request");
    cv_url_values values = {.instance = instance->id, .process = instance->process->name,
                            .step = step->id, .data = instance->data};
    if (st == CV_OK)
        st = cv_url_template_expand(&t->url, module->url, &values, err);
    if (st == CV_OK)
        st = find_host(t, err);
    if (st == CV_OK && sends_body(t->method))
        st = encode_body(t, instance, order, err);
    if (st == CV_OK)
        st = build_headers(t, instance, step, err);
    if (st != CV_OK) {
        transfer_free(t);
        return st;
    }
    *out = t;
    return CV_OK;
}

void cv_transport_http_send(cv_worker *worker, const cv_instance *instance,
                            const cv_dispatch_order *order)
{
    cv_http_client *client = worker->node->http;
    http_transfer *t = NULL;
    cv_error err;
    if (build_transfer(&t, instance, order, &err) != CV_OK) {
        CV_WARN("http step not sent instance=%s step=%s attempt=%d error=%s", instance->id,
                instance->process->steps[order->step].id, order->attempt,
                cv_log_quote(err.text));
        /* The same instance would build the same invalid request again; memory may come back. */
        cv_dispatch_local_result(worker, instance, order, NULL, err.text,
                                 err.status == CV_ERR_INVALID || err.status == CV_ERR_LIMIT);
        return;
    }

    pthread_mutex_lock(&client->lock);
    bool stopping = client->stopping;
    if (!stopping) {
        if (client->pending_tail != NULL)
            client->pending_tail->next = t;
        else
            client->pending = t;
        client->pending_tail = t;
    }
    pthread_mutex_unlock(&client->lock);
    if (stopping) {
        transfer_free(t);
        return;
    }
    curl_multi_wakeup(client->multi);
}

/* ---- running transfers (HTTP thread) ---- */

static bool grow_response(http_transfer *t, size_t wanted)
{
    if (wanted <= t->response_capacity)
        return true;
    size_t capacity = t->response_capacity ? t->response_capacity : 4096;
    while (capacity < wanted)
        capacity *= 2;
    char *grown = realloc(t->response, capacity);
    if (grown == NULL)
        return false;
    t->response = grown;
    t->response_capacity = capacity;
    return true;
}

/*
 * Keeps the body of a 2xx response whole, and the start of any other. A
 * body over max_response stops the transfer; the status still decides
 * what an error response means.
 */
static size_t on_body(char *data, size_t size, size_t count, void *context)
{
    http_transfer *t = context;
    size_t length = size * count;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != t->response_status) {
        /* A new response: what came before belonged to a redirect that was followed. */
        t->response_status = status;
        t->response_length = 0;
        t->received = 0;
    }
    t->received += length;
    if (t->received > t->max_response) {
        t->too_large = true;
        return CURL_WRITEFUNC_ERROR;
    }

    size_t keep = length;
    if (status / 100 != 2) {
        size_t room = t->response_length < ERROR_BODY_KEEP ? ERROR_BODY_KEEP - t->response_length
                                                           : 0;
        if (keep > room)
            keep = room;
    }
    if (keep == 0)
        return length;
    if (!grow_response(t, t->response_length + keep)) {
        t->out_of_memory = true;
        return CURL_WRITEFUNC_ERROR;
    }
    memcpy(t->response + t->response_length, data, keep);
    t->response_length += keep;
    return length;
}

static CURLcode set_method(CURL *easy, const http_transfer *t)
{
    CURLcode rc = CURLE_OK;
    if (strcmp(t->method, "GET") == 0)
        return curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    if (strcmp(t->method, "HEAD") == 0)
        return curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    if (strcmp(t->method, "DELETE") == 0)
        return curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "DELETE");

    rc = curl_easy_setopt(easy, CURLOPT_POST, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_length);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->body);
    if (rc == CURLE_OK && strcmp(t->method, "POST") != 0)
        rc = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, t->method);
    return rc;
}

static CURLcode set_limits(CURL *easy, const http_transfer *t)
{
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_response);
#if LIBCURL_VERSION_NUM >= 0x075500 /* CURLOPT_PROTOCOLS_STR came in 7.85.0 */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS,
                              (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, t->follow_redirects ? 1L : 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_POSTREDIR,
                              (long)(CURL_REDIR_POST_301 | CURL_REDIR_POST_302));
    return rc;
}

static CURLcode configure(CURL *easy, http_transfer *t)
{
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_URL, t->url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->curl_text);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_PROXY, "");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_USERAGENT, "conveyor");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    if (rc == CURLE_OK)
        rc = set_method(easy, t);
    if (rc == CURLE_OK)
        rc = set_limits(easy, t);
    return rc;
}

static void link_running(cv_http_client *client, http_transfer *t)
{
    t->prev = NULL;
    t->next = client->running;
    if (client->running != NULL)
        client->running->prev = t;
    client->running = t;
}

static void unlink_running(cv_http_client *client, http_transfer *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        client->running = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = NULL;
    t->next = NULL;
}

/* Keeps easy for a later transfer, or frees it when enough are kept. */
static void release_handle(cv_http_client *client, CURL *easy)
{
    if (client->idle_count < IDLE_HANDLES_MAX) {
        curl_easy_reset(easy);
        client->idle[client->idle_count++] = easy;
        return;
    }
    curl_easy_cleanup(easy);
}

/* Posts the result of t and frees it; t is no longer in any list. */
static void post_result(cv_http_client *client, http_transfer *t, json_t *output,
                        const char *error, bool permanent)
{
    if (error != NULL)
        CV_WARN("http step failed instance=%s step=%s attempt=%d host=%s permanent=%s error=%s",
                t->instance, t->step, t->attempt, t->host, permanent ? "true" : "false",
                cv_log_quote(error));
    cv_node_post_result(client->node, t->instance, t->step, t->attempt, t->token, output, error,
                        permanent);
    transfer_free(t);
}

static void start_transfer(cv_http_client *client, http_transfer *t)
{
    CURL *easy = client->idle_count > 0 ? client->idle[--client->idle_count] : curl_easy_init();
    CURLcode rc = easy != NULL ? configure(easy, t) : CURLE_OUT_OF_MEMORY;
    CURLMcode mrc = rc == CURLE_OK ? curl_multi_add_handle(client->multi, easy) : CURLM_OK;
    if (rc != CURLE_OK || mrc != CURLM_OK) {
        char error[CV_ERROR_TEXT_MAX];
        snprintf(error, sizeof error, "HTTP request to %s could not start: %s", t->host,
                 rc != CURLE_OK ? curl_easy_strerror(rc) : curl_multi_strerror(mrc));
        if (easy != NULL)
            release_handle(client, easy);
        post_result(client, t, NULL, error, false);
        return;
    }
    t->easy = easy;
    link_running(client, t);
}

static void finish_transfer(cv_http_client *client, http_transfer *t, CURLcode code)
{
    long status = 0;
    char *location = NULL;
    curl_off_t total_us = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_URL, &location);
    curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us);

    cv_http_outcome outcome;
    if (t->out_of_memory) {
        outcome = (cv_http_outcome){.failed = true};
        snprintf(outcome.error, sizeof outcome.error,
                 "out of memory reading the response from %s", t->host);
    } else {
        cv_http_response response = {
            .code = code,
            .curl_text = t->curl_text,
            .status = status,
            .body = t->response,
            .body_length = t->response_length,
            .body_too_large = t->too_large,
            .location = location,
            .host = t->host,
            .timeout_ms = t->timeout_ms,
            .max_response = t->max_response,
            .follow_redirects = t->follow_redirects,
        };
        cv_json_limits limits = {.max_bytes = client->max_body};
        cv_http_outcome_classify(&outcome, &response, &limits);
    }
    CV_DEBUG("http step answered instance=%s step=%s attempt=%d host=%s status=%ld ms=%lld",
             t->instance, t->step, t->attempt, t->host, status, (long long)(total_us / 1000));

    unlink_running(client, t);
    curl_multi_remove_handle(client->multi, t->easy);
    release_handle(client, t->easy);
    t->easy = NULL;
    if (code == CURLE_OPERATION_TIMEDOUT && t->timeout_ms > 0) {
        /*
         * The step's own timer, set to the same timeout, fails the attempt;
         * a second failure from here would only be recorded as ignored.
         */
        CV_INFO("http step timed out instance=%s step=%s attempt=%d host=%s error=%s",
                t->instance, t->step, t->attempt, t->host, cv_log_quote(outcome.error));
        json_decref(outcome.output);
        transfer_free(t);
        return;
    }
    post_result(client, t, outcome.output, outcome.failed ? outcome.error : NULL,
                outcome.permanent);
}

static void finish_done_transfers(cv_http_client *client)
{
    for (;;) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(client->multi, &left);
        if (msg == NULL)
            return;
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *private = NULL;
        CURLcode code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private);
        finish_transfer(client, (http_transfer *)private, code);
    }
}

static void *http_thread(void *context)
{
    cv_http_client *client = context;
    for (;;) {
        pthread_mutex_lock(&client->lock);
        bool stopping = client->stopping;
        http_transfer *pending = stopping ? NULL : client->pending;
        if (!stopping) {
            client->pending = NULL;
            client->pending_tail = NULL;
        }
        pthread_mutex_unlock(&client->lock);
        if (stopping)
            return NULL;

        while (pending != NULL) {
            http_transfer *next = pending->next;
            pending->next = NULL;
            start_transfer(client, pending);
            pending = next;
        }
        int running = 0;
        CURLMcode rc = curl_multi_perform(client->multi, &running);
        finish_done_transfers(client);
        if (rc == CURLM_OK)
            rc = curl_multi_poll(client->multi, NULL, 0, POLL_MS, NULL);
        if (rc != CURLM_OK) {
            /* Not expected outside memory exhaustion; pause rather than spin. */
            CV_ERROR("http transport loop failed error=%s", cv_log_quote(curl_multi_strerror(rc)));
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
}

/* ---- life cycle ---- */

cv_status cv_http_client_create(cv_http_client **out, cv_node *node, cv_error *err)
{
    pthread_once(&curl_once, init_curl);
    if (curl_init_result != CURLE_OK)
        return cv_error_set(err, CV_ERR_UNSUPPORTED, "libcurl failed to initialise: %s",
                            curl_easy_strerror(curl_init_result));

    cv_http_client *client = calloc(1, sizeof *client);
    if (client == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the HTTP client");
    client->node = node;
    client->max_body = node->config.max_body;
    pthread_mutex_init(&client->lock, NULL);
    client->multi = curl_multi_init();
    if (client->multi == NULL) {
        cv_http_client_destroy(client);
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory creating the HTTP client");
    }
    curl_multi_setopt(client->multi, CURLMOPT_MAX_HOST_CONNECTIONS, MAX_HOST_CONNECTIONS);
    curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, MAX_IDLE_CONNECTIONS);

    int rc = pthread_create(&client->thread, NULL, http_thread, client);
    if (rc != 0) {
        cv_http_client_destroy(client);
        return cv_error_set(err, CV_ERR_NOMEM, "cannot start the HTTP thread: %s", strerror(rc));
    }
    client->started = true;
    *out = client;
    return CV_OK;
}

static void free_list(http_transfer *t)
{
    while (t != NULL) {
        http_transfer *next = t->next;
        transfer_free(t);
        t = next;
    }
}

void cv_http_client_destroy(cv_http_client *client)
{
    if (client == NULL)
        return;
    if (client->started) {
        pthread_mutex_lock(&client->lock);
        client->stopping = true;
        pthread_mutex_unlock(&client->lock);
        curl_multi_wakeup(client->multi);
        pthread_join(client->thread, NULL);
    }

    size_t dropped = 0;
    for (http_transfer *t = client->running; t != NULL; t = t->next) {
        curl_multi_remove_handle(client->multi, t->easy);
        curl_easy_cleanup(t->easy);
        dropped++;
    }
    free_list(client->running);
    for (http_transfer *t = client->pending; t != NULL; t = t->next)
        dropped++;
    free_list(client->pending);
    if (dropped > 0)
        CV_INFO("http transfers dropped at stop count=%zu", dropped);

    for (size_t i = 0; i < client->idle_count; i++)
        curl_easy_cleanup(client->idle[i]);
    curl_multi_cleanup(client->multi);
    pthread_mutex_destroy(&client->lock);
    free(client);
}
