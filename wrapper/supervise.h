/* Run COMMAND under supervision until it is time to go: it exited and the exit policy is
 * restart, or the wrapper was told to shut down. */
#ifndef RW_SUPERVISE_H
#define RW_SUPERVISE_H

#include "cli.h"

/* Returns the wrapper's exit status: COMMAND's, 128+N for a signal, 127/126 when it cannot run;
 * shut down while COMMAND was not running: its last status under rerun, 0 under continue. */
int supervise(const struct run_options *opt);

#endif
