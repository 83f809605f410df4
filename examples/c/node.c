/*
 * A live demo node on loopback, from C: what examples/node.rs does, through
 * the C API, with the same status table.
 *
 * It starts tiny local peers on 127.0.0.2, 127.0.0.3, ...: healthy ones
 * that hold connections, ones that drop each connection at once, and ones
 * whose port is closed. The manager fills its outbound target from an
 * address source cycling through them, keeps two permanent peers (one
 * healthy, one that drops, so its backoff grows from 1 s towards 8 s),
 * and listens for more local clients than it admits. The first inbound
 * peers are tagged (the first also protected), watermarks trim the count
 * back down, and six seconds in the node reports an outbound peer as
 * misbehaving, which bans it. Once a second it prints the counts, totals,
 * permanent peers, policy state and recent events; then it stops and
 * joins every thread it started.
 *
 * Events come from the pull queue, read in a poll(2) loop together with
 * the connections' sockets: the event loop a C node would have.
 *
 * Build and run (from the repository root):
 *
 *   cargo rustc --release --features ffi --lib --crate-type staticlib
 *   cc -std=c11 -O2 -Iinclude examples/c/node.c target/release/libconnmgr.a \
 *      -lpthread -ldl -lm -o node-c && ./node-c --seconds 20
 */
#define _DEFAULT_SOURCE

#include "connmgr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECENT 8       /* recent events shown */
#define TAGGED 3       /* inbound peers tagged, the first protected */
#define MISBEHAVE_AT 6 /* seconds in, an outbound peer misbehaves */
#define MAX_CONNS 512  /* connections the event loop serves at once */
#define MAX_PEER_FDS 512
#define CLIENTS_MAX 32
#define ADDR CONNMGR_ADDR_MAX

enum kind { HEALTHY, DROPPER, REFUSING };

static const enum kind PLAN[] = {HEALTHY, HEALTHY, HEALTHY, HEALTHY, HEALTHY, HEALTHY,
                                 HEALTHY, HEALTHY, HEALTHY, HEALTHY, HEALTHY, HEALTHY,
                                 HEALTHY, DROPPER, DROPPER, REFUSING, REFUSING};
#define N_PEERS (sizeof PLAN / sizeof PLAN[0])

static atomic_bool stopping;
static struct timespec started;
static connmgr_manager *mgr;

/* ---- small helpers ---------------------------------------------------------------- */

static double elapsed(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - started.tv_sec) + (now.tv_nsec - started.tv_nsec) / 1e9;
}

static void die(const char *what, connmgr_status st) {
    fprintf(stderr, "error: %s: %s: %s\n", what, connmgr_status_name((int)st), connmgr_last_error());
    exit(1);
}

#define TRY(call)                                    \
    do {                                             \
        connmgr_status st_ = (call);                 \
        if (st_ != CONNMGR_STATUS_OK) die(#call, st_); \
    } while (0)

/* Recent events, a ring of lines written by the event loop. */
static pthread_mutex_t recent_mu = PTHREAD_MUTEX_INITIALIZER;
static char recent[RECENT][160];
static int recent_n;

static void note(const char *fmt, ...) {
    char line[140];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&recent_mu);
    if (recent_n == RECENT) {
        memmove(recent[0], recent[1], sizeof recent[0] * (RECENT - 1));
        recent_n--;
    }
    snprintf(recent[recent_n++], sizeof recent[0], "%6.1fs  %s", elapsed(), line);
    pthread_mutex_unlock(&recent_mu);
}

/* A listening socket on 127.0.0.<host> (127.0.0.1 where only that works). */
static int listen_on(int host, char *text, size_t cap) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sa.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)host);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return close(fd), -1;
    }
    socklen_t len = sizeof sa;
    if (listen(fd, 64) != 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return close(fd), -1;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    snprintf(text, cap, "%s:%u", ip, (unsigned)ntohs(sa.sin_port));
    return fd;
}

static int connect_to(const char *text) {
    char ip[ADDR];
    snprintf(ip, sizeof ip, "%s", text);
    char *colon = strrchr(ip, ':');
    if (!colon) return -1;
    *colon = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return close(fd), -1;
    return fd;
}

/* ---- the local world: peers and inbound clients, one poll loop ---------------------- */

struct world {
    int listeners[N_PEERS + 2];
    enum kind kinds[N_PEERS + 2];
    int n_listeners;
    int held[MAX_PEER_FDS]; /* connections healthy peers hold (echoing) */
    int n_held;
    char target[ADDR]; /* the manager's listen address, for clients */
    int clients;
    int client_fd[CLIENTS_MAX];
    double client_until[CLIENTS_MAX]; /* hold until, or come back at */
};

static void world_step_clients(struct world *w) {
    for (int i = 0; i < w->clients; i++) {
        double now = elapsed();
        if (w->client_fd[i] < 0 && now >= w->client_until[i]) {
            w->client_fd[i] = connect_to(w->target);
            /* Different hold times, so slots free up at different moments. */
            w->client_until[i] = now + 2.5 + 0.7 * (i % 7);
        } else if (w->client_fd[i] >= 0 && now >= w->client_until[i]) {
            close(w->client_fd[i]);
            w->client_fd[i] = -1;
            w->client_until[i] = now + 1.0;
        }
    }
}

static void *world_loop(void *arg) {
    struct world *w = arg;
    struct pollfd p[N_PEERS + 2 + MAX_PEER_FDS + CLIENTS_MAX];
    while (!atomic_load(&stopping)) {
        world_step_clients(w);
        int n = 0;
        for (int i = 0; i < w->n_listeners; i++) p[n++] = (struct pollfd){w->listeners[i], POLLIN, 0};
        for (int i = 0; i < w->n_held; i++) p[n++] = (struct pollfd){w->held[i], POLLIN, 0};
        for (int i = 0; i < w->clients; i++) p[n++] = (struct pollfd){w->client_fd[i], POLLIN, 0};
        if (poll(p, (nfds_t)n, 50) <= 0) continue;
        for (int i = 0; i < w->n_listeners; i++) {
            if (!p[i].revents) continue;
            int fd = accept(w->listeners[i], NULL, NULL);
            if (fd < 0) continue;
            if (w->kinds[i] == HEALTHY && w->n_held < MAX_PEER_FDS) w->held[w->n_held++] = fd;
            else close(fd);
        }
        char buf[512];
        for (int i = w->n_held - 1; i >= 0; i--) {
            if (!p[w->n_listeners + i].revents) continue;
            ssize_t r = read(w->held[i], buf, sizeof buf);
            if (r > 0) {
                (void)!send(w->held[i], buf, (size_t)r, MSG_NOSIGNAL);
            } else {
                close(w->held[i]);
                w->held[i] = w->held[--w->n_held];
            }
        }
        for (int i = 0; i < w->clients; i++) {
            struct pollfd *q = &p[w->n_listeners + w->n_held + i];
            if (w->client_fd[i] < 0 || q->fd != w->client_fd[i] || !q->revents) continue;
            /* The manager refused or closed us: come back in a second. */
            if (read(w->client_fd[i], buf, sizeof buf) <= 0) {
                close(w->client_fd[i]);
                w->client_fd[i] = -1;
                w->client_until[i] = elapsed() + 1.0;
            }
        }
    }
    return NULL;
}

static void world_free(struct world *w) {
    for (int i = 0; i < w->n_listeners; i++) close(w->listeners[i]);
    for (int i = 0; i < w->n_held; i++) close(w->held[i]);
    for (int i = 0; i < w->clients; i++)
        if (w->client_fd[i] >= 0) close(w->client_fd[i]);
}

/* ---- the address source ------------------------------------------------------------- */

static char sources[N_PEERS][ADDR];
static atomic_uint next_source;

/* Runs on dialer threads: hands out the local peers in turn. */
static bool source(void *ud, char *buf, size_t cap) {
    (void)ud;
    unsigned i = atomic_fetch_add(&next_source, 1) % N_PEERS;
    snprintf(buf, cap, "%s", sources[i]);
    return true;
}

/* ---- the node's event loop: pull queue and connections ------------------------------- */

static pthread_mutex_t tagged_mu = PTHREAD_MUTEX_INITIALIZER;
static char tagged[TAGGED][ADDR];
static int n_tagged;

static const char *type_tag(connmgr_conn_type t, uint64_t id, const uint64_t *permanent, int n) {
    for (int i = 0; i < n; i++)
        if (permanent[i] == id) return " [permanent]";
    switch (t) {
        case CONNMGR_CONN_TYPE_FULL_RELAY: return " [full-relay]";
        case CONNMGR_CONN_TYPE_BLOCK_RELAY: return " [block-relay]";
        case CONNMGR_CONN_TYPE_FEELER: return " [feeler]";
        case CONNMGR_CONN_TYPE_ONE_SHOT: return " [one-shot]";
        default: return "";
    }
}

static void tag_if_early(const char *remote) {
    pthread_mutex_lock(&tagged_mu);
    if (n_tagged < TAGGED) {
        connmgr_tag(mgr, remote, "useful", 10 * (TAGGED - n_tagged));
        if (n_tagged == 0) connmgr_protect(mgr, remote, "demo");
        snprintf(tagged[n_tagged++], ADDR, "%s", remote);
        note("tagged         %s", remote);
    }
    pthread_mutex_unlock(&tagged_mu);
}

struct served {
    connmgr_conn *conn[MAX_CONNS];
    int fd[MAX_CONNS];
    int n;
};

/* Greets a new connection and watches its socket; the manager never reads it. */
static void serve(struct served *s, connmgr_conn *c) {
    int fd = -1;
    if (s->n == MAX_CONNS || connmgr_conn_fd(c, &fd) != CONNMGR_STATUS_OK) {
        connmgr_conn_free(c);
        return;
    }
    connmgr_conn_set_nonblocking(c, true);
    connmgr_conn_write(c, (const uint8_t *)"hello\n", 6);
    s->conn[s->n] = c;
    s->fd[s->n++] = fd;
}

static void on_event(connmgr_event *e, struct served *s, const uint64_t *permanent, int n_perm) {
    uint32_t kind = 0;
    uint64_t id = 0;
    connmgr_conn_type type = CONNMGR_CONN_TYPE_INBOUND;
    int64_t retry = -1;
    char remote[ADDR] = "", text[256] = "";
    connmgr_event_info(e, &kind, &id, &type, &retry);
    connmgr_event_remote(e, remote, sizeof remote);
    connmgr_event_text(e, text, sizeof text);
    const char *t = type_tag(type, id, permanent, n_perm);
    connmgr_conn *c = NULL;
    switch (kind) {
        case CONNMGR_EVENT_CONNECTED:
            note("connected      #%llu %s%s", (unsigned long long)id, remote, t);
            /* A feeler has done its job once it connects. */
            if (type == CONNMGR_CONN_TYPE_FEELER) connmgr_handshake_done(mgr, id);
            if (connmgr_event_take_conn(e, &c) == CONNMGR_STATUS_OK && c) serve(s, c);
            break;
        case CONNMGR_EVENT_DISCONNECTED:
            note("disconnected   #%llu %s%s (%s)", (unsigned long long)id, remote, t, text);
            break;
        case CONNMGR_EVENT_ACCEPTED:
            note("accepted       #%llu (%s)", (unsigned long long)id, remote);
            tag_if_early(remote);
            if (connmgr_event_take_conn(e, &c) == CONNMGR_STATUS_OK && c) serve(s, c);
            break;
        case CONNMGR_EVENT_INBOUND_CLOSED:
            note("inbound closed #%llu (%s, %s)", (unsigned long long)id, remote, text);
            break;
        case CONNMGR_EVENT_DIAL_FAILED:
            if (retry >= 0)
                note("dial failed    #%llu %s: %s, retry in %.1fs", (unsigned long long)id,
                     remote, text, retry / 1000.0);
            else
                note("dial failed    #%llu %s: %s", (unsigned long long)id, remote, text);
            break;
        default: break;
    }
    connmgr_event_free(e);
}

struct loop_args {
    uint64_t permanent[8];
    int n_permanent;
};

static void *event_loop(void *arg) {
    struct loop_args *a = arg;
    struct served s = {.n = 0};
    int efd = -1;
    TRY(connmgr_event_fd(mgr, &efd));
    struct pollfd p[MAX_CONNS + 1];
    while (!atomic_load(&stopping)) {
        p[0] = (struct pollfd){efd, POLLIN, 0};
        for (int i = 0; i < s.n; i++) p[i + 1] = (struct pollfd){s.fd[i], POLLIN, 0};
        if (poll(p, (nfds_t)s.n + 1, 50) <= 0) continue;
        connmgr_event *e = NULL;
        while (connmgr_next_event(mgr, 0, &e) == CONNMGR_STATUS_OK && e)
            on_event(e, &s, a->permanent, a->n_permanent), e = NULL;
        for (int i = s.n - 1; i >= 0; i--) {
            if (!p[i + 1].revents) continue;
            uint8_t buf[512];
            size_t got = 0;
            connmgr_status st = connmgr_conn_read(s.conn[i], buf, sizeof buf, &got);
            if (st == CONNMGR_STATUS_TIMED_OUT || (st == CONNMGR_STATUS_OK && got > 0)) continue;
            /* End of stream: freeing tells the manager it closed. */
            connmgr_conn_free(s.conn[i]);
            s.n--;
            s.conn[i] = s.conn[s.n];
            s.fd[i] = s.fd[s.n];
        }
    }
    for (int i = 0; i < s.n; i++) connmgr_conn_free(s.conn[i]);
    return NULL;
}

/* ---- the status table ------------------------------------------------------------- */

static uint64_t stat(uint32_t key) {
    uint64_t v = 0;
    connmgr_get_stat(mgr, key, &v);
    return v;
}

static void totals(char *out, size_t cap) {
    snprintf(out, cap,
             "dials %llu   failures %llu   outbound connects %llu   accepted %llu   refused %llu   "
             "closed %llu",
             (unsigned long long)stat(CONNMGR_STAT_DIALS),
             (unsigned long long)stat(CONNMGR_STAT_DIAL_FAILURES),
             (unsigned long long)stat(CONNMGR_STAT_OUTBOUND_ESTABLISHED),
             (unsigned long long)stat(CONNMGR_STAT_INBOUND_ACCEPTED),
             (unsigned long long)stat(CONNMGR_STAT_INBOUND_REFUSED),
             (unsigned long long)stat(CONNMGR_STAT_CLOSED));
}

static const char *state_name(connmgr_state s) {
    switch (s) {
        case CONNMGR_STATE_PENDING: return "pending";
        case CONNMGR_STATE_FAILING: return "failing";
        case CONNMGR_STATE_CANCELED: return "canceled";
        case CONNMGR_STATE_ESTABLISHED: return "established";
        case CONNMGR_STATE_DISCONNECTED: return "disconnected";
    }
    return "?";
}

static void print_policy(void) {
    printf("\npolicy\n");
    size_t bans = 0;
    connmgr_ban_count(mgr, &bans);
    for (size_t i = 0; i < bans; i++) {
        char subnet[ADDR], reason[256];
        uint64_t left = 0;
        if (connmgr_get_ban(mgr, i, subnet, sizeof subnet, reason, sizeof reason, &left) ==
            CONNMGR_STATUS_OK)
            printf("  banned     %s for %llu h more: %s\n", subnet,
                   (unsigned long long)(left / 3600000), reason);
    }
    connmgr_trim_info t;
    if (connmgr_get_trim_info(mgr, &t) == CONNMGR_STATUS_OK && t.enabled)
        printf("  trimming   watermarks %zu..%zu   connections %zu   trims %llu (last closed %zu)\n",
               t.low_watermark, t.high_watermark, t.connections, (unsigned long long)t.trims,
               t.last_trim_closed);
    pthread_mutex_lock(&tagged_mu);
    for (int i = 0; i < n_tagged; i++) {
        int64_t value = 0;
        size_t tags = 0;
        bool prot = false;
        connmgr_is_protected(mgr, tagged[i], NULL, &prot);
        if (connmgr_tag_info(mgr, tagged[i], &value, &tags) == CONNMGR_STATUS_OK)
            printf("  tagged     %-22s value %lld%s\n", tagged[i], (long long)value,
                   prot ? ", protected" : "");
        else
            printf("  tagged     %-22s left; its tags went with it\n", tagged[i]);
    }
    pthread_mutex_unlock(&tagged_mu);
    printf("  closes     by node %llu  disconnect %llu  trimmed %llu  evicted %llu  banned %llu  "
           "misbehaving %llu  feelers done %llu\n",
           (unsigned long long)stat(CONNMGR_STAT_CLOSED_BY_NODE),
           (unsigned long long)stat(CONNMGR_STAT_CLOSED_DISCONNECT),
           (unsigned long long)stat(CONNMGR_STAT_TRIMMED),
           (unsigned long long)stat(CONNMGR_STAT_EVICTED),
           (unsigned long long)stat(CONNMGR_STAT_CLOSED_BANNED),
           (unsigned long long)stat(CONNMGR_STAT_CLOSED_MISBEHAVING),
           (unsigned long long)stat(CONNMGR_STAT_CLOSED_FEELER_DONE));
}

static void frame(const char *header, const struct loop_args *a, int total) {
    connmgr_counts c;
    size_t n = 0;
    connmgr_snapshot(mgr, &c, NULL, 0, &n);
    char tot[256];
    totals(tot, sizeof tot);
    printf("connmgr demo node (C)   t=%.1fs of %ds\n%s\n\n", elapsed(), total, header);
    printf("requests     pending %zu   failing %zu   disconnected (waiting to retry) %zu\n"
           "established  outbound %zu (full-relay %zu, block-relay %zu, feeler %zu)   inbound %zu\n",
           c.pending, c.failing, c.disconnected, c.outbound, c.full_relay_outbound,
           c.block_relay_outbound, c.feelers, c.inbound);
    printf("totals       %s\n\npermanent peers\n", tot);
    for (int i = 0; i < a->n_permanent; i++) {
        connmgr_conn_info info;
        uint64_t in_state = 0;
        int64_t next = -1;
        if (connmgr_get_conn_info(mgr, a->permanent[i], &info) != CONNMGR_STATUS_OK) {
            printf("  #%-3llu (finished)\n", (unsigned long long)a->permanent[i]);
            continue;
        }
        connmgr_conn_times(mgr, a->permanent[i], &in_state, &next);
        printf("  #%-3llu %-22s %-13s retries %u", (unsigned long long)info.id, info.addr,
               state_name(info.state), info.retries);
        if (next >= 0) printf("   next attempt in %.1fs", next / 1000.0);
        printf("\n");
    }
    print_policy();
    printf("\nrecent events\n");
    pthread_mutex_lock(&recent_mu);
    for (int i = 0; i < recent_n; i++) printf("  %s\n", recent[i]);
    pthread_mutex_unlock(&recent_mu);
    fflush(stdout);
}

/* Reports the first automatic outbound peer past the ban threshold. */
static void misbehave(void) {
    connmgr_counts c;
    connmgr_conn_info infos[256];
    size_t n = 0;
    if (connmgr_snapshot(mgr, &c, infos, 256, &n) != CONNMGR_STATUS_OK) return;
    for (size_t i = 0; i < n; i++) {
        if (infos[i].automatic && infos[i].state == CONNMGR_STATE_ESTABLISHED) {
            connmgr_misbehaving(mgr, infos[i].id, 100, 0, "demo: sent an invalid block");
            note("misbehaving    #%llu (%s): banned", (unsigned long long)infos[i].id,
                 infos[i].addr);
            return;
        }
    }
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void) {
    puts("usage: node-c [--seconds N] [--target N] [--max-inbound N]\n\n"
         "  --seconds N      how long to run (default 20)\n"
         "  --target N       full-relay outbound connections to keep (default 8;\n"
         "                   2 block-relay-only ones come on top)\n"
         "  --max-inbound N  inbound connections admitted at once (default 8)");
}

static long number(const char *flag, const char *text, long min, long max) {
    char *end = NULL;
    long v = text ? strtol(text, &end, 10) : -1;
    if (!text || *end || v < min || v > max) {
        fprintf(stderr, "error: %s expects a number from %ld to %ld\n", flag, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    long seconds = 20, target = 8, max_inbound = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(), 0;
        if (!strcmp(argv[i], "--seconds")) seconds = number(argv[i], argv[i + 1], 1, 3600), i++;
        else if (!strcmp(argv[i], "--target")) target = number(argv[i], argv[i + 1], 0, 1000), i++;
        else if (!strcmp(argv[i], "--max-inbound"))
            max_inbound = number(argv[i], argv[i + 1], 0, 1000), i++;
        else {
            fprintf(stderr, "error: unknown argument '%s'; run with --help\n", argv[i]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    clock_gettime(CLOCK_MONOTONIC, &started);

    /* The local world: peers (and, once the manager listens, clients). */
    static struct world w;
    char legend[3][1024] = {"", "", ""};
    char permanent_addr[2][ADDR];
    for (size_t i = 0; i < N_PEERS; i++) {
        int fd = listen_on(2 + (int)i, sources[i], ADDR);
        if (fd < 0) return perror("listen"), 1;
        size_t len = strlen(legend[PLAN[i]]);
        snprintf(legend[PLAN[i]] + len, sizeof legend[0] - len, " %s", sources[i]);
        if (PLAN[i] == REFUSING) close(fd); /* the port was ours: nothing answers */
        else w.kinds[w.n_listeners] = PLAN[i], w.listeners[w.n_listeners++] = fd;
    }
    for (int i = 0; i < 2; i++) {
        w.kinds[w.n_listeners] = i == 0 ? HEALTHY : DROPPER;
        w.listeners[w.n_listeners++] = listen_on(20 + i, permanent_addr[i], ADDR);
    }

    connmgr_config *cfg = NULL;
    TRY(connmgr_config_new(&cfg));
    size_t outbound = (size_t)target + 2 + 2 + 1; /* full, block-relay, permanent, feeler */
    TRY(connmgr_config_set_target_outbound(cfg, (size_t)target));
    TRY(connmgr_config_set_max_inbound(cfg, (size_t)max_inbound));
    TRY(connmgr_config_add_listen_addr(cfg, "127.0.0.1:0"));
    TRY(connmgr_config_set_dial_timeout(cfg, 2000));
    /* Short waits so backoff growth shows within a 20 s run. */
    TRY(connmgr_config_set_retry_duration(cfg, 1000));
    TRY(connmgr_config_set_max_retry_duration(cfg, 8000));
    TRY(connmgr_config_set_feeler_interval(cfg, 4000));
    TRY(connmgr_config_set_watermarks(cfg, outbound + (size_t)max_inbound / 4,
                                      outbound + (size_t)max_inbound / 2));
    TRY(connmgr_config_set_trim_grace(cfg, 2000));
    TRY(connmgr_config_set_trim_silence(cfg, 3000));
    TRY(connmgr_config_set_address_source(cfg, source, NULL));
    TRY(connmgr_config_set_event_queue(cfg, true));
    TRY(connmgr_manager_new(cfg, &mgr));
    TRY(connmgr_config_free(cfg));
    TRY(connmgr_manager_start(mgr));

    struct loop_args args = {.n_permanent = 0};
    for (int i = 0; i < 2; i++)
        TRY(connmgr_connect(mgr, permanent_addr[i], true, &args.permanent[args.n_permanent++]));
    TRY(connmgr_listen_addr(mgr, 0, w.target, sizeof w.target));
    /* More clients than slots, so some are refused. */
    w.clients = (int)(max_inbound < 28 ? max_inbound : 28) + 4;
    for (int i = 0; i < w.clients; i++) w.client_fd[i] = -1;

    pthread_t world_thread, loop_thread;
    pthread_create(&world_thread, NULL, world_loop, &w);
    pthread_create(&loop_thread, NULL, event_loop, &args);

    char header[4096];
    snprintf(header, sizeof header,
             "listening on %s   target outbound %ld   max inbound %ld\n"
             "local peers  healthy:%s %s\n             drop:%s %s\n             refuse:%s",
             w.target, target, max_inbound, legend[HEALTHY], permanent_addr[0], legend[DROPPER],
             permanent_addr[1], legend[REFUSING]);
    bool tty = isatty(STDOUT_FILENO);
    for (long s = 1; s <= seconds; s++) {
        double wait = (double)s - elapsed();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        if (s == MISBEHAVE_AT) misbehave();
        printf("%s", tty ? "\x1b[2J\x1b[H" : "------------------------------------------------------------------------\n");
        frame(header, &args, (int)seconds);
    }

    /* Stop in dependency order: the manager, then the loops, then the world. */
    TRY(connmgr_manager_stop(mgr));
    atomic_store(&stopping, true);
    pthread_join(loop_thread, NULL);
    pthread_join(world_thread, NULL);
    world_free(&w);
    char tot[256];
    totals(tot, sizeof tot);
    printf("stopped cleanly after %.1fs, all threads joined: %s\n", elapsed(), tot);
    TRY(connmgr_manager_free(mgr));
    return 0;
}
