/*
 * bench-rules: how fast conveyor evaluates condition trees, alone, on one
 * thread. It loads a rules folder with cv_rules_load, builds the data
 * documents a node holds when each step of --process completes (for a few
 * CRM-like requests), and then calls cv_condition_evaluate on them in a
 * tight loop for --duration seconds.
 *
 * The figure is condition nodes evaluated per second: a node counts when
 * its test runs, whether it holds or not. How many nodes one evaluation
 * tests is found once per (step, document) pair by a walk that follows
 * the rules language with the engine's own path lookup and operation test;
 * the walk must reach the decision path that cv_condition_evaluate reports,
 * or the program fails, so the count matches what the engine does.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "engine/condition.h"
#include "engine/decide.h"
#include "rules/rules.h"

#define PROGRAM "bench-rules"
#define MAX_CASES 64

/* The reply bench-module gives to every step. */
static const char module_reply[] =
    "{\"ID\":\"4127\",\"STAGE_ID\":\"C1:NEW\",\"OPPORTUNITY\":\"15400\",\"ASSIGNED_BY_ID\":\"7\"}";

/* One evaluation to repeat: a step's condition on the data after it completed. */
typedef struct bench_case {
    const cv_step *step;
    json_t *data;
    size_t nodes; /* condition nodes one evaluation tests */
    char path[CV_DECISION_PATH_MAX];
} bench_case;

typedef struct count_walk {
    const json_t *data;
    cv_script *script;
    size_t nodes;
    char path[CV_DECISION_PATH_MAX];
} count_walk;

static bool count_list(count_walk *w, const cv_cond_list *list, const char *prefix);

/* Tests one node as the engine does and follows its branch. Returns whether it decided. */
static bool count_node(count_walk *w, const cv_cond_node *node, const char *where)
{
    cv_error err;
    bool holds = false;
    const json_t *value = node->has_field ? cv_path_lookup(&node->field, w->data) : NULL;
    const json_t *arg = node->has_value_field ? cv_path_lookup(&node->value_field, w->data)
                                              : node->value;
    if (node->when_ref != CV_NO_REF)
        bench_fail(PROGRAM, "%s: `when` nodes are not counted by this benchmark", where);
    if (cv_operation_test(&node->op, value, arg, node->regex, w->script, &holds, &err) != CV_OK)
        bench_fail(PROGRAM, "%s: %s", where, err.text);
    w->nodes++;

    char below[CV_DECISION_PATH_MAX];
    if (holds && node->has_result) {
        /* A path cut short only shortens the label the benchmark prints. */
        snprintf(w->path, sizeof w->path, "%.*s", (int)sizeof w->path - 1, where);
        return true;
    }
    if (holds && node->has_success) {
        snprintf(below, sizeof below, "%.*s.success", (int)sizeof below - 9, where);
        return count_list(w, &node->success, below);
    }
    if (!holds && node->has_failure) {
        snprintf(below, sizeof below, "%.*s.failure", (int)sizeof below - 9, where);
        return count_list(w, &node->failure, below);
    }
    return false;
}

static bool count_list(count_walk *w, const cv_cond_list *list, const char *prefix)
{
    char where[CV_DECISION_PATH_MAX + 32];
    for (size_t i = 0; i < list->count; i++) {
        snprintf(where, sizeof where, "%s[%zu]", prefix, i + 1);
        if (count_node(w, &list->nodes[i], where))
            return true;
    }
    return false;
}

/* Sets up one case and checks the counting walk against cv_condition_evaluate. */
static void prepare_case(bench_case *c, const cv_step *step, json_t *data, cv_script *script)
{
    count_walk w = {.data = data, .script = script};
    bool decided = count_list(&w, &step->condition, "condition");

    cv_cond_outcome outcome;
    cv_error err;
    if (cv_condition_evaluate(&step->condition, "condition", data, script, &outcome, &err) !=
        CV_OK)
        bench_fail(PROGRAM, "step %s: %s", step->id, err.text);
    if (outcome.decided != decided || (decided && strcmp(outcome.path, w.path) != 0))
        bench_fail(PROGRAM, "step %s: the counting walk decided at '%s', the engine at '%s'",
                   step->id, decided ? w.path : "(nothing)",
                   outcome.decided ? outcome.path : "(nothing)");
    c->step = step;
    c->data = data;
    c->nodes = w.nodes;
    snprintf(c->path, sizeof c->path, "%s", decided ? w.path : "(none)");
}

static int compare_step_ids(const void *a, const void *b)
{
    const cv_step *const *x = a;
    const cv_step *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

/*
 * The requests: the one bench-driver sends (a deal is known), one with no
 * deal but a phone, and one from a test address. Each gets, for every step
 * of the process, the data a node holds after that step. Steps are taken
 * in the order of their ids (s1, s2, s3 in the bench rules), which is the
 * order the instance runs them in.
 */
static size_t build_cases(bench_case *cases, const cv_process *process, cv_script *script,
                          int body_size)
{
    char body[8192];
    if (bench_request_body(body, sizeof body, (size_t)body_size) == 0)
        bench_fail(PROGRAM, "cannot build a request body of %d bytes", body_size);
    json_t *requests[3];
    requests[0] = bench_parse_json(PROGRAM, body);
    requests[1] = json_deep_copy(requests[0]);
    json_object_set_new(requests[1], "UF_CRM_DEAL_ID", json_string("0"));
    requests[2] = json_deep_copy(requests[0]);
    json_object_set_new(requests[2], "EMAIL", json_string("QA@Test.Invalid"));
    json_t *no_deal = bench_parse_json(PROGRAM, "{\"ID\":\"0\",\"STAGE_ID\":\"\"}");

    const cv_step *order[MAX_CASES];
    size_t step_count = process->step_count < MAX_CASES ? process->step_count : MAX_CASES;
    for (size_t s = 0; s < step_count; s++)
        order[s] = &process->steps[s];
    qsort(order, step_count, sizeof order[0], compare_step_ids);

    size_t count = 0;
    for (size_t r = 0; r < 3; r++) {
        json_t *data = json_object();
        json_object_set_new(data, "request", requests[r]);
        for (size_t s = 0; s < step_count && count < MAX_CASES; s++) {
            const cv_step *step = order[s];
            bool deal_missing = r == 1 && s == 0;
            json_object_set_new(data, step->id,
                                deal_missing ? json_deep_copy(no_deal) : bench_parse_json(PROGRAM, module_reply));
            if (!step->has_condition)
                continue;
            prepare_case(&cases[count], step, json_deep_copy(data), script);
            count++;
        }
        json_decref(data);
    }
    json_decref(no_deal);
    return count;
}

typedef struct loop_result {
    unsigned long long evaluations;
    unsigned long long nodes;
    double seconds;
} loop_result;

static loop_result time_conditions(bench_case *cases, size_t count, cv_script *script,
                                   double duration)
{
    loop_result r = {0};
    cv_cond_outcome outcome;
    cv_error err;
    int64_t start = bench_now_ns();
    int64_t end = start + (int64_t)(duration * 1e9);
    int64_t now = start;
    while (now < end) {
        for (int round = 0; round < 256; round++) {
            for (size_t i = 0; i < count; i++) {
                if (cv_condition_evaluate(&cases[i].step->condition, "condition", cases[i].data,
                                          script, &outcome, &err) != CV_OK)
                    bench_fail(PROGRAM, "step %s: %s", cases[i].step->id, err.text);
                r.nodes += cases[i].nodes;
            }
            r.evaluations += count;
        }
        now = bench_now_ns();
    }
    r.seconds = (double)(now - start) / 1e9;
    return r;
}

static loop_result time_decisions(bench_case *cases, size_t count, const cv_process *process,
                                  cv_script *script, double duration)
{
    loop_result r = {0};
    cv_decision decision;
    cv_error err;
    int64_t start = bench_now_ns();
    int64_t end = start + (int64_t)(duration * 1e9);
    int64_t now = start;
    while (now < end) {
        for (int round = 0; round < 256; round++) {
            for (size_t i = 0; i < count; i++) {
                if (cv_decide(&decision, process, cases[i].step, cases[i].data, script, &err) !=
                    CV_OK)
                    bench_fail(PROGRAM, "step %s: %s", cases[i].step->id, err.text);
                cv_decision_free(&decision);
                r.nodes += cases[i].nodes;
            }
            r.evaluations += count;
        }
        now = bench_now_ns();
    }
    r.seconds = (double)(now - start) / 1e9;
    return r;
}

static void usage(void)
{
    fprintf(stderr, "usage: " PROGRAM " --rules DIR --process NAME [--duration S] "
                    "[--body-size BYTES] [--list]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *name = NULL;
    double duration = 5;
    int body_size = 1024;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            list = true;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--rules") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--process") == 0)
            name = argv[i + 1];
        else if (strcmp(argv[i], "--duration") == 0)
            duration = (double)bench_parse_number("--duration", argv[i + 1], 1, 600);
        else if (strcmp(argv[i], "--body-size") == 0)
            body_size = (int)bench_parse_number("--body-size", argv[i + 1], 512, 8000);
        else
            usage();
        i++;
    }
    if (dir == NULL || name == NULL)
        usage();

    cv_rules *rules = NULL;
    cv_diag diag = {0};
    cv_error err;
    if (cv_rules_load(&rules, dir, NULL, &diag, &err) != CV_OK) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.messages[i]);
        bench_fail(PROGRAM, "cannot load rules from %s: %s", dir, err.text);
    }
    cv_diag_free(&diag);
    const cv_process *process = cv_rules_find_process(rules, name);
    if (process == NULL)
        bench_fail(PROGRAM, "no process %s in %s", name, dir);
    cv_script *script = cv_rules_script(rules);

    static bench_case cases[MAX_CASES];
    size_t count = build_cases(cases, process, script, body_size);
    if (count == 0)
        bench_fail(PROGRAM, "process %s has no step with a condition", name);
    size_t nodes_per_round = 0;
    for (size_t i = 0; i < count; i++) {
        nodes_per_round += cases[i].nodes;
        if (list)
            fprintf(stderr, "case %zu: step %s nodes %zu decided at %s\n", i + 1,
                    cases[i].step->id, cases[i].nodes, cases[i].path);
    }

    /* A short first pass warms the caches and the allocator. */
    time_conditions(cases, count, script, 0.2);
    loop_result c = time_conditions(cases, count, script, duration);
    loop_result d = time_decisions(cases, count, process, script, duration / 2);
    printf("cases=%zu nodes_per_evaluation=%.2f evaluations_per_s=%.0f nodes_per_s=%.0f "
           "ns_per_node=%.1f decisions_per_s=%.0f\n",
           count, (double)nodes_per_round / (double)count,
           (double)c.evaluations / c.seconds, (double)c.nodes / c.seconds,
           c.seconds * 1e9 / (double)c.nodes, (double)d.evaluations / d.seconds);

    for (size_t i = 0; i < count; i++)
        json_decref(cases[i].data);
    cv_rules_destroy(rules);
    return 0;
}
