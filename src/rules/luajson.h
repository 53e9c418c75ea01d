/*
 * Conversion between JSON (jansson) and Lua values.
 *
 * JSON to Lua: objects become tables, arrays become sequences from 1, null
 * becomes the `null` sentinel, integers stay Lua integers and reals become
 * floats. Lua to JSON: a table whose keys are exactly 1..n becomes an array,
 * an empty table an object, a table with string keys an object; `null` and
 * nil become null. Anything else (functions, other userdata, threads, NaN
 * and infinities, mixed or sparse keys, nesting deeper than 64 levels) is an
 * error that names the value's path, such as "result.items[2]".
 */
#ifndef CV_RULES_LUAJSON_H
#define CV_RULES_LUAJSON_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>

#include "core/status.h"

/* Deepest Lua table nesting converted to JSON; deeper usually means a cycle. */
#define CV_LUAJSON_MAX_DEPTH 64

/*
 * Creates the `null` sentinel of state L (a userdata that prints as "null")
 * and keeps it in the registry. Call once per state, before the others.
 */
void cv_luajson_init(lua_State *L);

/* Pushes the `null` sentinel. */
void cv_luajson_push_null(lua_State *L);

/* True when the value at idx is the `null` sentinel. */
bool cv_luajson_is_null(lua_State *L, int idx);

/*
 * Pushes value (borrowed; NULL pushes nil) as a Lua value. Raises a Lua
 * error when memory runs out, so call it inside a protected call.
 */
void cv_luajson_push(lua_State *L, const json_t *value);

/*
 * Converts the Lua value at idx into *out (a new reference). root names the
 * value in error messages ("result", "params"). Never raises a Lua error
 * and leaves the stack as it found it.
 */
cv_status cv_luajson_to_json(lua_State *L, int idx, const char *root, json_t **out,
                             cv_error *err);

#endif
