#include "support/process.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

extern char **environ;

/*
 * Every child still running when the test program exits is killed by its
 * pid, so a failed assertion that skips a test's own cleanup leaves no
 * server or node behind.
 */
#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];
static bool cleanup_registered;

static void kill_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
}

static void remember_child(pid_t pid)
{
    if (!cleanup_registered) {
        atexit(kill_children);
        cleanup_registered = true;
    }
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    }
}

static void forget_child(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == pid)
            children[i] = 0;
    }
}

void cv_test_process_kill_all(void)
{
    kill_children();
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char **merged_environment(char *const extra_env[])
{
    size_t base = 0, extra = 0;
    while (environ[base] != NULL)
        base++;
    while (extra_env != NULL && extra_env[extra] != NULL)
        extra++;
    char **env = calloc(base + extra + 1, sizeof *env);
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < extra; i++)
        env[i] = extra_env[i];
    for (size_t i = 0; i < base; i++)
        env[extra + i] = environ[i];
    return env;
}

bool cv_test_process_start(cv_test_process *proc, char *const argv[], const char *log_path,
                           char *const extra_env[])
{
    snprintf(proc->log_path, sizeof proc->log_path, "%s", log_path);
    char **env = merged_environment(extra_env);
    if (env == NULL)
        return false;

    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork failed: %s\n", strerror(errno));
        free(env);
        return false;
    }
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null_fd = open("/dev/null", O_RDONLY);
        if (fd < 0 || null_fd < 0)
            _exit(127);
        dup2(null_fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execve(argv[0], argv, env);
        dprintf(fd, "exec %s failed: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(env);
    proc->pid = pid;
    remember_child(pid);
    return true;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

int cv_test_process_count_log(const cv_test_process *proc, const char *needle)
{
    char *text = read_file(proc->log_path);
    int count = 0;
    for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        count++;
    free(text);
    return count;
}

bool cv_test_process_wait_log(const cv_test_process *proc, const char *needle, int timeout_ms)
{
    int64_t deadline = cv_clock_mono_ms() + timeout_ms;
    while (cv_clock_mono_ms() < deadline) {
        if (cv_test_process_count_log(proc, needle) > 0)
            return true;
        sleep_ms(20);
    }
    return false;
}

bool cv_test_process_alive(cv_test_process *proc)
{
    if (proc->pid <= 0)
        return false;
    int status;
    pid_t got = waitpid(proc->pid, &status, WNOHANG);
    if (got == proc->pid) {
        forget_child(proc->pid);
        proc->pid = 0;
        return false;
    }
    return got == 0;
}

static int wait_exit(pid_t pid, int timeout_ms, bool *exited)
{
    int64_t deadline = cv_clock_mono_ms() + timeout_ms;
    int status = 0;
    *exited = false;
    while (cv_clock_mono_ms() < deadline) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            *exited = true;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        }
        sleep_ms(10);
    }
    return 0;
}

int cv_test_process_stop(cv_test_process *proc, int timeout_ms)
{
    if (proc->pid <= 0)
        return 0;
    bool exited;
    kill(proc->pid, SIGTERM);
    int code = wait_exit(proc->pid, timeout_ms, &exited);
    if (!exited) {
        fprintf(stderr, "pid %d did not stop within %d ms; sending SIGKILL\n", (int)proc->pid,
                timeout_ms);
        kill(proc->pid, SIGKILL);
        code = wait_exit(proc->pid, 5000, &exited);
    }
    forget_child(proc->pid);
    proc->pid = 0;
    return code;
}

void cv_test_process_kill(cv_test_process *proc)
{
    if (proc->pid <= 0)
        return;
    bool exited;
    kill(proc->pid, SIGKILL);
    wait_exit(proc->pid, 5000, &exited);
    forget_child(proc->pid);
    proc->pid = 0;
}

/* Reads everything from fd into a malloc'd string. */
static void drain(int fd, char **buf, size_t *len, size_t *cap)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0)
        return;
    if (*len + (size_t)n + 1 > *cap) {
        *cap = (*len + (size_t)n + 1) * 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, chunk, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = '\0';
}

int cv_test_run(char *const argv[], const char *stdin_text, char **out, char **err,
                int timeout_ms)
{
    int in_pipe[2], out_pipe[2], err_pipe[2];
    if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0 || pipe(err_pipe) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in_pipe[0], STDIN_FILENO);
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        /* Servers a script starts in the background inherit every open descriptor:
         * a write end left open here would hold the pipe open until they exit. */
        int spare[] = {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]};
        for (size_t i = 0; i < sizeof spare / sizeof spare[0]; i++)
            if (spare[i] > STDERR_FILENO)
                close(spare[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    signal(SIGPIPE, SIG_IGN);
    if (stdin_text != NULL) {
        ssize_t ignored = write(in_pipe[1], stdin_text, strlen(stdin_text));
        (void)ignored;
    }
    close(in_pipe[1]);

    size_t olen = 0, ocap = 1, elen = 0, ecap = 1;
    *out = calloc(1, 1);
    *err = calloc(1, 1);
    int64_t deadline = cv_clock_mono_ms() + timeout_ms;
    bool open_out = true, open_err = true;
    while ((open_out || open_err) && cv_clock_mono_ms() < deadline) {
        struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
        if (poll(fds, 2, 50) <= 0)
            continue;
        if (fds[0].revents) {
            size_t before = olen;
            drain(out_pipe[0], out, &olen, &ocap);
            open_out = olen != before;
        }
        if (fds[1].revents) {
            size_t before = elen;
            drain(err_pipe[0], err, &elen, &ecap);
            open_err = elen != before;
        }
    }
    close(out_pipe[0]);
    close(err_pipe[0]);

    bool exited;
    int remaining = (int)(deadline - cv_clock_mono_ms());
    int code = wait_exit(pid, remaining > 0 ? remaining : 1, &exited);
    if (!exited) {
        kill(pid, SIGKILL);
        wait_exit(pid, 5000, &exited);
        return -1;
    }
    return code;
}

int cv_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

char *cv_test_temp_dir(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/%s-XXXXXX", base ? base : "/tmp", prefix);
    if (mkdtemp(tmpl) == NULL)
        return NULL;
    return strdup(tmpl);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void cv_test_remove_tree(const char *path)
{
    if (path != NULL)
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
