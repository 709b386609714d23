/*
 * restart-wrapper: run a program, re-execute it when a trigger file or watched tree
 * changes, and be a correct PID 1 while doing it.
 *
 *   restart-wrapper run [options] -- COMMAND [ARG...]
 *   restart-wrapper install DIR
 *   restart-wrapper trigger [--restart-file=PATH]
 *   restart-wrapper version
 */
#include "cli.h"
#include "common.h"
#include "install.h"
#include "supervise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_ERROR 2

static const char usage[] =
	"usage: restart-wrapper run [options] -- COMMAND [ARG...]\n"
	"       restart-wrapper install DIR\n"
	"       restart-wrapper trigger [--restart-file=PATH]\n"
	"       restart-wrapper version\n"
	"\n"
	"run options:\n"
	"  --restart-file=PATH   a change to this file restarts COMMAND at once (default " RW_DEFAULT_RESTART_FILE ")\n"
	"  --watch=PATH          repeatable; a change anywhere under PATH restarts COMMAND after --debounce\n"
	"  --debounce=DUR        quiet period for --watch changes (default 100ms)\n"
	"  --stop-signal=SIG     TERM, INT, HUP, QUIT, USR1, USR2, KILL or a number (default TERM)\n"
	"  --stop-timeout=DUR    then SIGKILL to the whole process group (default 5s)\n"
	"  --exit-policy=POLICY  restart: exit with COMMAND's status when it exits by itself (default)\n"
	"                        continue: stay up and start COMMAND again on the next change\n"
	"  --poll=DUR            poll for changes every DUR instead of using inotify\n"
	"Durations need a unit: 250ms, 5s, 1m.\n";

static int usage_error(const char *message)
{
	fprintf(stderr, "restart-wrapper: %s (try: restart-wrapper help)\n", message);
	return USAGE_ERROR;
}

static int trigger_command(int argc, char **argv)
{
	const char *path = RW_DEFAULT_RESTART_FILE;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--restart-file=", 15) == 0)
			path = argv[i] + 15;
		else if (strcmp(argv[i], "--restart-file") == 0 && i + 1 < argc)
			path = argv[++i];
		else
			return usage_error("trigger takes only --restart-file=PATH");
	}
	if (path[0] != '/')
		return usage_error("expected an absolute path: --restart-file");
	return trigger(path);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("missing command: run, install, trigger or version");
	const char *command = argv[1];

	if (strcmp(command, "run") == 0) {
		struct run_options options;
		char error[256];
		int status = parse_run_options(argc - 2, argv + 2, &options, error, sizeof error) < 0
				     ? usage_error(error)
				     : supervise(&options);
		free(options.watch);
		return status;
	}
	if (strcmp(command, "install") == 0) {
		if (argc != 3 || argv[2][0] != '/')
			return usage_error("install takes one absolute directory");
		return install(argv[2]);
	}
	if (strcmp(command, "trigger") == 0)
		return trigger_command(argc - 2, argv + 2);
	if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
		printf("restart-wrapper %s\n", RW_VERSION);
		return 0;
	}
	if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	return usage_error("unknown command");
}
