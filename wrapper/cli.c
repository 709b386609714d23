/*
 * Parsing of `restart-wrapper run [options] -- COMMAND [ARG...]`.
 * Both --opt=value and --opt value are accepted; a lone "--" or the first
 * non-option word starts COMMAND, so a program named "-h" can still be run after "--".
 */
#include "cli.h"

#include "common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DURATION_MS (24LL * 60 * 60 * 1000)

int64_t parse_duration_ms(const char *text)
{
	int64_t value = 0;
	const char *p = text;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		value = value * 10 + (*p - '0');
		if (value > MAX_DURATION_MS)
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
	return value > MAX_DURATION_MS ? -1 : value;
}

int parse_signal(const char *text)
{
	static const struct {
		const char *name;
		int number;
	} names[] = {
		{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT},
		{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"KILL", SIGKILL},
	};
	const char *name = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].number;
	char *end;
	long number = strtol(text, &end, 10);
	if (end != text && *end == '\0' && number >= 1 && number < _NSIG)
		return (int)number;
	return -1;
}

static int option_error(char *err, size_t errlen, const char *what, const char *name, const char *value)
{
	snprintf(err, errlen, "%s --%s%s%s", what, name, value ? "=" : "", value ? value : "");
	return -1;
}

int parse_run_options(int argc, char **argv, struct run_options *out, char *err, size_t errlen)
{
	*out = (struct run_options){
		.restart_file = RW_DEFAULT_RESTART_FILE,
		.debounce_ms = 100,
		.stop_timeout_ms = 5000,
		.stop_signal = SIGTERM,
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
			if (value[0] != '/')
				return option_error(err, errlen, "expected an absolute path:", name, value);
			out->restart_file = value;
		} else if (strcmp(name, "watch") == 0) {
			if (value[0] != '/')
				return option_error(err, errlen, "expected an absolute path:", name, value);
			out->watch[out->nwatch++] = (char *)value;
		} else if (strcmp(name, "debounce") == 0 || strcmp(name, "stop-timeout") == 0 ||
			   strcmp(name, "poll") == 0) {
			int64_t ms = parse_duration_ms(value);
			if (ms < 0 || (ms == 0 && strcmp(name, "poll") == 0))
				return option_error(err, errlen, "expected a duration like 250ms, 5s or 1m:", name,
						    value);
			if (strcmp(name, "debounce") == 0)
				out->debounce_ms = ms;
			else if (strcmp(name, "stop-timeout") == 0)
				out->stop_timeout_ms = ms;
			else
				out->poll_ms = ms;
		} else if (strcmp(name, "stop-signal") == 0) {
			out->stop_signal = parse_signal(value);
			if (out->stop_signal < 0)
				return option_error(err, errlen,
						    "expected TERM, INT, HUP, QUIT, USR1, USR2, KILL or a number:", name,
						    value);
		} else if (strcmp(name, "exit-policy") == 0) {
			if (strcmp(value, "restart") != 0 && strcmp(value, "continue") != 0)
				return option_error(err, errlen, "expected restart or continue:", name, value);
			out->exit_continue = strcmp(value, "continue") == 0;
		} else {
			return option_error(err, errlen, "unknown option", name, NULL);
		}
	}

	if (i >= argc) {
		snprintf(err, errlen, "missing COMMAND to run");
		return -1;
	}
	out->command = argv + i;
	return 0;
}
