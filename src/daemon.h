/* The plugin daemon: wires the config, the device table, discovery, the
 * gRPC servers and the kubelet registration onto one event loop. */
#ifndef UDP_DAEMON_H
#define UDP_DAEMON_H

#include "config.h"

/* Runs until SIGTERM or SIGINT; returns the process exit status (0 after a
 * clean stop, 1 when start-up failed -- with the reason logged). argv is
 * read again on SIGHUP, with the config file, to reload the devices. */
int daemon_run(const struct config *cfg, int argc, char **argv);

#endif
