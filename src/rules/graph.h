/*
 * Drawing a process as a graph, in Graphviz dot or Mermaid: a node per
 * step (its id, subsystem, and transport when not NATS), the start step
 * marked, and an edge for every way one step can lead to another: `next`
 * (solid), each condition `result` (labelled with its decision path and
 * test), `route` (dashed, to a note, since its targets are known only at
 * run time), `on_error` (dashed) and `prev` links that no other edge draws
 * already (dotted).
 */
#ifndef CV_RULES_GRAPH_H
#define CV_RULES_GRAPH_H

#include <stdbool.h>

#include "core/status.h"
#include "rules/definition.h"

typedef enum cv_graph_format {
    CV_GRAPH_DOT,
    CV_GRAPH_MERMAID,
} cv_graph_format;

/* Parses "dot" or "mermaid". */
bool cv_graph_parse_format(const char *text, cv_graph_format *out);

/* Renders process in format into *out, a new string the caller frees. */
cv_status cv_graph_render(char **out, const cv_process *process, cv_graph_format format,
                          cv_error *err);

#endif
