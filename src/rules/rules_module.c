/*
 * Building custom operations and modules from their declarations.
 *
 * A module defines how its subsystem's steps are carried out: over NATS (the
 * default), HTTP, the JetStream queue, or a Lua function in the node.
 * Settings that only one transport uses are refused on the others, because
 * a url on a module whose transport was forgotten would otherwise make a
 * NATS module that silently ignores it.
 */
#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/jsonx.h"
#include "core/text.h"
#include "engine/condition.h"
#include "http/url_template.h"
#include "rules/rules_internal.h"

#define DEFAULT_MAX_RESPONSE ((size_t)1024 * 1024)

static const char *const transport_names[] = {
    [CV_TRANSPORT_NATS] = "nats",
    [CV_TRANSPORT_HTTP] = "http",
    [CV_TRANSPORT_QUEUE] = "queue",
    [CV_TRANSPORT_LUA] = "lua",
};

bool cv_rules_parse_transport(const char *text, cv_transport *out)
{
    for (size_t i = 0; i < sizeof transport_names / sizeof transport_names[0]; i++) {
        if (strcmp(text, transport_names[i]) == 0) {
            *out = (cv_transport)i;
            return true;
        }
    }
    return false;
}

const char *cv_rules_transport_name(cv_transport transport)
{
    return transport_names[transport];
}

const cv_module *cv_rules_find_module(const cv_rules *rules, const char *name)
{
    for (size_t i = 0; i < rules->module_count; i++) {
        if (strcmp(rules->modules[i].name, name) == 0)
            return &rules->modules[i];
    }
    return NULL;
}

int cv_rules_find_operation(void *context, const char *name)
{
    const cv_rules *rules = context;
    for (size_t i = 0; i < rules->operation_count; i++) {
        if (strcmp(rules->operations[i].name, name) == 0)
            return rules->operations[i].ref;
    }
    return CV_NO_REF;
}

/* ---- operations ---- */

/* Reports a custom name that a built-in operation or modifier already has. */
static bool is_built_in(cv_build *b, const char *name)
{
    cv_operation op;
    char probe[160];

    if (cv_operation_parse(&op, name, NULL, NULL, NULL) == CV_OK) {
        cv_operation_free(&op);
        cv_build_fault_plain(b, b->at, "operation \"%s\" is built in and cannot be redefined",
                             name);
        return true;
    }
    /* Names are tokens, so "name|eq" parses only when name is a modifier. */
    snprintf(probe, sizeof probe, "%s|eq", name);
    if (cv_operation_parse(&op, probe, NULL, NULL, NULL) == CV_OK) {
        cv_operation_free(&op);
        cv_build_fault_plain(b, b->at, "operation \"%s\" is a modifier and cannot be redefined",
                             name);
        return true;
    }
    return false;
}

static void add_operation(cv_loading *load, const cv_build *b, cv_decl *decl)
{
    cv_rules *rules = load->rules;
    cv_custom_operation *grown =
        realloc(rules->operations, (rules->operation_count + 1) * sizeof *grown);
    if (grown == NULL)
        return;
    rules->operations = grown;
    cv_custom_operation *op = &rules->operations[rules->operation_count];
    op->name = strdup(decl->name);
    op->file = strdup(b->source->path);
    op->line = decl->line;
    op->ref = luaL_ref(b->L, LUA_REGISTRYINDEX);
    if (op->name == NULL || op->file == NULL) {
        free(op->name);
        free(op->file);
        return;
    }
    rules->operation_count++;
}

void cv_rules_build_operations(cv_loading *load)
{
    for (size_t i = 0; i < load->decl_count; i++) {
        cv_decl *decl = &load->decls[i];
        cv_build b;
        if (decl->kind != CV_DECL_OPERATION || !cv_build_open_decl(&b, load, decl))
            continue;
        if (is_built_in(&b, decl->name)) {
            lua_pop(b.L, 1);
            continue;
        }
        add_operation(load, &b, decl);
    }
}

/* ---- modules ---- */

static const char *const module_keys[] = {
    "description", "transport",    "url",  "method", "headers", "timeout",
    "max_response", "follow_redirects", "run", NULL,
};

/* RFC 9110 token characters, which a header name is made of. */
static bool is_header_name(const char *name)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL)
            return false;
    }
    return true;
}

/* Checks one header (name, and its value on top of the stack) and adds it to headers. */
static void read_header(cv_build *b, size_t at, const char *name, json_t *headers)
{
    lua_State *L = b->L;
    if (!is_header_name(name)) {
        cv_build_fault(b, at, "headers[\"%s\"] is not a valid header name", name);
        return;
    }
    static const char *const framing[] = {"Content-Length", "Transfer-Encoding", "Host",
                                          "Connection", NULL};
    for (size_t i = 0; framing[i] != NULL; i++) {
        if (strcasecmp(name, framing[i]) == 0) {
            cv_build_fault(b, at, "headers[\"%s\"] is set by the HTTP client and cannot be "
                           "given in rules", name);
            return;
        }
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        cv_build_fault(b, at, "headers[\"%s\"] must be a string, got %s", name,
                       luaL_typename(L, -1));
        return;
    }
    size_t len;
    const char *value = lua_tolstring(L, -1, &len);
    if (strlen(value) != len || strpbrk(value, "\r\n") != NULL) {
        cv_build_fault(b, at, "headers[\"%s\"] contains a line break or a NUL byte", name);
        return;
    }
    json_t *text = json_string(value);
    if (text == NULL) {
        cv_build_fault(b, at, "headers[\"%s\"] is not valid UTF-8", name);
        return;
    }
    json_object_set_new(headers, name, text);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the headers table on top of the stack, in name order so that faults come out the same every run. */
static void read_header_table(cv_build *b, size_t at, json_t *headers)
{
    lua_State *L = b->L;
    char **names = NULL;
    size_t count = 0;

    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            cv_build_fault(b, at, "headers has a key of type %s; header names are strings",
                           luaL_typename(L, -1));
            continue;
        }
        char **grown = realloc(names, (count + 1) * sizeof *grown);
        if (grown == NULL)
            continue;
        names = grown;
        names[count] = strdup(lua_tostring(L, -1));
        if (names[count] != NULL)
            count++;
    }
    if (count > 0)
        qsort(names, count, sizeof *names, compare_names);
    for (size_t i = 0; i < count; i++) {
        cv_build_get(L, -1, names[i]);
        read_header(b, at, names[i], headers);
        lua_pop(L, 1);
    }
    cv_build_free_strings(names, count);
}

static void read_headers(cv_build *b, int idx, size_t from, cv_module *module)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, "headers");
    size_t at = cv_build_key_at(b, from, "headers");

    if (type == LUA_TTABLE) {
        module->headers = json_object();
        if (module->headers != NULL)
            read_header_table(b, at, module->headers);
    } else if (type != LUA_TNIL) {
        cv_build_fault(b, at, "headers must be a table of header names to strings, got %s",
                       lua_typename(L, type));
    }
    lua_pop(L, 1);
}

static void read_method(cv_build *b, int idx, size_t from, cv_module *module)
{
    if (!cv_build_string(b, idx, "method", "method", from, &module->method) ||
        module->method == NULL)
        return;
    bool letters = module->method[0] != '\0';
    for (char *p = module->method; *p != '\0'; p++) {
        letters = letters && isalpha((unsigned char)*p);
        *p = (char)toupper((unsigned char)*p);
    }
    if (!letters)
        cv_build_fault(b, cv_build_key_at(b, from, "method"),
                       "method must be an HTTP method name such as \"POST\", got \"%s\"",
                       module->method);
}

static void read_max_response(cv_build *b, int idx, size_t from, cv_module *module)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, "max_response");
    size_t at = cv_build_key_at(b, from, "max_response");
    size_t size = 0;
    bool ok = false;

    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (type == LUA_TNUMBER && lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
        size = (size_t)lua_tointeger(L, -1);
        ok = true;
    } else if (type == LUA_TSTRING) {
        cv_error err;
        ok = cv_text_parse_size(lua_tostring(L, -1), &size, &err) == CV_OK;
        if (!ok)
            cv_build_fault(b, at, "max_response: %s", err.text);
    }
    if (ok && size == 0) {
        cv_build_fault(b, at, "max_response must be greater than zero");
        ok = false;
    } else if (!ok && type != LUA_TSTRING) {
        cv_build_fault(b, at, "max_response must be a size such as \"1MiB\" or a positive number "
                              "of bytes, got %s", lua_typename(L, type));
    }
    if (ok)
        module->max_response = size;
    lua_pop(L, 1);
}

static void read_run(cv_build *b, int idx, size_t from, cv_module *module)
{
    lua_State *L = b->L;
    int type = cv_build_get(L, idx, "run");
    if (type == LUA_TFUNCTION) {
        module->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return;
    }
    if (type != LUA_TNIL)
        cv_build_fault(b, cv_build_key_at(b, from, "run"), "run must be a function, got %s",
                       lua_typename(L, type));
    lua_pop(L, 1);
}

static void read_transport(cv_build *b, int idx, size_t from, cv_module *module)
{
    char *text = NULL;
    module->transport = CV_TRANSPORT_NATS;
    if (!cv_build_string(b, idx, "transport", "transport", from, &text) || text == NULL)
        return;
    if (!cv_rules_parse_transport(text, &module->transport))
        cv_build_fault(b, cv_build_key_at(b, from, "transport"),
                       "unknown transport \"%s\" (expected one of: nats, http, queue, lua)", text);
    free(text);
}

/* Reports a key that the module's transport does not use. */
static void refuse_unused(cv_build *b, int idx, size_t from, const cv_module *module,
                          const char *key, cv_transport user)
{
    lua_State *L = b->L;
    bool given = cv_build_get(L, idx, key) != LUA_TNIL;
    lua_pop(L, 1);
    if (given && module->transport != user)
        cv_build_fault(b, cv_build_key_at(b, from, key),
                       "%s is only used by the %s transport, but transport is \"%s\"", key,
                       cv_rules_transport_name(user), cv_rules_transport_name(module->transport));
}

/* Data may fill the url's path and query, never its scheme, host or port. */
static void check_url_placeholders(cv_build *b, size_t from, const char *url)
{
    cv_error err;
    if (cv_url_template_check(url, &err) != CV_OK)
        cv_build_fault(b, cv_build_key_at(b, from, "url"), "%s", err.text);
}

static void check_transport(cv_build *b, int idx, size_t from, cv_module *module)
{
    static const char *const http_keys[] = {"url", "method", "headers", "max_response",
                                            "follow_redirects", NULL};
    for (const char *const *key = http_keys; *key != NULL; key++)
        refuse_unused(b, idx, from, module, *key, CV_TRANSPORT_HTTP);
    refuse_unused(b, idx, from, module, "run", CV_TRANSPORT_LUA);

    if (module->transport == CV_TRANSPORT_HTTP) {
        if (module->url == NULL)
            cv_build_fault(b, b->at, "transport \"http\" needs a url");
        else if (strncasecmp(module->url, "http://", 7) != 0 &&
                 strncasecmp(module->url, "https://", 8) != 0)
            cv_build_fault(b, cv_build_key_at(b, from, "url"),
                           "url must start with http:// or https://, got \"%s\"", module->url);
        else
            check_url_placeholders(b, from, module->url);
        if (module->method == NULL)
            module->method = strdup("POST");
    }
    if (module->transport == CV_TRANSPORT_LUA && module->run_ref == CV_NO_REF)
        cv_build_fault(b, b->at, "transport \"lua\" needs a run function");
}

static void read_module(cv_build *b, int idx, cv_module *module)
{
    lua_State *L = b->L;
    size_t from = b->at;
    char *description = NULL;
    bool present = false;

    cv_build_check_keys(b, idx, from, b->subject, module_keys);
    cv_build_string(b, idx, "description", "description", from, &description);
    free(description);
    read_transport(b, idx, from, module);
    cv_build_string(b, idx, "url", "url", from, &module->url);
    read_method(b, idx, from, module);
    read_headers(b, idx, from, module);
    if (cv_build_duration(b, idx, "timeout", "timeout", from, &module->timeout_ms, &present) &&
        present && module->timeout_ms <= 0)
        cv_build_fault(b, cv_build_key_at(b, from, "timeout"), "timeout must be greater than zero");
    read_max_response(b, idx, from, module);

    int type = cv_build_get(L, idx, "follow_redirects");
    if (type == LUA_TBOOLEAN)
        module->follow_redirects = lua_toboolean(L, -1);
    else if (type != LUA_TNIL)
        cv_build_fault(b, cv_build_key_at(b, from, "follow_redirects"),
                       "follow_redirects must be a boolean, got %s", lua_typename(L, type));
    lua_pop(L, 1);

    read_run(b, idx, from, module);
    check_transport(b, idx, from, module);
}

void cv_rules_build_modules(cv_loading *load)
{
    cv_rules *rules = load->rules;
    size_t wanted = 0;
    for (size_t i = 0; i < load->decl_count; i++)
        wanted += load->decls[i].kind == CV_DECL_MODULE;
    rules->modules = calloc(wanted ? wanted : 1, sizeof *rules->modules);
    if (rules->modules == NULL)
        return;

    for (size_t i = 0; i < load->decl_count; i++) {
        cv_decl *decl = &load->decls[i];
        cv_build b;
        if (decl->kind != CV_DECL_MODULE || !cv_build_open_decl(&b, load, decl))
            continue;
        cv_module *module = &rules->modules[rules->module_count++];
        module->name = strdup(decl->name);
        module->file = strdup(decl->source->path);
        module->line = decl->line;
        module->run_ref = CV_NO_REF;
        module->max_response = DEFAULT_MAX_RESPONSE;
        read_module(&b, lua_gettop(b.L), module);
        lua_pop(b.L, 1);
    }
}
