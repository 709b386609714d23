/* Small things every part of restart-wrapper uses: logging, writing and the monotonic clock. */
#ifndef RW_COMMON_H
#define RW_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifndef RW_VERSION
#define RW_VERSION "dev"
#endif

#define RW_DEFAULT_RESTART_FILE "/tmp/.restart-proc"
/* Set by the webhook in every wrapped container, so `kubectl exec … trigger` finds its file. */
#define RW_RESTART_FILE_ENV "RESTART_WRAPPER_RESTART_FILE"

/* One line to stderr, prefixed "restart-wrapper: ". Control characters (a newline in a
 * file name, say) are shown as '?', so a line is always one line. */
void rw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The same, prefixed "PROGRAM: ": in tar and rm mode the tools driving us (Tilt, kubectl)
 * read the messages of a tar and an rm. */
void rw_log_as(const char *program, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* write(2) until all of it is written. -1 with errno set on failure, never with errno 0: a
 * caller that reports errno must not mistake a short write for success. */
int rw_write_all(int fd, const void *data, size_t len);

/* The parent of `pid` as /proc/PID/stat gives it (0: a parent outside our pid namespace, as an
 * exec's is), or -1 when there is no such process or no /proc. */
long rw_parent_of(long pid);

/* Our own executable, opened read-only: /proc/self/exe when /proc is mounted, else the path we
 * were run by. -1 with errno set when neither opens. */
int rw_open_self(void);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t rw_now_ms(void);

#endif
