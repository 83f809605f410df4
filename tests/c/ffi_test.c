/*
 * Exercises the C API from C: argument and config errors, outbound and
 * inbound connections over loopback, reading and writing through
 * connection handles, disconnect, permanent retry, the address source,
 * snapshots, policy calls, stop with events in flight, stop from a
 * callback and free without stop.
 *
 * Run by tests/ffi.rs (also under valgrind and under gcc's AddressSanitizer
 * and UndefinedBehaviorSanitizer). Exits 0 when every check
 * passes; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include "support.h"

/* connmgr_manager_new rejects `cfg` with CONFIG, mentioning `text`, and
 * leaves the out pointer alone; frees `cfg`. */
static void expect_config_error(connmgr_config *cfg, const char *text, int line) {
    connmgr_manager *m = NULL;
    connmgr_status st = connmgr_manager_new(cfg, &m);
    if (st != CONNMGR_STATUS_CONFIG || strstr(connmgr_last_error(), text) == NULL || m != NULL) {
        fprintf(stderr,
                "ffi_test.c:%d: expected CONFIG mentioning \"%s\", got %s: %s\n", line, text,
                connmgr_status_name((int)st), connmgr_last_error());
        exit(1);
    }
    OK(connmgr_config_free(cfg));
}

static void test_errors(void) {
    /* Status names and the last error. */
    CHECK(strcmp(connmgr_status_name(CONNMGR_STATUS_BUFFER_TOO_SMALL), "BUFFER_TOO_SMALL") == 0);
    CHECK(strcmp(connmgr_status_name(12345), "UNKNOWN") == 0);
    EXPECT(connmgr_config_new(NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    ERROR_MENTIONS("connmgr_config_new");
    CHECK(connmgr_last_error_length() == strlen(connmgr_last_error()));
    CHECK(connmgr_last_error_length() > 0);

    connmgr_config *cfg = new_config();
    CHECK(connmgr_last_error_length() == 0);
    CHECK(strcmp(connmgr_last_error(), "") == 0);

    /* Setters: NULL, bad UTF-8, values that do not parse. */
    EXPECT(connmgr_config_set_target_outbound(NULL, 1), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_config_add_listen_addr(cfg, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_config_add_listen_addr(cfg, "\xff\xfe:1"), CONNMGR_STATUS_INVALID_UTF8);
    EXPECT(connmgr_config_add_listen_addr(cfg, "not an address"), CONNMGR_STATUS_INVALID_ARGUMENT);
    ERROR_MENTIONS("not an address");
    EXPECT(connmgr_config_set_backoff(cfg, 7, 0.0), CONNMGR_STATUS_INVALID_ARGUMENT);
    ERROR_MENTIONS("backoff kind 7");
    EXPECT(connmgr_config_set_socks5_auth(cfg, "u", "p"), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_config_set_socks5_proxy(cfg, "nope", true), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_config_set_callbacks(cfg, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_config_set_stop_grace(cfg, UINT64_MAX), CONNMGR_STATUS_CONFIG);
    ERROR_MENTIONS("stop_grace");
    /* Sizes past their bound are refused by the setter, not by an abort. */
    EXPECT(connmgr_config_set_target_outbound(cfg, SIZE_MAX), CONNMGR_STATUS_CONFIG);
    ERROR_MENTIONS("target_outbound");
    EXPECT(connmgr_config_set_dialer_pool_size(cfg, SIZE_MAX), CONNMGR_STATUS_CONFIG);
    ERROR_MENTIONS("dialer_pool_size");
    EXPECT(connmgr_config_set_max_inbound(cfg, SIZE_MAX), CONNMGR_STATUS_CONFIG);
    EXPECT(connmgr_config_set_target_block_relay(cfg, SIZE_MAX), CONNMGR_STATUS_CONFIG);
    ERROR_MENTIONS("target_block_relay");
    EXPECT(connmgr_config_set_max_inbound_per_ip(cfg, SIZE_MAX), CONNMGR_STATUS_CONFIG);
    EXPECT(connmgr_config_set_feeler_interval(cfg, UINT64_MAX), CONNMGR_STATUS_CONFIG);
    /* A permission on a subnet that does not parse, or with unknown bits. */
    EXPECT(connmgr_config_add_permission(cfg, "10.0.0.0/33", CONNMGR_PERM_NOBAN),
           CONNMGR_STATUS_INVALID_ARGUMENT);
    ERROR_MENTIONS("10.0.0.0/33");
    EXPECT(connmgr_config_add_permission(cfg, "10.0.0.0/8", 1u << 20), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_config_add_permission(cfg, NULL, CONNMGR_PERM_NOBAN), CONNMGR_STATUS_NULL_ARGUMENT);
    /* Per-network settings: unknown networks and bits are refused. */
    EXPECT(connmgr_config_set_only_networks(cfg, 1u << 7), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_config_set_max_outbound_on(cfg, 9, 1), CONNMGR_STATUS_INVALID_ARGUMENT);
    ERROR_MENTIONS("CONNMGR_NET_");
    EXPECT(connmgr_config_set_min_outbound_on(cfg, CONNMGR_NET_ONION, SIZE_MAX), CONNMGR_STATUS_CONFIG);
    EXPECT(connmgr_config_set_dial_timeout(cfg, UINT64_MAX), CONNMGR_STATUS_CONFIG);
    EXPECT(connmgr_config_set_address_source(cfg, NULL, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    connmgr_manager *m = NULL;
    EXPECT(connmgr_manager_new(NULL, &m), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_manager_new(cfg, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    CHECK(m == NULL);

    /* A config that works, with a SOCKS5 proxy and isolation; never started. */
    OK(connmgr_config_set_socks5_proxy(cfg, "127.0.0.1:9050", true));
    OK(connmgr_config_set_onion_proxy(cfg, "127.0.0.1:9150"));
    OK(connmgr_config_set_i2p_proxy(cfg, "127.0.0.1:4447"));
    EXPECT(connmgr_config_set_onion_proxy(cfg, "not an address"), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_config_set_socks5_timeouts(cfg, 0, 1000), CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_config_set_socks5_timeouts(cfg, 5000, 10000));
    OK(connmgr_config_set_socks5_auth(cfg, "user", "secret"));
    OK(connmgr_config_set_proxy_all(cfg, true));
    OK(connmgr_config_set_backoff(cfg, CONNMGR_BACKOFF_EXPONENTIAL, 0.25));
    /* Per-network minimums past the full-relay target cannot work. */
    OK(connmgr_config_set_min_outbound_on(cfg, CONNMGR_NET_ONION, 9));
    EXPECT(connmgr_manager_new(cfg, &m), CONNMGR_STATUS_CONFIG);
    ERROR_MENTIONS("per-network");
    OK(connmgr_config_set_min_outbound_on(cfg, CONNMGR_NET_ONION, 2));
    OK(connmgr_config_set_max_outbound_on(cfg, CONNMGR_NET_ONION, 3));
    OK(connmgr_config_set_only_networks(cfg, (1u << CONNMGR_NET_IPV4) | (1u << CONNMGR_NET_ONION)));
    OK(connmgr_config_set_evict_inbound(cfg, true));
    OK(connmgr_config_set_force_inbound_margin(cfg, 2));
    OK(connmgr_config_set_manual_duplicates(cfg, false));
    OK(connmgr_config_set_one_shot_timeout(cfg, 60000));
    OK(connmgr_config_set_feeler_timeout(cfg, 0));
    EXPECT(connmgr_manager_new(cfg, &m), CONNMGR_STATUS_CONFIG);
    ERROR_MENTIONS("feeler_timeout");
    OK(connmgr_config_set_feeler_timeout(cfg, 30000));
    OK(connmgr_manager_new(cfg, &m));
    CHECK(m != NULL);
    bool running = true;
    OK(connmgr_manager_is_running(m, &running));
    CHECK(!running);
    OK(connmgr_manager_free(m));
    OK(connmgr_config_free(cfg));

    /* Settings the manager rejects. */
    cfg = new_config();
    OK(connmgr_config_set_dialer_pool_size(cfg, 0));
    expect_config_error(cfg, "dialer pool", __LINE__);

    cfg = new_config();
    OK(connmgr_config_set_retry_duration(cfg, 0));
    expect_config_error(cfg, "retry duration is 0", __LINE__);

    cfg = new_config();
    OK(connmgr_config_set_retry_duration(cfg, 1000));
    OK(connmgr_config_set_max_retry_duration(cfg, 10));
    expect_config_error(cfg, "max retry duration", __LINE__);

    cfg = new_config();
    OK(connmgr_config_set_backoff(cfg, CONNMGR_BACKOFF_EXPONENTIAL, 1.5));
    expect_config_error(cfg, "jitter", __LINE__);

    cfg = new_config();
    OK(connmgr_config_set_dial_timeout(cfg, 0));
    expect_config_error(cfg, "dial timeout", __LINE__);

    cfg = new_config();
    OK(connmgr_config_set_socks5_proxy(cfg, "127.0.0.1:9050", false));
    OK(connmgr_config_set_socks5_auth(cfg, "", "p"));
    expect_config_error(cfg, "SOCKS5", __LINE__);

    char busy[64];
    int busy_fd = listen_loopback(busy, sizeof busy);
    cfg = new_config();
    OK(connmgr_config_add_listen_addr(cfg, busy));
    expect_config_error(cfg, "cannot listen", __LINE__);
    close(busy_fd);

    /* NULL handles. */
    char buf[CONNMGR_ADDR_MAX];
    uint64_t id = 0;
    size_t n = 0;
    connmgr_counts counts;
    EXPECT(connmgr_connect(NULL, "127.0.0.1:1", false, &id), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_manager_start(NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_snapshot(NULL, &counts, NULL, 0, &n), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_conn_read(NULL, (uint8_t *)buf, 1, &n), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_conn_write(NULL, (const uint8_t *)"x", 1), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_conn_close(NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_conn_id(NULL, &id), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_conn_remote(NULL, buf, sizeof buf), CONNMGR_STATUS_NULL_ARGUMENT);
    /* Freeing NULL is allowed, as with free(). */
    OK(connmgr_manager_free(NULL));
    OK(connmgr_conn_free(NULL));
    OK(connmgr_config_free(NULL));
    printf("ok: argument and config errors\n");
}

/* ---- the main scenario --------------------------------------------------- */

/* Finds `id` in a snapshot; fails if it is missing. */
static connmgr_conn_info find_info(const connmgr_manager *m, uint64_t id, connmgr_counts *counts) {
    connmgr_conn_info infos[16];
    size_t n = 0;
    OK(connmgr_snapshot(m, counts, infos, 16, &n));
    for (size_t i = 0; i < n; i++) {
        if (infos[i].id == id) return infos[i];
    }
    fprintf(stderr, "id %" PRIu64 " not in the snapshot (%zu entries)\n", id, n);
    exit(1);
}

static bool in_snapshot(const connmgr_manager *m, uint64_t id) {
    connmgr_conn_info infos[16];
    connmgr_counts counts;
    size_t n = 0;
    OK(connmgr_snapshot(m, &counts, infos, 16, &n));
    for (size_t i = 0; i < n; i++) {
        if (infos[i].id == id) return true;
    }
    return false;
}

static void test_connections(void) {
    char peer[64];
    int lfd = listen_loopback(peer, sizeof peer);

    struct recorder rec;
    recorder_init(&rec);
    connmgr_callbacks cbs = callbacks_for(&rec);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 0));
    OK(connmgr_config_set_max_inbound(cfg, 4));
    OK(connmgr_config_set_retry_duration(cfg, 20));
    OK(connmgr_config_set_max_retry_duration(cfg, 200));
    OK(connmgr_config_set_backoff(cfg, CONNMGR_BACKOFF_EXPONENTIAL, 0.5));
    OK(connmgr_config_set_dialer_pool_size(cfg, 2));
    OK(connmgr_config_set_dial_timeout(cfg, 5000));
    OK(connmgr_config_set_stop_grace(cfg, 2000));
    OK(connmgr_config_set_check_descriptors(cfg, true));
    OK(connmgr_config_add_listen_addr(cfg, "127.0.0.1:0"));
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    OK(connmgr_config_free(cfg)); /* the manager keeps its own copy */
    OK(connmgr_manager_start(m));
    OK(connmgr_manager_start(m)); /* starting twice does nothing */
    bool running = false;
    OK(connmgr_manager_is_running(m, &running));
    CHECK(running);

    char listen_at[CONNMGR_ADDR_MAX];
    EXPECT(connmgr_listen_addr(m, 0, listen_at, 4), CONNMGR_STATUS_BUFFER_TOO_SMALL);
    EXPECT(connmgr_listen_addr(m, 1, listen_at, sizeof listen_at), CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_listen_addr(m, 0, listen_at, sizeof listen_at));
    CHECK(strncmp(listen_at, "127.0.0.1:", 10) == 0 && strcmp(listen_at, "127.0.0.1:0") != 0);

    /* Requests that are refused before anything is dialed. */
    uint64_t id = 0;
    EXPECT(connmgr_connect(m, "bogus", false, &id), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_connect(m, "\xc3\x28:1", false, &id), CONNMGR_STATUS_INVALID_UTF8);
    EXPECT(connmgr_connect(m, peer, false, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_new_conn_req(m, &id), CONNMGR_STATUS_CONFIG);
    EXPECT(connmgr_disconnect(m, 987654), CONNMGR_STATUS_UNKNOWN_ID);
    EXPECT(connmgr_remove(m, 987654), CONNMGR_STATUS_UNKNOWN_ID);
    CHECK(id == 0);

    /* Outbound: connect, exchange bytes both ways. */
    uint64_t id1 = 0;
    OK(connmgr_connect(m, peer, false, &id1));
    CHECK(id1 != 0);
    int a = accept_peer(lfd);
    struct event *e = WAIT(&rec, CONNECTED, id1);
    CHECK(!e->permanent);
    CHECK(strcmp(e->remote, peer) == 0);
    connmgr_conn *c1 = e->conn;
    CHECK(c1 != NULL);

    uint64_t cid = 0;
    OK(connmgr_conn_id(c1, &cid));
    CHECK(cid == id1);
    connmgr_direction dir = CONNMGR_DIRECTION_INBOUND;
    OK(connmgr_conn_direction(c1, &dir));
    CHECK(dir == CONNMGR_DIRECTION_OUTBOUND);
    char remote[CONNMGR_ADDR_MAX];
    EXPECT(connmgr_conn_remote(c1, remote, 4), CONNMGR_STATUS_BUFFER_TOO_SMALL);
    ERROR_MENTIONS("needed");
    EXPECT(connmgr_conn_remote(c1, NULL, 0), CONNMGR_STATUS_BUFFER_TOO_SMALL);
    EXPECT(connmgr_conn_remote(c1, NULL, 64), CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_conn_remote(c1, remote, sizeof remote));
    CHECK(strcmp(remote, peer) == 0);

    char got[8] = {0};
    OK(connmgr_conn_write(c1, (const uint8_t *)"ping", 4));
    OK(connmgr_conn_write(c1, NULL, 0));
    fd_read_exact(a, got, 4);
    CHECK(memcmp(got, "ping", 4) == 0);
    fd_write_all(a, "pong", 4);
    conn_read_exact(c1, got, 4);
    CHECK(memcmp(got, "pong", 4) == 0);
    size_t n = 99;
    OK(connmgr_conn_read(c1, NULL, 0, &n));
    CHECK(n == 0);
    EXPECT(connmgr_conn_read(c1, NULL, 4, &n), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_conn_read(c1, (uint8_t *)got, 4, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_conn_write(c1, NULL, 4), CONNMGR_STATUS_NULL_ARGUMENT);

    /* Socket control: the descriptor, timeouts, non-blocking mode. */
    int sock = -1;
    OK(connmgr_conn_fd(c1, &sock));
    CHECK(sock >= 0);
    OK(connmgr_conn_set_nodelay(c1, true));
    OK(connmgr_conn_set_timeouts(c1, 50, 0));
    EXPECT(connmgr_conn_read(c1, (uint8_t *)got, 4, &n), CONNMGR_STATUS_TIMED_OUT);
    OK(connmgr_conn_set_timeouts(c1, 0, 0));
    OK(connmgr_conn_set_nonblocking(c1, true));
    EXPECT(connmgr_conn_read(c1, (uint8_t *)got, 4, &n), CONNMGR_STATUS_TIMED_OUT);
    fd_write_all(a, "late", 4);
    struct pollfd spfd = {.fd = sock, .events = POLLIN};
    CHECK(poll(&spfd, 1, 10000) == 1);
    OK(connmgr_conn_read(c1, (uint8_t *)got, 4, &n));
    CHECK(n == 4 && memcmp(got, "late", 4) == 0);
    OK(connmgr_conn_set_nonblocking(c1, false));
    EXPECT(connmgr_conn_fd(c1, NULL), CONNMGR_STATUS_NULL_ARGUMENT);

    /* Snapshot: too small first, then the one entry. */
    connmgr_counts counts;
    memset(&counts, 0, sizeof counts);
    n = 0;
    EXPECT(connmgr_snapshot(m, &counts, NULL, 0, &n), CONNMGR_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == 1);
    CHECK(counts.outbound == 1 && counts.inbound == 0 && counts.pending == 0);
    EXPECT(connmgr_snapshot(m, NULL, NULL, 0, &n), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_snapshot(m, &counts, NULL, 0, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    connmgr_conn_info infos[4];
    n = 0;
    OK(connmgr_snapshot(m, &counts, infos, 4, &n));
    CHECK(n == 1);
    CHECK(infos[0].id == id1);
    CHECK(infos[0].has_addr && strcmp(infos[0].addr, peer) == 0);
    CHECK(infos[0].state == CONNMGR_STATE_ESTABLISHED);
    CHECK(infos[0].direction == CONNMGR_DIRECTION_OUTBOUND);
    CHECK(!infos[0].permanent && !infos[0].automatic);
    CHECK(infos[0].conn_type == CONNMGR_CONN_TYPE_MANUAL && !infos[0].block_relay_only);

    /* Inbound: a plain socket connects to the manager's listener. */
    int b = connect_to(listen_at);
    char b_name[64];
    local_name(b, b_name, sizeof b_name);
    e = WAIT(&rec, ACCEPTED, 0);
    uint64_t id2 = e->id;
    connmgr_conn *c2 = e->conn;
    CHECK(strcmp(e->remote, b_name) == 0);
    OK(connmgr_conn_direction(c2, &dir));
    CHECK(dir == CONNMGR_DIRECTION_INBOUND);
    connmgr_conn_info info = find_info(m, id2, &counts);
    CHECK(counts.inbound == 1 && counts.outbound == 1);
    CHECK(info.direction == CONNMGR_DIRECTION_INBOUND && info.state == CONNMGR_STATE_ESTABLISHED);
    CHECK(strcmp(info.addr, b_name) == 0);
    OK(connmgr_conn_write(c2, (const uint8_t *)"hello", 5));
    fd_read_exact(b, got, 5);
    CHECK(memcmp(got, "hello", 5) == 0);
    EXPECT(connmgr_reconnect(m, id2), CONNMGR_STATUS_INVALID_ARGUMENT);

    /* Eviction inputs about the inbound peer. */
    OK(connmgr_report(m, id2, CONNMGR_REPORT_PING, 1500));
    OK(connmgr_report(m, id2, CONNMGR_REPORT_NOVEL_BLOCK, 0));
    OK(connmgr_report(m, id2, CONNMGR_REPORT_RELAYS_TXS, 0));
    OK(connmgr_report(m, id2, CONNMGR_REPORT_PREFER_EVICT, 0));
    EXPECT(connmgr_report(m, id2, CONNMGR_REPORT_BLOOM_FILTER, 2), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_report(m, id2, 99, 0), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_report(m, 999999, CONNMGR_REPORT_NOVEL_TX, 0), CONNMGR_STATUS_UNKNOWN_ID);

    /* Policy calls, checked through the queries. */
    OK(connmgr_tag(m, peer, "score", 10));
    OK(connmgr_tag(m, peer, "other", 5));
    OK(connmgr_barrier(m));
    int64_t total = 0;
    size_t ntags = 0;
    OK(connmgr_tag_info(m, peer, &total, &ntags));
    CHECK(total == 15 && ntags == 2);
    EXPECT(connmgr_tag_info(m, "192.0.2.99:1", &total, NULL), CONNMGR_STATUS_UNKNOWN_ID);
    OK(connmgr_untag(m, peer, "other"));
    OK(connmgr_untag(m, peer, "score"));
    EXPECT(connmgr_tag(m, peer, "\xff", 1), CONNMGR_STATUS_INVALID_UTF8);
    OK(connmgr_protect(m, peer, "keep"));
    bool prot = false;
    OK(connmgr_is_protected(m, peer, "keep", &prot));
    CHECK(prot);
    OK(connmgr_is_protected(m, peer, NULL, &prot));
    CHECK(prot);
    OK(connmgr_is_protected(m, peer, "other", &prot));
    CHECK(!prot);
    bool still = true;
    OK(connmgr_unprotect(m, peer, "keep", &still));
    CHECK(!still);
    EXPECT(connmgr_unprotect(m, peer, "keep", NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_ban(m, "203.0.113.0/24", 60000, "test ban"));
    OK(connmgr_barrier(m));
    size_t nbans = 0;
    OK(connmgr_ban_count(m, &nbans));
    CHECK(nbans == 1);
    char ban_subnet[64], ban_reason[64];
    uint64_t ms_left = 0;
    OK(connmgr_get_ban(m, 0, ban_subnet, sizeof ban_subnet, ban_reason, sizeof ban_reason, &ms_left));
    CHECK(strcmp(ban_subnet, "203.0.113.0/24") == 0 && strcmp(ban_reason, "test ban") == 0);
    CHECK(ms_left > 0 && ms_left <= 60000);
    EXPECT(connmgr_get_ban(m, 1, ban_subnet, sizeof ban_subnet, ban_reason, sizeof ban_reason, &ms_left),
           CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_unban(m, "203.0.113.0/24"));
    OK(connmgr_barrier(m));
    OK(connmgr_ban_count(m, &nbans));
    CHECK(nbans == 0);
    EXPECT(connmgr_ban(m, "nonsense", 1000, "x"), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_ban(m, "203.0.113.1", 1000, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_misbehaving(m, id1, 0, 1, "noise"));
    EXPECT(connmgr_misbehaving(m, 987654, 0, 1, "noise"), CONNMGR_STATUS_UNKNOWN_ID);
    OK(connmgr_trim(m));
    {
        /* Decaying tags at run time, and their argument checks. */
        OK(connmgr_register_decaying(m, "relay", 60000, CONNMGR_DECAY_FIXED, 1.0, CONNMGR_BUMP_SUM, 0, 0));
        EXPECT(connmgr_register_decaying(m, "relay", 60000, CONNMGR_DECAY_FIXED, 1.0, CONNMGR_BUMP_SUM, 0, 0),
               CONNMGR_STATUS_INVALID_ARGUMENT);
        ERROR_MENTIONS("already registered");
        EXPECT(connmgr_register_decaying(m, "bad", 1000, 9, 0.0, CONNMGR_BUMP_SUM, 0, 0),
               CONNMGR_STATUS_INVALID_ARGUMENT);
        EXPECT(connmgr_register_decaying(m, "bad", 1000, CONNMGR_DECAY_LINEAR, 2.0, CONNMGR_BUMP_SUM, 0, 0),
               CONNMGR_STATUS_INVALID_ARGUMENT);
        EXPECT(connmgr_register_decaying(m, "bad", 1000, CONNMGR_DECAY_NONE, 0.0, CONNMGR_BUMP_SUM_BOUNDED, 5, 1),
               CONNMGR_STATUS_INVALID_ARGUMENT);
        EXPECT(connmgr_register_decaying(m, "bad", 0, CONNMGR_DECAY_NONE, 0.0, CONNMGR_BUMP_SUM, 0, 0),
               CONNMGR_STATUS_INVALID_ARGUMENT);
        OK(connmgr_bump_decaying(m, "peer-x", "relay", 7));
        EXPECT(connmgr_bump_decaying(m, "peer-x", "nope", 7), CONNMGR_STATUS_INVALID_ARGUMENT);
        OK(connmgr_close_decaying(m, "relay"));
        EXPECT(connmgr_close_decaying(m, "relay"), CONNMGR_STATUS_INVALID_ARGUMENT);
        OK(connmgr_register_decaying(m, "relay", 1000, CONNMGR_DECAY_LINEAR, 0.5, CONNMGR_BUMP_OVERWRITE, 0, 0));
        connmgr_trim_info ti;
        OK(connmgr_get_trim_info(m, &ti));
        CHECK(!ti.enabled && ti.trims == 0 && ti.ms_since_last_trim == UINT64_MAX);
        EXPECT(connmgr_get_trim_info(m, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    }
    {
        /* No watermarks from C: a waited trim closes nothing. */
        uint64_t trimmed_ids[4];
        size_t trimmed = 99;
        OK(connmgr_trim_wait(m, 10000, trimmed_ids, 4, &trimmed));
        CHECK(trimmed == 0);
        EXPECT(connmgr_trim_wait(m, 0, NULL, 1, &trimmed), CONNMGR_STATUS_NULL_ARGUMENT);
        EXPECT(connmgr_trim_wait(m, 0, NULL, 0, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    }

    /* Disconnect the outbound one: both ends see end of stream. */
    OK(connmgr_disconnect(m, id1));
    e = WAIT(&rec, DISCONNECTED, id1);
    CHECK(!e->permanent && strcmp(e->remote, peer) == 0);
    conn_expect_eof(c1);
    fd_expect_eof(a);
    EXPECT(connmgr_conn_write(c1, (const uint8_t *)"late", 4), CONNMGR_STATUS_IO);
    EXPECT(connmgr_disconnect(m, id1), CONNMGR_STATUS_UNKNOWN_ID);
    CHECK(!in_snapshot(m, id1));
    close(a);

    /* The inbound peer hangs up; closing our handle frees the slot. */
    close(b);
    conn_expect_eof(c2);
    OK(connmgr_conn_close(c2));
    OK(connmgr_conn_close(c2)); /* closing twice does nothing */
    WAIT(&rec, INBOUND_CLOSED, id2);
    CHECK(!in_snapshot(m, id2));
    OK(connmgr_snapshot(m, &counts, infos, 4, &n));
    CHECK(n == 0 && counts.inbound == 0 && counts.outbound == 0);
    printf("ok: outbound, inbound, snapshot, policy calls, disconnect\n");

    /* A permanent request is retried after its connection drops. */
    uint64_t idp = 0;
    OK(connmgr_connect(m, peer, true, &idp));
    int p1 = accept_peer(lfd);
    e = WAIT(&rec, CONNECTED, idp);
    CHECK(e->permanent);
    connmgr_conn *cp1 = e->conn;
    close(p1); /* the peer drops */
    conn_expect_eof(cp1);
    OK(connmgr_conn_close(cp1));
    e = WAIT(&rec, DISCONNECTED, idp);
    CHECK(e->permanent);
    int p2 = accept_peer(lfd); /* the retry */
    e = WAIT(&rec, CONNECTED, idp);
    connmgr_conn *cp2 = e->conn;
    OK(connmgr_conn_write(cp2, (const uint8_t *)"again", 5));
    fd_read_exact(p2, got, 5);
    CHECK(memcmp(got, "again", 5) == 0);
    info = find_info(m, idp, &counts);
    CHECK(info.permanent && info.state == CONNMGR_STATE_ESTABLISHED);
    CHECK(counts.permanent == 1);
    uint64_t in_state = UINT64_MAX;
    int64_t to_next = 0;
    OK(connmgr_conn_times(m, idp, &in_state, &to_next));
    CHECK(in_state < 60000 && to_next == -1);
    char peer_id[CONNMGR_ADDR_MAX];
    OK(connmgr_conn_peer(m, idp, peer_id, sizeof peer_id));
    CHECK(strcmp(peer_id, peer) == 0);
    OK(connmgr_set_peer_id(m, idp, "node-7"));
    OK(connmgr_barrier(m));
    OK(connmgr_conn_peer(m, idp, peer_id, sizeof peer_id));
    CHECK(strcmp(peer_id, "node-7") == 0);
    EXPECT(connmgr_conn_times(m, 999999, NULL, NULL), CONNMGR_STATUS_UNKNOWN_ID);
    OK(connmgr_remove(m, idp));
    WAIT(&rec, DISCONNECTED, idp);
    conn_expect_eof(cp2);
    CHECK(!in_snapshot(m, idp));
    close(p2);

    /* Connection types: flags are checked; a block-relay-only manual
       request shows its type and mark in the snapshot and the counts. */
    uint64_t idb = 0;
    EXPECT(connmgr_connect_ex(m, peer, CONNMGR_REQ_PERMANENT | CONNMGR_REQ_ONE_SHOT, 0, &idb),
           CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_connect_ex(m, peer, 0x80, 0, &idb), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_connect_ex(m, peer, 0, 0, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    EXPECT(connmgr_connect_ex(m, peer, 0, 1u << 20, &idb), CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_connect_ex(m, peer, CONNMGR_REQ_BLOCK_RELAY_ONLY, CONNMGR_PERM_NOBAN | CONNMGR_PERM_RELAY, &idb));
    int pb = accept_peer(lfd);
    e = WAIT(&rec, CONNECTED, idb);
    connmgr_conn *cb = e->conn;
    info = find_info(m, idb, &counts);
    connmgr_conn_info one;
    OK(connmgr_get_conn_info(m, idb, &one));
    CHECK(one.id == idb && one.conn_type == info.conn_type && one.permissions == info.permissions);
    EXPECT(connmgr_get_conn_info(m, 999999, &one), CONNMGR_STATUS_UNKNOWN_ID);
    EXPECT(connmgr_get_conn_info(m, idb, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    CHECK(info.conn_type == CONNMGR_CONN_TYPE_MANUAL);
    CHECK(info.block_relay_only && !info.permanent && !info.automatic);
    CHECK(counts.block_relay_outbound == 1 && counts.full_relay_outbound == 0);
    CHECK(info.permissions == (CONNMGR_PERM_NOBAN | CONNMGR_PERM_RELAY));
    OK(connmgr_handshake_done(m, idb)); /* not a feeler: nothing happens */
    EXPECT(connmgr_handshake_done(m, 999999), CONNMGR_STATUS_UNKNOWN_ID);
    EXPECT(connmgr_handshake_done(NULL, idb), CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_remove(m, idb));
    WAIT(&rec, DISCONNECTED, idb);
    conn_expect_eof(cb);
    close(pb);
    printf("ok: connection types and request flags\n");

    /* A permanent request to a closed port keeps failing and retrying. */
    char refused[64];
    closed_port(refused, sizeof refused);
    uint64_t idf = 0;
    OK(connmgr_connect(m, refused, true, &idf));
    e = WAIT(&rec, DIAL_FAILED, idf);
    CHECK(e->retry_in_ms >= 0 && strcmp(e->remote, refused) == 0);
    e = WAIT(&rec, DIAL_FAILED, idf);
    CHECK(e->retry_in_ms >= 0);
    OK(connmgr_remove(m, idf));
    printf("ok: permanent retry after a drop and after failed dials\n");

    /* Stop with dials and events in flight, then every call after stop. */
    for (int i = 0; i < 4; i++) {
        OK(connmgr_connect(m, peer, i % 2 == 0, &id));
    }
    OK(connmgr_manager_stop(m));
    OK(connmgr_manager_is_running(m, &running));
    CHECK(!running);
    EXPECT(connmgr_connect(m, peer, false, &id), CONNMGR_STATUS_STOPPED);
    EXPECT(connmgr_disconnect(m, id), CONNMGR_STATUS_STOPPED);
    EXPECT(connmgr_manager_start(m), CONNMGR_STATUS_STOPPED);
    EXPECT(connmgr_trim(m), CONNMGR_STATUS_STOPPED);
    {
        size_t trimmed = 0;
        EXPECT(connmgr_trim_wait(m, 0, NULL, 0, &trimmed), CONNMGR_STATUS_STOPPED);
    }
    EXPECT(connmgr_ban(m, "203.0.113.1", 1000, "x"), CONNMGR_STATUS_STOPPED);
    OK(connmgr_manager_stop(m)); /* stopping twice does nothing */
    OK(connmgr_snapshot(m, &counts, infos, 4, &n));
    /* Every connection delivered before stop returned is closed now. */
    pthread_mutex_lock(&rec.mu);
    size_t seen = rec.n;
    pthread_mutex_unlock(&rec.mu);
    for (size_t i = 0; i < seen; i++) {
        if (!rec.events[i].taken && rec.events[i].kind == CONNECTED) {
            conn_expect_eof(rec.events[i].conn);
        }
    }
    OK(connmgr_manager_free(m));
    /* Handles outlive the manager. */
    OK(connmgr_conn_id(c1, &cid));
    CHECK(cid == id1);
    recorder_free(&rec);
    close(lfd);
    printf("ok: stop with events in flight, calls after stop, free after stop\n");
}

/* ---- stop from a callback; free without stop; address source ---------- */

static bool source_give(void *user_data, char *buf, size_t cap) {
    const char *addr = user_data;
    if (strlen(addr) + 1 > cap) return false;
    memcpy(buf, addr, strlen(addr) + 1);
    return true;
}

static void test_stop_from_callback(void) {
    char peer[64];
    int lfd = listen_loopback(peer, sizeof peer);
    struct recorder rec;
    recorder_init(&rec);
    connmgr_callbacks cbs = callbacks_for(&rec);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    OK(connmgr_config_free(cfg));
    rec.mgr = m;
    rec.stop_in_callback = true;
    OK(connmgr_manager_start(m));
    uint64_t id = 0;
    OK(connmgr_connect(m, peer, false, &id));
    struct event *e = WAIT(&rec, CONNECTED, id);
    struct timespec until = deadline();
    pthread_mutex_lock(&rec.mu);
    while (!rec.stop_returned) {
        CHECK(pthread_cond_timedwait(&rec.cv, &rec.mu, &until) != ETIMEDOUT);
    }
    pthread_mutex_unlock(&rec.mu);
    CHECK(rec.stop_status == CONNMGR_STATUS_OK);
    CHECK(!rec.stopped_running);
    EXPECT(connmgr_connect(m, peer, false, &id), CONNMGR_STATUS_STOPPED);
    conn_expect_eof(e->conn);
    OK(connmgr_manager_free(m));
    recorder_free(&rec);
    close(lfd);
    printf("ok: stop from a callback\n");
}

/* The pull queue: a manager without callbacks, read through the wake
   descriptor and connmgr_next_event. */
static void test_event_queue(void) {
    char peer[64];
    int lfd = listen_loopback(peer, sizeof peer);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_target_outbound(cfg, 0));
    connmgr_manager *plain = NULL;
    OK(connmgr_manager_new(cfg, &plain));
    connmgr_event *ev = NULL;
    EXPECT(connmgr_next_event(plain, 0, &ev), CONNMGR_STATUS_CONFIG);
    ERROR_MENTIONS("connmgr_config_set_event_queue");
    OK(connmgr_manager_free(plain));
    OK(connmgr_config_set_event_queue(cfg, true));
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    OK(connmgr_config_free(cfg));
    int fd = -1;
    OK(connmgr_event_fd(m, &fd));
    CHECK(fd >= 0);
    EXPECT(connmgr_next_event(m, 10, &ev), CONNMGR_STATUS_TIMED_OUT);
    CHECK(ev == NULL);
    OK(connmgr_manager_start(m));
    uint64_t id = 0;
    OK(connmgr_connect_ex(m, peer, 0, 0, &id));
    int p = accept_peer(lfd);

    /* Wait on the descriptor as a poll loop would, then read in order. */
    uint32_t kind = 0;
    connmgr_conn *conn = NULL;
    for (int i = 0; i < 10 && conn == NULL; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        CHECK(poll(&pfd, 1, 10000) == 1);
        OK(connmgr_next_event(m, 0, &ev));
        uint64_t got = 0;
        connmgr_conn_type type = CONNMGR_CONN_TYPE_INBOUND;
        int64_t retry = 0;
        OK(connmgr_event_info(ev, &kind, &got, &type, &retry));
        if (kind == CONNMGR_EVENT_CONNECTED) {
            CHECK(got == id && type == CONNMGR_CONN_TYPE_MANUAL && retry == -1);
            char remote[CONNMGR_ADDR_MAX];
            OK(connmgr_event_remote(ev, remote, sizeof remote));
            CHECK(strcmp(remote, peer) == 0);
            OK(connmgr_event_take_conn(ev, &conn));
            CHECK(conn != NULL);
            connmgr_conn *again = (connmgr_conn *)1;
            OK(connmgr_event_take_conn(ev, &again));
            CHECK(again == NULL);
        }
        OK(connmgr_event_free(ev));
    }
    CHECK(conn != NULL);
    OK(connmgr_disconnect(m, id));
    OK(connmgr_next_event(m, 10000, &ev));
    OK(connmgr_event_info(ev, &kind, NULL, NULL, NULL));
    CHECK(kind == CONNMGR_EVENT_DISCONNECTED);
    char text[128];
    OK(connmgr_event_text(ev, text, sizeof text));
    CHECK(strcmp(text, "disconnected") == 0);
    OK(connmgr_event_free(ev));
    /* Drained: the descriptor is not readable any more. */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 0);
    EXPECT(connmgr_event_info(NULL, &kind, NULL, NULL, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    OK(connmgr_event_free(NULL));
    OK(connmgr_conn_free(conn));
    OK(connmgr_manager_stop(m));
    OK(connmgr_manager_free(m));
    close(p);
    close(lfd);
    printf("ok: pull queue and wake descriptor\n");
}

/* Trim settings from C take effect: three inbound peers over a high
   watermark of 2 are trimmed down to the low watermark of 1. */
static void test_trim_settings(void) {
    struct recorder rec;
    recorder_init(&rec);
    connmgr_callbacks cbs = callbacks_for(&rec);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    OK(connmgr_config_set_target_outbound(cfg, 0));
    OK(connmgr_config_add_listen_addr(cfg, "127.0.0.1:0"));
    EXPECT(connmgr_config_set_watermarks(cfg, SIZE_MAX, 1), CONNMGR_STATUS_CONFIG);
    OK(connmgr_config_set_watermarks(cfg, 2, 1));
    expect_config_error(cfg, "watermark", __LINE__);
    cfg = new_config();
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    OK(connmgr_config_set_target_outbound(cfg, 0));
    OK(connmgr_config_add_listen_addr(cfg, "127.0.0.1:0"));
    OK(connmgr_config_set_watermarks(cfg, 1, 2));
    OK(connmgr_config_set_trim_grace(cfg, 0));
    OK(connmgr_config_set_trim_silence(cfg, 0));
    OK(connmgr_config_set_ban_threshold(cfg, 10));
    OK(connmgr_config_set_ban_duration(cfg, 60000));
    OK(connmgr_config_set_close_on_stop(cfg, true));
    EXPECT(connmgr_config_set_anchors_file(cfg, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    OK(connmgr_config_free(cfg));
    OK(connmgr_manager_start(m));
    char at[CONNMGR_ADDR_MAX];
    OK(connmgr_listen_addr(m, 0, at, sizeof at));
    int peers[3];
    for (int i = 0; i < 3; i++) {
        peers[i] = connect_to(at);
        WAIT(&rec, ACCEPTED, 0);
    }
    connmgr_counts counts;
    size_t n = 0;
    int settled = 0;
    for (int i = 0; i < 1000 && !settled; i++) {
        connmgr_conn_info infos[8];
        OK(connmgr_snapshot(m, &counts, infos, 8, &n));
        settled = counts.inbound == 1;
        if (!settled) nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    CHECK(settled);
    connmgr_trim_info trim;
    OK(connmgr_get_trim_info(m, &trim));
    uint64_t trimmed = 0, accepted = 0;
    OK(connmgr_get_stat(m, CONNMGR_STAT_TRIMMED, &trimmed));
    OK(connmgr_get_stat(m, CONNMGR_STAT_INBOUND_ACCEPTED, &accepted));
    CHECK(trimmed == 2 && accepted == 3);
    EXPECT(connmgr_get_stat(m, 999, &trimmed), CONNMGR_STATUS_INVALID_ARGUMENT);
    EXPECT(connmgr_get_stat(m, CONNMGR_STAT_DIALS, NULL), CONNMGR_STATUS_NULL_ARGUMENT);
    CHECK(trim.enabled && trim.low_watermark == 1 && trim.high_watermark == 2 && trim.trims >= 1);
    OK(connmgr_manager_stop(m));
    OK(connmgr_manager_free(m));
    for (int i = 0; i < 3; i++) close(peers[i]);
    recorder_free(&rec);
    printf("ok: trim settings from C trim down to the low watermark\n");
}

static void test_free_without_stop(void) {
    char peer[64];
    int lfd = listen_loopback(peer, sizeof peer);
    struct recorder rec;
    recorder_init(&rec);
    connmgr_callbacks cbs = callbacks_for(&rec);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    OK(connmgr_config_set_target_outbound(cfg, 1));
    OK(connmgr_config_set_address_source(cfg, source_give, peer));
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    OK(connmgr_config_free(cfg));
    OK(connmgr_manager_start(m));

    /* The address source fills the target of one. */
    struct event *e = WAIT(&rec, CONNECTED, 0);
    CHECK(strcmp(e->remote, peer) == 0 && !e->permanent);
    connmgr_counts counts;
    connmgr_conn_info info = find_info(m, e->id, &counts);
    CHECK(info.automatic && info.state == CONNMGR_STATE_ESTABLISHED);
    CHECK(counts.automatic_outbound == 1);
    uint64_t extra = 0;
    OK(connmgr_new_conn_req(m, &extra));
    WAIT(&rec, CONNECTED, extra);

    /* Free while running: it stops, and the connections close. */
    OK(connmgr_manager_free(m));
    conn_expect_eof(e->conn);
    recorder_free(&rec);
    close(lfd);
    printf("ok: address source, free without stop\n");
}

/* ---- SOCKS5 routing ------------------------------------------------------- */

/* A manager whose proxy is `proxy` with "proxy everything" set to `all`;
 * asks for one connection to `peer` and returns its id. */
static connmgr_manager *proxied_manager(struct recorder *rec, const char *proxy, bool all,
                                        const char *peer, uint64_t *id) {
    connmgr_callbacks cbs = callbacks_for(rec);
    connmgr_config *cfg = new_config();
    OK(connmgr_config_set_callbacks(cfg, &cbs));
    OK(connmgr_config_set_target_outbound(cfg, 0));
    OK(connmgr_config_set_socks5_proxy(cfg, proxy, true));
    OK(connmgr_config_set_proxy_all(cfg, all));
    connmgr_manager *m = NULL;
    OK(connmgr_manager_new(cfg, &m));
    OK(connmgr_config_free(cfg));
    OK(connmgr_manager_start(m));
    OK(connmgr_connect(m, peer, false, id));
    return m;
}

static void test_socks5_routing(void) {
    char peer[64], proxy[64];
    int lfd = listen_loopback(peer, sizeof peer);
    closed_port(proxy, sizeof proxy);

    /* Proxy everything: the dial goes to the (absent) proxy and fails. */
    struct recorder rec;
    recorder_init(&rec);
    uint64_t id = 0;
    connmgr_manager *m = proxied_manager(&rec, proxy, true, peer, &id);
    struct event *e = WAIT(&rec, DIAL_FAILED, id);
    CHECK(strstr(e->error, "SOCKS5 proxy") != NULL && strstr(e->error, proxy) != NULL);
    CHECK(e->retry_in_ms == -1); /* a one-off request is not retried */
    OK(connmgr_manager_free(m));
    recorder_free(&rec);

    /* Without "proxy everything", IP addresses go direct. */
    recorder_init(&rec);
    m = proxied_manager(&rec, proxy, false, peer, &id);
    WAIT(&rec, CONNECTED, id);
    OK(connmgr_manager_free(m));
    recorder_free(&rec);
    close(lfd);
    printf("ok: SOCKS5 routing\n");
}

/* Log records seen, and whether one came from the connmgr target. */
struct log_seen {
    pthread_mutex_t lock;
    int records;
    int connmgr_info;
    int too_verbose;
};

static void on_log(void *ud, uint32_t level, const char *target, const char *message) {
    struct log_seen *seen = ud;
    pthread_mutex_lock(&seen->lock);
    seen->records++;
    if (level > CONNMGR_LOG_INFO) seen->too_verbose++;
    if (level == CONNMGR_LOG_INFO && strncmp(target, "connmgr", 7) == 0 && message[0] != '\0')
        seen->connmgr_info++;
    pthread_mutex_unlock(&seen->lock);
}

static struct log_seen seen_logs = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The version call matches the header's macros; the log callback is set. */
static void test_version_and_logging(void) {
    char want[32];
    snprintf(want, sizeof want, "%u.%u.%u", CONNMGR_VERSION_MAJOR, CONNMGR_VERSION_MINOR,
             CONNMGR_VERSION_PATCH);
    CHECK(strcmp(connmgr_version(), want) == 0);
    EXPECT(connmgr_set_log_callback(on_log, &seen_logs, 9), CONNMGR_STATUS_INVALID_ARGUMENT);
    OK(connmgr_set_log_callback(on_log, &seen_logs, CONNMGR_LOG_INFO));
    printf("ok: version %s, log callback set\n", connmgr_version());
}

/* After the connection tests: info records arrived, nothing more verbose. */
static void check_logs_arrived(void) {
    pthread_mutex_lock(&seen_logs.lock);
    int info = seen_logs.connmgr_info, verbose = seen_logs.too_verbose;
    pthread_mutex_unlock(&seen_logs.lock);
    CHECK(info > 0);
    CHECK(verbose == 0);
    OK(connmgr_set_log_callback(NULL, NULL, CONNMGR_LOG_OFF));
    printf("ok: %d info records through the log callback\n", info);
}

int main(void) {
    alarm(WATCHDOG_SECS);
    setvbuf(stdout, NULL, _IONBF, 0);
    test_version_and_logging();
    test_errors();
    test_connections();
    check_logs_arrived();
    test_stop_from_callback();
    test_free_without_stop();
    test_event_queue();
    test_trim_settings();
    test_socks5_routing();
    printf("all C API checks passed\n");
    return 0;
}
