/*
 * connmgr from C: start a manager, connect to a peer on loopback, say
 * hello through the connection, print the events and a snapshot, stop.
 *
 * The "peer" is a plain listening socket opened by this program, so the
 * example needs nothing else running. Build (from the repository root):
 *
 *   cargo rustc --release --features ffi --lib --crate-type staticlib
 *   cc -std=c11 -Iinclude examples/c/loopback.c target/release/libconnmgr.a \
 *      -lpthread -ldl -lm -o loopback && ./loopback
 */
#define _POSIX_C_SOURCE 200809L

#include "connmgr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What the callbacks share with main: the connection they were handed. */
struct app {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    connmgr_conn *conn; /* ours to free */
    int disconnected;
};

/* Exits with the library's message when a call fails. */
static void check(connmgr_status st, const char *what) {
    if (st != CONNMGR_STATUS_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, connmgr_status_name((int)st),
                connmgr_last_error());
        exit(1);
    }
}

/* Callbacks run on the manager's notifier thread. */
static void on_connected(void *user_data, uint64_t id, const char *remote, bool permanent,
                         connmgr_conn *conn) {
    struct app *app = user_data;
    printf("event: connected #%llu to %s%s\n", (unsigned long long)id, remote,
           permanent ? " (permanent)" : "");
    pthread_mutex_lock(&app->mu);
    app->conn = conn;
    pthread_cond_signal(&app->cv);
    pthread_mutex_unlock(&app->mu);
}

static void on_disconnected(void *user_data, uint64_t id, const char *remote, bool permanent) {
    struct app *app = user_data;
    (void)permanent;
    printf("event: disconnected #%llu from %s\n", (unsigned long long)id, remote);
    pthread_mutex_lock(&app->mu);
    app->disconnected = 1;
    pthread_cond_signal(&app->cv);
    pthread_mutex_unlock(&app->mu);
}

static void on_dial_failed(void *user_data, uint64_t id, const char *remote, const char *error,
                           int64_t retry_in_ms) {
    (void)user_data;
    printf("event: dial #%llu to %s failed: %s (retry in %lld ms)\n", (unsigned long long)id,
           remote, error, (long long)retry_in_ms);
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

static void print_snapshot(const connmgr_manager *mgr) {
    connmgr_counts counts;
    connmgr_conn_info infos[8];
    size_t n = 0;
    check(connmgr_snapshot(mgr, &counts, infos, 8, &n), "snapshot");
    printf("snapshot: %zu outbound, %zu inbound, %zu pending\n", counts.outbound, counts.inbound,
           counts.pending);
    for (size_t i = 0; i < n; i++) {
        printf("  #%llu %-22s %-12s %s\n", (unsigned long long)infos[i].id, infos[i].addr,
               state_name(infos[i].state),
               infos[i].direction == CONNMGR_DIRECTION_OUTBOUND ? "outbound" : "inbound");
    }
}

int main(void) {
    alarm(30); /* a demo should never hang: give up after 30 s */

    /* A peer: a listening socket on a free loopback port. */
    int peer = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (peer < 0 || bind(peer, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(peer, 8) != 0 ||
        getsockname(peer, (struct sockaddr *)&sa, &len) != 0) {
        perror("peer socket");
        return 1;
    }
    char peer_addr[64];
    snprintf(peer_addr, sizeof peer_addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));

    struct app app = {.conn = NULL, .disconnected = 0};
    pthread_mutex_init(&app.mu, NULL);
    pthread_cond_init(&app.cv, NULL);

    /* Settings: no automatic outbound, quick retries, our callbacks. */
    connmgr_config *cfg = NULL;
    check(connmgr_config_new(&cfg), "config_new");
    check(connmgr_config_set_target_outbound(cfg, 0), "set_target_outbound");
    check(connmgr_config_set_retry_duration(cfg, 500), "set_retry_duration");
    check(connmgr_config_set_backoff(cfg, CONNMGR_BACKOFF_EXPONENTIAL, 0.2), "set_backoff");
    connmgr_callbacks cbs = {.user_data = &app,
                             .connected = on_connected,
                             .disconnected = on_disconnected,
                             .dial_failed = on_dial_failed};
    check(connmgr_config_set_callbacks(cfg, &cbs), "set_callbacks");

    connmgr_manager *mgr = NULL;
    check(connmgr_manager_new(cfg, &mgr), "manager_new");
    check(connmgr_config_free(cfg), "config_free"); /* the manager has its own copy */
    check(connmgr_manager_start(mgr), "start");

    uint64_t id = 0;
    check(connmgr_connect(mgr, peer_addr, true, &id), "connect");
    printf("asked for #%llu to %s\n", (unsigned long long)id, peer_addr);

    /* Wait for the connected callback, then greet the peer. */
    pthread_mutex_lock(&app.mu);
    while (app.conn == NULL) pthread_cond_wait(&app.cv, &app.mu);
    pthread_mutex_unlock(&app.mu);
    int accepted = accept(peer, NULL, NULL);
    const char hello[] = "hello from C";
    check(connmgr_conn_write(app.conn, (const uint8_t *)hello, sizeof hello - 1), "conn_write");
    char got[32] = {0};
    ssize_t n = read(accepted, got, sizeof got - 1);
    printf("peer received %zd bytes: %s\n", n, got);

    print_snapshot(mgr);

    /* Remove the request; the disconnected callback follows. */
    check(connmgr_remove(mgr, id), "remove");
    pthread_mutex_lock(&app.mu);
    while (!app.disconnected) pthread_cond_wait(&app.cv, &app.mu);
    pthread_mutex_unlock(&app.mu);

    check(connmgr_manager_stop(mgr), "stop");
    check(connmgr_manager_free(mgr), "free");
    check(connmgr_conn_free(app.conn), "conn_free"); /* handles are ours to free */
    close(accepted);
    close(peer);
    printf("stopped cleanly\n");
    return 0;
}
