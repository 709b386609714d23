/* The benchmark's child: append CLOCK_MONOTONIC (ns) to the file in argv[1], then wait to be stopped.
 * A static C program, so that process start-up cost is the supervisor's, not an interpreter's. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec now;
	char line[32];
	if (argc < 2 || clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return 2;
	int len = snprintf(line, sizeof line, "%lld\n", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
	int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0 || write(fd, line, (size_t)len) != len || close(fd) < 0)
		return 3;
	for (;;)
		pause();
}
