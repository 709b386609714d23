/*
 * The image's own tool, for what ours do not do. restart-on-sync puts our tar, rm and test first
 * on the container's PATH, so that a sync runs the tar that can report it. Everything else must
 * still work where the image has the real thing: `tar -c` (kubectl cp out of the pod), `tar -z`,
 * `rm -i`, `test -x`. So what ours do not implement goes to the next tool of that name on PATH.
 */
#ifndef RW_HANDOFF_H
#define RW_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>

/* Execute the next `name` on PATH after this executable's own place there (from the start when
 * it has none), skipping this executable itself, with argv (without the program name): each
 * hand-off moves further along PATH, so two copies of us cannot hand to each other forever.
 * Returns only when there is none, or /proc cannot say which one is us; the caller then refuses
 * as before. */
void hand_off(const char *name, int argc, char **argv);

/* Whether the PATH entry `dir` (its first len bytes) holds our tools: its tar is this executable. */
bool holds_our_tools(const char *dir, size_t len);

#endif
