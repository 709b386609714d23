#include "common.h"

#include <stdarg.h>
#include <stdio.h>
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
	fprintf(stderr, "%s\n", line);
}

int64_t rw_now_ms(void)
{
	struct timespec ts;
	/* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
