/*
 * bench-http: the HTTP side of the benchmarks.
 *
 * --mode serve is a small HTTP/1.1 server on 127.0.0.1 that responds to every
 * request at once with 200 and the same small JSON object bench-module
 * sends. It runs on one thread with epoll and keeps connections alive, so
 * it costs little next to what drives it. It writes its port to stdout.
 *
 * --mode floor drives that server directly with libcurl, the floor for
 * conveyor's http transport: W chains of --steps POSTs of the 1 KB request
 * body, each chain on its own easy handle (so its own kept-alive
 * connection), all in one curl multi loop. It prints the same figures as
 * bench-floor.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define PROGRAM "bench-http"
#define MAX_INFLIGHT 1024
#define MAX_CONNECTIONS 4096
#define REQUEST_BUFFER (64 * 1024)

static const char reply_body[] =
    "{\"ID\":\"4127\",\"STAGE_ID\":\"C1:NEW\",\"OPPORTUNITY\":\"15400\",\"ASSIGNED_BY_ID\":\"7\"}";

/* ---- server ---- */

typedef struct connection {
    int fd;
    size_t used;
    char buffer[REQUEST_BUFFER];
} connection;

static volatile sig_atomic_t stop_serving;

static void on_signal(int signal_number)
{
    (void)signal_number;
    stop_serving = 1;
}

/* Returns the length of the first complete request in c's buffer, or 0 when it is incomplete. */
static size_t complete_request(const connection *c)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < c->used; i++) {
        if (memcmp(c->buffer + i, "\r\n\r\n", 4) == 0) {
            end = c->buffer + i + 4;
            break;
        }
    }
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->buffer);
    size_t body = 0;
    for (const char *p = c->buffer; p < end; p++) {
        if ((p == c->buffer || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            body = strtoul(p + 15, NULL, 10);
            break;
        }
    }
    return head + body <= c->used ? head + body : 0;
}

/* Responds to every complete request in the buffer. Returns false when the connection must close. */
static bool serve_buffer(connection *c, const char *response, size_t response_length)
{
    size_t length = complete_request(c);
    while (length > 0) {
        if (write(c->fd, response, response_length) != (ssize_t)response_length)
            return false;
        memmove(c->buffer, c->buffer + length, c->used - length);
        c->used -= length;
        length = complete_request(c);
    }
    return c->used < sizeof c->buffer;
}

static void close_connection(int epoll_fd, connection **table, int fd)
{
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(table[fd]);
    table[fd] = NULL;
}

static void accept_all(int epoll_fd, int listener, connection **table)
{
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            return;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (fd >= MAX_CONNECTIONS) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        table[fd] = calloc(1, sizeof *table[fd]);
        if (table[fd] == NULL) {
            close(fd);
            continue;
        }
        table[fd]->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
}

static int open_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t size = sizeof addr;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 512) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &size) != 0)
        bench_fail(PROGRAM, "cannot listen on 127.0.0.1: %s", strerror(errno));
    *port = ntohs(addr.sin_port);
    return fd;
}

static int serve(void)
{
    char response[512];
    int response_length = snprintf(response, sizeof response,
                                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                   "Content-Length: %zu\r\n\r\n%s",
                                   sizeof reply_body - 1, reply_body);
    static connection *table[MAX_CONNECTIONS];
    int port = 0;
    int listener = open_listener(&port);
    int epoll_fd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &ev);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("port=%d\n", port);
    fflush(stdout);

    struct epoll_event events[64];
    while (!stop_serving) {
        int n = epoll_wait(epoll_fd, events, 64, 200);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                accept_all(epoll_fd, listener, table);
                continue;
            }
            connection *c = table[fd];
            ssize_t got = read(fd, c->buffer + c->used, sizeof c->buffer - c->used);
            if (got <= 0) {
                if (got == 0 || (errno != EAGAIN && errno != EINTR))
                    close_connection(epoll_fd, table, fd);
                continue;
            }
            c->used += (size_t)got;
            if (!serve_buffer(c, response, (size_t)response_length))
                close_connection(epoll_fd, table, fd);
        }
    }
    for (int fd = 0; fd < MAX_CONNECTIONS; fd++) {
        if (table[fd] != NULL)
            close_connection(epoll_fd, table, fd);
    }
    close(epoll_fd);
    close(listener);
    return 0;
}

/* ---- floor ---- */

typedef struct chain {
    CURL *easy;
    int step;
    int64_t started_ns;
} chain;

static size_t discard(char *data, size_t size, size_t count, void *closure)
{
    (void)data;
    (void)closure;
    return size * count;
}

static int run_floor(const char *url, int inflight, int steps, int warmup_s, int duration_s,
                     int body_size)
{
    static char body[8192];
    static chain chains[MAX_INFLIGHT];
    size_t body_length = bench_request_body(body, sizeof body, (size_t)body_size);
    if (body_length == 0)
        bench_fail(PROGRAM, "cannot build a request body of %d bytes", body_size);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");

    for (int i = 0; i < inflight; i++) {
        CURL *easy = curl_easy_init();
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)body_length);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, &chains[i]);
        chains[i] = (chain){.easy = easy, .step = 1, .started_ns = bench_now_ns()};
        curl_multi_add_handle(multi, easy);
    }

    bench_hist hist;
    bench_hist_reset(&hist);
    unsigned long long completed = 0;
    int64_t now = bench_now_ns();
    int64_t measure_from = now + (int64_t)warmup_s * 1000000000LL;
    int64_t measure_to = measure_from + (int64_t)duration_s * 1000000000LL;
    while (now < measure_to) {
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *done = NULL;
        int left = 0;
        while ((done = curl_multi_info_read(multi, &left)) != NULL) {
            if (done->msg != CURLMSG_DONE)
                continue;
            CURL *easy = done->easy_handle;
            chain *c = NULL;
            long code = 0;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
            if (done->data.result != CURLE_OK || code != 200)
                bench_fail(PROGRAM, "POST %s failed: %s (HTTP %ld)", url,
                           curl_easy_strerror(done->data.result), code);
            curl_multi_remove_handle(multi, easy);
            now = bench_now_ns();
            if (c->step < steps) {
                c->step++;
            } else {
                if (now >= measure_from && now < measure_to) {
                    completed++;
                    bench_hist_record(&hist, now - c->started_ns);
                }
                c->step = 1;
                c->started_ns = now;
            }
            curl_multi_add_handle(multi, easy);
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
        now = bench_now_ns();
    }

    double seconds = (double)duration_s;
    double rate = (double)completed / seconds;
    printf("instances=%llu window_s=%.3f instances_per_s=%.1f steps_per_s=%.1f "
           "inst_p50_us=%.1f inst_p99_us=%.1f\n",
           completed, seconds, rate, rate * steps,
           (double)bench_hist_quantile(&hist, 0.50) / 1000.0,
           (double)bench_hist_quantile(&hist, 0.99) / 1000.0);
    for (int i = 0; i < inflight; i++) {
        curl_multi_remove_handle(multi, chains[i].easy);
        curl_easy_cleanup(chains[i].easy);
    }
    curl_slist_free_all(headers);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: " PROGRAM " --mode serve\n"
                    "       " PROGRAM " --mode floor --url URL [--inflight W] [--steps N]\n"
                    "                  [--warmup S] [--duration S] [--body-size BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *mode = NULL, *url = NULL;
    int inflight = 1, steps = 3, warmup_s = 2, duration_s = 5, body_size = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *arg = argv[i], *value = argv[i + 1];
        if (strcmp(arg, "--mode") == 0)
            mode = value;
        else if (strcmp(arg, "--url") == 0)
            url = value;
        else if (strcmp(arg, "--inflight") == 0)
            inflight = (int)bench_parse_number(arg, value, 1, MAX_INFLIGHT);
        else if (strcmp(arg, "--steps") == 0)
            steps = (int)bench_parse_number(arg, value, 1, 1000);
        else if (strcmp(arg, "--warmup") == 0)
            warmup_s = (int)bench_parse_number(arg, value, 0, 600);
        else if (strcmp(arg, "--duration") == 0)
            duration_s = (int)bench_parse_number(arg, value, 1, 600);
        else if (strcmp(arg, "--body-size") == 0)
            body_size = (int)bench_parse_number(arg, value, 512, 8000);
        else
            usage();
    }
    if (argc % 2 != 1 || mode == NULL)
        usage();
    if (strcmp(mode, "serve") == 0)
        return serve();
    if (strcmp(mode, "floor") == 0 && url != NULL)
        return run_floor(url, inflight, steps, warmup_s, duration_s, body_size);
    usage();
    return 2;
}
