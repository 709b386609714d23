/* The `run` command line: options, their defaults, and the program to supervise. */
#ifndef RW_CLI_H
#define RW_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct run_options {
	const char *restart_file; /* a change restarts at once */
	char **watch;             /* trees whose changes restart after the debounce quiet period */
	size_t nwatch;
	int64_t debounce_ms;
	int64_t stop_timeout_ms;
	int64_t poll_ms; /* > 0: poll every poll_ms instead of using inotify */
	int stop_signal;
	bool exit_continue; /* --exit-policy=continue */
	char **command;     /* NULL-terminated argv of the program */
};

/* Parse argv (after "run"). On error returns -1 with a one-line message in err. */
int parse_run_options(int argc, char **argv, struct run_options *out, char *err, size_t errlen);

/* "250ms", "5s", "1m" -> milliseconds; -1 when malformed. Units are required. */
int64_t parse_duration_ms(const char *text);

/* "TERM", "SIGTERM", "term" or "15" -> 15; -1 when unknown. */
int parse_signal(const char *text);

#endif
