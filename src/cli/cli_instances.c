/*
 * conveyor instances list | show | history: operator views of the
 * instances that nodes run with --state kv keep in a JetStream key-value
 * bucket, and of the lifecycle events kept in the stream ORCH_EVENTS. Both
 * names follow --prefix the way a node derives them: "orch" gives the
 * bucket orch_instances and the stream ORCH_EVENTS.
 *
 * list reads every current entry of the bucket through one watcher (an
 * ordered consumer), keeps the newest --limit matches and prints them as
 * an aligned table. show prints one stored document. history reads the
 * events of one instance with an ordered consumer until the server reports
 * nothing pending. Every command stops at --timeout.
 */
#include <nats/nats.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "core/natsx.h"
#include "core/clock.h"
#include "core/jsonx.h"
#include "core/text.h"
#include "engine/instance.h"
#include "node/streams.h"

/* Width of the longest event kind, "instance.cancelled", so history's columns line up. */
#define KIND_WIDTH 18

/* Strings quoted in history's detail column are cut to this many bytes. */
#define DETAIL_QUOTE_MAX 120

#define LIMIT_MAX 100000

static const char usage_top[] =
    "conveyor instances list|show|history ...\n\n"
    "  list     the newest instances in the bucket, with their status and steps in flight\n"
    "  show     the stored state of one instance as JSON\n"
    "  history  the lifecycle events of one instance from the stream ORCH_EVENTS\n\n"
    "Run 'conveyor instances COMMAND --help' for a command's options.";
static const char usage_list[] =
    "conveyor instances list [--process P] [--status running|completed|failed|cancelled] "
    "[--limit N] [--bucket NAME] [--prefix PREFIX] [--nats URL] [--timeout SECONDS]";
static const char usage_show[] =
    "conveyor instances show ID [--bucket NAME] [--prefix PREFIX] [--nats URL] "
    "[--timeout SECONDS]";
static const char usage_history[] =
    "conveyor instances history ID [--process P] [--json] [--prefix PREFIX] [--nats URL] "
    "[--timeout SECONDS]";

#define OPTION_NATS \
    {"nats", CV_OPTION_VALUE, "URL", "NATS server URL", "nats://127.0.0.1:4222", NULL, false}
#define OPTION_BUCKET \
    {"bucket", CV_OPTION_VALUE, "NAME", \
     "key-value bucket the nodes store instances in (default: PREFIX_instances)", NULL, NULL, \
     false}
#define OPTION_PREFIX \
    {"prefix", CV_OPTION_VALUE, "PREFIX", "first token of every subject the nodes use", "orch", \
     NULL, false}
#define OPTION_TIMEOUT \
    {"timeout", CV_OPTION_VALUE, "SECONDS", "give up after this many seconds", "30", NULL, false}
#define OPTION_END {NULL, CV_OPTION_VALUE, NULL, NULL, NULL, NULL, false}

/* A connection and JetStream context for one command; `command` names it in messages. */
typedef struct session {
    const char *command;
    char bucket[CV_STREAM_NAME_MAX];
    char stream[CV_STREAM_NAME_MAX]; /* the events stream */
    const char *url;
    int64_t timeout_ms;
    int64_t deadline_ms; /* monotonic */
    natsConnection *nc;
    jsCtx *js;
} session;

/* ---- shared helpers ---- */


/* A JetStream request without a responder means the server runs without JetStream. */
static const char *jetstream_hint(natsStatus s)
{
    return s == NATS_NO_RESPONDERS ? " (is JetStream enabled on the server, nats-server -js?)" : "";
}

static int64_t remaining_ms(const session *ses)
{
    int64_t left = ses->deadline_ms - cv_clock_mono_ms();
    return left > 0 ? left : 0;
}

/* Parses --timeout; prints why and returns false when it is not a positive whole number. */
static bool parse_timeout(session *ses, const char *text)
{
    char *end = NULL;
    long long seconds = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || seconds < 1 || seconds > 86400) {
        fprintf(stderr, "conveyor %s: --timeout takes 1 to 86400 whole seconds, got '%s'\n",
                ses->command, text);
        return false;
    }
    ses->timeout_ms = seconds * 1000;
    return true;
}

/*
 * Derives the bucket and events stream names from --prefix, unless bucket
 * (--bucket, or NULL) names the bucket. Prints why and returns false for a
 * bad name.
 */
static bool resolve_names(session *ses, cv_option *options, const char *bucket)
{
    const char *prefix = cv_options_get(options, "prefix")->value;
    if (!cv_text_is_token(prefix) || strlen(prefix) > CV_STREAM_NAME_MAX / 2) {
        fprintf(stderr, "conveyor %s: --prefix must be a subject token of [A-Za-z0-9_-], got "
                "'%s'\n", ses->command, prefix);
        return false;
    }
    cv_streams_name(ses->stream, prefix, "EVENTS");
    cv_streams_bucket_name(ses->bucket, prefix);
    if (bucket != NULL && strlen(bucket) >= sizeof ses->bucket) {
        fprintf(stderr, "conveyor %s: --bucket must be shorter than %zu characters\n",
                ses->command, sizeof ses->bucket);
        return false;
    }
    if (bucket != NULL)
        snprintf(ses->bucket, sizeof ses->bucket, "%s", bucket);
    return true;
}

static int session_open(session *ses, const char *url)
{
    ses->url = url;
    ses->deadline_ms = cv_clock_mono_ms() + ses->timeout_ms;
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = cv_nats_set_urls(opts, url);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, ses->timeout_ms);
    if (s == NATS_OK)
        s = natsConnection_Connect(&ses->nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor %s: cannot connect to NATS at %s: %s\n", ses->command, url,
                cv_nats_failure_text(s));
        return CV_EXIT_FAILED;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = ses->timeout_ms;
    s = natsConnection_JetStream(&ses->js, ses->nc, &jo);
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor %s: cannot use JetStream at %s: %s\n", ses->command, url,
                cv_nats_failure_text(s));
        return CV_EXIT_FAILED;
    }
    return CV_EXIT_OK;
}

static void session_close(session *ses)
{
    jsCtx_Destroy(ses->js);
    natsConnection_Destroy(ses->nc);
}

/* Prints why the instance bucket could not be opened; returns the exit code for s. */
static int bucket_failure(session *ses, natsStatus s)
{
    const char *bucket = ses->bucket;
    if (s == NATS_NOT_FOUND) {
        fprintf(stderr,
                "conveyor %s: no key-value bucket %s on %s; nodes create it when they run "
                "with --state kv (see --bucket)\n",
                ses->command, bucket, ses->url);
        return CV_EXIT_FAILED;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor %s: cannot open key-value bucket %s on %s: %s%s\n",
                ses->command, bucket, ses->url, cv_nats_failure_text(s), jetstream_hint(s));
        return s == NATS_TIMEOUT ? CV_EXIT_TIMEOUT : CV_EXIT_FAILED;
    }
    return CV_EXIT_OK;
}

/* Binds to the instance bucket; prints why and returns an exit code when it cannot. */
static int open_bucket(session *ses, kvStore **out)
{
    return bucket_failure(ses, js_KeyValue(out, ses->js, ses->bucket));
}

static bool check_instance_id(const char *command, const char *id)
{
    if (id != NULL && cv_text_is_token(id) && strlen(id) <= 255)
        return true;
    fprintf(stderr, "conveyor %s: expected an instance id of [A-Za-z0-9_-]\n", command);
    return false;
}

static bool check_process_name(const char *command, const cv_option *option)
{
    if (option->value == NULL || cv_text_is_token(option->value))
        return true;
    fprintf(stderr, "conveyor %s: --process must be a process name of [A-Za-z0-9_-], got '%s'\n",
            command, option->value);
    return false;
}

static json_t *parse_stored(const void *data, int len, cv_error *err)
{
    cv_json_limits limits = {.max_bytes = 0, .max_depth = CV_JSON_MAX_DEPTH};
    json_t *doc = NULL;
    if (cv_json_parse(&doc, data, (size_t)len, &limits, err) != CV_OK)
        return NULL;
    if (!json_is_object(doc)) {
        cv_error_set(err, CV_ERR_INVALID, "the stored value is %s, not an object",
                     cv_json_type_name(doc));
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Parses argv for one subcommand; argv[0] is its name. Returns -1 to go on, else an exit code. */
static int parse_command(int argc, char **argv, const char *command, cv_option *options,
                         const char **positional, int max_positional, int *count,
                         const char *usage)
{
    char **args = malloc((size_t)argc * sizeof *args);
    if (args == NULL) {
        fprintf(stderr, "conveyor %s: out of memory\n", command);
        return CV_EXIT_FAILED;
    }
    memcpy(args, argv, (size_t)argc * sizeof *args);
    args[0] = (char *)command; /* names "instances list" in cv_options_parse's messages */
    bool help = false;
    bool parsed =
        cv_options_parse(argc, args, options, positional, max_positional, count, &help, usage);
    free(args);
    if (!parsed)
        return help ? CV_EXIT_OK : CV_EXIT_USAGE;
    return -1;
}

/* ---- list ---- */

typedef struct row {
    char *id;
    char *process;
    char *status;
    int64_t updated_ms;
    char *in_flight; /* "step#attempt,..." or "-" */
} row;

typedef struct table {
    row *rows; /* newest first, at most limit */
    size_t count;
    size_t limit;
    size_t matched;
    size_t read;
} table;

static void row_free(row *r)
{
    free(r->id);
    free(r->process);
    free(r->status);
    free(r->in_flight);
}

/* Lists the active attempts as "step#attempt,..." in a new string. */
static char *describe_in_flight(const json_t *active)
{
    size_t size = 2;
    size_t i;
    json_t *a;
    json_array_foreach(active, i, a)
    {
        const char *step = json_string_value(json_object_get(a, "step"));
        size += strlen(step ? step : "?") + 24;
    }
    char *text = malloc(size);
    if (text == NULL)
        return NULL;
    size_t used = 0;
    json_array_foreach(active, i, a) {
        const char *step = json_string_value(json_object_get(a, "step"));
        used += (size_t)snprintf(text + used, size - used, "%s%s#%lld", i > 0 ? "," : "",
                                 step ? step : "?",
                                 (long long)json_integer_value(json_object_get(a, "attempt")));
    }
    if (used == 0)
        snprintf(text, size, "-");
    return text;
}

/* True when a ranks before b: newer first, then by id for a stable order. */
static bool ranks_before(const row *a, const row *b)
{
    if (a->updated_ms != b->updated_ms)
        return a->updated_ms > b->updated_ms;
    return strcmp(a->id, b->id) < 0;
}

/* Inserts r (taken) into the table if it ranks among the newest limit rows. */
static void table_offer(table *t, row *r)
{
    t->matched++;
    if (t->count == t->limit && !ranks_before(r, &t->rows[t->count - 1])) {
        row_free(r);
        return;
    }
    if (t->count == t->limit)
        row_free(&t->rows[--t->count]);
    size_t at = t->count;
    while (at > 0 && ranks_before(r, &t->rows[at - 1]))
        at--;
    memmove(&t->rows[at + 1], &t->rows[at], (t->count - at) * sizeof *t->rows);
    t->rows[at] = *r;
    t->count++;
}

/* Adds the entry to the table when it matches the filters; warns about unreadable values. */
static void consider_entry(table *t, kvEntry *e, const char *process, const char *status,
                           const char *command)
{
    cv_error err = {0};
    json_t *doc = parse_stored(kvEntry_Value(e), kvEntry_ValueLen(e), &err);
    if (doc == NULL) {
        fprintf(stderr, "conveyor %s: skipping key %s, which is not a stored instance: %s\n",
                command, kvEntry_Key(e), err.text);
        return;
    }
    const char *p = json_string_value(json_object_get(doc, "process"));
    const char *s = json_string_value(json_object_get(doc, "status"));
    if ((process == NULL || (p != NULL && strcmp(p, process) == 0)) &&
        (status == NULL || (s != NULL && strcmp(s, status) == 0))) {
        row r = {
            .id = strdup(kvEntry_Key(e)),
            .process = strdup(p ? p : "?"),
            .status = strdup(s ? s : "?"),
            .updated_ms = json_integer_value(json_object_get(doc, "updated_ms")),
            .in_flight = describe_in_flight(json_object_get(doc, "active")),
        };
        if (r.id == NULL || r.process == NULL || r.status == NULL || r.in_flight == NULL)
            row_free(&r); /* out of memory: the row is dropped, the listing goes on */
        else
            table_offer(t, &r);
    }
    json_decref(doc);
}

static int wider(int width, const char *value)
{
    int len = (int)strlen(value);
    return len > width ? len : width;
}

static void print_table(const table *t)
{
    int id_w = (int)strlen("ID");
    int process_w = (int)strlen("PROCESS");
    int status_w = (int)strlen("STATUS");
    for (size_t i = 0; i < t->count; i++) {
        id_w = wider(id_w, t->rows[i].id);
        process_w = wider(process_w, t->rows[i].process);
        status_w = wider(status_w, t->rows[i].status);
    }
    printf("%-*s  %-*s  %-*s  %-24s  %s\n", id_w, "ID", process_w, "PROCESS", status_w, "STATUS",
           "UPDATED", "IN FLIGHT");
    for (size_t i = 0; i < t->count; i++) {
        const row *r = &t->rows[i];
        char updated[40];
        cv_clock_format_rfc3339(r->updated_ms, updated, sizeof updated);
        printf("%-*s  %-*s  %-*s  %-24s  %s\n", id_w, r->id, process_w, r->process, status_w,
               r->status, updated, r->in_flight);
    }
}

/*
 * With one server of a three-server cluster killed, about half of the
 * requests to create the watcher's consumer went unanswered, while the
 * next request usually worked. With the bucket's leader killed, opening
 * the bucket waited too (both seen by hand with nats-server 2.9). So
 * opening and watching get their own JetStream context with a short wait,
 * and a new attempt when the wait runs out.
 */
#define WATCH_START_MS 2000

typedef struct watch {
    jsCtx *js;
    kvStore *kv;
    kvWatcher *watcher;
} watch;

static void watch_close(watch *w)
{
    kvWatcher_Destroy(w->watcher);
    kvStore_Destroy(w->kv);
    jsCtx_Destroy(w->js);
    memset(w, 0, sizeof *w);
}

static natsStatus watch_open(session *ses, watch *w, int64_t wait_ms)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = wait_ms;
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    wo.IgnoreDeletes = true;
    natsStatus s = natsConnection_JetStream(&w->js, ses->nc, &jo);
    if (s == NATS_OK)
        s = js_KeyValue(&w->kv, w->js, ses->bucket);
    if (s == NATS_OK)
        s = kvStore_WatchAll(&w->watcher, w->kv, &wo);
    return s;
}

/* Starts a watcher, trying again while attempts time out and time is left. */
static natsStatus watch_start(session *ses, watch *w)
{
    natsStatus s = NATS_TIMEOUT;
    int64_t left = remaining_ms(ses);
    while (s == NATS_TIMEOUT && left > 0) {
        watch_close(w);
        s = watch_open(ses, w, left < WATCH_START_MS ? left : WATCH_START_MS);
        left = remaining_ms(ses);
    }
    return s;
}

/* Reads every current entry of the bucket into t; returns an exit code. */
static int read_bucket(session *ses, table *t, const char *process, const char *status)
{
    watch w = {0};
    natsStatus s = watch_start(ses, &w);
    if (w.kv == NULL) {
        watch_close(&w);
        return bucket_failure(ses, s);
    }
    while (s == NATS_OK) {
        kvEntry *e = NULL;
        int64_t left = remaining_ms(ses);
        s = left > 0 ? kvWatcher_Next(&e, w.watcher, left) : NATS_TIMEOUT;
        if (s != NATS_OK || e == NULL)
            break; /* a NULL entry marks the end of the current values */
        t->read++;
        consider_entry(t, e, process, status, ses->command);
        kvEntry_Destroy(e);
    }
    watch_close(&w);
    if (s == NATS_TIMEOUT) {
        fprintf(stderr, "conveyor %s: timed out after %lld s with %zu instances read; raise "
                "--timeout\n", ses->command, (long long)(ses->timeout_ms / 1000), t->read);
        return CV_EXIT_TIMEOUT;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor %s: reading the bucket failed: %s\n", ses->command,
                cv_nats_failure_text(s));
        return CV_EXIT_FAILED;
    }
    return CV_EXIT_OK;
}

static int run_list(session *ses, cv_option *options)
{
    const char *process = cv_options_get(options, "process")->value;
    const char *status = cv_options_get(options, "status")->value;
    const char *limit_text = cv_options_get(options, "limit")->value;
    char *end = NULL;
    long long limit = strtoll(limit_text, &end, 10);
    if (end == limit_text || *end != '\0' || limit < 1 || limit > LIMIT_MAX) {
        fprintf(stderr, "conveyor %s: --limit takes 1 to %d, got '%s'\n", ses->command,
                LIMIT_MAX, limit_text);
        return CV_EXIT_USAGE;
    }
    table t = {.limit = (size_t)limit};
    t.rows = calloc(t.limit, sizeof *t.rows);
    if (t.rows == NULL) {
        fprintf(stderr, "conveyor %s: out of memory\n", ses->command);
        return CV_EXIT_FAILED;
    }
    int code = session_open(ses, cv_options_get(options, "nats")->value);
    if (code == CV_EXIT_OK)
        code = read_bucket(ses, &t, process, status);
    if (code == CV_EXIT_OK && t.count == 0)
        fprintf(stderr, "conveyor %s: no instances match in bucket %s (%zu read)\n", ses->command,
                ses->bucket, t.read);
    if (code == CV_EXIT_OK && t.count > 0)
        print_table(&t);
    if (code == CV_EXIT_OK && t.matched > t.count)
        fprintf(stderr, "conveyor %s: showing the newest %zu of %zu matching instances; raise "
                "--limit for more\n", ses->command, t.count, t.matched);
    for (size_t i = 0; i < t.count; i++)
        row_free(&t.rows[i]);
    free(t.rows);
    session_close(ses);
    return code;
}

static int command_list(int argc, char **argv)
{
    cv_option options[] = {
        OPTION_NATS,
        OPTION_BUCKET,
        OPTION_PREFIX,
        {"process", CV_OPTION_VALUE, "P", "only instances of this process", NULL, NULL, false},
        {"status", CV_OPTION_VALUE, "STATUS",
         "only instances with this status: running, completed, failed or cancelled", NULL, NULL,
         false},
        {"limit", CV_OPTION_VALUE, "N", "print at most N instances, the most recently updated",
         "100", NULL, false},
        OPTION_TIMEOUT,
        OPTION_END,
    };
    session ses = {.command = "instances list"};
    int count = 0;
    int code = parse_command(argc, argv, ses.command, options, NULL, 0, &count, usage_list);
    if (code >= 0)
        return code;
    const char *status = cv_options_get(options, "status")->value;
    cv_instance_status parsed;
    if (status != NULL && !cv_instance_status_parse(status, &parsed)) {
        fprintf(stderr, "conveyor %s: --status takes running, completed, failed or cancelled, "
                "got '%s'\n", ses.command, status);
        return CV_EXIT_USAGE;
    }
    if (!check_process_name(ses.command, cv_options_get(options, "process")) ||
        !parse_timeout(&ses, cv_options_get(options, "timeout")->value) ||
        !resolve_names(&ses, options, cv_options_get(options, "bucket")->value))
        return CV_EXIT_USAGE;
    return run_list(&ses, options);
}

/* ---- show ---- */

/*
 * Reads the last entry of id through the bucket's stream leader, as nodes
 * do: a direct get may be served by any replica, and on a cluster one
 * replica may lag behind or, after a restart, differ (see README).
 */
static natsStatus read_entry(session *ses, const char *id, natsMsg **out)
{
    char stream[CV_STREAM_NAME_MAX + 8], subject[CV_STREAM_NAME_MAX + 300];
    snprintf(stream, sizeof stream, "KV_%s", ses->bucket);
    snprintf(subject, sizeof subject, "$KV.%s.%s", ses->bucket, id);
    natsStatus s = js_GetLastMsg(out, ses->js, stream, subject, NULL, NULL);
    const char *operation = NULL;
    if (s == NATS_OK && natsMsgHeader_Get(*out, "KV-Operation", &operation) == NATS_OK) {
        natsMsg_Destroy(*out);
        *out = NULL;
        s = NATS_NOT_FOUND; /* deleted or purged */
    }
    return s;
}

static int print_stored(session *ses, const char *id)
{
    natsMsg *e = NULL;
    natsStatus s = read_entry(ses, id, &e);
    if (s == NATS_NOT_FOUND) {
        fprintf(stderr, "conveyor %s: no instance %s in bucket %s\n", ses->command, id,
                ses->bucket);
        return CV_EXIT_FAILED;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor %s: reading instance %s failed: %s\n", ses->command, id,
                cv_nats_failure_text(s));
        return s == NATS_TIMEOUT ? CV_EXIT_TIMEOUT : CV_EXIT_FAILED;
    }
    cv_error err = {0};
    json_t *doc = parse_stored(natsMsg_GetData(e), natsMsg_GetDataLength(e), &err);
    int code = CV_EXIT_FAILED;
    if (doc == NULL) {
        fprintf(stderr, "conveyor %s: key %s does not hold a stored instance: %s\n", ses->command,
                id, err.text);
    } else {
        json_object_set_new(doc, "revision", json_integer((json_int_t)natsMsg_GetSequence(e)));
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text != NULL) {
            printf("%s\n", text);
            code = CV_EXIT_OK;
        }
        free(text);
    }
    json_decref(doc);
    natsMsg_Destroy(e);
    return code;
}

static int command_show(int argc, char **argv)
{
    cv_option options[] = {OPTION_NATS, OPTION_BUCKET, OPTION_PREFIX, OPTION_TIMEOUT, OPTION_END};
    session ses = {.command = "instances show"};
    const char *positional[1] = {NULL};
    int count = 0;
    int code = parse_command(argc, argv, ses.command, options, positional, 1, &count, usage_show);
    if (code >= 0)
        return code;
    if (!check_instance_id(ses.command, positional[0]) ||
        !parse_timeout(&ses, cv_options_get(options, "timeout")->value) ||
        !resolve_names(&ses, options, cv_options_get(options, "bucket")->value))
        return CV_EXIT_USAGE;

    kvStore *kv = NULL;
    code = session_open(&ses, cv_options_get(options, "nats")->value);
    if (code == CV_EXIT_OK)
        code = open_bucket(&ses, &kv);
    if (code == CV_EXIT_OK)
        code = print_stored(&ses, positional[0]);
    kvStore_Destroy(kv);
    session_close(&ses);
    return code;
}

/* ---- history ---- */

/* A bounded text buffer; appends that do not fit are cut off. */
typedef struct text_buffer {
    char text[1024];
    size_t used;
} text_buffer;

static void append(text_buffer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(text_buffer *b, const char *fmt, ...)
{
    if (b->used + 1 >= sizeof b->text)
        return;
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(b->text + b->used, sizeof b->text - b->used, fmt, args);
    va_end(args);
    if (n > 0)
        b->used += (size_t)n < sizeof b->text - b->used ? (size_t)n : sizeof b->text - b->used - 1;
}

/* Appends " name=VALUE" with value JSON-quoted and cut to DETAIL_QUOTE_MAX bytes. */
static void append_quoted(text_buffer *b, const char *name, const char *value)
{
    size_t len = strlen(value);
    bool cut = len > DETAIL_QUOTE_MAX;
    json_t *s = json_stringn(value, cut ? DETAIL_QUOTE_MAX : len);
    if (s == NULL) /* cut inside a UTF-8 sequence, or out of memory */
        s = json_string("(unprintable)");
    char *quoted = json_dumps(s, JSON_ENCODE_ANY);
    append(b, " %s=%s%s", name, quoted ? quoted : "\"\"", cut ? "..." : "");
    free(quoted);
    json_decref(s);
}

/* Appends " name=a,b,c" for an array of strings, or "-" when it is empty. */
static void append_list(text_buffer *b, const char *name, const json_t *list)
{
    append(b, " %s=", name);
    if (json_array_size(list) == 0)
        append(b, "-");
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        const char *text = json_string_value(item);
        append(b, "%s%s", i > 0 ? "," : "", text != NULL ? text : "?");
    }
}

/* The short detail column: what the event's kind makes worth seeing first. */
static void describe_event(text_buffer *b, const char *kind, const json_t *body)
{
    const char *subsystem = json_string_value(json_object_get(body, "subsystem"));
    const char *transport = json_string_value(json_object_get(body, "transport"));
    const char *error = json_string_value(json_object_get(body, "error"));
    const char *reason = json_string_value(json_object_get(body, "reason"));
    const char *node = json_string_value(json_object_get(body, "node"));
    const json_t *decision = json_object_get(body, "decision");

    if (subsystem != NULL)
        append(b, " subsystem=%s", subsystem);
    if (transport != NULL)
        append(b, " transport=%s", transport);
    if (error != NULL)
        append_quoted(b, "error", error);
    if (json_is_true(json_object_get(body, "permanent")))
        append(b, " permanent");
    if (reason != NULL)
        append_quoted(b, "reason", reason);
    if (json_is_object(decision)) {
        const char *by = json_string_value(json_object_get(decision, "by"));
        const char *path = json_string_value(json_object_get(decision, "path"));
        append_list(b, "next", json_object_get(decision, "next"));
        if (by != NULL)
            append(b, " by=%s", by);
        if (path != NULL && path[0] != '\0' && (by == NULL || strcmp(path, by) != 0))
            append(b, " path=%s", path);
    }
    const json_t *delay = json_object_get(body, "delay_ms");
    if (json_is_integer(delay))
        append(b, " next_attempt=%lld delay_ms=%lld",
               (long long)json_integer_value(json_object_get(body, "next_attempt")),
               (long long)json_integer_value(delay));
    const char *fallback = json_string_value(json_object_get(body, "fallback"));
    if (fallback != NULL)
        append_quoted(b, "fallback", fallback);
    if (strcmp(kind, "instance.completed") == 0)
        append_list(b, "steps", json_object_get(body, "steps"));
    if (node != NULL)
        append(b, " node=%s", node);
}

typedef struct event_line {
    char at[40];
    char *kind;
    char *step;
    char attempt[24];
    char *detail;
} event_line;

typedef struct event_lines {
    event_line *lines;
    size_t count;
    size_t capacity;
} event_lines;

static void event_lines_free(event_lines *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->lines[i].kind);
        free(list->lines[i].step);
        free(list->lines[i].detail);
    }
    free(list->lines);
}

/* The kind is what follows "<prefix>.event.<process>.<instance>." in subject. */
static const char *kind_of(const char *subject, const char *prefix)
{
    const char *p = subject + strlen(prefix) + strlen(".event.");
    if (strlen(subject) <= strlen(prefix) + strlen(".event."))
        return "?";
    for (int dots = 0; dots < 2; dots++) {
        p = strchr(p, '.');
        if (p == NULL)
            return "?";
        p++;
    }
    return p;
}

/* Formats msg as one history line and adds it to list; false when out of memory. */
static bool add_event_line(event_lines *list, natsMsg *msg, const char *prefix,
                           int64_t stream_time_ns)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 64;
        event_line *grown = realloc(list->lines, capacity * sizeof *grown);
        if (grown == NULL)
            return false;
        list->lines = grown;
        list->capacity = capacity;
    }
    json_t *body = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    const char *kind = kind_of(natsMsg_GetSubject(msg), prefix);
    event_line *line = &list->lines[list->count];
    memset(line, 0, sizeof *line);

    const char *at = json_string_value(json_object_get(body, "at"));
    if (at != NULL)
        snprintf(line->at, sizeof line->at, "%s", at);
    else
        cv_clock_format_rfc3339(stream_time_ns / 1000000, line->at, sizeof line->at);
    const char *step = json_string_value(json_object_get(body, "step"));
    json_t *attempt = json_object_get(body, "attempt");
    if (json_is_integer(attempt))
        snprintf(line->attempt, sizeof line->attempt, "%lld",
                 (long long)json_integer_value(attempt));
    else
        snprintf(line->attempt, sizeof line->attempt, "-");

    text_buffer detail = {.used = 0};
    detail.text[0] = '\0';
    if (body == NULL)
        append(&detail, " (the body is not JSON)");
    else
        describe_event(&detail, kind, body);
    line->kind = strdup(kind);
    line->step = strdup(step ? step : "-");
    line->detail = strdup(detail.used > 0 ? detail.text + 1 : "");
    json_decref(body);
    if (line->kind == NULL || line->step == NULL || line->detail == NULL) {
        free(line->kind);
        free(line->step);
        free(line->detail);
        return false;
    }
    list->count++;
    return true;
}

static void print_event_lines(const event_lines *list)
{
    int step_w = 4;
    int attempt_w = 1;
    for (size_t i = 0; i < list->count; i++) {
        int len = (int)strlen(list->lines[i].step);
        if (len > step_w)
            step_w = len;
        len = (int)strlen(list->lines[i].attempt);
        if (len > attempt_w)
            attempt_w = len;
    }
    for (size_t i = 0; i < list->count; i++) {
        const event_line *l = &list->lines[i];
        printf("%-24s  %-*s  %-*s  %*s%s%s\n", l->at, KIND_WIDTH, l->kind, step_w, l->step,
               attempt_w, l->attempt, l->detail[0] != '\0' ? "  " : "", l->detail);
    }
}

/*
 * Counts the stored events on filter. Prints why and returns an exit code
 * when the stream is missing or has none.
 */
static int count_events(session *ses, const char *filter, const char *id, uint64_t *out)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Stream.Info.SubjectsFilter = filter;
    jsStreamInfo *info = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetStreamInfo(&info, ses->js, ses->stream, &jo, &code);
    if (s == NATS_NOT_FOUND) {
        fprintf(stderr, "conveyor %s: no stream %s on %s to read events from\n",
                ses->command, ses->stream, ses->url);
        return CV_EXIT_FAILED;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor %s: cannot read stream %s on %s: %s%s\n", ses->command,
                ses->stream, ses->url, cv_nats_failure_text(s), jetstream_hint(s));
        return s == NATS_TIMEOUT ? CV_EXIT_TIMEOUT : CV_EXIT_FAILED;
    }
    uint64_t total = 0;
    const jsStreamStateSubjects *subjects = info->State.Subjects;
    for (int i = 0; subjects != NULL && i < subjects->Count; i++)
        total += subjects->List[i].Msgs;
    jsStreamInfo_Destroy(info);
    if (total == 0) {
        fprintf(stderr, "conveyor %s: no events of instance %s in stream %s (subjects %s)\n",
                ses->command, id, ses->stream, filter);
        return CV_EXIT_FAILED;
    }
    *out = total;
    return CV_EXIT_OK;
}

/*
 * Prints an event's body on one line with its kind added, since the kind
 * travels only in the subject; a body that is not a JSON object is printed as it came.
 */
static void print_raw_event(natsMsg *msg, const char *prefix)
{
    json_t *body = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    const char *kind = kind_of(natsMsg_GetSubject(msg), prefix);
    char *text = NULL;
    if (json_is_object(body) && kind != NULL) {
        json_object_set_new(body, "kind", json_string(kind));
        text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    if (text != NULL)
        printf("%s\n", text);
    else
        printf("%.*s\n", natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
    free(text);
    json_decref(body);
}

/* Reads the events on filter in stream order until none is pending; returns an exit code. */
static int read_events(session *ses, const char *filter, const char *prefix, bool raw,
                       uint64_t expected, event_lines *lines)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = ses->stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    natsSubscription *sub = NULL;
    natsStatus s = js_SubscribeSync(&sub, ses->js, filter, NULL, &so, NULL);
    uint64_t read = 0;
    bool done = false;
    while (s == NATS_OK && !done) {
        natsMsg *msg = NULL;
        int64_t left = remaining_ms(ses);
        s = left > 0 ? natsSubscription_NextMsg(&msg, sub, left) : NATS_TIMEOUT;
        if (s != NATS_OK)
            break;
        jsMsgMetaData *meta = NULL;
        s = natsMsg_GetMetaData(&meta, msg);
        if (s == NATS_OK) {
            read++;
            done = meta->NumPending == 0;
            if (raw)
                print_raw_event(msg, prefix);
            else if (!add_event_line(lines, msg, prefix, meta->Timestamp))
                s = NATS_NO_MEMORY;
        }
        jsMsgMetaData_Destroy(meta);
        natsMsg_Destroy(msg);
    }
    natsSubscription_Destroy(sub);
    if (s == NATS_TIMEOUT) {
        fprintf(stderr, "conveyor %s: timed out after %lld s with %llu of %llu events read; "
                "raise --timeout\n", ses->command, (long long)(ses->timeout_ms / 1000),
                (unsigned long long)read, (unsigned long long)expected);
        return CV_EXIT_TIMEOUT;
    }
    if (s != NATS_OK) {
        fprintf(stderr, "conveyor %s: reading stream %s failed: %s\n", ses->command,
                ses->stream, cv_nats_failure_text(s));
        return CV_EXIT_FAILED;
    }
    return CV_EXIT_OK;
}

static int run_history(session *ses, cv_option *options, const char *id)
{
    const char *prefix = cv_options_get(options, "prefix")->value;
    const char *process = cv_options_get(options, "process")->value;
    bool raw = cv_options_get(options, "json")->given;
    char filter[600];
    snprintf(filter, sizeof filter, "%s.event.%s.%s.>", prefix, process ? process : "*", id);

    event_lines lines = {0};
    uint64_t expected = 0;
    int code = session_open(ses, cv_options_get(options, "nats")->value);
    if (code == CV_EXIT_OK)
        code = count_events(ses, filter, id, &expected);
    if (code == CV_EXIT_OK)
        code = read_events(ses, filter, prefix, raw, expected, &lines);
    /* After a timeout the lines read so far are still worth seeing. */
    print_event_lines(&lines);
    event_lines_free(&lines);
    session_close(ses);
    return code;
}

static int command_history(int argc, char **argv)
{
    cv_option options[] = {
        OPTION_NATS,
        OPTION_PREFIX,
        {"process", CV_OPTION_VALUE, "P", "the instance's process (default: any)", NULL, NULL,
         false},
        {"json", CV_OPTION_FLAG, NULL, "print each event's body as JSON, one a line, with its \"kind\" added",
         NULL, NULL, false},
        OPTION_TIMEOUT,
        OPTION_END,
    };
    session ses = {.command = "instances history"};
    const char *positional[1] = {NULL};
    int count = 0;
    int code =
        parse_command(argc, argv, ses.command, options, positional, 1, &count, usage_history);
    if (code >= 0)
        return code;
    if (!check_instance_id(ses.command, positional[0]) ||
        !check_process_name(ses.command, cv_options_get(options, "process")) ||
        !parse_timeout(&ses, cv_options_get(options, "timeout")->value) ||
        !resolve_names(&ses, options, NULL))
        return CV_EXIT_USAGE;
    return run_history(&ses, options, positional[0]);
}

/* ---- dispatch ---- */

int cv_cli_instances(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"list", command_list},
        {"show", command_show},
        {"history", command_history},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: %s\n", usage_top);
        return CV_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: %s\n", usage_top);
        return CV_EXIT_OK;
    }
    int code = -1;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0] && code < 0; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            code = commands[i].run(argc - 1, argv + 1);
    }
    if (code < 0) {
        fprintf(stderr, "conveyor instances: unknown command '%s'\nusage: %s\n", argv[1],
                usage_top);
        return CV_EXIT_USAGE;
    }
    nats_Close();
    return code;
}
