/*
 * bench-json: how fast cv_json_write serialises the node's documents,
 * next to jansson's json_dumps with the same flags, on one thread. It
 * builds three documents in memory:
 * - dispatch: the body sent for a step (about 1.5 KB), with ids, params,
 *   and the data document with the 1 KB request and two step outputs.
 * - instance: an instance document as the kv store writes it (about 4 KB).
 * - cyrillic: the dispatch body with the request's text fields in Russian,
 *   to show the cost of non-ASCII UTF-8.
 * Each is first checked to come out byte for byte the same from both.
 *
 * With --duration S (default 2) each serialiser runs for S seconds per
 * document and the figure is nanoseconds per output byte. With
 * --iterations N each runs exactly N times, for instruction counts under
 * valgrind --tool=callgrind; --doc NAME then limits the run to one
 * document, so that the inclusive counts of json_dumps and cv_json_write
 * belong to it alone.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "core/json_write.h"

#define PROGRAM "bench-json"
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)

typedef char *(*serialiser)(const json_t *value);

static char *with_jansson(const json_t *value)
{
    return json_dumps(value, DUMP_FLAGS);
}

static char *with_conveyor(const json_t *value)
{
    return cv_json_write(NULL, value);
}

/* A step output with strings, integers and a real, as modules reply. */
static json_t *step_output(int step)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:f, s:b}", "ID", "4127", "STAGE_ID", "C1:NEW",
                     "ASSIGNED_BY_ID", "7", "ATTEMPTS", step, "OPPORTUNITY", (json_int_t)1540000,
                     "PROBABILITY", 0.35 + 0.1 * step, "CLOSED", 0);
}

static json_t *request(size_t size)
{
    char body[8192];
    if (bench_request_body(body, sizeof body, size) == 0)
        bench_fail(PROGRAM, "cannot build a request body of %zu bytes", size);
    return bench_parse_json(PROGRAM, body);
}

static json_t *dispatch_body(json_t *request_doc)
{
    json_t *data = json_object();
    json_object_set_new(data, "request", request_doc);
    json_object_set_new(data, "s1", step_output(1));
    json_object_set_new(data, "s2", step_output(2));
    return json_pack("{s:s, s:s, s:s, s:i, s:{s:s, s:i}, s:o}", "instance",
                     "inst-7Hq2LmX9aZ0bC4dE", "process", "lead-intake", "step", "s3", "attempt",
                     1, "params", "url", "https://crm.example.invalid/rest/crm.deal.update",
                     "timeout_ms", 5000, "data", data);
}

static json_t *instance_document(void)
{
    json_t *data = json_object();
    json_object_set_new(data, "request", request(2800));
    for (int i = 1; i <= 6; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i);
        json_object_set_new(data, id, step_output(i));
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:[s,s,s,s,s,s], s:{s:i,s:i,s:i,s:i,s:i,s:i},"
                     " s:[{s:s, s:i, s:s, s:I}], s:[], s:I, s:I, s:b}",
                     "id", "inst-7Hq2LmX9aZ0bC4dE", "process", "lead-intake", "status", "running",
                     "data", data, "steps", "s1", "s2", "s3", "s4", "s5", "s6", "visits", "s1", 1,
                     "s2", 1, "s3", 2, "s4", 1, "s5", 1, "s6", 1, "active", "step", "s7",
                     "attempt", 1, "token", "k3J9xQ2mVb", "started_ms",
                     (json_int_t)1718000123456, "waiting", "created_ms",
                     (json_int_t)1718000120001, "updated_ms", (json_int_t)1718000123456,
                     "answered", 1);
}

static json_t *cyrillic_request(void)
{
    json_t *doc = request(1024);
    json_object_set_new(doc, "TITLE", json_string("Вопрос о сроках доставки"));
    json_object_set_new(doc, "NAME", json_string("Анна"));
    json_object_set_new(doc, "LAST_NAME", json_string("Соколова"));
    json_object_set_new(doc, "CITY", json_string("Казань"));
    json_object_set_new(doc, "COMMENTS",
                        json_string("Когда приедут столы для нового филиала? Нужно 12 штук, "
                                    "желательно до конца месяца. Оплата по счёту, доставка до "
                                    "склада на улице Баумана, 15. Контактное лицо на складе — "
                                    "Игорь, телефон в карточке. Спасибо!"));
    return doc;
}

/* Runs one serialiser for duration seconds, or iterations times when iterations > 0. */
static double time_serialiser(serialiser write, const json_t *doc, double duration,
                              long long iterations, size_t *bytes_out)
{
    size_t bytes = 0;
    int64_t start = bench_now_ns();
    int64_t end = start + (int64_t)(duration * 1e9);
    int64_t now = start;
    long long done = 0;

    while (iterations > 0 ? done < iterations : now < end) {
        int round = iterations > 0 ? 1 : 64;
        for (int i = 0; i < round; i++) {
            char *text = write(doc);
            if (text == NULL)
                bench_fail(PROGRAM, "out of memory");
            bytes += strlen(text);
            free(text);
        }
        done += round;
        if (iterations == 0)
            now = bench_now_ns();
    }
    now = bench_now_ns();
    *bytes_out = bytes;
    return (double)(now - start);
}

static void measure(const char *name, const json_t *doc, double duration, long long iterations)
{
    char *expected = with_jansson(doc);
    size_t length = 0;
    char *actual = cv_json_write(&length, doc);
    if (expected == NULL || actual == NULL)
        bench_fail(PROGRAM, "%s: a serialiser returned NULL", name);
    if (strcmp(expected, actual) != 0 || length != strlen(expected))
        bench_fail(PROGRAM, "%s: cv_json_write differs from json_dumps", name);
    free(expected);
    free(actual);

    size_t jansson_bytes;
    size_t conveyor_bytes;
    double jansson_ns = time_serialiser(with_jansson, doc, duration, iterations, &jansson_bytes);
    double conveyor_ns =
        time_serialiser(with_conveyor, doc, duration, iterations, &conveyor_bytes);
    double jansson_per_byte = jansson_ns / (double)jansson_bytes;
    double conveyor_per_byte = conveyor_ns / (double)conveyor_bytes;
    printf("doc=%s bytes=%zu jansson_ns_per_byte=%.2f conveyor_ns_per_byte=%.2f speedup=%.1f\n",
           name, length, jansson_per_byte, conveyor_per_byte,
           jansson_per_byte / conveyor_per_byte);
}

static void usage(void)
{
    fprintf(stderr, "usage: " PROGRAM " [--duration S | --iterations N] "
                    "[--doc dispatch|instance|cyrillic]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double duration = 2;
    long long iterations = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--duration") == 0)
            duration = (double)bench_parse_number("--duration", argv[i + 1], 1, 600);
        else if (strcmp(argv[i], "--iterations") == 0)
            iterations = bench_parse_number("--iterations", argv[i + 1], 1, 100000000);
        else if (strcmp(argv[i], "--doc") == 0)
            only = argv[i + 1];
        else
            usage();
        i++;
    }

    json_t *dispatch = dispatch_body(request(1024));
    json_t *instance = instance_document();
    json_t *cyrillic = dispatch_body(cyrillic_request());
    if (dispatch == NULL || instance == NULL || cyrillic == NULL)
        bench_fail(PROGRAM, "cannot build the documents");

    /* A short first pass warms the caches and the allocator. */
    if (iterations == 0) {
        size_t ignored;
        time_serialiser(with_jansson, dispatch, 0.2, 0, &ignored);
        time_serialiser(with_conveyor, dispatch, 0.2, 0, &ignored);
    }
    const struct {
        const char *name;
        const json_t *doc;
    } docs[] = {{"dispatch", dispatch}, {"instance", instance}, {"cyrillic", cyrillic}};
    bool known = only == NULL;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        if (only != NULL && strcmp(only, docs[i].name) != 0)
            continue;
        known = true;
        measure(docs[i].name, docs[i].doc, duration, iterations);
    }
    if (!known)
        usage();

    json_decref(dispatch);
    json_decref(instance);
    json_decref(cyrillic);
    return 0;
}
