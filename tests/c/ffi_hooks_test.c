/*
 * Exercises the C API's extension points from C: dialers and listeners
 * written in C (a handed-over descriptor and a stream of C functions),
 * listening on a caller's socket, dial and accept gates, upsert, custom
 * decay and bump functions under a manual clock, DNS seeding through a C
 * lookup that feeds a manager, the in-memory network with C peers, and
 * the remaining config setters.
 *
 * Run by tests/ffi.rs (also under valgrind and under gcc's sanitizers).
 * Exits 0 when every check passes; otherwise prints the failed check and
 * exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <sys/un.h>

/* Waits until `cond` holds, re-checking every millisecond, up to the
 * deadline: for state the manager changes on its own thread (a decay
 * step after the clock moved). */
#define EVENTUALLY(cond)                                                  \
    do {                                                                  \
        struct timespec until_ = deadline(), now_;                        \
        struct timespec ms_ = {.tv_sec = 0, .tv_nsec = 1000000};          \
        while (!(cond)) {                                                 \
            clock_gettime(CLOCK_REALTIME, &now_);                         \
            if (now_.tv_sec > until_.tv_sec) failed(__FILE__, __LINE__, #cond);     \
            nanosleep(&ms_, NULL);                                        \
        }                                                                 \
    } while (0)

/* A manager from `cfg` (freed here), started. */
static connmgr_manager *start(connmgr_config *cfg) {
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    OK(connmgr_config_free(cfg));
    OK(connmgr_manager_start(m));
    return m;
}

static void finish(connmgr_manager *m, struct recorder *r) {
    OK(connmgr_manager_stop(m));
    OK(connmgr_manager_free(m));
    if (r) recorder_free(r);
}

/* ---- a dialer written in C ------------------------------------------------ */

struct dialer {
    pthread_mutex_t mu;
    int calls;
    uint64_t last_timeout_ms;
    char refuse[CONNMGR_ADDR_MAX]; /* fail this address as refused */
    char silent[CONNMGR_ADDR_MAX]; /* set no result for this one */
    bool as_stream;                /* hand a stream of C functions, not the fd */
    connmgr_status set_status;     /* what the setter returned last */
};

/* A stream of C functions around a socket, counting its frees. */
struct cstream {
    int fd;
    int *frees;
};

static ptrdiff_t cs_read(void *ud, uint8_t *buf, size_t len) {
    struct cstream *s = ud;
    ssize_t n;
    do {
        n = read(s->fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

static ptrdiff_t cs_write(void *ud, const uint8_t *buf, size_t len) {
    struct cstream *s = ud;
    return send(s->fd, buf, len, MSG_NOSIGNAL);
}

static void cs_close(void *ud) {
    struct cstream *s = ud;
    shutdown(s->fd, SHUT_RDWR);
}

static int stream_frees;

static void cs_free(void *ud) {
    struct cstream *s = ud;
    close(s->fd);
    __atomic_add_fetch(s->frees, 1, __ATOMIC_SEQ_CST);
    free(s);
}

static void dial_fn(void *ud, const char *addr, uint64_t timeout_ms, connmgr_dial_result *res) {
    struct dialer *d = ud;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->last_timeout_ms = timeout_ms;
    bool refuse = strcmp(addr, d->refuse) == 0, silent = strcmp(addr, d->silent) == 0;
    bool as_stream = d->as_stream;
    pthread_mutex_unlock(&d->mu);
    bool canceled = true;
    CHECK(connmgr_dial_result_is_canceled(res, &canceled) == CONNMGR_STATUS_OK && !canceled);
    if (silent) return;
    connmgr_status st;
    if (refuse) {
        st = connmgr_dial_result_set_error(res, CONNMGR_DIAL_REFUSED, "refused by the C dialer");
    } else if (as_stream) {
        struct cstream *s = malloc(sizeof *s);
        CHECK(s != NULL);
        s->fd = connect_to(addr);
        s->frees = &stream_frees;
        st = connmgr_dial_result_set_stream(res, s, cs_read, cs_write, cs_close, cs_free);
    } else {
        st = connmgr_dial_result_set_fd(res, connect_to(addr));
        /* A second result is refused. */
        CHECK(connmgr_dial_result_set_error(res, CONNMGR_DIAL_OTHER, NULL) ==
              CONNMGR_STATUS_INVALID_ARGUMENT);
    }
    pthread_mutex_lock(&d->mu);
    d->set_status = st;
    pthread_mutex_unlock(&d->mu);
}

static void test_c_dialer(bool as_stream) {
    struct recorder rec;
    recorder_init(&rec);
    struct dialer d = {.mu = PTHREAD_MUTEX_INITIALIZER, .as_stream = as_stream};
    char peer[64];
    int lfd = listen_loopback(peer, sizeof peer);
    closed_port(d.refuse, sizeof d.refuse);
    snprintf(d.silent, sizeof d.silent, "127.0.0.1:1");

    connmgr_config *cfg = new_config();
    CHECK(connmgr_config_set_dialer(cfg, NULL, NULL) == CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_config_set_dialer(cfg, dial_fn, &d));
    OK(connmgr_config_set_dial_timeout(cfg, 5000));
    connmgr_callbacks cbs = callbacks_for(&rec);
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = start(cfg);

    /* A connection through the C dialer carries bytes both ways. */
    uint64_t id = 0;
    OK(connmgr_connect(m, peer, false, &id));
    struct event *e = WAIT(&rec, CONNECTED, id);
    int pfd = accept_peer(lfd);
    OK(connmgr_conn_write(e->conn, (const uint8_t *)"hi", 2));
    char buf[8] = {0};
    fd_read_exact(pfd, buf, 2);
    CHECK(memcmp(buf, "hi", 2) == 0);
    fd_write_all(pfd, "yo", 2);
    conn_read_exact(e->conn, buf, 2);
    CHECK(memcmp(buf, "yo", 2) == 0);
    pthread_mutex_lock(&d.mu);
    CHECK(d.calls == 1 && d.set_status == CONNMGR_STATUS_OK);
    CHECK(d.last_timeout_ms > 0 && d.last_timeout_ms <= 5000);
    pthread_mutex_unlock(&d.mu);
    int fd = -1;
    /* A handed-over socket is still a socket; a C stream has none. */
    CHECK(connmgr_conn_fd(e->conn, &fd) ==
          (as_stream ? CONNMGR_STATUS_IO : CONNMGR_STATUS_OK));

    /* Closing from the manager's side reaches the peer. */
    OK(connmgr_disconnect(m, id));
    fd_expect_eof(pfd);
    close(pfd);

    /* The dialer's own error, and a dialer that set nothing, fail dials. */
    OK(connmgr_connect(m, d.refuse, false, &id));
    e = WAIT(&rec, DIAL_FAILED, id);
    CHECK(strstr(e->error, "refused") != NULL);
    OK(connmgr_connect(m, d.silent, false, &id));
    e = WAIT(&rec, DIAL_FAILED, id);
    CHECK(strstr(e->error, "set no result") != NULL);

    finish(m, &rec);
    close(lfd);
    if (as_stream) CHECK(__atomic_load_n(&stream_frees, __ATOMIC_SEQ_CST) == 1);
}

/* Handing over a descriptor that is no connected socket fails the dial. */
static void bad_fd_dial(void *ud, const char *addr, uint64_t timeout_ms, connmgr_dial_result *res) {
    (void)addr;
    (void)timeout_ms;
    connmgr_status *st = ud;
    int fds[2];
    CHECK(pipe(fds) == 0);
    close(fds[1]);
    *st = connmgr_dial_result_set_fd(res, fds[0]); /* ours no more, even on failure */
}

static void test_bad_descriptor(void) {
    /* Ownership passes with the call, even when it fails. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(connmgr_dial_result_set_fd(NULL, sv[0]) != CONNMGR_STATUS_OK);
    CHECK(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
    close(sv[1]);

    struct recorder rec;
    recorder_init(&rec);
    connmgr_status st = CONNMGR_STATUS_OK;
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_dialer(cfg, bad_fd_dial, &st));
    connmgr_callbacks cbs = callbacks_for(&rec);
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = start(cfg);
    uint64_t id = 0;
    OK(connmgr_connect(m, "127.0.0.1:9", false, &id));
    struct event *e = WAIT(&rec, DIAL_FAILED, id);
    CHECK(strstr(e->error, "not a") != NULL);
    CHECK(st == CONNMGR_STATUS_INVALID_ARGUMENT);
    finish(m, &rec);
}

/* ---- a listener written in C ---------------------------------------------- */

struct clistener {
    int lfd;
    int wake[2]; /* close writes here to wake a blocked accept */
    int accepts, closes, frees;
};

static bool cl_accept(void *ud, connmgr_dial_result *res) {
    struct clistener *l = ud;
    struct pollfd p[2] = {{.fd = l->lfd, .events = POLLIN}, {.fd = l->wake[0], .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        CHECK(n > 0);
        if (p[1].revents) return false; /* closed */
        int fd = accept(l->lfd, NULL, NULL);
        CHECK(fd >= 0);
        __atomic_add_fetch(&l->accepts, 1, __ATOMIC_SEQ_CST);
        OK(connmgr_dial_result_set_remote(res, "192.0.2.77:4242"));
        OK(connmgr_dial_result_set_fd(res, fd));
        return true;
    }
}

static void cl_close(void *ud) {
    struct clistener *l = ud;
    __atomic_add_fetch(&l->closes, 1, __ATOMIC_SEQ_CST);
    CHECK(write(l->wake[1], "x", 1) == 1);
}

static void cl_free(void *ud) {
    struct clistener *l = ud;
    __atomic_add_fetch(&l->frees, 1, __ATOMIC_SEQ_CST);
}

static void test_c_listener(void) {
    struct recorder rec;
    recorder_init(&rec);
    char where[64];
    struct clistener l = {0};
    l.lfd = listen_loopback(where, sizeof where);
    CHECK(pipe(l.wake) == 0);

    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 0));
    CHECK(connmgr_config_add_listener(cfg, where, cl_accept, NULL, NULL, &l) ==
          CONNMGR_STATUS_NULL_ARGUMENT);
    CHECK(connmgr_config_add_listener(cfg, "not an address", cl_accept, cl_close, cl_free, &l) ==
          CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_config_add_listener(cfg, where, cl_accept, cl_close, cl_free, &l));
    connmgr_callbacks cbs = callbacks_for(&rec);
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = start(cfg);

    char text[CONNMGR_ADDR_MAX];
    OK(connmgr_listen_addr(m, 0, text, sizeof text));
    CHECK(strcmp(text, where) == 0);

    int cfd = connect_to(where);
    struct event *e = WAIT(&rec, ACCEPTED, 0);
    /* The address the listener reported is the one the manager uses. */
    CHECK(strcmp(e->remote, "192.0.2.77:4242") == 0);
    fd_write_all(cfd, "ab", 2);
    char buf[4];
    conn_read_exact(e->conn, buf, 2);
    CHECK(memcmp(buf, "ab", 2) == 0);

    /* Stop closes the listener and frees it once its thread is done. */
    finish(m, &rec);
    CHECK(l.accepts == 1 && l.closes >= 1 && l.frees == 1);
    close(cfd);
    close(l.lfd);
    close(l.wake[0]);
    close(l.wake[1]);
}

/* A listening socket made by the caller. */
static void test_listen_fd(void) {
    struct recorder rec;
    recorder_init(&rec);
    char where[64];
    int lfd = listen_loopback(where, sizeof where);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 0));
    /* A socket that does not listen is refused (and closed). */
    CHECK(connmgr_config_add_listen_fd(cfg, socket(AF_INET, SOCK_STREAM, 0)) ==
          CONNMGR_STATUS_INVALID_ARGUMENT);
    ERROR_MENTIONS("not listening");
    CHECK(connmgr_config_add_listen_fd(cfg, -1) == CONNMGR_STATUS_INVALID_ARGUMENT);
    /* Only TCP: a Unix-domain listener has no address to close it by. */
    int ufd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    /* An abstract name (leading NUL): nothing in the file system. */
    int ulen = snprintf(ua.sun_path + 1, sizeof ua.sun_path - 1, "connmgr-test-%d", (int)getpid());
    socklen_t usize = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)ulen);
    CHECK(ufd >= 0 && bind(ufd, (struct sockaddr *)&ua, usize) == 0 && listen(ufd, 1) == 0);
    CHECK(connmgr_config_add_listen_fd(cfg, ufd) == CONNMGR_STATUS_INVALID_ARGUMENT);
    ERROR_MENTIONS("not a TCP socket");
    /* A non-blocking socket is switched to blocking mode. */
    CHECK(fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) == 0);
    OK(connmgr_config_add_listen_fd(cfg, lfd));
    CHECK((fcntl(lfd, F_GETFL) & O_NONBLOCK) == 0);
    connmgr_callbacks cbs = callbacks_for(&rec);
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    /* Counting descriptors borrows the socket; the manager then takes it,
     * and a second manager from the same config cannot have it. */
    uint64_t needed = 0;
    OK(connmgr_config_descriptors_needed(cfg, &needed));
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    connmgr_manager *m2 = NULL;
    CHECK(connmgr_manager_new(cfg, &m2) == CONNMGR_STATUS_CONFIG && m2 == NULL);
    ERROR_MENTIONS("earlier manager");
    OK(connmgr_config_free(cfg));
    OK(connmgr_manager_start(m));
    int cfd = connect_to(where);
    char local[64];
    local_name(cfd, local, sizeof local);
    struct event *e = WAIT(&rec, ACCEPTED, 0);
    CHECK(strcmp(e->remote, local) == 0);
    finish(m, &rec);
    close(cfd);
}

/* ---- gates ------------------------------------------------------------------ */

struct gate {
    char refuse[CONNMGR_ADDR_MAX];
    int calls;
};

static bool gate_fn(void *ud, const char *addr, char *reason, size_t cap) {
    struct gate *g = ud;
    __atomic_add_fetch(&g->calls, 1, __ATOMIC_SEQ_CST);
    if (g->refuse[0] == '*' || strcmp(addr, g->refuse) == 0) {
        snprintf(reason, cap, "blocked by the C gate");
        return false;
    }
    return true;
}

static void test_gates(void) {
    struct recorder rec;
    recorder_init(&rec);
    char peer[64], where[64];
    int plfd = listen_loopback(peer, sizeof peer);
    int lfd = listen_loopback(where, sizeof where);
    struct gate dial_gate = {0}, accept_gate = {.refuse = "*"};
    snprintf(dial_gate.refuse, sizeof dial_gate.refuse, "%s", peer);

    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 0));
    CHECK(connmgr_config_set_dial_gate(cfg, NULL, NULL) == CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_config_set_dial_gate(cfg, gate_fn, &dial_gate));
    OK(connmgr_config_set_accept_gate(cfg, gate_fn, &accept_gate));
    OK(connmgr_config_add_listen_fd(cfg, lfd));
    connmgr_callbacks cbs = callbacks_for(&rec);
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = start(cfg);

    /* The dial gate's refusal fails the dial with its reason; no socket
     * reaches the peer. */
    uint64_t id = 0;
    OK(connmgr_connect(m, peer, false, &id));
    struct event *e = WAIT(&rec, DIAL_FAILED, id);
    CHECK(strstr(e->error, "blocked by the C gate") != NULL);
    struct pollfd p = {.fd = plfd, .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0);

    /* The accept gate closes what it refuses before anyone sees it. */
    int cfd = connect_to(where);
    fd_expect_eof(cfd);
    close(cfd);
    CHECK(__atomic_load_n(&accept_gate.calls, __ATOMIC_SEQ_CST) == 1);
    OK(connmgr_barrier(m));
    pthread_mutex_lock(&rec.mu);
    for (size_t i = 0; i < rec.n; i++) CHECK(rec.events[i].kind != ACCEPTED);
    pthread_mutex_unlock(&rec.mu);

    finish(m, &rec);
    close(plfd);
}

/* ---- tags: upsert, decay and bump functions ---------------------------------- */

static int64_t add_step(void *ud, int64_t current) {
    return current + *(const int64_t *)ud;
}

/* Halves the value each interval; removes it below 2. Counts its calls. */
static int64_t halve(void *ud, int64_t value, uint64_t ms_since_bump, bool *remove) {
    (void)ms_since_bump;
    __atomic_add_fetch((int *)ud, 1, __ATOMIC_SEQ_CST);
    *remove = value / 2 < 2;
    return value / 2;
}

/* A bump keeps the larger of the value and the bump. */
static int64_t keep_max(void *ud, int64_t current, int64_t delta) {
    (void)ud;
    return current > delta ? current : delta;
}

static int64_t total(const connmgr_manager *m, const char *peer) {
    int64_t value = -1;
    size_t tags = 0;
    connmgr_status st = connmgr_tag_info(m, peer, &value, &tags);
    if (st == CONNMGR_STATUS_UNKNOWN_ID) return 0; /* a peer with no tags left */
    OK(st);
    return value;
}

static void test_tags(void) {
    connmgr_manual_clock *clock = NULL;
    OK(connmgr_manual_clock_new(&clock));
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 0));
    OK(connmgr_config_set_clock(cfg, clock));
    CHECK(connmgr_config_add_decaying(cfg, "bad", 1000, 99, 0, CONNMGR_BUMP_SUM, 0, 0) ==
          CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_config_add_decaying(cfg, "seen", 1000, CONNMGR_DECAY_FIXED, 1, CONNMGR_BUMP_SUM,
                                   0, 0));
    connmgr_manager *m = start(cfg);

    /* Upsert applies the function to the current value, once per call. */
    int64_t step = 5;
    CHECK(connmgr_upsert_tag(m, "peer-a", "served", NULL, NULL) == CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_upsert_tag(m, "peer-a", "served", add_step, &step));
    step = 7;
    OK(connmgr_upsert_tag(m, "peer-a", "served", add_step, &step));
    CHECK(total(m, "peer-a") == 12);

    /* A decaying tag from the config exists from the start. */
    OK(connmgr_bump_decaying(m, "peer-b", "seen", 3));
    OK(connmgr_barrier(m));
    CHECK(total(m, "peer-b") == 3);

    /* C decay and bump functions, driven by the manual clock. */
    int decays = 0;
    OK(connmgr_register_decaying_fn(m, "halving", 1000, halve, keep_max, &decays));
    CHECK(connmgr_register_decaying_fn(m, "halving", 1000, halve, keep_max, &decays) ==
          CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_bump_decaying(m, "peer-c", "halving", 8));
    OK(connmgr_bump_decaying(m, "peer-c", "halving", 3)); /* the larger stays */
    OK(connmgr_barrier(m));
    CHECK(total(m, "peer-c") == 8);
    OK(connmgr_manual_clock_advance(clock, 1000));
    EVENTUALLY(total(m, "peer-c") == 4);
    CHECK(total(m, "peer-b") == 2); /* fixed decay by 1 */
    OK(connmgr_manual_clock_advance(clock, 1000));
    EVENTUALLY(total(m, "peer-c") == 2);
    OK(connmgr_manual_clock_advance(clock, 1000));
    EVENTUALLY(total(m, "peer-c") == 0); /* 2 / 2 is below 2: removed */
    CHECK(__atomic_load_n(&decays, __ATOMIC_SEQ_CST) == 3);
    OK(connmgr_close_decaying(m, "halving"));

    finish(m, NULL);
    OK(connmgr_manual_clock_free(clock));
}

/* ---- seeding through a C lookup --------------------------------------------- */

struct seeding {
    pthread_mutex_t mu;
    int lookups;
    connmgr_status bad_add;
    int results;
    char addrs[8][CONNMGR_ADDR_MAX];
    int n_addrs;
    char failed_seed[128];
    char failed_error[256];
    uint64_t last_seen_min, last_seen_max;
};

static void lookup_fn(void *ud, const char *host, uint64_t timeout_ms,
                      connmgr_lookup_answer *answer) {
    struct seeding *s = ud;
    CHECK(timeout_ms > 0);
    pthread_mutex_lock(&s->mu);
    s->lookups++;
    pthread_mutex_unlock(&s->mu);
    if (strcmp(host, "seed-a.test") == 0) {
        connmgr_status st = connmgr_lookup_answer_add(answer, "127.0.0.1:80");
        pthread_mutex_lock(&s->mu);
        s->bad_add = st;
        pthread_mutex_unlock(&s->mu);
        OK(connmgr_lookup_answer_add(answer, "127.0.0.1"));
    } else {
        CHECK(connmgr_lookup_answer_fail(answer, 77, "x") == CONNMGR_STATUS_INVALID_ARGUMENT);
        OK(connmgr_lookup_answer_fail(answer, CONNMGR_LOOKUP_NOT_FOUND, "no such seed here"));
    }
}

static void on_seed(void *ud, const char *seed, const char *error, size_t count,
                    const char *const *addrs, const uint64_t *last_seen, uint64_t services) {
    struct seeding *s = ud;
    s->results++;
    if (error) {
        snprintf(s->failed_seed, sizeof s->failed_seed, "%s", seed);
        snprintf(s->failed_error, sizeof s->failed_error, "%s", error);
        CHECK(count == 0);
        return;
    }
    CHECK(services == 1);
    for (size_t i = 0; i < count && s->n_addrs < 8; i++) {
        snprintf(s->addrs[s->n_addrs++], CONNMGR_ADDR_MAX, "%s", addrs[i]);
        if (s->last_seen_min == 0 || last_seen[i] < s->last_seen_min)
            s->last_seen_min = last_seen[i];
        if (last_seen[i] > s->last_seen_max) s->last_seen_max = last_seen[i];
    }
}

/* The seeded addresses, handed out once each. */
static bool seeded_source(void *ud, char *buf, size_t cap) {
    struct seeding *s = ud;
    pthread_mutex_lock(&s->mu);
    bool found = s->n_addrs > 0;
    if (found) snprintf(buf, cap, "%s", s->addrs[--s->n_addrs]);
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void test_seeding(void) {
    /* The peer the seed points at listens on the network's default port. */
    char peer[64];
    int lfd = listen_loopback(peer, sizeof peer);
    unsigned port = (unsigned)atoi(strrchr(peer, ':') + 1);

    connmgr_netparams *p = NULL;
    CHECK(connmgr_netparams_builtin(99, &p) == CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_netparams_builtin(CONNMGR_SEEDNET_REGTEST, &p));
    struct seeding s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    /* Regtest has no seeds: nothing is looked up. */
    OK(connmgr_seed_from_dns(p, NULL, lookup_fn, &s, on_seed, &s));
    CHECK(s.lookups == 0 && s.results == 0);
    OK(connmgr_netparams_free(p));

    OK(connmgr_netparams_new("ctest", (uint16_t)port, &p));
    OK(connmgr_netparams_add_seed(p, "seed-a.test", true));
    OK(connmgr_netparams_add_seed(p, "seed-b.test", false));
    connmgr_seed_options *o = NULL;
    OK(connmgr_seed_options_new(&o));
    CHECK(connmgr_seed_options_set_limits(o, 1, 0, 1000) == CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_seed_options_set_limits(o, 1, 8, 10000));
    OK(connmgr_seed_options_set_local(o, true, true, 42));
    OK(connmgr_seed_options_set_now(o, 1700000000));
    OK(connmgr_seed_from_dns(p, o, lookup_fn, &s, on_seed, &s));
    OK(connmgr_seed_options_free(o));
    OK(connmgr_netparams_free(p));

    CHECK(s.lookups == 2 && s.results == 2);
    CHECK(s.bad_add == CONNMGR_STATUS_INVALID_ARGUMENT); /* a port is no IP */
    CHECK(s.n_addrs == 1 && strcmp(s.addrs[0], peer) == 0);
    CHECK(strcmp(s.failed_seed, "seed-b.test") == 0);
    CHECK(strstr(s.failed_error, "no such seed here") != NULL);
    /* Made-up last-seen times 3 to 7 days before "now". */
    CHECK(s.last_seen_min >= 1700000000 - 7 * 86400 && s.last_seen_max <= 1700000000 - 3 * 86400);

    /* The seeded address fills the manager's outbound target. */
    struct recorder rec;
    recorder_init(&rec);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 1));
    OK(connmgr_config_set_target_block_relay(cfg, 0));
    OK(connmgr_config_set_feeler_interval(cfg, 0));
    OK(connmgr_config_set_address_source(cfg, seeded_source, &s));
    connmgr_callbacks cbs = callbacks_for(&rec);
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = start(cfg);
    struct event *e = WAIT(&rec, CONNECTED, 0);
    CHECK(strcmp(e->remote, peer) == 0);
    int pfd = accept_peer(lfd);
    finish(m, &rec);
    close(pfd);
    close(lfd);
}

/* ---- the in-memory network ------------------------------------------------------ */

static void test_memory_network(void) {
    struct recorder rec;
    recorder_init(&rec);
    connmgr_memory_network *net = NULL;
    OK(connmgr_memory_network_new(&net));
    connmgr_memory_listener *peer = NULL;
    OK(connmgr_memory_listen(net, "10.0.0.1:8333", &peer));
    connmgr_memory_listener *again = NULL;
    CHECK(connmgr_memory_listen(net, "10.0.0.1:8333", &again) == CONNMGR_STATUS_INVALID_ARGUMENT);
    connmgr_conn *none = NULL;
    CHECK(connmgr_memory_accept(peer, 1, &none) == CONNMGR_STATUS_TIMED_OUT && none == NULL);

    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 0));
    OK(connmgr_config_set_memory_dialer(cfg, net));
    OK(connmgr_config_add_memory_listen(cfg, net, "10.0.0.9:8333"));
    connmgr_callbacks cbs = callbacks_for(&rec);
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = start(cfg);
    /* The network handle may go; the manager keeps the network. */
    connmgr_memory_network *net2 = NULL;
    OK(connmgr_memory_network_new(&net2));

    /* Outbound: the manager dials the C peer. */
    uint64_t id = 0;
    OK(connmgr_connect(m, "10.0.0.1:8333", false, &id));
    struct event *e = WAIT(&rec, CONNECTED, id);
    connmgr_conn *theirs = NULL;
    OK(connmgr_memory_accept(peer, DEADLINE_SECS * 1000, &theirs));
    OK(connmgr_conn_write(e->conn, (const uint8_t *)"ping", 4));
    char buf[8];
    conn_read_exact(theirs, buf, 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    OK(connmgr_disconnect(m, id));
    conn_expect_eof(theirs);
    OK(connmgr_conn_free(theirs));

    /* Inbound: a C peer dials the manager's memory listener. */
    connmgr_conn *client = NULL;
    OK(connmgr_memory_connect(net, "10.0.0.9:8333", &client));
    e = WAIT(&rec, ACCEPTED, 0);
    OK(connmgr_conn_write(client, (const uint8_t *)"pong", 4));
    conn_read_exact(e->conn, buf, 4);
    CHECK(memcmp(buf, "pong", 4) == 0);
    CHECK(connmgr_memory_connect(net, "10.0.0.5:1", &client) == CONNMGR_STATUS_IO);

    /* A second manager cannot listen where the first does. */
    cfg = new_config();
    OK(connmgr_config_add_memory_listen(cfg, net, "10.0.0.9:8333"));
    connmgr_manager *m2 = NULL;
    CHECK(connmgr_manager_new(cfg, &m2) == CONNMGR_STATUS_CONFIG && m2 == NULL);
    OK(connmgr_config_free(cfg));

    finish(m, &rec);
    conn_expect_eof(client);
    OK(connmgr_conn_free(client));
    OK(connmgr_memory_listener_free(peer));
    OK(connmgr_memory_network_free(net));
    OK(connmgr_memory_network_free(net2));
}

/* ---- the remaining settings -------------------------------------------------------- */

static void test_settings(void) {
    connmgr_config *cfg = new_config();
    /* Each admitted inbound connection needs a descriptor. */
    uint64_t with_125 = 0, with_10 = 0;
    OK(connmgr_config_descriptors_needed(cfg, &with_125));
    OK(connmgr_config_set_max_inbound(cfg, 10));
    OK(connmgr_config_descriptors_needed(cfg, &with_10));
    CHECK(with_125 - with_10 == 115 && with_10 > 10 + 8 + 2);
    CHECK(connmgr_config_set_eviction_rule(cfg, 99, 1) == CONNMGR_STATUS_INVALID_ARGUMENT);
    CHECK(connmgr_config_set_eviction_rule(cfg, CONNMGR_EVICT_NETGROUP, 1.5) ==
          CONNMGR_STATUS_INVALID_ARGUMENT);
    CHECK(connmgr_config_set_eviction_rule(cfg, CONNMGR_EVICT_UPTIME_RATIO, 2.0) ==
          CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_config_set_eviction_rule(cfg, CONNMGR_EVICT_NETGROUP, 2));
    OK(connmgr_config_set_eviction_rule(cfg, CONNMGR_EVICT_DISADVANTAGED_SHARE, 0.25));
    CHECK(connmgr_config_set_keep_one_outbound_per_network(cfg, 1u << 9) ==
          CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_config_set_keep_one_outbound_per_network(
        cfg, (1u << CONNMGR_NET_IPV4) | (1u << CONNMGR_NET_IPV6)));
    CHECK(connmgr_config_set_max_queued_events(cfg, (size_t)1 << 40) == CONNMGR_STATUS_CONFIG);
    OK(connmgr_config_set_max_queued_events(cfg, 1000));
    OK(connmgr_config_set_rng_seed(cfg, 7));
    OK(connmgr_config_set_inline_dial(cfg, false));
    connmgr_manager *m = start(cfg);
    size_t queued = 99;
    OK(connmgr_barrier(m));
    OK(connmgr_queued_calls(m, &queued));
    CHECK(queued < 99);
    finish(m, NULL);
}

int main(void) {
    alarm(WATCHDOG_SECS);
    signal(SIGPIPE, SIG_IGN);
    test_c_dialer(false);
    test_c_dialer(true);
    test_bad_descriptor();
    test_c_listener();
    test_listen_fd();
    test_gates();
    test_tags();
    test_seeding();
    test_memory_network();
    test_settings();
    printf("all C hook checks passed\n");
    return 0;
}
