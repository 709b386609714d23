#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rw_log(const char *fmt, ...)
{
	/* Build the whole line first so concurrent writers never interleave inside it. */
	char line[1024];
	va_list ap;
	int n = snprintf(line, sizeof line, "restart-wrapper: ");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	for (unsigned char *p = (unsigned char *)line; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	/* Nowhere to report a failing stderr; the line is lost either way. */
	fprintf(stderr, "%s\n", line);
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
