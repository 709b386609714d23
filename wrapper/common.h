/* Small things every part of restart-wrapper uses: logging and the monotonic clock. */
#ifndef RW_COMMON_H
#define RW_COMMON_H

#include <stdint.h>

#ifndef RW_VERSION
#define RW_VERSION "dev"
#endif

#define RW_DEFAULT_RESTART_FILE "/tmp/.restart-proc"

/* One line to stderr, prefixed "restart-wrapper: ". */
void rw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t rw_now_ms(void);

#endif
