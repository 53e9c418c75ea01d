/*
 * Typed reads from the Lua tables of a definition, each reporting a fault
 * with its line when a value has the wrong type. Tables are read with raw
 * access only, so metatables in rules cannot run code while the loader
 * reads, and nothing here raises a Lua error except on running out of
 * memory (the build runs inside a protected call for that).
 */
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "rules/rules_internal.h"

static void vfault(cv_build *b, size_t at, bool with_prefix, const char *fmt, va_list ap)
{
    char message[1024];
    vsnprintf(message, sizeof message, fmt, ap);
    size_t where = at != CV_SOURCE_NOT_FOUND ? at : b->at;
    cv_rules_fault(b->load, b->source->path, cv_source_line(b->source, where), "%s%s",
                   with_prefix ? b->prefix : "", message);
}

void cv_build_fault(cv_build *b, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfault(b, at, true, fmt, ap);
    va_end(ap);
}

void cv_build_fault_plain(cv_build *b, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfault(b, at, false, fmt, ap);
    va_end(ap);
}

size_t cv_build_key_at(const cv_build *b, size_t from, const char *key)
{
    size_t at = cv_source_find_key(b->source, from, key);
    return at != CV_SOURCE_NOT_FOUND ? at : from;
}

int cv_build_get(lua_State *L, int idx, const char *key)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, key);
    return lua_rawget(L, idx);
}

bool cv_build_is_list(lua_State *L, int idx, size_t *n)
{
    size_t count = 0;
    lua_Integer max = 0;
    bool only_positions = true;

    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        count++;
        if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            if (lua_tointeger(L, -2) > max)
                max = lua_tointeger(L, -2);
        } else {
            only_positions = false;
        }
        lua_pop(L, 1);
    }
    if (!only_positions || (size_t)max != count)
        return false;
    *n = count;
    return true;
}

static bool is_allowed(const char *key, const char *const *allowed)
{
    for (const char *const *a = allowed; *a != NULL; a++) {
        if (strcmp(*a, key) == 0)
            return true;
    }
    return false;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void join_allowed(const char *const *allowed, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *const *a = allowed; *a != NULL && n < size; a++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", a == allowed ? "" : ", ", *a);
}

/* Describes a key that is not a string, such as "[1]" or "of type boolean". */
static void describe_odd_key(lua_State *L, int idx, char *buf, size_t size)
{
    if (lua_type(L, idx) == LUA_TNUMBER && lua_isinteger(L, idx))
        snprintf(buf, size, "[%lld]", (long long)lua_tointeger(L, idx));
    else
        snprintf(buf, size, "of type %s", luaL_typename(L, idx));
}

size_t cv_build_check_keys(cv_build *b, int idx, size_t from, const char *subject,
                           const char *const *allowed)
{
    lua_State *L = b->L;
    char expected[512];
    char **unknown = NULL;
    size_t count = 0;
    size_t odd = 0;

    join_allowed(allowed, expected, sizeof expected);
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            char key[64];
            describe_odd_key(L, -1, key, sizeof key);
            cv_build_fault_plain(b, from, "unknown key %s in %s (expected one of: %s)", key, subject,
                                 expected);
            odd++;
            continue;
        }
        if (is_allowed(lua_tostring(L, -1), allowed))
            continue;
        char **grown = realloc(unknown, (count + 1) * sizeof *grown);
        if (grown == NULL)
            continue;
        unknown = grown;
        unknown[count] = strdup(lua_tostring(L, -1));
        if (unknown[count] != NULL)
            count++;
    }

    /* Table order varies from run to run; sorted faults read the same every time. */
    if (count > 0)
        qsort(unknown, count, sizeof *unknown, compare_strings);
    for (size_t i = 0; i < count; i++) {
        cv_build_fault_plain(b, cv_source_find_key(b->source, from, unknown[i]),
                             "unknown key \"%s\" in %s (expected one of: %s)", unknown[i], subject,
                             expected);
    }
    cv_build_free_strings(unknown, count);
    return count + odd;
}

bool cv_build_string(cv_build *b, int idx, const char *key, const char *label, size_t from,
                     char **out)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, key);
    *out = NULL;
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return true;
    }
    if (type != LUA_TSTRING) {
        cv_build_fault(b, cv_build_key_at(b, from, key), "%s must be a string, got %s", label,
                       lua_typename(L, type));
        lua_pop(L, 1);
        return false;
    }
    *out = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return *out != NULL;
}

void cv_build_free_strings(char **strings, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(strings[i]);
    free(strings);
}

/* Reads the list on top of the stack into new strings; reports each element that is not one. */
static bool read_strings(cv_build *b, size_t at, const char *label, size_t n, char ***out)
{
    lua_State *L = b->L;
    char **strings = calloc(n ? n : 1, sizeof *strings);
    bool ok = strings != NULL;

    for (size_t i = 0; ok && i < n; i++) {
        int type = lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if (type == LUA_TSTRING) {
            strings[i] = strdup(lua_tostring(L, -1));
        } else {
            cv_build_fault(b, at, "%s[%zu] must be a string, got %s", label, i + 1,
                           lua_typename(L, type));
            ok = false;
        }
        lua_pop(L, 1);
    }
    if (!ok) {
        cv_build_free_strings(strings, n);
        return false;
    }
    *out = strings;
    return true;
}

bool cv_build_string_list(cv_build *b, int idx, const char *key, const char *label,
                          const char *what, size_t from, char ***out, size_t *count,
                          bool *present)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, key);
    size_t at = cv_build_key_at(b, from, key);
    size_t n = 0;
    bool ok = false;

    *present = type != LUA_TNIL;
    *out = NULL;
    *count = 0;
    if (type == LUA_TNIL) {
        ok = true;
    } else if (type == LUA_TSTRING) {
        cv_build_fault(b, at, "%s must be a list of %s, got a string (write { \"%s\" })", label,
                       what, lua_tostring(L, -1));
    } else if (type != LUA_TTABLE) {
        cv_build_fault(b, at, "%s must be a list of %s, got %s", label, what,
                       lua_typename(L, type));
    } else if (!cv_build_is_list(L, -1, &n)) {
        cv_build_fault(b, at, "%s must be a list of %s, got a table with other keys", label, what);
    } else {
        ok = read_strings(b, at, label, n, out);
        if (ok)
            *count = n;
    }
    lua_pop(L, 1);
    return ok;
}

static bool seconds_to_ms(cv_build *b, size_t at, const char *label, double seconds,
                          int64_t *out_ms)
{
    if (!isfinite(seconds) || seconds < 0 || seconds > 1e9) {
        cv_build_fault(b, at, "%s must be a duration such as \"30s\" or a number of seconds, got %g",
                       label, seconds);
        return false;
    }
    *out_ms = (int64_t)llround(seconds * 1000.0);
    return true;
}

bool cv_build_duration(cv_build *b, int idx, const char *key, const char *label, size_t from,
                       int64_t *out_ms, bool *present)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, key);
    size_t at = cv_build_key_at(b, from, key);
    bool ok = false;
    int64_t ms = 0;

    *present = type != LUA_TNIL;
    if (type == LUA_TNIL) {
        ok = true;
    } else if (type == LUA_TNUMBER) {
        ok = seconds_to_ms(b, at, label, (double)lua_tonumber(L, -1), &ms);
    } else if (type == LUA_TSTRING) {
        cv_error err;
        ok = cv_text_parse_duration(lua_tostring(L, -1), &ms, &err) == CV_OK;
        if (!ok)
            cv_build_fault(b, at, "%s: %s", label, err.text);
    } else {
        cv_build_fault(b, at, "%s must be a duration such as \"30s\" or a number of seconds, got %s",
                       label, lua_typename(L, type));
    }
    lua_pop(L, 1);
    if (ok && *present)
        *out_ms = ms;
    return ok;
}

bool cv_build_check_token(cv_build *b, size_t at, const char *what, const char *name)
{
    if (cv_text_is_token(name))
        return true;
    cv_build_fault(b, at, "%s \"%s\" is not a valid name (use letters, digits, \"_\" and \"-\")",
                   what, name);
    return false;
}

static const char *kind_name(cv_decl_kind kind)
{
    switch (kind) {
    case CV_DECL_PROCESS:
        return "process";
    case CV_DECL_MODULE:
        return "module";
    default:
        return "operation";
    }
}

static const char *usage_of(cv_decl_kind kind)
{
    return kind == CV_DECL_OPERATION ? "(function(v, arg) ... end)" : "{ ... }";
}

/* Reports decl when an earlier declaration of the same kind has its name. */
static bool is_duplicate(cv_build *b, cv_loading *load, const cv_decl *decl)
{
    for (const cv_decl *other = load->decls; other < decl; other++) {
        if (other->kind == decl->kind && other->name != NULL && strcmp(other->name, decl->name) == 0) {
            cv_build_fault_plain(b, b->at, "%s \"%s\" is already defined at %s:%d",
                                 kind_name(decl->kind), decl->name, other->source->path,
                                 other->line);
            return true;
        }
    }
    return false;
}

bool cv_build_open_decl(cv_build *b, cv_loading *load, const cv_decl *decl)
{
    const char *kind = kind_name(decl->kind);
    int expected = decl->kind == CV_DECL_OPERATION ? LUA_TFUNCTION : LUA_TTABLE;

    b->load = load;
    b->L = load->rules->L;
    b->source = decl->source;
    b->at = cv_source_line_offset(decl->source, decl->line);
    snprintf(b->prefix, sizeof b->prefix, "%s \"%s\": ", kind, decl->name ? decl->name : "?");
    snprintf(b->subject, sizeof b->subject, "%s \"%s\"", kind, decl->name ? decl->name : "?");

    if (decl->name == NULL) {
        cv_build_fault_plain(b, b->at, "%s name must be a string, got %s", kind, decl->name_type);
        return false;
    }
    if (!cv_text_is_token(decl->name))
        cv_build_fault_plain(b, b->at,
                             "%s name \"%s\" is not a valid name (use letters, digits, \"_\" and "
                             "\"-\")",
                             kind, decl->name);
    if (!decl->given) {
        cv_build_fault_plain(b, b->at, "%s \"%s\" has no definition (write %s \"%s\" %s)", kind,
                             decl->name, kind, decl->name, usage_of(decl->kind));
        return false;
    }
    if (is_duplicate(b, load, decl))
        return false;

    lua_rawgeti(b->L, LUA_REGISTRYINDEX, decl->ref);
    if (lua_type(b->L, -1) != expected) {
        cv_build_fault_plain(b, b->at, "%s \"%s\" must be defined by a %s, got %s", kind,
                             decl->name, lua_typename(b->L, expected), luaL_typename(b->L, -1));
        lua_pop(b->L, 1);
        return false;
    }
    return true;
}
