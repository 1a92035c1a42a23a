/* The pod sandbox's process in scripts/e2e-cri.sh: it only holds the pod's namespaces, like the
 * kubelet's pause image, and ends on SIGTERM or SIGINT. Built with gcc -static at test time. */
#include <signal.h>
#include <unistd.h>

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

int main(void)
{
	signal(SIGTERM, stop);
	signal(SIGINT, stop);
	for (;;)
		pause();
}
