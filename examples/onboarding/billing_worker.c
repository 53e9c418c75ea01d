/*
 * billing-worker: a queue worker for conveyor that opens invoice accounts,
 * the open-account step of rules/onboarding/customer-onboarding.lua.
 *
 * A queue step waits as a message in the JetStream stream <PREFIX>_TASKS
 * (ORCH_TASKS for the prefix "orch") on <prefix>.task.<subsystem>. The node
 * creates a durable pull consumer named after the subsystem, and every
 * copy of this worker binds to it, so the copies share the tasks. For each
 * task the worker:
 *   1. reads the step body, the same JSON a NATS module receives;
 *   2. publishes its answer to the subject in the header Orch-Reply-To
 *      (the output as the body, or an empty body with Orch-Error, plus
 *      Orch-Retry: false when trying again cannot help);
 *   3. acknowledges the task, and only then, so a worker that dies before
 *      answering leaves the task to another copy after the consumer's ack
 *      wait (the node's --ack-wait, 30 s by default).
 *
 * It uses nats.c and jansson only. Accounts live in memory: an example
 * needs no database, and a task delivered twice for one instance, after a
 * worker died between steps 2 and 3, returns the account already opened.
 */
#include <getopt.h>
#include <jansson.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_NATS_URL "nats://127.0.0.1:4222"
#define DEFAULT_SUBSYSTEM "billing-accounts"
/* Tasks taken per fetch, and how long a fetch waits for the first one. */
#define FETCH_BATCH 8
#define FETCH_WAIT_MS 1000
/* How long to keep trying to bind while the node has not created the consumer yet. */
#define BIND_TIMEOUT_MS 30000
/* Accounts kept for a task that is delivered again; older ones are forgotten. */
#define ACCOUNTS_KEPT 4096
#define FIRST_ACCOUNT_NUMBER 100001

typedef struct options {
    const char *nats_url;
    const char *prefix;
    const char *subsystem;
} options;

/* A failed task: the message for Orch-Error, and whether a retry can help. */
typedef struct task_error {
    char message[256];
    bool permanent;
} task_error;

/* The accounts opened so far, keyed by the instance that requested them (a ring). */
static struct {
    char instance[128];
    json_t *account;
} accounts[ACCOUNTS_KEPT];
static size_t accounts_next;
static long next_account_number = FIRST_ACCOUNT_NUMBER;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes "<UTC time> <message>" to stderr. */
static void log_line(const char *fmt, ...)
{
    char at[32];
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &utc);

    char message[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    fprintf(stderr, "%s %s\n", at, message);
}

static json_t *fail(task_error *err, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills err and returns NULL, so a handler can `return fail(...)`. */
static json_t *fail(task_error *err, bool permanent, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, args);
    va_end(args);
    err->permanent = permanent;
    return NULL;
}

static const json_t *find_account(const char *instance)
{
    for (size_t i = 0; i < ACCOUNTS_KEPT; i++) {
        if (accounts[i].account != NULL && strcmp(accounts[i].instance, instance) == 0)
            return accounts[i].account;
    }
    return NULL;
}

/* Remembers account (takes a reference) for instance, forgetting the oldest one when full. */
static void remember_account(const char *instance, json_t *account)
{
    size_t slot = accounts_next;
    accounts_next = (accounts_next + 1) % ACCOUNTS_KEPT;
    json_decref(accounts[slot].account);
    snprintf(accounts[slot].instance, sizeof accounts[slot].instance, "%s", instance);
    accounts[slot].account = account;
}

/* Payment terms in days by the bureau's band: better credit, longer terms. */
static int payment_terms_days(const char *band)
{
    if (band != NULL && strcmp(band, "A") == 0)
        return 45;
    if (band != NULL && strcmp(band, "B") == 0)
        return 30;
    return 14;
}

/*
 * Opens the account that the data of one open-account step requests, or
 * returns the one opened before for the same instance. The step sends
 * data.normalise (the customer), data["find-customer"] (the CRM contact,
 * ID "0" for none) and data["credit-check"] (the bureau's answer). Returns
 * a new reference, or NULL with err set.
 */
static json_t *open_account(const char *instance, const json_t *params, const json_t *data,
                            task_error *err)
{
    const json_t *earlier = find_account(instance);
    if (earlier != NULL)
        return json_deep_copy(earlier);

    const json_t *normalise = json_object_get(data, "normalise");
    const json_t *customer = json_object_get(normalise, "customer");
    const char *company = json_string_value(json_object_get(customer, "company"));
    const json_t *requested = json_object_get(normalise, "requested_limit");
    const json_t *check = json_object_get(data, "credit-check");
    const json_t *max_limit = json_object_get(check, "max_limit");
    if (company == NULL || !json_is_number(requested))
        return fail(err, true, "data.normalise has no customer.company or requested_limit");
    if (!json_is_number(max_limit))
        return fail(err, true, "data[\"credit-check\"] has no max_limit");

    double limit = json_number_value(requested);
    if (json_number_value(max_limit) < limit)
        limit = json_number_value(max_limit);
    if (limit <= 0)
        return fail(err, true, "the bureau recommends no credit for %s", company);

    /* The CRM replies {"ID": "0"} for a contact it does not know. */
    const char *contact = json_string_value(json_object_get(json_object_get(data, "find-customer"),
                                                            "ID"));
    if (contact == NULL || contact[0] == '\0' || strcmp(contact, "0") == 0)
        contact = "new";
    const char *currency = json_string_value(json_object_get(params, "currency"));
    const char *band = json_string_value(json_object_get(check, "band"));

    /* A whole amount is written as an integer: 150000, not 150000.0. */
    json_t *limit_value = limit == (double)(json_int_t)limit ? json_integer((json_int_t)limit)
                                                             : json_real(limit);
    char account_id[32];
    snprintf(account_id, sizeof account_id, "INV-%06ld", next_account_number++);
    json_t *account = json_pack("{s:s, s:s, s:s, s:o, s:s, s:i}", "account_id", account_id,
                                "company", company, "crm_contact", contact, "credit_limit",
                                limit_value, "currency", currency != NULL ? currency : "RUB",
                                "payment_terms_days", payment_terms_days(band));
    if (account == NULL)
        return fail(err, false, "out of memory");
    remember_account(instance, json_incref(account));
    return account;
}

/* Parses one task body and runs open_account. Returns a new reference, or NULL with err set. */
static json_t *handle_task(natsMsg *msg, const char **instance_out, task_error *err)
{
    json_error_t parse_error;
    json_t *body = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                              JSON_REJECT_DUPLICATES, &parse_error);
    if (body == NULL)
        return fail(err, true, "the task body is not JSON: %s", parse_error.text);

    json_t *output = NULL;
    const char *instance = json_string_value(json_object_get(body, "instance"));
    const json_t *data = json_object_get(body, "data");
    if (instance == NULL || !json_is_object(data))
        fail(err, true, "the task body has no instance or no data object");
    else
        output = open_account(instance, json_object_get(body, "params"), data, err);
    json_decref(body);
    natsMsgHeader_Get(msg, "Orch-Instance", instance_out);
    return output;
}

/* Sends output, or err when output is NULL, to reply_to, and waits until the server has it. */
static natsStatus send_answer(natsConnection *nc, const char *reply_to, const json_t *output,
                              const task_error *err)
{
    natsMsg *answer = NULL;
    char *text = output != NULL ? json_dumps(output, JSON_COMPACT) : NULL;
    if (output != NULL && text == NULL)
        return NATS_NO_MEMORY;

    int length = text != NULL ? (int)strlen(text) : 0;
    natsStatus s = natsMsg_Create(&answer, reply_to, NULL, text, length);
    if (s == NATS_OK && output == NULL)
        s = natsMsgHeader_Set(answer, "Orch-Error", err->message);
    if (s == NATS_OK && output == NULL && err->permanent)
        s = natsMsgHeader_Set(answer, "Orch-Retry", "false");
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(nc, answer);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 5000);
    natsMsg_Destroy(answer);
    free(text);
    return s;
}

/*
 * True when subject is one of conveyor's reply subjects, "<prefix>.reply.".
 * Whoever can publish a task can write any Orch-Reply-To, and a worker must
 * not be made to publish into other subjects, such as a cancel.
 */
static bool is_reply_subject(const char *subject, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(subject, prefix, n) == 0 && strncmp(subject + n, ".reply.", 7) == 0;
}

/*
 * The batch to ask for. nats.c 3.4.1 (Debian 12) writes past the end of
 * its fetch array when more than half a batch already waits in the
 * subscription, as after a reconnect; asking for exactly what waits, when
 * anything does, avoids it.
 */
static int batch_size(natsSubscription *sub)
{
    int waiting = 0;
    int bytes = 0;
    if (natsSubscription_GetPending(sub, &waiting, &bytes) == NATS_OK && waiting > 0)
        return waiting < FETCH_BATCH ? waiting : FETCH_BATCH;
    return FETCH_BATCH;
}

/* Answers one task, then acknowledges it; takes msg. */
static void process_task(natsConnection *nc, natsMsg *msg, const char *prefix)
{
    const char *reply_to = NULL;
    natsMsgHeader_Get(msg, "Orch-Reply-To", &reply_to);
    if (reply_to == NULL || !is_reply_subject(reply_to, prefix)) {
        /* No usable reply subject means no one can receive the output, so another copy would not help. */
        log_line("task without a conveyor Orch-Reply-To dropped subject=%s reply_to=%s",
                 natsMsg_GetSubject(msg), reply_to ? reply_to : "-");
        natsMsg_Term(msg, NULL);
        natsMsg_Destroy(msg);
        return;
    }

    const char *instance = NULL;
    task_error err = {0};
    json_t *output = handle_task(msg, &instance, &err);
    natsStatus s = send_answer(nc, reply_to, output, &err);
    if (s != NATS_OK) {
        /* Not acknowledged: the server delivers the task again. */
        log_line("answer not sent instance=%s error=%s", instance ? instance : "-",
                 natsStatus_GetText(s));
        natsMsg_Nak(msg, NULL);
    } else {
        natsMsg_Ack(msg, NULL);
        if (output != NULL)
            log_line("account opened instance=%s account=%s", instance ? instance : "-",
                     json_string_value(json_object_get(output, "account_id")));
        else
            log_line("task failed instance=%s permanent=%s error=\"%s\"",
                     instance ? instance : "-", err.permanent ? "true" : "false", err.message);
    }
    json_decref(output);
    natsMsg_Destroy(msg);
}

/* Binds to the durable consumer, trying again while the node has not created it yet. */
static natsStatus bind_consumer(natsSubscription **sub, jsCtx *js, const char *stream,
                                const char *consumer)
{
    jsSubOptions sub_options;
    jsSubOptions_Init(&sub_options);
    sub_options.Stream = stream;
    sub_options.Consumer = consumer;
    sub_options.ManualAck = true;

    natsStatus s = NATS_ERR;
    jsErrCode code = 0;
    for (int waited = 0; waited <= BIND_TIMEOUT_MS && !stop_requested; waited += 500) {
        s = js_PullSubscribe(sub, js, NULL, consumer, NULL, &sub_options, &code);
        if (s == NATS_OK)
            return s;
        if (waited == 0)
            log_line("waiting for the consumer %s on %s, which a node creates at start-up: %s "
                     "(JetStream error %d)",
                     consumer, stream, natsStatus_GetText(s), (int)code);
        usleep(500 * 1000);
    }
    return s;
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: billing-worker [--nats URL] [--prefix PREFIX] [--subsystem NAME]\n"
            "\n"
            "Opens invoice accounts for the open-account step of customer-onboarding,\n"
            "taking the tasks from the JetStream stream PREFIX_TASKS.\n"
            "\n"
            "  --nats URL        NATS server (default: $BILLING_NATS, else %s)\n"
            "  --prefix PREFIX   subject prefix, as the node's --prefix (default: orch)\n"
            "  --subsystem NAME  queue subsystem, the durable consumer's name (default: %s)\n"
            "  --help            print this help\n",
            DEFAULT_NATS_URL, DEFAULT_SUBSYSTEM);
}

/* Parses the command line. Returns 0 to run, 1 after --help, 2 on a usage error. */
static int parse_options(int argc, char **argv, options *opts)
{
    static const struct option long_options[] = {
        {"nats", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'p'},
        {"subsystem", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env_url = getenv("BILLING_NATS");
    opts->nats_url = env_url != NULL && env_url[0] != '\0' ? env_url : DEFAULT_NATS_URL;
    opts->prefix = "orch";
    opts->subsystem = DEFAULT_SUBSYSTEM;

    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'n':
            opts->nats_url = optarg;
            break;
        case 'p':
            opts->prefix = optarg;
            break;
        case 's':
            opts->subsystem = optarg;
            break;
        case 'h':
            print_usage(stdout);
            return 1;
        default:
            print_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "billing-worker: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    return 0;
}

static natsStatus connect_nats(natsConnection **nc, natsOptions **nats_options, const char *url)
{
    natsStatus s = natsOptions_Create(nats_options);
    if (s == NATS_OK)
        s = natsOptions_SetURL(*nats_options, url);
    if (s == NATS_OK)
        s = natsOptions_SetName(*nats_options, "billing-worker");
    /* Keep working across a server restart: reconnect forever, twice a second. */
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(*nats_options, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(*nats_options, 500);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, *nats_options);
    return s;
}

/* The stream a node names for prefix: "orch" gives ORCH_TASKS. */
static void tasks_stream_name(char *out, size_t size, const char *prefix)
{
    size_t n = 0;
    for (; prefix[n] != '\0' && n + 7 < size; n++)
        out[n] = (char)(prefix[n] >= 'a' && prefix[n] <= 'z' ? prefix[n] - 'a' + 'A' : prefix[n]);
    snprintf(out + n, size - n, "_TASKS");
}

int main(int argc, char **argv)
{
    options opts;
    int parsed = parse_options(argc, argv, &opts);
    if (parsed != 0)
        return parsed == 1 ? EXIT_SUCCESS : parsed;

    struct sigaction action = {0};
    action.sa_handler = on_stop_signal;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    char stream[160];
    tasks_stream_name(stream, sizeof stream, opts.prefix);
    int exit_code = EXIT_FAILURE;
    natsOptions *nats_options = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;

    natsStatus s = connect_nats(&nc, &nats_options, opts.nats_url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK) {
        log_line("cannot connect to %s: %s", opts.nats_url, natsStatus_GetText(s));
        goto out;
    }
    s = bind_consumer(&sub, js, stream, opts.subsystem);
    if (s != NATS_OK) {
        if (!stop_requested)
            log_line("cannot bind to the consumer %s on %s: %s", opts.subsystem, stream,
                     natsStatus_GetText(s));
        goto out;
    }
    log_line("billing-worker ready stream=%s consumer=%s", stream, opts.subsystem);

    while (!stop_requested) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, batch_size(sub), FETCH_WAIT_MS, NULL);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            log_line("fetch failed: %s", natsStatus_GetText(s));
            usleep(500 * 1000); /* e.g. reconnecting: pause rather than spin */
            continue;
        }
        for (int i = 0; i < list.Count; i++) {
            process_task(nc, list.Msgs[i], opts.prefix);
            list.Msgs[i] = NULL; /* process_task took it */
        }
        natsMsgList_Destroy(&list);
    }
    log_line("stopping");
    exit_code = EXIT_SUCCESS;
out:
    natsConnection_Close(nc);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(nats_options);
    nats_Close();
    for (size_t i = 0; i < ACCOUNTS_KEPT; i++)
        json_decref(accounts[i].account);
    return exit_code;
}
