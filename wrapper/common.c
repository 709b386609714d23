#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

static void log_line(const char *program, const char *fmt, va_list ap)
{
	/* Build the whole line first so concurrent writers never interleave inside it. Room for
	 * a message about a path of PATH_MAX bytes; a longer one is cut short. */
	char line[8192];
	int n = snprintf(line, sizeof line, "%s: ", program);
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	for (unsigned char *p = (unsigned char *)line; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	/* Nowhere to report a failing stderr; the line is lost either way. */
	fprintf(stderr, "%s\n", line);
}

void rw_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("restart-wrapper", fmt, ap);
	va_end(ap);
}

void rw_log_as(const char *program, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line(program, fmt, ap);
	va_end(ap);
}

int rw_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO; /* no progress and no error: the write would never complete */
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The parent pid in what follows comm's ')' in /proc/PID/stat (" S 1234 ..."), or -1. By hand
 * rather than with sscanf, which links musl's scanf and through it its long double parser: 16 KB
 * on arm64, where long double arithmetic is done in software, and over the size budget. */
static long stat_ppid(const char *after_comm)
{
	const char *p = after_comm;
	if (p[0] != ' ' || p[1] == '\0' || p[2] != ' ')
		return -1;
	p += 3;
	const char *digits = p;
	long long ppid = 0;
	while (*p >= '0' && *p <= '9' && ppid <= INT_MAX)
		ppid = ppid * 10 + (*p++ - '0');
	return p > digits && *p == ' ' && ppid <= INT_MAX ? (long)ppid : -1;
}

long rw_parent_of(long pid)
{
	char path[32], stat[512];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n;
	while ((n = read(fd, stat, sizeof stat - 1)) < 0 && errno == EINTR)
		;
	(void)close(fd); /* read only: nothing to lose */
	if (n <= 0)
		return -1;
	stat[n] = '\0';
	/* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'. */
	char *close_paren = strrchr(stat, ')');
	return close_paren != NULL ? stat_ppid(close_paren + 1) : -1;
}

int rw_open_self(void)
{
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	return execfn ? open(execfn, O_RDONLY | O_CLOEXEC) : -1;
}

int64_t rw_now_ms(void)
{
	struct timespec ts;
	/* Cannot fail on Linux with a valid pointer; if it ever did, every deadline would be
	 * garbage, so stop loudly rather than SIGKILL at random. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0) {
		rw_log("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
		abort();
	}
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
