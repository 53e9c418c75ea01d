/*
 * The engine's view of Lua: the calls that route functions, `when`
 * predicates and custom operations need. The rules module supplies the real
 * implementation (cv_rules_script); unit tests supply fakes, so the
 * condition engine can be tested without a Lua state.
 *
 * Every call borrows its json_t arguments. A call that fails returns a
 * status and fills err; the engine then fails the step with that text.
 */
#ifndef CV_ENGINE_SCRIPT_H
#define CV_ENGINE_SCRIPT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/status.h"

typedef struct cv_script cv_script;

typedef struct cv_script_ops {
    /*
     * Calls route function ref with data. Sets *out_steps to a new reference
     * to an array of step id strings, or to NULL when the function returned
     * nil. A return value that is neither nil nor a list of strings is an
     * error.
     */
    cv_status (*route)(cv_script *script, int ref, const json_t *data, json_t **out_steps,
                       cv_error *err);

    /* Calls `when` predicate ref with data; its result's truthiness lands in *out. */
    cv_status (*when)(cv_script *script, int ref, const json_t *data, bool *out, cv_error *err);

    /* Calls custom operation ref with (value, arg); value NULL means absent (nil). */
    cv_status (*operation)(cv_script *script, int ref, const json_t *value, const json_t *arg,
                           bool *out, cv_error *err);
} cv_script_ops;

struct cv_script {
    const cv_script_ops *ops;
    void *context;
};

#endif
