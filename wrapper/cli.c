/*
 * Parsing of `restart-wrapper run [options] -- COMMAND [ARG...]`.
 * Both --opt=value and --opt value are accepted; a lone "--" or the first
 * non-option word starts COMMAND, so a program named "-h" can still be run after "--".
 *
 * The value grammar is exact and shared with the webhook (see cli.h). It is hand-written
 * rather than strtol-based: strtol takes leading blanks, a sign and overflows to LONG_MAX,
 * and each of those would make the wrapper accept what the webhook refuses.
 */
#include "cli.h"

#include "common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int64_t parse_duration_ms(const char *text)
{
	const char *p = text;
	if (!is_digit(*p))
		return -1;
	/* Leading zeros keep the value at 0; anything past the cap stops the scan, so no
	 * digit string, however long, can overflow. */
	int64_t value = 0;
	for (; is_digit(*p); p++) {
		value = value * 10 + (*p - '0');
		if (value > RW_MAX_DURATION_MS)
			return -1;
	}
	if (strcmp(p, "ms") == 0)
		return value;
	if (strcmp(p, "s") == 0)
		value *= 1000;
	else if (strcmp(p, "m") == 0)
		value *= 60 * 1000;
	else
		return -1;
	return value > RW_MAX_DURATION_MS ? -1 : value;
}

/* Linux's standard signals by their one name each: no aliases (IOT, POLL, CLD), no RTMIN+n. */
static const struct {
	const char *name;
	int number;
} signal_names[] = {
	{"HUP", SIGHUP},     {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},     {"TRAP", SIGTRAP},
	{"ABRT", SIGABRT},   {"BUS", SIGBUS},       {"FPE", SIGFPE},     {"KILL", SIGKILL},   {"USR1", SIGUSR1},
	{"SEGV", SIGSEGV},   {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},   {"TERM", SIGTERM},
	{"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CONT", SIGCONT},   {"STOP", SIGSTOP},   {"TSTP", SIGTSTP},
	{"TTIN", SIGTTIN},   {"TTOU", SIGTTOU},     {"URG", SIGURG},     {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
	{"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},   {"WINCH", SIGWINCH}, {"IO", SIGIO},       {"PWR", SIGPWR},
	{"SYS", SIGSYS},
};
#define NSIGNAL_NAMES (sizeof signal_names / sizeof signal_names[0])

int parse_signal(const char *text)
{
	if (is_digit(text[0])) {
		int number = 0;
		for (const char *p = text; *p != '\0'; p++) {
			if (!is_digit(*p))
				return -1;
			number = number * 10 + (*p - '0');
			if (number > RW_MAX_SIGNAL)
				return -1; /* stops before any overflow */
		}
		return number >= 1 ? number : -1;
	}
	const char *name = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;
	for (size_t i = 0; i < NSIGNAL_NAMES; i++)
		if (strcasecmp(name, signal_names[i].name) == 0)
			return signal_names[i].number;
	return -1;
}

const char *signal_name(int sig)
{
	for (size_t i = 0; i < NSIGNAL_NAMES; i++)
		if (signal_names[i].number == sig)
			return signal_names[i].name;
	return NULL;
}

const char *path_problem(const char *path)
{
	if (path[0] != '/')
		return "an absolute path";
	size_t len = 0;
	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++, len++)
		if (*p < 0x20 || *p == 0x7f)
			return "a path without control characters";
	if (len > RW_MAX_PATH_BYTES)
		return "a path of at most 1024 bytes";
	return NULL;
}

static int option_error(char *err, size_t errlen, const char *what, const char *name, const char *value)
{
	/* Control characters in `value` are made visible by rw_log, which keeps this one line. */
	snprintf(err, errlen, "%s --%s%s%s", what, name, value ? "=" : "", value ? value : "");
	return -1;
}

static int path_option(char *err, size_t errlen, const char *name, const char *value)
{
	const char *problem = path_problem(value);
	if (problem == NULL)
		return 0;
	char what[64];
	snprintf(what, sizeof what, "expected %s:", problem);
	return option_error(err, errlen, what, name, value);
}

int parse_run_options(int argc, char **argv, struct run_options *out, char *err, size_t errlen)
{
	*out = (struct run_options){
		.debounce_ms = 100,
		.stop_timeout_ms = 5000,
		.stop_signal = SIGTERM,
		.exit_policy = EXIT_RERUN,
	};
	out->watch = calloc((size_t)argc + 1, sizeof *out->watch);
	if (out->watch == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	int i = 0;
	for (; i < argc; i++) {
		char *arg = argv[i];
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (strncmp(arg, "--", 2) != 0)
			break;

		/* Split "--name=value"; without "=", the value is the next word. */
		char name[32];
		const char *value;
		const char *eq = strchr(arg + 2, '=');
		size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (len >= sizeof name)
			return option_error(err, errlen, "unknown option", arg + 2, NULL);
		memcpy(name, arg + 2, len);
		name[len] = '\0';
		if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			return option_error(err, errlen, "missing value for", name, NULL);
		}

		if (strcmp(name, "restart-file") == 0) {
			if (path_option(err, errlen, name, value) < 0)
				return -1;
			if (out->nrestart_files == RW_MAX_RESTART_FILES) {
				snprintf(err, errlen, "expected at most %d --restart-file options", RW_MAX_RESTART_FILES);
				return -1;
			}
			out->restart_files[out->nrestart_files++] = value;
		} else if (strcmp(name, "watch") == 0) {
			if (path_option(err, errlen, name, value) < 0)
				return -1;
			out->watch[out->nwatch++] = (char *)value;
		} else if (strcmp(name, "sync-file") == 0) {
			if (path_option(err, errlen, name, value) < 0)
				return -1;
			if (out->sync_file != NULL) {
				snprintf(err, errlen, "expected --sync-file at most once");
				return -1;
			}
			out->sync_file = value;
		} else if (strcmp(name, "env-file") == 0) {
			if (path_option(err, errlen, name, value) < 0)
				return -1;
			out->env_file = value;
		} else if (strcmp(name, "debounce") == 0 || strcmp(name, "stop-timeout") == 0 ||
			   strcmp(name, "poll") == 0) {
			bool poll = strcmp(name, "poll") == 0;
			int64_t ms = parse_duration_ms(value);
			if (ms < 0 || (ms == 0 && poll))
				return option_error(err, errlen,
						    poll ? "expected a duration above 0 and at most 24h, like 250ms, 5s or 1m:"
							 : "expected a duration of at most 24h, like 250ms, 5s or 1m:",
						    name, value);
			if (strcmp(name, "debounce") == 0)
				out->debounce_ms = ms;
			else if (strcmp(name, "stop-timeout") == 0)
				out->stop_timeout_ms = ms;
			else
				out->poll_ms = ms;
		} else if (strcmp(name, "stop-signal") == 0) {
			out->stop_signal = parse_signal(value);
			if (out->stop_signal < 0)
				return option_error(err, errlen, "expected a signal name like TERM or SIGQUIT, or a number 1-64:",
						    name, value);
		} else if (strcmp(name, "exit-policy") == 0) {
			if (strcmp(value, "rerun") == 0)
				out->exit_policy = EXIT_RERUN;
			else if (strcmp(value, "restart") == 0)
				out->exit_policy = EXIT_RESTART;
			else if (strcmp(value, "continue") == 0)
				out->exit_policy = EXIT_CONTINUE;
			else
				return option_error(err, errlen, "expected rerun, restart or continue:", name, value);
		} else {
			return option_error(err, errlen, "unknown option", name, NULL);
		}
	}

	if (i >= argc) {
		snprintf(err, errlen, "missing COMMAND to run");
		return -1;
	}
	if (out->nrestart_files == 0)
		out->restart_files[out->nrestart_files++] = RW_DEFAULT_RESTART_FILE;
	out->command = argv + i;
	return 0;
}
