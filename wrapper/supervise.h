/* Run COMMAND under supervision until it exits (or, with --exit-policy=continue, until told to stop). */
#ifndef RW_SUPERVISE_H
#define RW_SUPERVISE_H

#include "cli.h"

/* Returns the wrapper's exit status: COMMAND's, 128+N for a signal, 127/126 when it cannot run. */
int supervise(const struct run_options *opt);

#endif
