/*
 * JSON <-> Lua conversion for the rules sandbox. Data is converted once per
 * call into Lua, so both directions size tables up front and avoid
 * formatting anything on the success path: the path of a bad value
 * ("result.items[2]") is kept as a trail of keys and formatted only when
 * the conversion fails.
 */
#include "rules/luajson.h"

#include <ctype.h>
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Registry key of the `null` sentinel; its address is the key. */
static const char null_key = 0;

/* Deepest JSON pushed into Lua; the engine's documents are far shallower. */
#define PUSH_MAX_DEPTH 512

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

void cv_luajson_init(lua_State *L)
{
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "null");
    lua_setfield(L, -2, "__name");
    /* Hides the metatable from getmetatable, so rules cannot change how null behaves. */
    lua_pushliteral(L, "null");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &null_key);
}

void cv_luajson_push_null(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key);
}

bool cv_luajson_is_null(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TUSERDATA)
        return false;
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key);
    bool same = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return same;
}

/* ---- JSON to Lua ---- */

static int table_size_hint(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

static void push_value(lua_State *L, const json_t *value, int null_index, int depth)
{
    if (depth > PUSH_MAX_DEPTH)
        luaL_error(L, "JSON nesting deeper than %d levels", PUSH_MAX_DEPTH);
    luaL_checkstack(L, 3, "JSON nesting too deep");

    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        const char *key;
        size_t key_len;
        json_t *item;
        lua_createtable(L, 0, table_size_hint(json_object_size(value)));
        json_object_keylen_foreach((json_t *)value, key, key_len, item) {
            lua_pushlstring(L, key, key_len);
            push_value(L, item, null_index, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(value);
        lua_createtable(L, table_size_hint(n), 0);
        for (size_t i = 0; i < n; i++) {
            push_value(L, json_array_get(value, i), null_index, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(value), json_string_length(value));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(value));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(value));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    case JSON_NULL:
        lua_pushvalue(L, null_index);
        break;
    }
}

void cv_luajson_push(lua_State *L, const json_t *value)
{
    if (value == NULL) {
        lua_pushnil(L);
        return;
    }
    luaL_checkstack(L, 4, "no room to convert JSON");
    cv_luajson_push_null(L);
    int null_index = lua_gettop(L);
    push_value(L, value, null_index, 0);
    lua_remove(L, null_index);
}

/* ---- Lua to JSON ---- */

/* One step of the path from the root to the value being converted. */
typedef struct trail_step {
    const char *key; /* NULL for an array index */
    size_t key_len;
    lua_Integer index;
} trail_step;

typedef struct converter {
    lua_State *L;
    const char *root;
    cv_error *err;
    trail_step trail[CV_LUAJSON_MAX_DEPTH + 1];
} converter;

static bool is_identifier(const char *key, size_t len)
{
    if (len == 0 || isdigit((unsigned char)key[0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)key[i]) && key[i] != '_')
            return false;
    }
    return true;
}

static void format_path(const converter *c, int depth, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "%s", c->root);
    for (int i = 0; i < depth && n < size; i++) {
        const trail_step *step = &c->trail[i];
        int len = step->key_len > 100 ? 100 : (int)step->key_len;
        if (step->key == NULL)
            n += (size_t)snprintf(buf + n, size - n, "[%lld]", (long long)step->index);
        else if (is_identifier(step->key, step->key_len))
            n += (size_t)snprintf(buf + n, size - n, ".%.*s", len, step->key);
        else
            n += (size_t)snprintf(buf + n, size - n, "[\"%.*s\"]", len, step->key);
    }
}

static cv_status fail(const converter *c, int depth, const char *what)
{
    char path[256];
    format_path(c, depth, path, sizeof path);
    return cv_error_set(c->err, CV_ERR_INVALID, "%s: %s", path, what);
}

static cv_status convert(converter *c, int idx, int depth, json_t **out);

/* Describes a key that fits neither a JSON array nor an object. */
static cv_status fail_key(const converter *c, int key_index, int depth)
{
    lua_State *L = c->L;
    char what[160];
    if (lua_type(L, key_index) == LUA_TNUMBER) {
        if (lua_isinteger(L, key_index))
            snprintf(what, sizeof what,
                     "table key %lld cannot be converted to JSON (list keys run from 1)",
                     (long long)lua_tointeger(L, key_index));
        else
            snprintf(what, sizeof what,
                     "table key %.14g cannot be converted to JSON (keys must be strings or list "
                     "positions 1..n)",
                     (double)lua_tonumber(L, key_index));
    } else {
        snprintf(what, sizeof what,
                 "a table key of type %s cannot be converted to JSON (keys must be strings or "
                 "list positions 1..n)",
                 luaL_typename(L, key_index));
    }
    return fail(c, depth, what);
}

typedef struct table_shape {
    size_t count;
    size_t strings;
    lua_Integer max_index;
    char string_key[64]; /* the first string key in byte order, for messages */
    lua_Integer an_index; /* the lowest list position */
} table_shape;

/* Counts the keys of the table at idx by kind; fails on a key that fits neither form. */
static cv_status measure(converter *c, int idx, int depth, table_shape *shape)
{
    lua_State *L = c->L;
    memset(shape, 0, sizeof *shape);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        shape->count++;
        /* Messages name the first string key and the lowest position, whatever the table order. */
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            if (shape->strings++ == 0 || strcmp(key, shape->string_key) < 0)
                snprintf(shape->string_key, sizeof shape->string_key, "%s", key);
        } else if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2) &&
                   lua_tointeger(L, -2) >= 1) {
            lua_Integer index = lua_tointeger(L, -2);
            if (shape->an_index == 0 || index < shape->an_index)
                shape->an_index = index;
            if (index > shape->max_index)
                shape->max_index = index;
        } else {
            cv_status status = fail_key(c, -2, depth);
            lua_pop(L, 2);
            return status;
        }
        lua_pop(L, 1);
    }
    return CV_OK;
}

static cv_status convert_object(converter *c, int idx, int depth, json_t **out)
{
    lua_State *L = c->L;
    json_t *object = json_object();
    if (object == NULL)
        return cv_error_set(c->err, CV_ERR_NOMEM, "out of memory converting %s to JSON", c->root);

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t key_len;
        const char *key = lua_tolstring(L, -2, &key_len);
        json_t *child = NULL;
        c->trail[depth] = (trail_step){.key = key, .key_len = key_len};
        cv_status status = convert(c, lua_gettop(L), depth + 1, &child);
        if (status == CV_OK && json_object_setn_new(object, key, key_len, child) != 0)
            status = fail(c, depth + 1, "the key is not valid UTF-8");
        lua_pop(L, 1);
        if (status != CV_OK) {
            lua_pop(L, 1);
            json_decref(object);
            return status;
        }
    }
    *out = object;
    return CV_OK;
}

static cv_status convert_array(converter *c, int idx, int depth, size_t count, json_t **out)
{
    lua_State *L = c->L;
    json_t *array = json_array();
    if (array == NULL)
        return cv_error_set(c->err, CV_ERR_NOMEM, "out of memory converting %s to JSON", c->root);

    for (size_t i = 1; i <= count; i++) {
        json_t *child = NULL;
        lua_rawgeti(L, idx, (lua_Integer)i);
        c->trail[depth] = (trail_step){.index = (lua_Integer)i};
        cv_status status = convert(c, lua_gettop(L), depth + 1, &child);
        lua_pop(L, 1);
        if (status == CV_OK && json_array_append_new(array, child) != 0)
            status = cv_error_set(c->err, CV_ERR_NOMEM, "out of memory converting %s to JSON",
                                  c->root);
        if (status != CV_OK) {
            json_decref(array);
            return status;
        }
    }
    *out = array;
    return CV_OK;
}

/* Names the first missing position of a list whose keys have a gap. */
static cv_status fail_gap(const converter *c, int idx, int depth, const table_shape *shape)
{
    lua_Integer missing = 1;
    while (missing < shape->max_index && lua_rawgeti(c->L, idx, missing) != LUA_TNIL) {
        lua_pop(c->L, 1);
        missing++;
    }
    lua_pop(c->L, 1);
    char what[160];
    snprintf(what, sizeof what,
             "a list has no item [%lld] but has one at [%lld] (a JSON array needs keys 1..n "
             "without gaps)",
             (long long)missing, (long long)shape->max_index);
    return fail(c, depth, what);
}

static cv_status convert_table(converter *c, int idx, int depth, json_t **out)
{
    if (depth >= CV_LUAJSON_MAX_DEPTH) {
        char what[96];
        snprintf(what, sizeof what, "nesting deeper than %d levels (does a table contain itself?)",
                 CV_LUAJSON_MAX_DEPTH);
        return fail(c, depth, what);
    }
    if (!lua_checkstack(c->L, 4))
        return cv_error_set(c->err, CV_ERR_NOMEM, "out of Lua stack converting %s to JSON",
                            c->root);

    table_shape shape;
    cv_status status = measure(c, idx, depth, &shape);
    if (status != CV_OK)
        return status;
    if (shape.strings == shape.count)
        return convert_object(c, idx, depth, out);
    if (shape.strings > 0) {
        char what[192];
        snprintf(what, sizeof what,
                 "a table mixes string keys and list items (key \"%s\" and [%lld]); JSON needs "
                 "either an object or an array",
                 shape.string_key, (long long)shape.an_index);
        return fail(c, depth, what);
    }
    if ((size_t)shape.max_index != shape.count)
        return fail_gap(c, idx, depth, &shape);
    return convert_array(c, idx, depth, shape.count, out);
}

static cv_status convert_number(converter *c, int idx, int depth, json_t **out)
{
    lua_State *L = c->L;
    if (lua_isinteger(L, idx)) {
        *out = json_integer((json_int_t)lua_tointeger(L, idx));
    } else {
        double d = (double)lua_tonumber(L, idx);
        if (isnan(d))
            return fail(c, depth, "cannot convert NaN to JSON");
        if (isinf(d))
            return fail(c, depth, "cannot convert an infinite number to JSON");
        *out = json_real(d);
    }
    if (*out == NULL)
        return cv_error_set(c->err, CV_ERR_NOMEM, "out of memory converting %s to JSON", c->root);
    return CV_OK;
}

static cv_status convert(converter *c, int idx, int depth, json_t **out)
{
    lua_State *L = c->L;
    int type = lua_type(L, idx);
    char what[96];

    switch (type) {
    case LUA_TNIL:
        *out = json_null();
        return CV_OK;
    case LUA_TBOOLEAN:
        *out = json_boolean(lua_toboolean(L, idx));
        return CV_OK;
    case LUA_TNUMBER:
        return convert_number(c, idx, depth, out);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        *out = json_stringn(s, len);
        return *out ? CV_OK : fail(c, depth, "the string is not valid UTF-8");
    }
    case LUA_TTABLE:
        return convert_table(c, idx, depth, out);
    case LUA_TUSERDATA:
        if (cv_luajson_is_null(L, idx)) {
            *out = json_null();
            return CV_OK;
        }
        break;
    default:
        break;
    }
    snprintf(what, sizeof what, "cannot convert a %s to JSON", lua_typename(L, type));
    return fail(c, depth, what);
}

cv_status cv_luajson_to_json(lua_State *L, int idx, const char *root, json_t **out,
                             cv_error *err)
{
    converter c = {.L = L, .root = root ? root : "value", .err = err};
    json_t *value = NULL;
    int top = lua_gettop(L);

    cv_status status = convert(&c, lua_absindex(L, idx), 0, &value);
    lua_settop(L, top);
    if (status == CV_OK)
        *out = value;
    return status;
}
