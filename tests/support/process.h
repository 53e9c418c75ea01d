/*
 * Child processes for integration tests: spawn with arguments and an
 * environment, wait for a line in their output, and stop them by their own
 * pid (SIGTERM, then SIGKILL after a bounded wait). Nothing is ever killed
 * by name.
 */
#ifndef CV_TEST_PROCESS_H
#define CV_TEST_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct cv_test_process {
    pid_t pid;
    char log_path[512]; /* stdout and stderr of the child */
} cv_test_process;

/*
 * Starts argv[0] (a path) with argv, its stdout and stderr appended to
 * log_path. extra_env is a NULL-terminated list of "NAME=value" added to the
 * environment, or NULL. Returns false and prints why when it cannot start.
 */
bool cv_test_process_start(cv_test_process *proc, char *const argv[], const char *log_path,
                           char *const extra_env[]);

/* Waits up to timeout_ms for needle to appear in the child's log. */
bool cv_test_process_wait_log(const cv_test_process *proc, const char *needle, int timeout_ms);

/* Counts the occurrences of needle in the child's log so far. */
int cv_test_process_count_log(const cv_test_process *proc, const char *needle);

/* Sends SIGTERM and waits up to timeout_ms, then SIGKILL. Returns the exit status or -signal. */
int cv_test_process_stop(cv_test_process *proc, int timeout_ms);

/* Sends SIGKILL and reaps the child. */
void cv_test_process_kill(cv_test_process *proc);

/* Kills every child started by cv_test_process_start that is still running. */
void cv_test_process_kill_all(void);

/* True while the child has not exited. */
bool cv_test_process_alive(cv_test_process *proc);

/*
 * Runs argv to completion with stdin_text (may be NULL) on its standard
 * input; captures stdout and stderr into malloc'd strings the caller frees.
 * Gives up after timeout_ms, kills the child and returns -1.
 */
int cv_test_run(char *const argv[], const char *stdin_text, char **out, char **err,
                int timeout_ms);

/* Returns a TCP port on 127.0.0.1 that was free a moment ago. */
int cv_test_free_port(void);

/* Creates a fresh temporary folder under $TMPDIR (or /tmp); returns a malloc'd path. */
char *cv_test_temp_dir(const char *prefix);

/* Removes a folder and everything in it. */
void cv_test_remove_tree(const char *path);

#endif
