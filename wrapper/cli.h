/*
 * The `run` command line: options, their defaults, and the program to supervise.
 * The value grammar here is the webhook's too (it validates annotations, then passes
 * them as --name=value): every value one accepts, the other must accept.
 */
#ifndef RW_CLI_H
#define RW_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RW_MAX_RESTART_FILES 8
#define RW_MAX_PATH_BYTES 1024
#define RW_MAX_DURATION_MS (24LL * 60 * 60 * 1000)
#define RW_MAX_SIGNAL 64

enum exit_policy {
	EXIT_RERUN,    /* run COMMAND again after a capped back-off (the default) */
	EXIT_RESTART,  /* exit with COMMAND's status, so the kubelet restarts the container */
	EXIT_CONTINUE, /* wait for the next change */
};

struct run_options {
	const char *restart_files[RW_MAX_RESTART_FILES]; /* a change to any restarts at once */
	size_t nrestart_files;
	char **watch; /* trees whose changes restart after the debounce quiet period */
	size_t nwatch;
	const char *env_file; /* read before every start; NULL when not given */
	const char *sync_file; /* the sync tools' reports (see sync.h); NULL when not given */
	int64_t debounce_ms;
	int64_t stop_timeout_ms;
	int64_t poll_ms; /* > 0: poll every poll_ms instead of using inotify */
	int stop_signal;
	enum exit_policy exit_policy;
	char **command; /* NULL-terminated argv of the program */
};

/* Parse argv (after "run"). On error returns -1 with a one-line message in err. */
int parse_run_options(int argc, char **argv, struct run_options *out, char *err, size_t errlen);

/* [0-9]+ then ms, s or m, at most 24h -> milliseconds; -1 otherwise. */
int64_t parse_duration_ms(const char *text);

/* A name from the list (case-insensitive, optional SIG prefix) or [0-9]+ in 1..64; -1 otherwise. */
int parse_signal(const char *text);

/* "SEGV" for 11; NULL for a signal without a name in the list (real-time signals). */
const char *signal_name(int sig);

/* NULL when `path` is a valid path value (absolute, at most 1024 bytes, no control
 * characters); otherwise what is wrong, to follow "expected" in a message. */
const char *path_problem(const char *path);

#endif
