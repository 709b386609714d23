/* The sync file: the tools' reports, and the reading of them (see sync.h). */
#include "sync.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How many pids between a sync and a trigger are worth looking at; past that, just restart. */
#define FOLD_MAX_PIDS 4096

static const char *const event_names[] = {"start", "done", "failed"};

/* Digits to a number, the text after them in *end; -1 for no digits. At most 18 are read, so
 * *end shows any more. */
static long long number(const char *text, const char **end)
{
	long long value = 0;
	const char *p = text;
	for (; *p >= '0' && *p <= '9' && p - text < 18; p++)
		value = value * 10 + (*p - '0');
	*end = p;
	return p > text ? value : -1;
}

/* The last pid the kernel handed out in our pid namespace: ours, and also every pid the runtime's
 * exec took before it ran us (runc's `runc init` starts Go threads in the container, which take
 * pids after ours and are gone by the time we run). Our own when it cannot be read. */
static long last_pid(void)
{
	char text[24];
	const char *end;
	long long pid = -1;
	int fd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, text, sizeof text - 1);
		(void)close(fd); /* read only: nothing to lose */
		text[n > 0 ? n : 0] = '\0';
		pid = number(text, &end);
	}
	return pid > 0 ? (long)pid : (long)getpid();
}

int sync_report(const char *tool, enum sync_event event)
{
	const char *path = getenv(RW_SYNC_FILE_ENV);
	if (path == NULL || path[0] == '\0')
		return 0;
	/* Read before the report is written: the restart it asks for takes pids after this one. */
	char line[RW_SYNC_LINE_MAX], temporary[4200];
	int len = snprintf(line, sizeof line, "%s %s %ld %lld\n", event_names[event], tool, last_pid(),
			   (long long)rw_now_ms());
	/* Beside it, then renamed over it: the supervisor reads a whole report or none. */
	if (snprintf(temporary, sizeof temporary, "%s.%ld", path, (long)getpid()) >= (int)sizeof temporary) {
		rw_log_as(tool, "cannot tell restart-wrapper of the sync: %s=%s: path too long", RW_SYNC_FILE_ENV, path);
		return -1;
	}
	int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	int error = fd < 0 ? errno : 0;
	if (fd >= 0 && rw_write_all(fd, line, (size_t)len) < 0)
		error = errno;
	if (fd >= 0 && close(fd) < 0 && error == 0)
		error = errno;
	if (error == 0 && rename(temporary, path) < 0)
		error = errno;
	if (error == 0)
		return 0;
	if (fd >= 0 && unlink(temporary) < 0 && errno != ENOENT)
		rw_log_as(tool, "cannot remove %s: %s", temporary, strerror(errno));
	rw_log_as(tool, "cannot tell restart-wrapper of the sync: %s: %s", path, strerror(error));
	return -1;
}

int sync_read(const char *path, struct sync_report *out, char *line)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			rw_log("%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n;
	while ((n = read(fd, line, RW_SYNC_LINE_MAX - 1)) < 0 && errno == EINTR)
		;
	int error = n < 0 ? errno : 0;
	(void)close(fd); /* read only: nothing to lose */
	if (n < 0) {
		rw_log("%s: cannot read: %s", path, strerror(error));
		return -1;
	}
	line[n] = '\0';
	/* "EVENT TOOL PID MS\n", as sync_report writes it; anything else is no report. */
	int event = 0;
	while (event < 3 && strncmp(line, event_names[event], strlen(event_names[event])) != 0)
		event++;
	const char *p = event < 3 ? line + strlen(event_names[event]) : line;
	bool rm = strncmp(p, " rm ", 4) == 0;
	if (event == 3 || (!rm && strncmp(p, " tar ", 5) != 0)) {
		rw_log("%s: not a sync report; ignored", path);
		return -1;
	}
	long long pid = number(p + (rm ? 4 : 5), &p);
	long long ms = *p == ' ' ? number(p + 1, &p) : -1;
	if (pid <= 0 || ms < 0 || strcmp(p, "\n") != 0) {
		rw_log("%s: not a sync report; ignored", path);
		return -1;
	}
	*out = (struct sync_report){.event = (enum sync_event)event, .rm = rm, .last_pid = (long)pid, .ms = ms};
	return 0;
}

bool sync_covers_trigger(const char *sync_file, int64_t *ago)
{
	struct sync_report last;
	char line[RW_SYNC_LINE_MAX];
	if (sync_read(sync_file, &last, line) < 0 || last.event != SYNC_DONE || last.rm)
		return false;
	*ago = rw_now_ms() - last.ms;
	long self = (long)getpid(), parent = (long)getppid();
	if (*ago < 0 || *ago >= RW_SYNC_FOLD_MS || self <= last.last_pid || self - last.last_pid > FOLD_MAX_PIDS)
		return false;
	for (long pid = last.last_pid + 1; pid < self; pid++) {
		/* Our own parent is let through: a shell a run step ran us from. */
		long its_parent = pid == parent ? 1 : rw_parent_of(pid);
		if (its_parent <= 0)
			return false; /* gone (it may have changed files), or an exec of its own */
	}
	return true;
}
