/*
 * Rendering a process as Graphviz dot or Mermaid (see graph.h for what is
 * drawn). Both formats share one walk over the definition; only the way a
 * node or an edge is written differs.
 *
 * Mermaid node ids cannot be quoted, and "-" is part of its arrow syntax, so
 * Mermaid nodes get generated ids (s0, s1, ...) with the step id in a quoted
 * label. In dot every id is quoted. Helper nodes (the start mark, the end of
 * a branch, route notes) use ids that no step id can have.
 */
#include "rules/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonx.h"
#include "engine/condition.h"

/* Maximum length of a value shown in a condition label; longer values end in "...". */
#define MAX_VALUE_TEXT 48

typedef enum edge_style {
    EDGE_SOLID,
    EDGE_DASHED,
    EDGE_DOTTED,
} edge_style;

typedef struct writer {
    FILE *out;
    cv_graph_format format;
    const cv_process *process;
    bool uses_end; /* some decision ends a branch explicitly */
} writer;

bool cv_graph_parse_format(const char *text, cv_graph_format *out)
{
    if (strcmp(text, "dot") == 0) {
        *out = CV_GRAPH_DOT;
        return true;
    }
    if (strcmp(text, "mermaid") == 0) {
        *out = CV_GRAPH_MERMAID;
        return true;
    }
    return false;
}

/* ---- text ---- */

/* Writes text inside a quoted label, escaped for the format. */
static void write_escaped(writer *w, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        char c = *p;
        if (w->format == CV_GRAPH_DOT) {
            if (c == '"' || c == '\\')
                fputc('\\', w->out);
            fputc(c == '\n' ? ' ' : c, w->out);
        } else if (c == '"' || c == '#' || c == '<' || c == '>' || c == '|') {
            /* Mermaid's entity codes: "#34;" is a double quote. */
            fprintf(w->out, "#%d;", (unsigned char)c);
        } else {
            fputc(c == '\n' ? ' ' : c, w->out);
        }
    }
}

static void write_line_break(writer *w)
{
    fputs(w->format == CV_GRAPH_DOT ? "\\n" : "<br/>", w->out);
}

/* Writes the id of step index (quoted in dot). */
static void write_step_id(writer *w, int index)
{
    if (w->format == CV_GRAPH_DOT)
        fprintf(w->out, "\"%s\"", w->process->steps[index].id);
    else
        fprintf(w->out, "s%d", index);
}

/* Writes "condition[2].success[1]: field op value" for a node's test. */
static void describe_node(const cv_cond_node *node, const char *path, char *buf, size_t size)
{
    if (node->when_ref != CV_NO_REF) {
        snprintf(buf, size, "%s: when (Lua)", path);
        return;
    }
    int n = snprintf(buf, size, "%s: %s %s", path, node->field.text ? node->field.text : "?",
                     node->op.text ? node->op.text : "?");
    if (n < 0 || (size_t)n >= size)
        return;
    if (node->has_value_field) {
        snprintf(buf + n, size - (size_t)n, " %s", node->value_field.text);
    } else if (node->value != NULL) {
        char *value = cv_json_dump(node->value);
        if (value == NULL)
            return;
        if (strlen(value) > MAX_VALUE_TEXT)
            strcpy(value + MAX_VALUE_TEXT - 3, "...");
        snprintf(buf + n, size - (size_t)n, " %s", value);
        free(value);
    }
}

/* ---- nodes and edges ---- */

static void write_step_node(writer *w, int index)
{
    const cv_step *step = &w->process->steps[index];
    fputs("  ", w->out);
    write_step_id(w, index);
    fputs(w->format == CV_GRAPH_DOT ? " [label=\"" : "[\"", w->out);
    write_escaped(w, step->id);
    write_line_break(w);
    write_escaped(w, step->subsystem);
    if (step->transport != CV_TRANSPORT_NATS) {
        static const char *const names[] = {"nats", "http", "queue", "lua"};
        write_line_break(w);
        fprintf(w->out, "(%s)", names[step->transport]);
    }
    fputs(w->format == CV_GRAPH_DOT ? "\"];\n" : "\"]\n", w->out);
}

/* Writes an edge from the node written by `from` to the one written by `to`. */
static void write_edge_ids(writer *w, const char *from, const char *to, edge_style style,
                           const char *label)
{
    if (w->format == CV_GRAPH_DOT) {
        static const char *const styles[] = {"solid", "dashed", "dotted"};
        fprintf(w->out, "  %s -> %s", from, to);
        if (label != NULL || style != EDGE_SOLID) {
            fprintf(w->out, " [style=%s", styles[style]);
            if (label != NULL) {
                fputs(", label=\"", w->out);
                write_escaped(w, label);
                fputc('"', w->out);
            }
            fputc(']', w->out);
        }
        fputs(";\n", w->out);
        return;
    }
    fprintf(w->out, "  %s %s", from, style == EDGE_SOLID ? "-->" : "-.->");
    if (label != NULL) {
        fputs("|\"", w->out);
        write_escaped(w, label);
        fputs("\"|", w->out);
    }
    fprintf(w->out, " %s\n", to);
}

/* Formats the id of step index into buf. */
static const char *step_ref(writer *w, int index, char *buf, size_t size)
{
    if (w->format == CV_GRAPH_DOT)
        snprintf(buf, size, "\"%s\"", w->process->steps[index].id);
    else
        snprintf(buf, size, "s%d", index);
    return buf;
}

static const char *end_ref(writer *w)
{
    w->uses_end = true;
    return w->format == CV_GRAPH_DOT ? "\"(end)\"" : "finish";
}

static void write_step_edge(writer *w, int from, int to, edge_style style, const char *label)
{
    char a[160];
    char b[160];
    write_edge_ids(w, step_ref(w, from, a, sizeof a), step_ref(w, to, b, sizeof b), style, label);
}

/* Edges from step index to every step of list; an empty list ends the branch. */
static void write_list_edges(writer *w, int index, const cv_step_list *list, edge_style style,
                             const char *label)
{
    char a[160];
    if (list->count == 0)
        write_edge_ids(w, step_ref(w, index, a, sizeof a), end_ref(w), style, label);
    for (size_t i = 0; i < list->count; i++)
        write_step_edge(w, index, list->steps[i], style, label);
}

static void write_condition_edges(writer *w, int index, const cv_cond_list *list,
                                  const char *prefix)
{
    for (size_t i = 0; i < list->count; i++) {
        const cv_cond_node *node = &list->nodes[i];
        char path[CV_DECISION_PATH_MAX];
        char label[CV_DECISION_PATH_MAX + 160];
        char nested[CV_DECISION_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s[%zu]", prefix, i + 1);
        if (node->has_result) {
            describe_node(node, path, label, sizeof label);
            write_list_edges(w, index, &node->result, EDGE_SOLID, label);
        }
        snprintf(nested, sizeof nested, "%s.success", path);
        write_condition_edges(w, index, &node->success, nested);
        snprintf(nested, sizeof nested, "%s.failure", path);
        write_condition_edges(w, index, &node->failure, nested);
    }
}

static void write_route(writer *w, int index)
{
    char from[160];
    char note[64];
    step_ref(w, index, from, sizeof from);
    if (w->format == CV_GRAPH_DOT) {
        snprintf(note, sizeof note, "\"(route) %s\"", w->process->steps[index].id);
        fprintf(w->out, "  %s [shape=note, label=\"chosen by route at run time\"];\n", note);
    } else {
        snprintf(note, sizeof note, "r%d", index);
        fprintf(w->out, "  %s>\"chosen by route at run time\"]\n", note);
    }
    write_edge_ids(w, from, note, EDGE_DASHED, "route");
}

/* ---- prev links ---- */

static bool list_has(const cv_step_list *list, int index)
{
    for (size_t i = 0; i < list->count; i++) {
        if (list->steps[i] == index)
            return true;
    }
    return false;
}

static bool condition_leads_to(const cv_cond_list *list, int index)
{
    for (size_t i = 0; i < list->count; i++) {
        const cv_cond_node *node = &list->nodes[i];
        if (list_has(&node->result, index) || condition_leads_to(&node->success, index) ||
            condition_leads_to(&node->failure, index))
            return true;
    }
    return false;
}

/* True when an edge from step from to step to is drawn already. */
static bool edge_drawn(const cv_process *process, int from, int to)
{
    const cv_step *step = &process->steps[from];
    return list_has(&step->next, to) || list_has(&step->on_error, to) ||
           condition_leads_to(&step->condition, to);
}

static void write_prev_edges(writer *w, int index)
{
    const cv_step *step = &w->process->steps[index];
    for (size_t i = 0; i < step->prev.count; i++) {
        int from = step->prev.steps[i];
        if (!edge_drawn(w->process, from, index))
            write_step_edge(w, from, index, EDGE_DOTTED, "prev");
    }
}

/* ---- the whole graph ---- */

static void write_header(writer *w)
{
    if (w->format == CV_GRAPH_MERMAID) {
        fputs("flowchart TD\n", w->out);
        fputs("  entry((start))\n", w->out);
        return;
    }
    fputs("digraph \"", w->out);
    write_escaped(w, w->process->name);
    fputs("\" {\n", w->out);
    fputs("  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n", w->out);
    fputs("  edge [fontname=\"Helvetica\", fontsize=10];\n", w->out);
    fputs("  \"(start)\" [shape=circle, label=\"start\"];\n", w->out);
}

static void write_footer(writer *w)
{
    if (w->format == CV_GRAPH_MERMAID) {
        if (w->uses_end)
            fputs("  finish((end))\n", w->out);
        return;
    }
    if (w->uses_end)
        fputs("  \"(end)\" [shape=doublecircle, label=\"end\"];\n", w->out);
    fputs("}\n", w->out);
}

static void write_graph(writer *w)
{
    const cv_process *process = w->process;
    char start[160];

    write_header(w);
    for (size_t i = 0; i < process->step_count; i++)
        write_step_node(w, (int)i);
    if (process->start >= 0)
        write_edge_ids(w, w->format == CV_GRAPH_DOT ? "\"(start)\"" : "entry",
                       step_ref(w, process->start, start, sizeof start), EDGE_SOLID, NULL);

    for (size_t i = 0; i < process->step_count; i++) {
        const cv_step *step = &process->steps[i];
        if (step->has_next)
            write_list_edges(w, (int)i, &step->next, EDGE_SOLID, NULL);
        write_condition_edges(w, (int)i, &step->condition, "condition");
        if (step->route_ref != CV_NO_REF)
            write_route(w, (int)i);
        if (step->has_on_error)
            write_list_edges(w, (int)i, &step->on_error, EDGE_DASHED, "on_error");
    }
    for (size_t i = 0; i < process->step_count; i++)
        write_prev_edges(w, (int)i);
    write_footer(w);
}

cv_status cv_graph_render(char **out, const cv_process *process, cv_graph_format format,
                          cv_error *err)
{
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream(&text, &size);
    if (stream == NULL)
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory drawing process %s", process->name);

    writer w = {stream, format, process, false};
    write_graph(&w);
    bool failed = ferror(stream) != 0;
    if (fclose(stream) != 0 || failed) {
        free(text);
        return cv_error_set(err, CV_ERR_NOMEM, "out of memory drawing process %s", process->name);
    }
    *out = text;
    return CV_OK;
}
