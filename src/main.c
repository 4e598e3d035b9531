/* usb-device-plugin: a Kubernetes device plugin for USB devices and device
 * files. main only parses the command line and hands over to the daemon. */
#include <stdio.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "udevrules.h"
#include "usb.h"
#include "usbids.h"

int main(int argc, char **argv)
{
	struct config cfg;
	char err[1024];
	if (config_load(&cfg, argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "usb-device-plugin: %s\n", err);
		fprintf(stderr, "Try 'usb-device-plugin --help'.\n");
		return 2;
	}
	if (cfg.show_help) {
		fputs(config_usage(), stdout);
		config_free(&cfg);
		return 0;
	}
	if (cfg.show_version) {
		printf("%s\n", UDP_VERSION);
		config_free(&cfg);
		return 0;
	}
	log_set_level(cfg.log_level);
	if (cfg.show_udev_rules) {
		int r = udev_rules_write(stdout, &cfg);
		config_free(&cfg);
		return r < 0 ? 1 : 0;
	}
	if (cfg.show_list) {
		struct usbids *ids = usbids_open(NULL);
		int r = usb_list(stdout, &cfg, ids);
		usbids_close(ids);
		config_free(&cfg);
		return r < 0 ? 1 : 0;
	}
	int status = daemon_run(&cfg, argc, argv);
	config_free(&cfg);
	return status;
}
