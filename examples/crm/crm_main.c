/*
 * crm-module: a conveyor module that plays the part of a CRM, serving every
 * crm-* subsystem of rules/crm/deal-routing.lua over NATS.
 *
 * It uses only nats.c, jansson and conveyor's message contract. Each
 * subsystem is a queue subscription on <prefix>.dispatch.<subsystem>, in the
 * queue group "crm-module" so that several copies share the work. A step
 * arrives with a reply subject. The module replies there with the step's
 * output as the body, or with an empty body and the header
 * Orch-Error: <message>, plus Orch-Retry: false when retrying cannot help.
 *
 * The main thread only sets things up and then waits for SIGINT or SIGTERM.
 * It blocks both signals before nats.c starts its threads, so sigwait here
 * is the only place they arrive. On a signal it drains the connection, so
 * steps already received are handled and replied to before it closes
 * (for at most DRAIN_TIMEOUT_MS).
 */
#include <getopt.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crm_handlers.h"
#include "crm_step.h"
#include "crm_store.h"

#define DEFAULT_NATS_URL "nats://127.0.0.1:4222"
#define QUEUE_GROUP "crm-module"
/* How long a shutdown waits for steps in flight before it closes anyway. */
#define DRAIN_TIMEOUT_MS 5000
/* parse_options result: --help was printed, so exit with success. */
#define OPTIONS_HELP_PRINTED (-1)

typedef struct options {
    const char *nats_url;
    const char *data_path;
    const char *prefix;
} options;

/* What a subscription's callback needs: its subsystem and the shared store. */
typedef struct binding {
    const crm_subsystem *subsystem;
    crm_store *store;
    natsSubscription *subscription;
} binding;

/* Set by the closed callback, so that shutdown can wait for the drain to end. */
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t closed_cond = PTHREAD_COND_INITIALIZER;
static bool connection_closed;
/* Set before the drain, whose close also fires the disconnected callback. */
static atomic_bool stopping;

static void log_line(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes one "<UTC time> level=<level> <message>" line to stderr. One fwrite
 * call locks the stream, so lines from handler threads do not mix.
 */
static void log_line(const char *level, const char *fmt, ...)
{
    char line[2048];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);

    int length = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &utc);
    length += snprintf(line + length, sizeof line - (size_t)length, ".%03ldZ level=%s ",
                       now.tv_nsec / 1000000, level);
    va_list ap;
    va_start(ap, fmt);
    if (length < (int)sizeof line)
        length += vsnprintf(line + length, sizeof line - (size_t)length, fmt, ap);
    va_end(ap);
    if (length > (int)sizeof line - 2)
        length = (int)sizeof line - 2;
    line[length++] = '\n';
    fwrite(line, 1, (size_t)length, stderr);
}

/*
 * Writes text as a log value: as it is when it is a plain token, else in
 * double quotes with quotes, backslashes and control characters escaped, so
 * that a value taken from a message cannot forge a log line.
 */
static const char *log_value(const char *text, char *out, size_t out_size)
{
    if (text == NULL || text[0] == '\0')
        return "-";
    if (strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-") ==
        strlen(text))
        return text;

    size_t used = 0;
    out[used++] = '"';
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
        if (used + 6 >= out_size)
            break;
        if (*c == '"' || *c == '\\')
            used += (size_t)snprintf(out + used, out_size - used, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            used += (size_t)snprintf(out + used, out_size - used, "\\x%02x", *c);
        else
            out[used++] = (char)*c;
    }
    out[used++] = '"';
    out[used] = '\0';
    return out;
}

/* Replaces line breaks and other control characters, which a NATS header value cannot hold. */
static void make_header_value(const char *text, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s", text);
    for (char *c = out; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    }
}

/* Sends the step's output, or its error when output is NULL, to reply_to. */
static natsStatus send_reply(natsConnection *nc, const char *reply_to, const json_t *output,
                             const crm_error *err)
{
    natsMsg *reply = NULL;
    char *body = NULL;
    natsStatus status;

    if (output != NULL) {
        body = json_dumps(output, JSON_ENCODE_ANY | JSON_COMPACT);
        if (body == NULL)
            return NATS_NO_MEMORY;
        status = natsMsg_Create(&reply, reply_to, NULL, body, (int)strlen(body));
    } else {
        char header[sizeof err->message];
        make_header_value(err->message, header, sizeof header);
        status = natsMsg_Create(&reply, reply_to, NULL, NULL, 0);
        if (status == NATS_OK)
            status = natsMsgHeader_Set(reply, "Orch-Error", header);
        if (status == NATS_OK && err->permanent)
            status = natsMsgHeader_Set(reply, "Orch-Retry", "false");
    }
    if (status == NATS_OK)
        status = natsConnection_PublishMsg(nc, reply);
    natsMsg_Destroy(reply);
    free(body);
    return status;
}

/* Returns the value of header key in msg, or NULL. It names a step whose body cannot be parsed. */
static const char *header_of(natsMsg *msg, const char *key)
{
    const char *value = NULL;
    if (natsMsgHeader_Get(msg, key, &value) != NATS_OK)
        return NULL;
    return value;
}

/* Logs one line for a handled step: its ids, the outcome, and the error if any. */
static void log_step(natsMsg *msg, const binding *bound, const crm_step *step,
                     const json_t *output, const crm_error *err, double elapsed_ms)
{
    /* A body that cannot be parsed (step is NULL) is still named by its headers. */
    char attempt_text[32];
    if (step != NULL)
        snprintf(attempt_text, sizeof attempt_text, "%lld", (long long)step->attempt);
    const char *instance = step != NULL ? step->instance : header_of(msg, "Orch-Instance");
    const char *step_id = step != NULL ? step->step : header_of(msg, "Orch-Step");
    const char *attempt = step != NULL ? attempt_text : header_of(msg, "Orch-Attempt");
    const char *outcome = output != NULL ? "ok" : (err->permanent ? "rejected" : "failed");

    char instance_value[160];
    char step_value[160];
    char attempt_value[64];
    char error_value[600];
    log_line(output != NULL ? "info" : "warn",
             "step handled instance=%s step=%s subsystem=%s attempt=%s outcome=%s ms=%.2f%s%s",
             log_value(instance, instance_value, sizeof instance_value),
             log_value(step_id, step_value, sizeof step_value), bound->subsystem->name,
             log_value(attempt, attempt_value, sizeof attempt_value), outcome, elapsed_ms,
             output != NULL ? "" : " error=",
             output != NULL ? "" : log_value(err->message, error_value, sizeof error_value));
}

/* Message callback: parse the step, run the handler, reply, log one line. */
static void on_step(natsConnection *nc, natsSubscription *subscription, natsMsg *msg,
                    void *closure)
{
    const binding *bound = closure;
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);

    crm_step step = {0};
    crm_error err = {0};
    json_t *output = NULL;
    const char *body = natsMsg_GetData(msg);
    size_t length = (size_t)natsMsg_GetDataLength(msg);
    bool parsed = crm_step_parse(&step, body != NULL ? body : "", length, err.message,
                                 sizeof err.message);
    if (!parsed)
        err.permanent = true;
    else
        output = bound->subsystem->handle(bound->store, &step, &err);
    /* Only jansson running out of memory makes a handler return NULL without a message. */
    if (output == NULL && err.message[0] == '\0')
        snprintf(err.message, sizeof err.message, "out of memory");

    const char *reply_to = natsMsg_GetReply(msg);
    natsStatus sent = NATS_OK;
    if (reply_to != NULL && reply_to[0] != '\0')
        sent = send_reply(nc, reply_to, output, &err);

    struct timespec finished;
    clock_gettime(CLOCK_MONOTONIC, &finished);
    double elapsed_ms = (double)(finished.tv_sec - started.tv_sec) * 1e3 +
                        (double)(finished.tv_nsec - started.tv_nsec) / 1e6;
    log_step(msg, bound, parsed ? &step : NULL, output, &err, elapsed_ms);
    if (reply_to == NULL || reply_to[0] == '\0')
        log_line("warn", "step has no reply subject, so its result is lost subsystem=%s",
                 bound->subsystem->name);
    else if (sent != NATS_OK)
        log_line("error", "failed to send the reply subsystem=%s error=%s", bound->subsystem->name,
                 natsStatus_GetText(sent));

    json_decref(output);
    if (parsed)
        crm_step_release(&step);
    natsMsg_Destroy(msg);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    if (atomic_load(&stopping))
        return;
    log_line("warn", "disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    log_line("info", "reconnected to NATS");
}

static void on_closed(natsConnection *nc, void *closure)
{
    pthread_mutex_lock(&closed_lock);
    connection_closed = true;
    pthread_cond_signal(&closed_cond);
    pthread_mutex_unlock(&closed_lock);
}

/* Waits at most timeout_ms for on_closed to run. Returns false on a timeout. */
static bool wait_closed(long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&closed_lock);
    int waited = 0;
    while (!connection_closed && waited == 0)
        waited = pthread_cond_timedwait(&closed_cond, &closed_lock, &deadline);
    bool closed = connection_closed;
    pthread_mutex_unlock(&closed_lock);
    return closed;
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: crm-module --data FILE [--nats URL] [--prefix PREFIX]\n"
            "\n"
            "Serves the crm-* subsystems of rules/crm/deal-routing.lua over NATS.\n"
            "\n"
            "  --data FILE      CRM data file (JSON), rewritten after each change; required\n"
            "  --nats URL       NATS server (default: $CRM_NATS, else %s)\n"
            "  --prefix PREFIX  subject prefix, as the node's --prefix (default: orch)\n"
            "  --help           print this help\n",
            DEFAULT_NATS_URL);
}

/*
 * Parses the command line into opts. Returns 0 to run, OPTIONS_HELP_PRINTED,
 * or 2 on a usage error.
 */
static int parse_options(int argc, char **argv, options *opts)
{
    static const struct option long_options[] = {
        {"data", required_argument, NULL, 'd'},
        {"nats", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env_url = getenv("CRM_NATS");
    opts->nats_url = env_url != NULL && env_url[0] != '\0' ? env_url : DEFAULT_NATS_URL;
    opts->prefix = "orch";
    opts->data_path = NULL;

    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'd':
            opts->data_path = optarg;
            break;
        case 'n':
            opts->nats_url = optarg;
            break;
        case 'p':
            opts->prefix = optarg;
            break;
        case 'h':
            print_usage(stdout);
            return OPTIONS_HELP_PRINTED;
        default:
            print_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "crm-module: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (opts->data_path == NULL) {
        fprintf(stderr, "crm-module: --data FILE is required (try --help)\n");
        return 2;
    }
    if (opts->prefix[0] == '\0' || strpbrk(opts->prefix, " \t\r\n*>") != NULL) {
        fprintf(stderr, "crm-module: invalid --prefix \"%s\": it must be subject tokens\n",
                opts->prefix);
        return 2;
    }
    return 0;
}

static natsStatus connect_nats(natsConnection **nc, natsOptions **nats_opts, const options *opts)
{
    natsStatus status = natsOptions_Create(nats_opts);
    if (status == NATS_OK)
        status = natsOptions_SetURL(*nats_opts, opts->nats_url);
    if (status == NATS_OK)
        status = natsOptions_SetName(*nats_opts, "crm-module");
    /* A reply sits in nats.c's buffer for up to a millisecond unless sent at once. */
    if (status == NATS_OK)
        status = natsOptions_SetSendAsap(*nats_opts, true);
    /* Keep serving across a server restart: reconnect forever, twice a second. */
    if (status == NATS_OK)
        status = natsOptions_SetMaxReconnect(*nats_opts, -1);
    if (status == NATS_OK)
        status = natsOptions_SetReconnectWait(*nats_opts, 500);
    if (status == NATS_OK)
        status = natsOptions_SetDisconnectedCB(*nats_opts, on_disconnected, NULL);
    if (status == NATS_OK)
        status = natsOptions_SetReconnectedCB(*nats_opts, on_reconnected, NULL);
    if (status == NATS_OK)
        status = natsOptions_SetClosedCB(*nats_opts, on_closed, NULL);
    if (status == NATS_OK)
        status = natsConnection_Connect(nc, *nats_opts);
    return status;
}

/* Subscribes every subsystem and waits until the server has the subscriptions. */
static natsStatus subscribe_all(natsConnection *nc, binding *bindings, const options *opts)
{
    natsStatus status = NATS_OK;
    for (size_t i = 0; i < crm_subsystem_count && status == NATS_OK; i++) {
        char subject[256];
        snprintf(subject, sizeof subject, "%s.dispatch.%s", opts->prefix,
                 bindings[i].subsystem->name);
        status = natsConnection_QueueSubscribe(&bindings[i].subscription, nc, subject, QUEUE_GROUP,
                                               on_step, &bindings[i]);
    }
    if (status == NATS_OK)
        status = natsConnection_FlushTimeout(nc, 5000);
    return status;
}

int main(int argc, char **argv)
{
    options opts;
    int parsed = parse_options(argc, argv, &opts);
    if (parsed == OPTIONS_HELP_PRINTED)
        return EXIT_SUCCESS;
    if (parsed != 0)
        return parsed;

    char why[512];
    crm_store *store = crm_store_open(opts.data_path, why, sizeof why);
    if (store == NULL) {
        fprintf(stderr, "crm-module: cannot load the data file: %s\n", why);
        return EXIT_FAILURE;
    }

    /* Blocked here, before nats.c starts threads, so that every thread inherits the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    int exit_code = EXIT_FAILURE;
    natsConnection *nc = NULL;
    natsOptions *nats_opts = NULL;
    natsStatus status = NATS_OK;
    binding *bindings = calloc(crm_subsystem_count, sizeof *bindings);
    if (bindings == NULL) {
        fprintf(stderr, "crm-module: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < crm_subsystem_count; i++) {
        bindings[i].subsystem = &crm_subsystems[i];
        bindings[i].store = store;
    }

    status = connect_nats(&nc, &nats_opts, &opts);
    if (status != NATS_OK) {
        fprintf(stderr, "crm-module: cannot connect to %s: %s\n", opts.nats_url,
                natsStatus_GetText(status));
        goto out;
    }
    status = subscribe_all(nc, bindings, &opts);
    if (status != NATS_OK) {
        fprintf(stderr, "crm-module: cannot subscribe on %s: %s\n", opts.nats_url,
                natsStatus_GetText(status));
        goto out;
    }
    log_line("info", "crm-module ready nats=%s prefix=%s data=%s subsystems=%zu", opts.nats_url,
             opts.prefix, opts.data_path, crm_subsystem_count);

    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    log_line("info", "stopping on signal %d; finishing steps in flight", signal_number);

    atomic_store(&stopping, true);
    status = natsConnection_DrainTimeout(nc, DRAIN_TIMEOUT_MS);
    if (status != NATS_OK || !wait_closed(DRAIN_TIMEOUT_MS + 1000))
        log_line("warn", "the drain did not finish; closing anyway");
    exit_code = EXIT_SUCCESS;
out:
    natsConnection_Close(nc);
    for (size_t i = 0; bindings != NULL && i < crm_subsystem_count; i++)
        natsSubscription_Destroy(bindings[i].subscription);
    free(bindings);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(nats_opts);
    nats_Close();
    crm_store_close(store);
    if (exit_code == EXIT_SUCCESS)
        log_line("info", "crm-module stopped");
    return exit_code;
}
