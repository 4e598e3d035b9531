/* The Pod sandbox's process for the end-to-end test cluster: holds the Pod's
 * namespaces, sleeps until SIGTERM or SIGINT, and reaps any orphan that ends
 * up here (as PID 1 of a Pod's PID namespace). Built static by
 * scripts/e2e/cluster.sh into a FROM scratch image: no registry can provide
 * one here. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct sigaction stop = {.sa_handler = on_stop};
	struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};

	if (sigaction(SIGTERM, &stop, NULL) < 0 || sigaction(SIGINT, &stop, NULL) < 0 ||
	    sigaction(SIGCHLD, &child, NULL) < 0)
		return 2;
	for (;;)
		pause();
}
