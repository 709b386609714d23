/*
 * `test -d|-e|-f FILE`: the unary file tests, following symbolic links as coreutils does. The
 * rest of test's language (strings, numbers, -a/-o, `[`) has no caller here and no room in the
 * size budget: it goes to the image's own test when there is one (see handoff.h), and is
 * otherwise refused with one line and status 2, never answered wrongly.
 */
#include "file_test.h"

#include "common.h"
#include "handoff.h"

#include <string.h>
#include <sys/stat.h>

int test_main(int argc, char **argv)
{
	if (argc != 2 || argv[0][0] != '-' || argv[0][1] == '\0' || argv[0][2] != '\0' ||
	    strchr("def", argv[0][1]) == NULL) {
		hand_off("test", argc, argv); /* the image's own test, if it has one */
		rw_log_as("test", "expected -d, -e or -f FILE");
		return 2;
	}
	struct stat st;
	if (stat(argv[1], &st) < 0) /* missing, unreachable or a dangling link: false, as coreutils */
		return 1;
	char test = argv[0][1];
	return test == 'e' || (test == 'd' && S_ISDIR(st.st_mode)) || (test == 'f' && S_ISREG(st.st_mode)) ? 0 : 1;
}
