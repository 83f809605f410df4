/*
 * What the C test programs share: checks that exit with the failed line,
 * an event recorder behind the callbacks, and plain loopback sockets for
 * the peer side. Included by ffi_test.c and ffi_hooks_test.c.
 */
#ifndef CONNMGR_TEST_SUPPORT_H
#define CONNMGR_TEST_SUPPORT_H

#include "connmgr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Waits give up after this long: only a broken library takes it. */
#define DEADLINE_SECS 20
/* The whole program is killed after this long (valgrind is slow). */
#define WATCHDOG_SECS 90

static inline void failed(const char *file, int line, const char *what) {
    fprintf(stderr, "%s:%d: check failed: %s\n  last error: %s\n", file, line, what,
            connmgr_last_error());
    exit(1);
}

#define CHECK(cond)                       \
    do {                                  \
        if (!(cond)) failed(__FILE__, __LINE__, #cond); \
    } while (0)

#define EXPECT(call, want)                                                              \
    do {                                                                                \
        connmgr_status got_ = (call);                                                   \
        if (got_ != (want)) {                                                           \
            fprintf(stderr, __FILE__ ":%d: %s returned %s, expected %s\n  last error: %s\n", \
                    __LINE__, #call, connmgr_status_name((int)got_),                    \
                    connmgr_status_name((int)(want)), connmgr_last_error());            \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

#define OK(call) EXPECT(call, CONNMGR_STATUS_OK)

/* The last error mentions `text`. */
#define ERROR_MENTIONS(text) CHECK(strstr(connmgr_last_error(), (text)) != NULL)

/* ---- events recorded by the callbacks ---------------------------------- */

enum kind { CONNECTED, DISCONNECTED, ACCEPTED, INBOUND_CLOSED, DIAL_FAILED };

struct event {
    enum kind kind;
    uint64_t id;
    char remote[CONNMGR_ADDR_MAX];
    bool permanent;
    int64_t retry_in_ms;
    char error[512];
    connmgr_conn *conn; /* owned by the recorder until freed */
    bool taken;
};

#define MAX_EVENTS 256

struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct event events[MAX_EVENTS];
    size_t n;
    /* For the stop-from-callback test. */
    const connmgr_manager *mgr;
    bool stop_in_callback;
    bool stop_returned;
    connmgr_status stop_status;
    bool stopped_running;
};

static inline void recorder_init(struct recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

/* Frees every connection handle the recorder still holds. */
static inline void recorder_free(struct recorder *r) {
    for (size_t i = 0; i < r->n; i++) {
        OK(connmgr_conn_free(r->events[i].conn));
        r->events[i].conn = NULL;
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

static inline void record(void *user_data, enum kind kind, uint64_t id, const char *remote,
                   bool permanent, int64_t retry, const char *error, connmgr_conn *conn) {
    struct recorder *r = user_data;
    pthread_mutex_lock(&r->mu);
    if (r->n == MAX_EVENTS) {
        fprintf(stderr, "too many events\n");
        exit(1);
    }
    struct event *e = &r->events[r->n++];
    e->kind = kind;
    e->id = id;
    snprintf(e->remote, sizeof e->remote, "%s", remote);
    e->permanent = permanent;
    e->retry_in_ms = retry;
    snprintf(e->error, sizeof e->error, "%s", error);
    e->conn = conn;
    e->taken = false;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static inline void on_connected(void *ud, uint64_t id, const char *remote, bool permanent,
                         connmgr_conn *conn) {
    struct recorder *r = ud;
    record(ud, CONNECTED, id, remote, permanent, -1, "", conn);
    if (r->stop_in_callback) {
        /* Stopping from the notifier thread is allowed. */
        connmgr_status st = connmgr_manager_stop(r->mgr);
        bool running = true;
        connmgr_status st2 = connmgr_manager_is_running(r->mgr, &running);
        pthread_mutex_lock(&r->mu);
        r->stop_status = st == CONNMGR_STATUS_OK && st2 == CONNMGR_STATUS_OK
                             ? CONNMGR_STATUS_OK
                             : (st != CONNMGR_STATUS_OK ? st : st2);
        r->stopped_running = running;
        r->stop_returned = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
}

static inline void on_disconnected(void *ud, uint64_t id, const char *remote, bool permanent) {
    record(ud, DISCONNECTED, id, remote, permanent, -1, "", NULL);
}

static inline void on_accepted(void *ud, uint64_t id, const char *remote, connmgr_conn *conn) {
    record(ud, ACCEPTED, id, remote, false, -1, "", conn);
}

static inline void on_inbound_closed(void *ud, uint64_t id, const char *remote) {
    record(ud, INBOUND_CLOSED, id, remote, false, -1, "", NULL);
}

static inline void on_dial_failed(void *ud, uint64_t id, const char *remote, const char *error,
                           int64_t retry_in_ms) {
    record(ud, DIAL_FAILED, id, remote, false, retry_in_ms, error, NULL);
}

static inline struct timespec deadline(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += DEADLINE_SECS;
    return ts;
}

/* Waits for the first event of `kind` about `id` (any id if 0) not yet
 * taken, marks it taken and returns it. */
static inline struct event *wait_event(struct recorder *r, enum kind kind, uint64_t id, int line) {
    struct timespec until = deadline();
    pthread_mutex_lock(&r->mu);
    for (;;) {
        for (size_t i = 0; i < r->n; i++) {
            struct event *e = &r->events[i];
            if (!e->taken && e->kind == kind && (id == 0 || e->id == id)) {
                e->taken = true;
                pthread_mutex_unlock(&r->mu);
                return e;
            }
        }
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&r->mu);
            fprintf(stderr, __FILE__ ":%d: event %d for id %" PRIu64 " not seen in %d s\n",
                    line, (int)kind, id, DEADLINE_SECS);
            exit(1);
        }
    }
}

#define WAIT(r, kind, id) wait_event((r), (kind), (id), __LINE__)

static inline connmgr_callbacks callbacks_for(struct recorder *r) {
    connmgr_callbacks cbs;
    memset(&cbs, 0, sizeof cbs);
    cbs.user_data = r;
    cbs.connected = on_connected;
    cbs.disconnected = on_disconnected;
    cbs.accepted = on_accepted;
    cbs.inbound_closed = on_inbound_closed;
    cbs.dial_failed = on_dial_failed;
    return cbs;
}

/* ---- plain sockets for the peer side ------------------------------------ */

/* A listening socket on 127.0.0.1 with a free port; stores "127.0.0.1:port". */
static inline int listen_loopback(char *text, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(fd, 64) == 0);
    socklen_t len = sizeof sa;
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(text, cap, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    return fd;
}

static inline void wait_readable(int fd, int line) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    do {
        n = poll(&p, 1, DEADLINE_SECS * 1000);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        fprintf(stderr, __FILE__ ":%d: fd %d not readable in %d s\n", line, fd, DEADLINE_SECS);
        exit(1);
    }
}

static inline int accept_peer(int lfd) {
    wait_readable(lfd, __LINE__);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    return fd;
}

/* Connects to "127.0.0.1:port". */
static inline int connect_to(const char *text) {
    const char *colon = strrchr(text, ':');
    CHECK(colon != NULL);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    CHECK(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr) == 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    return fd;
}

/* "127.0.0.1:port" of the local end of `fd`. */
static inline void local_name(int fd, char *text, size_t cap) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(text, cap, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
}

static inline void fd_read_exact(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        wait_readable(fd, __LINE__);
        ssize_t r = read(fd, buf + got, n - got);
        CHECK(r > 0);
        got += (size_t)r;
    }
}

/* The peer side sees end of stream. */
static inline void fd_expect_eof(int fd) {
    char c;
    wait_readable(fd, __LINE__);
    CHECK(read(fd, &c, 1) == 0);
}

static inline void fd_write_all(int fd, const char *buf, size_t n) {
    CHECK(write(fd, buf, n) == (ssize_t)n);
}

static inline void conn_read_exact(const connmgr_conn *c, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t r = 0;
        OK(connmgr_conn_read(c, (uint8_t *)buf + got, n - got, &r));
        CHECK(r > 0);
        got += r;
    }
}

static inline void conn_expect_eof(const connmgr_conn *c) {
    uint8_t b[16];
    size_t r = 99;
    OK(connmgr_conn_read(c, b, sizeof b, &r));
    CHECK(r == 0);
}

/* A loopback port with nothing listening (bound, then closed). */
static inline void closed_port(char *text, size_t cap) {
    int fd = listen_loopback(text, cap);
    close(fd);
}

/* ---- config and argument errors ----------------------------------------- */

static inline connmgr_config *new_config(void) {
    connmgr_config *cfg = NULL;
    OK(connmgr_config_new(&cfg));
    CHECK(cfg != NULL);
    return cfg;
}

#endif
