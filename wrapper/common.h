/* Small things every part of restart-wrapper uses: logging and the monotonic clock. */
#ifndef RW_COMMON_H
#define RW_COMMON_H

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

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t rw_now_ms(void);

#endif
