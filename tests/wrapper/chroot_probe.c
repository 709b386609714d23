/* A static program for the chroot test: prints its pid and the run number from argv, then sleeps. */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	printf("probe started pid=%d arg=%s\n", (int)getpid(), argc > 1 ? argv[1] : "");
	fflush(stdout);
	for (;;)
		pause();
}
