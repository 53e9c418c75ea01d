/*
 * JSON <-> Lua conversion: round trips of every JSON type, integers that
 * stay integers, the `null` sentinel both ways, and the errors that name
 * the path of a value JSON cannot hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "rules/luajson.h"

static int setup(void **state)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    cv_luajson_init(L);
    cv_luajson_push_null(L);
    lua_setglobal(L, "null");
    *state = L;
    return 0;
}

static int teardown(void **state)
{
    lua_close(*state);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (value == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return value;
}

static char *dump(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
}

/* Pushes text as JSON into Lua and converts it back; returns the compact JSON text. */
static char *round_trip(lua_State *L, const char *text)
{
    json_t *value = parse(text);
    json_t *back = NULL;
    cv_error err = {0};
    cv_luajson_push(L, value);
    cv_status status = cv_luajson_to_json(L, -1, "value", &back, &err);
    lua_pop(L, 1);
    json_decref(value);
    if (status != CV_OK)
        fail_msg("round trip of %s failed: %s", text, err.text);
    char *result = dump(back);
    json_decref(back);
    return result;
}

/* Evaluates a Lua expression and converts it; returns the status, with the JSON text or error. */
static cv_status convert(lua_State *L, const char *expression, char **text, cv_error *err)
{
    char code[1024];
    snprintf(code, sizeof code, "return %s", expression);
    if (luaL_dostring(L, code) != LUA_OK)
        fail_msg("bad test Lua %s: %s", expression, lua_tostring(L, -1));
    json_t *value = NULL;
    int top = lua_gettop(L);
    cv_status status = cv_luajson_to_json(L, -1, "result", &value, err);
    assert_int_equal(lua_gettop(L), top);
    lua_pop(L, 1);
    *text = status == CV_OK ? dump(value) : NULL;
    json_decref(value);
    return status;
}

static void assert_converts(lua_State *L, const char *expression, const char *expected)
{
    char *text = NULL;
    cv_error err = {0};
    if (convert(L, expression, &text, &err) != CV_OK)
        fail_msg("%s did not convert: %s", expression, err.text);
    assert_string_equal(text, expected);
    free(text);
}

static void assert_refused(lua_State *L, const char *expression, const char *expected)
{
    char *text = NULL;
    cv_error err = {0};
    assert_int_equal(convert(L, expression, &text, &err), CV_ERR_INVALID);
    assert_null(text);
    assert_string_equal(err.text, expected);
}

static void test_round_trips(void **state)
{
    static const char *const cases[] = {
        "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":\"e\"}}",
        "[true,false,null,\"x\"]",
        "[[1,[2,[3]]],{\"k\":[{\"z\":null}]}]",
        "\"caf\\u00e9 \\u2603\"",
        "{\"big\":9007199254740993,\"neg\":-42,\"real\":2.5}",
        "{\"\":\"empty key\",\"with.dot\":1}",
        "null",
        "{}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *back = round_trip(*state, cases[i]);
        json_t *value = parse(cases[i]);
        char *expected = dump(value);
        assert_string_equal(back, expected);
        free(back);
        free(expected);
        json_decref(value);
    }
}

static void test_empty_array_becomes_object(void **state)
{
    /* Lua cannot tell {} from [], so an empty table comes back as an object. */
    char *back = round_trip(*state, "{\"items\":[]}");
    assert_string_equal(back, "{\"items\":{}}");
    free(back);
}

static void test_types_in_lua(void **state)
{
    lua_State *L = *state;
    json_t *value = parse("{\"n\":7,\"r\":7.5,\"z\":null,\"list\":[10,20]}");
    cv_luajson_push(L, value);
    lua_setglobal(L, "doc");
    json_decref(value);

    assert_int_equal(luaL_dostring(L, "return math.type(doc.n), math.type(doc.r), doc.z == null,"
                                      " #doc.list, doc.list[1], doc.list[2]"),
                     LUA_OK);
    assert_string_equal(lua_tostring(L, -6), "integer");
    assert_string_equal(lua_tostring(L, -5), "float");
    assert_true(lua_toboolean(L, -4));
    assert_int_equal(lua_tointeger(L, -3), 2);
    assert_int_equal(lua_tointeger(L, -2), 10);
    assert_int_equal(lua_tointeger(L, -1), 20);
    lua_settop(L, 0);

    cv_luajson_push(L, NULL);
    assert_true(lua_isnil(L, -1));
    lua_pop(L, 1);
}

static void test_lua_values_convert(void **state)
{
    lua_State *L = *state;
    assert_converts(L, "nil", "null");
    assert_converts(L, "null", "null");
    assert_converts(L, "{ a = null, b = false }", "{\"a\":null,\"b\":false}");
    assert_converts(L, "{ 1, 2.5, 'x' }", "[1,2.5,\"x\"]");
    assert_converts(L, "{}", "{}");
    assert_converts(L, "3.0", "3.0");
    assert_converts(L, "{ [1.0] = 'a', [2] = 'b' }", "[\"a\",\"b\"]");
    assert_converts(L, "{ list = { { id = 1 } } }", "{\"list\":[{\"id\":1}]}");
}

static void test_refusals_name_the_path(void **state)
{
    lua_State *L = *state;
    assert_refused(L, "{ items = { 1, function() end } }",
                   "result.items[2]: cannot convert a function to JSON");
    assert_refused(L, "{ co = coroutine.create(print) }",
                   "result.co: cannot convert a thread to JSON");
    assert_refused(L, "{ ['odd key'] = { io.stdout } }",
                   "result[\"odd key\"][1]: cannot convert a userdata to JSON");
    assert_refused(L, "{ x = 0/0 }", "result.x: cannot convert NaN to JSON");
    assert_refused(L, "math.huge", "result: cannot convert an infinite number to JSON");
    assert_refused(L, "{ a = { 1, 2, name = 'x' } }",
                   "result.a: a table mixes string keys and list items (key \"name\" and [1]); "
                   "JSON needs either an object or an array");
    assert_refused(L, "{ [1] = 'a', [3] = 'c' }",
                   "result: a list has no item [2] but has one at [3] (a JSON array needs keys "
                   "1..n without gaps)");
    assert_refused(L, "{ [true] = 1 }",
                   "result: a table key of type boolean cannot be converted to JSON (keys must "
                   "be strings or list positions 1..n)");
    assert_refused(L, "{ [0] = 'zero' }",
                   "result: table key 0 cannot be converted to JSON (list keys run from 1)");
    assert_refused(L, "{ [1.5] = 'x' }",
                   "result: table key 1.5 cannot be converted to JSON (keys must be strings or "
                   "list positions 1..n)");
    assert_refused(L, "'\\xff'", "result: the string is not valid UTF-8");
}

static void test_cycles_hit_the_depth_limit(void **state)
{
    lua_State *L = *state;
    char *text = NULL;
    cv_error err = {0};
    assert_int_equal(convert(L, "(function() local t = {} t.self = t return t end)()", &text, &err),
                     CV_ERR_INVALID);
    assert_non_null(strstr(err.text, "nesting deeper than 64 levels (does a table contain itself?)"));
    assert_int_equal(strncmp(err.text, "result.self.self.self", 21), 0);

    /* 64 levels of tables are fine: 63 lists around an empty table. */
    char expected[160];
    memset(expected, '[', 63);
    memcpy(expected + 63, "{}", 2);
    memset(expected + 65, ']', 63);
    expected[128] = '\0';
    assert_converts(L, "(function() local t = {} for i = 1, 63 do t = { t } end return t end)()",
                    expected);
    assert_int_equal(convert(L, "(function() local t = {} for i = 1, 64 do t = { t } end return t end)()",
                             &text, &err),
                     CV_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_array_becomes_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types_in_lua, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_values_convert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_name_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycles_hit_the_depth_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
