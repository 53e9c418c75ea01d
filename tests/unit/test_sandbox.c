/*
 * The Lua sandbox: the instruction and memory budgets (and that the state
 * works after either runs out), the libraries rules cannot reach, load for
 * text only, no __gc, read-only library tables and globals, and separate
 * globals per file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lua.h>
#include <string.h>

#include "rules/sandbox.h"

#define TEST_INSTRUCTIONS 200000LL
#define TEST_MEMORY ((size_t)1024 * 1024)

static int setup(void **state)
{
    cv_sandbox *sandbox = NULL;
    cv_error err = {0};
    if (cv_sandbox_create(&sandbox, TEST_INSTRUCTIONS, TEST_MEMORY, &err) != CV_OK)
        fail_msg("cannot create a sandbox: %s", err.text);
    *state = sandbox;
    return 0;
}

static int teardown(void **state)
{
    cv_sandbox_destroy(*state);
    return 0;
}

/* Runs code as the file "chunk.lua"; keeps its first result (or nil) on the stack. */
static cv_status run(cv_sandbox *sandbox, const char *code, cv_error *err)
{
    lua_State *L = cv_sandbox_state(sandbox);
    int results = 0;
    lua_settop(L, 0);
    cv_status status = cv_sandbox_run_file(sandbox, "chunk.lua", code, strlen(code), &results, err);
    if (status == CV_OK && results == 0)
        lua_pushnil(L);
    return status;
}

/* Runs code, which must succeed, and returns its result as a string ("" for nil). */
static const char *run_text(cv_sandbox *sandbox, const char *code)
{
    cv_error err = {0};
    if (run(sandbox, code, &err) != CV_OK)
        fail_msg("chunk failed: %s\n%s", err.text, code);
    const char *text = lua_tostring(cv_sandbox_state(sandbox), -1);
    return text ? text : "";
}

/* Runs code, which must fail with status, and returns the message. */
static const char *run_fail(cv_sandbox *sandbox, const char *code, cv_status status,
                            cv_error *err)
{
    cv_status got = run(sandbox, code, err);
    if (got != status)
        fail_msg("chunk gave %s, expected %s (%s)\n%s", cv_status_name(got),
                 cv_status_name(status), err->text, code);
    return err->text;
}

static void test_budget_stops_endless_loop(void **state)
{
    cv_error err = {0};
    run_fail(*state, "local n = 0\nwhile true do n = n + 1 end", CV_ERR_LIMIT, &err);
    assert_string_equal(err.text,
                        "chunk.lua:2: rule exceeded its instruction budget of 200000 instructions");
    assert_null(strstr(err.text, "stack traceback"));
    assert_string_equal(run_text(*state, "return tostring(1 + 1)"), "2");
}

static void test_budget_survives_pcall(void **state)
{
    cv_error err = {0};
    const char *text = run_fail(*state,
                                "while true do\n"
                                "  pcall(function() while true do end end)\n"
                                "end",
                                CV_ERR_LIMIT, &err);
    assert_non_null(strstr(text, "rule exceeded its instruction budget of 200000 instructions"));
    assert_string_equal(run_text(*state, "return 'ok'"), "ok");
}

static void test_budget_counts_coroutines(void **state)
{
    cv_error err = {0};
    const char *text = run_fail(*state,
                                "local co = coroutine.wrap(function() while true do end end)\n"
                                "co()",
                                CV_ERR_LIMIT, &err);
    assert_non_null(strstr(text, "rule exceeded its instruction budget"));

    text = run_fail(*state,
                    "while true do\n"
                    "  coroutine.resume(coroutine.create(function() while true do end end))\n"
                    "end",
                    CV_ERR_LIMIT, &err);
    assert_non_null(strstr(text, "rule exceeded its instruction budget"));
    assert_string_equal(run_text(*state, "return 'ok'"), "ok");

    /* Each coroutine runs fewer instructions than one hook interval, yet they add up. */
    text = run_fail(*state,
                    "for i = 1, 1000 do\n"
                    "  coroutine.wrap(function() for j = 1, 300 do end end)()\n"
                    "end",
                    CV_ERR_LIMIT, &err);
    assert_string_equal(text,
                        "chunk.lua:2: rule exceeded its instruction budget of 200000 instructions");
    assert_string_equal(run_text(*state, "local co = coroutine.create(function(a) "
                                         "coroutine.yield(a + 1) end)\n"
                                         "return tostring(select(2, coroutine.resume(co, 41)))"),
                        "42");
}

static void test_budget_is_per_call(void **state)
{
    /* Each call may run most of the budget; the count starts again at every call. */
    for (int i = 0; i < 5; i++)
        assert_string_equal(run_text(*state, "local n = 0 for i = 1, 30000 do n = n + i end "
                                             "return tostring(n)"),
                            "450015000");
}

static void test_memory_budget_stops_growth(void **state)
{
    cv_error err = {0};
    run_fail(*state, "local t = {}\nfor i = 1, 1e7 do t[i] = i end", CV_ERR_LIMIT, &err);
    assert_string_equal(err.text, "rule exceeded its memory budget of 1 MiB");
    assert_string_equal(run_text(*state, "return string.rep('x', 3)"), "xxx");

    run_fail(*state, "return string.rep('x', 1 << 30)", CV_ERR_LIMIT, &err);
    assert_string_equal(err.text, "rule exceeded its memory budget of 1 MiB");
    assert_string_equal(run_text(*state, "local t = {} for i = 1, 1000 do t[i] = i end "
                                         "return tostring(#t)"),
                        "1000");
}

static void test_unsafe_functions_are_absent(void **state)
{
    const char *code =
        "local found = {}\n"
        "local function check(name, value) if value ~= nil then found[#found + 1] = name end end\n"
        "for _, name in ipairs({'io', 'package', 'debug', 'require', 'dofile', 'loadfile',\n"
        "                       'collectgarbage', 'warn'}) do\n"
        "  check(name, _G[name])\n"
        "end\n"
        "check('os.execute', os.execute) check('os.getenv', os.getenv)\n"
        "check('os.remove', os.remove) check('os.exit', os.exit)\n"
        "check('string.dump', string.dump) check('(\"\").dump', ('').dump)\n"
        "return table.concat(found, ',')";
    assert_string_equal(run_text(*state, code), "");
}

static void test_safe_libraries_are_present(void **state)
{
    const char *code =
        "return type(os.time()) .. type(os.clock()) .. type(os.date('!%Y')) ..\n"
        "  type(string.format) .. type(table.concat) .. type(math.floor) .. type(utf8.char) ..\n"
        "  type(coroutine.wrap) .. type(pcall) .. type(next)";
    assert_string_equal(run_text(*state, code),
                        "numbernumberstringfunctionfunctionfunctionfunctionfunctionfunctionfunction");
}

static void test_load_takes_text_only(void **state)
{
    assert_string_equal(run_text(*state, "return tostring(load('return 1 + 2')())"), "3");
    assert_string_equal(run_text(*state, "return tostring(load('return x', 'c', 't', {x = 5})())"),
                        "5");
    const char *message = run_text(*state, "local f, message = load(string.char(27) .. 'Lua')\n"
                                           "return f == nil and message");
    assert_non_null(strstr(message, "attempt to load a binary chunk"));
    message = run_text(*state, "local f, message = load(string.char(27) .. 'Lua', 'c', 'b')\n"
                               "return f == nil and message");
    assert_non_null(strstr(message, "attempt to load a binary chunk"));
}

static void test_gc_metamethod_refused(void **state)
{
    cv_error err = {0};
    run_fail(*state, "setmetatable({}, { __gc = function() end })", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text, "chunk.lua:1: bad argument #2 to 'setmetatable' (__gc "
                                  "metamethods are not allowed in rules)");
    run_fail(*state, "setmetatable(1, {})", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text,
                        "chunk.lua:1: bad argument #1 to 'setmetatable' (table expected, got number)");
    assert_string_equal(run_text(*state, "local t = setmetatable({}, { __index = { a = 'b' } })\n"
                                         "return t.a"),
                        "b");
}

static void test_library_tables_are_read_only(void **state)
{
    cv_error err = {0};
    run_fail(*state, "string.upper = nil", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text, "chunk.lua:1: cannot assign to 'string.upper': string is "
                                  "read-only in rules");
    run_fail(*state, "rawset(math, 'pi', 3)", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text,
                        "chunk.lua:1: bad argument #1 to 'rawset' (the table is read-only)");
    run_fail(*state, "setmetatable(string, {})", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text, "chunk.lua:1: cannot change a protected metatable");

    /* pairs still lists a library, without handing out the table behind it. */
    assert_string_equal(run_text(*state, "local n, state = 0, select(2, pairs(string))\n"
                                         "for name in pairs(string) do n = n + 1 end\n"
                                         "return tostring(n > 10 and state == nil)"),
                        "true");
    assert_string_equal(run_text(*state, "return tostring(getmetatable(''))"), "false");
    assert_string_equal(run_text(*state, "return ('abc'):upper()"), "ABC");
}

static void test_globals_read_only_after_freeze(void **state)
{
    cv_error err = {0};
    assert_string_equal(run_text(*state, "counter = 41 return tostring(counter + 1)"), "42");
    cv_sandbox_freeze(*state);
    run_fail(*state, "local y = 1\nx = 1", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text, "chunk.lua:2: cannot assign to global 'x': globals are "
                                  "read-only once the rules are loaded (use a local variable)");
    run_fail(*state, "rawset(_G, 'x', 1)", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text,
                        "chunk.lua:1: bad argument #1 to 'rawset' (the table is read-only)");
    run_fail(*state, "local f = load('y = 1') f()", CV_ERR_SCRIPT, &err);
    assert_non_null(strstr(err.text, "cannot assign to '_G.y'"));
    assert_string_equal(run_text(*state, "local x = 5 return tostring(x)"), "5");
}

static void test_files_have_own_globals(void **state)
{
    assert_string_equal(run_text(*state, "shared = 'mine' return shared"), "mine");
    assert_string_equal(run_text(*state, "return tostring(shared)"), "nil");
    assert_string_equal(run_text(*state, "return tostring(getmetatable(_G))"), "false");
}

static void test_null_and_errors(void **state)
{
    cv_error err = {0};
    assert_string_equal(run_text(*state, "return tostring(null)"), "null");
    run_fail(*state, "local function f() error('boom') end\nf()", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text, "chunk.lua:1: boom");
    run_fail(*state, "error({})", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text, "(error object is a table value)");
    run_fail(*state, "return 1 +", CV_ERR_SCRIPT, &err);
    assert_string_equal(err.text, "chunk.lua:1: unexpected symbol near <eof>");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_budget_stops_endless_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_survives_pcall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_counts_coroutines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_is_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_budget_stops_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsafe_functions_are_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safe_libraries_are_present, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_takes_text_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_metamethod_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_library_tables_are_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_globals_read_only_after_freeze, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_have_own_globals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
