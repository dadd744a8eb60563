/*
 * main.c: the `ingot` command line.
 *
 *   ingot serve [flags]        run the daemon (ingot serve --help)
 *   ingot wal inspect [DIR]    describe the WAL segments in DIR (default ./ingot-data/wal)
 *   ingot --help
 *
 * Signals: SIGTERM and SIGINT are blocked in every thread before any thread starts (gRPC's own
 * threads must never take them) and taken with sigwait() by one signal thread (signal_watch). One
 * during start-up exits at once with status 1 (replay may wait long on a stalled store; nothing
 * was acknowledged yet). The first one once serving starts the graceful stop (ARCHITECTURE §9):
 * writes are refused at once (503 "shutting down"), the writes in flight finish, everything
 * buffered is persisted while queries (HTTP and Flight) are still answered, every WAL segment is
 * deleted, then the HTTP server stops and the gRPC server last, and the process exits 0 with an
 * empty WAL. A second signal during the stop exits at once with status 1; every acknowledged
 * write is still in the WAL and is replayed at the next start.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ingester.h"
#include "server/grpc_server.h"
#include "server/http.h"
#include "util/log.h"
#include "wal/wal.h"

static void usage(FILE *out)
{
    fprintf(out, "ingot: a time-series ingester (InfluxDB line protocol in, durable WAL, "
                 "read-your-writes)\n\n"
                 "Usage:\n"
                 "  ingot serve [flags]       run the daemon (see ingot serve --help)\n"
                 "  ingot wal inspect [DIR]   list WAL segments with entry counts, bytes, sequence\n"
                 "                            ranges and checksum verdicts (default ./ingot-data/wal)\n"
                 "  ingot --help              this text\n");
}

static sigset_t stop_signals;

static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static bool serving;   /* stop_mu: start-up is over */
static int stop_signal; /* stop_mu: the signal that began the graceful stop (0: none yet) */

/*
 * The stop signals, for the whole life of the process. One during start-up (replay may wait on a
 * stalled store for long) ends the process at once: nothing was acknowledged yet, and start-up
 * copes with whatever a crash leaves. The first once serving begins the graceful stop (serve()
 * waits for it); a second one ends the process at once, the WAL holding every acknowledged write.
 */
static void *signal_watch(void *arg)
{
    (void)arg;
    for (;;) {
        int sig;
        if (sigwait(&stop_signals, &sig) != 0) continue;
        pthread_mutex_lock(&stop_mu);
        bool begin_stop = serving && stop_signal == 0;
        bool was_serving = serving;
        if (begin_stop) {
            stop_signal = sig;
            pthread_cond_signal(&stop_cond);
        }
        pthread_mutex_unlock(&stop_mu);
        if (begin_stop) continue;
        if (was_serving)
            log_warn("second signal (%s): exiting now; the WAL holds every acknowledged write",
                     strsignal(sig));
        else
            log_warn("%s during start-up: exiting now; the WAL keeps everything for the next start",
                     strsignal(sig));
        _exit(1);
    }
    return NULL;
}

static int serve(int argc, char **argv)
{
    ingot_config cfg;
    char err[1024] = "";
    int pr = config_parse(&cfg, argc, argv, stdout, err, sizeof err);
    if (pr != 0) {
        if (pr < 0) fprintf(stderr, "ingot serve: %s\n", err);
        config_free(&cfg);
        return pr < 0 ? 2 : 0;
    }
    log_set_level((enum log_level)log_level_parse(cfg.log_level));
    /*
     * Two malloc arenas instead of glibc's 8 per core: requests on dozens of connection threads
     * otherwise each grow an arena of their own and keep it. Measured under 32 writers (TSBS,
     * 5,000-line batches): peak RSS 596-640 MiB -> 521-534 MiB, and 1.19-1.39M -> 1.55-1.57M
     * lines/s (less page faulting). MALLOC_ARENA_MAX in the environment still wins.
     */
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
    /*
     * Blocks of 1 MiB and more straight from mmap and back to the kernel when freed: glibc would
     * otherwise raise its threshold after the first such free and serve the buffer's column
     * arrays and the persist jobs' columns (sizes that vary with every snapshot) from the heap,
     * where freed holes stay resident. Measured (8 writers, TSBS 5,000-line batches, 15 s, twice):
     * peak RSS 191-203 -> 168-178 MiB at the same lines/s (1.65-1.69M). The write path's large
     * buffers are reused (spare bodies and batches), so they do not pay for it.
     */
    if (!getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 1 << 20);

    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, signal_watch, NULL) != 0) {
        log_error("start-up failed: cannot start the signal thread");
        config_free(&cfg);
        return 1;
    }
    pthread_detach(watcher);

    log_info("ingot starting: data dir %s, WAL %s, catalog %s", cfg.data_dir, cfg.wal_dir,
             cfg.catalog);
    ingester *ing = NULL;
    int rv = ingester_open(&cfg, &ing, err, sizeof err);
    if (rv != 0) {
        log_error("start-up failed: %s", err[0] ? err : ingot_strerror(rv));
        config_free(&cfg);
        return 1;
    }
    grpc_front_options go = {.bind = cfg.grpc_bind,
                             .max_request_bytes = cfg.max_request_bytes,
                             .auth_token = cfg.auth_token,
                             .threads = (unsigned)cfg.grpc_threads};
    grpc_front *grpc = NULL;
    if ((rv = grpc_front_start(&go, ing, &grpc, err, sizeof err)) != 0) {
        log_error("start-up failed: %s", err);
        ingester_close(ing);
        config_free(&cfg);
        return 1;
    }
    http_options ho = {.bind = cfg.http_bind,
                       .max_request_bytes = cfg.max_request_bytes,
                       .max_body_memory = cfg.max_body_memory,
                       .max_connections = cfg.http_max_connections,
                       .idle_timeout_s = (unsigned)cfg.http_idle_timeout_s,
                       .auth_token = cfg.auth_token,
                       .more_metrics = grpc_front_metrics,
                       .more_metrics_arg = grpc};
    http_server *http = NULL;
    if ((rv = http_server_start(&ho, ing, &http, err, sizeof err)) != 0) {
        log_error("start-up failed: %s", err);
        grpc_front_stop(grpc, 0);
        ingester_close(ing);
        config_free(&cfg);
        return 1;
    }
    log_info("ingot serving HTTP on %s and gRPC on %s%s", cfg.http_bind, cfg.grpc_bind,
             cfg.auth_token ? " (token required)" : "");

    pthread_mutex_lock(&stop_mu);
    serving = true;
    while (stop_signal == 0) pthread_cond_wait(&stop_cond, &stop_mu);
    int sig = stop_signal;
    pthread_mutex_unlock(&stop_mu);
    log_info("%s: stopping: refusing writes, finishing requests in flight", strsignal(sig));
    ingester_stop_writes(ing);
    int drv = ingester_drain(ing);
    if (drv != 0)
        log_error("stop: the final persist failed (%s); the WAL keeps the data for the next start",
                  ingot_strerror(drv));
    http_server_stop(http, 10000);
    grpc_front_stop(grpc, 10000); /* last: the ingester decides when (ARCHITECTURE §9) */
    ingester_close(ing);
    log_info("ingot stopped%s", drv == 0 ? " with an empty WAL" : "");
    config_free(&cfg);
    return drv == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "serve")) return serve(argc - 2, argv + 2);
    if (!strcmp(argv[1], "wal") && argc >= 3 && !strcmp(argv[2], "inspect")) {
        const char *dir = argc >= 4 ? argv[3] : "./ingot-data/wal";
        int rv = wal_inspect(dir, stdout);
        if (rv < 0) {
            fprintf(stderr, "ingot wal inspect: %s: %s\n", dir, ingot_strerror(rv));
            return 2;
        }
        return rv;
    }
    fprintf(stderr, "ingot: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
