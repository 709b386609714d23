/*
 * restart-wrapper: run a program, re-execute it when a trigger file or watched tree
 * changes, and be a correct PID 1 while doing it.
 *
 *   restart-wrapper run [options] -- COMMAND [ARG...]
 *   restart-wrapper install DIR
 *   restart-wrapper trigger [--restart-file=PATH]
 *   restart-wrapper version
 *   restart-wrapper tar|rm|test ARG...   (also when run by that name: a link in DIR/bin)
 */
#include "cli.h"
#include "common.h"
#include "env.h"
#include "file_test.h"
#include "install.h"
#include "rm.h"
#include "supervise.h"
#include "sync.h"
#include "tar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_ERROR 2

static const char usage[] =
	"usage: restart-wrapper run [options] -- COMMAND [ARG...]\n"
	"       restart-wrapper install DIR\n"
	"       restart-wrapper trigger [--restart-file=PATH]\n"
	"       restart-wrapper version\n"
	"       restart-wrapper tar|rm|test ARG...   (also run as DIR/bin/tar, rm, test)\n"
	"\n"
	"run options:\n"
	"  --restart-file=PATH   repeatable (up to 8); a change to any of them restarts COMMAND at once\n"
	"                        (default " RW_DEFAULT_RESTART_FILE ")\n"
	"  --watch=PATH          repeatable; a change anywhere under PATH restarts COMMAND after --debounce\n"
	"  --debounce=DUR        quiet period for --watch changes (default 100ms)\n"
	"  --sync-file=PATH      restart COMMAND when a sync finishes: tar -x and rm, run as the tools,\n"
	"                        report to $" RW_SYNC_FILE_ENV " (see restart-wrapper's docs)\n"
	"  --env-file=PATH       KEY=VALUE lines added to COMMAND's environment, read before every start\n"
	"  --stop-signal=SIG     signal that stops COMMAND (default TERM): a name like TERM, SIGQUIT or\n"
	"                        winch, or a number 1-64; the wrapper also shuts down when it receives it\n"
	"  --stop-timeout=DUR    then SIGKILL to the whole process group (default 5s)\n"
	"  --exit-policy=POLICY  what happens when COMMAND exits by itself:\n"
	"                        rerun: run it again after 1s, doubling while it keeps exiting\n"
	"                               quickly, at most 30s (default)\n"
	"                        restart: exit with its status (the kubelet restarts the container)\n"
	"                        continue: stay up and run it again on the next change\n"
	"  --poll=DUR            poll for changes every DUR instead of using inotify\n"
	"Durations: digits and a unit, ms, s or m (250ms, 5s, 1m), at most 24h.\n"
	"Paths: absolute, at most 1024 bytes, no control characters.\n"
	"\n"
	"trigger writes --restart-file, else $" RW_RESTART_FILE_ENV ", else " RW_DEFAULT_RESTART_FILE ".\n";

static int usage_error(const char *message)
{
	rw_log("%s (try: restart-wrapper help)", message);
	return USAGE_ERROR;
}

static int trigger_command(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 0; i < argc; i++) {
		const char *value;
		if (strncmp(argv[i], "--restart-file=", 15) == 0)
			value = argv[i] + 15;
		else if (strcmp(argv[i], "--restart-file") == 0 && i + 1 < argc)
			value = argv[++i];
		else
			return usage_error("trigger takes only --restart-file=PATH");
		if (path != NULL)
			return usage_error("trigger takes --restart-file only once");
		path = value;
	}

	enum trigger_source source = TRIGGER_OPTION;
	const char *from_env = getenv(RW_RESTART_FILE_ENV);
	if (path == NULL && from_env != NULL && from_env[0] != '\0') {
		path = from_env;
		source = TRIGGER_ENV;
	} else if (path == NULL) {
		path = RW_DEFAULT_RESTART_FILE;
		source = TRIGGER_DEFAULT;
	}
	const char *problem = path_problem(path);
	if (problem != NULL) {
		char message[RW_MAX_PATH_BYTES + 128];
		snprintf(message, sizeof message, "expected %s: %s%s", problem,
			 source == TRIGGER_ENV ? RW_RESTART_FILE_ENV "=" : "--restart-file=", path);
		return usage_error(message);
	}
	return trigger(path, source);
}

/* Output nobody receives is a failure the caller should see (`version > /dev/full`). */
static int print(const char *text)
{
	if (fputs(text, stdout) == EOF || fflush(stdout) == EOF) {
		rw_log("cannot write to stdout: %s", strerror(errno));
		return 1;
	}
	return 0;
}

/* The tools live update runs in the container, by name, with their arguments: the exit
 * status, or -1 when `name` is none of them. */
static int run_tool(const char *name, int argc, char **argv)
{
	if (strcmp(name, "tar") == 0)
		return tar_main(argc, argv);
	if (strcmp(name, "rm") == 0)
		return rm_main(argc, argv);
	if (strcmp(name, "test") == 0)
		return test_main(argc, argv);
	return -1;
}

int main(int argc, char **argv)
{
	/* Run by the name tar, rm or test (DIR/bin/tar is a link to us): be that tool. */
	const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name != NULL ? name + 1 : argc > 0 ? argv[0] : "";
	int status = run_tool(name, argc - 1, argv + 1);
	if (status >= 0)
		return status;

	if (argc < 2)
		return usage_error("missing command: run, install, trigger or version");
	const char *command = argv[1];

	if (strcmp(command, "run") == 0) {
		struct run_options options;
		char error[256];
		if (parse_run_options(argc - 2, argv + 2, &options, error, sizeof error) < 0) {
			status = usage_error(error);
		} else {
			env_for_program();
			status = supervise(&options);
		}
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
	status = run_tool(command, argc - 2, argv + 2);
	if (status >= 0)
		return status;
	if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0)
		return print("restart-wrapper " RW_VERSION "\n");
	if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0)
		return print(usage);
	return usage_error("unknown command");
}
