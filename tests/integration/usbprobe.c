/* usbprobe: looks at the USB world the way the plugin does, to check the
 * test world (tests/integration/usbworld.py), not the plugin.
 *
 * 1. Enumerates usb_devices with libudev (subsystem "usb", property
 *    DEVTYPE=usb_device) and prints one DEV line per device: identity from
 *    sysfs attributes and udev properties, whether it is bound, its
 *    interfaces' classes and every descendant that has a device node, with
 *    what stat() says about the node.
 * 2. Lists libusb's devices (LIBUSB lines).
 * 3. Unless --once: prints READY, then one EVENT line per udev monitor event
 *    (netlink "udev", no filter) and per libusb hotplug callback (ARRIVED,
 *    LEFT), from a single poll() loop over the monitor fd and libusb's poll
 *    fds (libusb_handle_events_timeout_completed with a zero timeout), until
 *    SIGTERM/SIGINT (read from a signalfd in the same loop) end it cleanly,
 *    printing BYE.
 *
 * Output: one record a line, "KIND key=value ...". Values are escaped so
 * that a line splits on spaces: bytes outside 0x21..0x7e and '%' become %XX
 * (urllib.parse.unquote decodes them); a NULL value prints as "-" (a real
 * "-" prints as %2D).
 *
 * Build: gcc -O1 -g -Wall -o usbprobe usbprobe.c \
 *            $(pkg-config --cflags --libs libudev libusb-1.0)
 * Run it inside a World (usbworld.World.env()). */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <libusb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* prints " key=value", value escaped */
static void kv(const char *key, const char *val)
{
	printf(" %s=", key);
	if (!val) {
		putchar('-');
		return;
	}
	if (!*val)
		return;
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '%' ||
		    (*p == '-' && p == (const unsigned char *)val && !p[1]))
			printf("%%%02X", *p);
		else
			putchar(*p);
	}
}

static void kvi(const char *key, long v)
{
	printf(" %s=%ld", key, v);
}

static const char *type_name(mode_t m)
{
	if (S_ISCHR(m))
		return "chr";
	if (S_ISBLK(m))
		return "blk";
	if (S_ISDIR(m))
		return "dir";
	if (S_ISREG(m))
		return "reg";
	if (S_ISLNK(m))
		return "lnk";
	if (S_ISFIFO(m))
		return "fifo";
	if (S_ISSOCK(m))
		return "sock";
	return "other";
}

/* "path:type:major:minor" or "path:ENOENT" into buf */
static void node_desc(const char *path, char *buf, size_t n)
{
	struct stat st;
	if (stat(path, &st) < 0)
		snprintf(buf, n, "%s:%s", path,
			 strerrorname_np(errno) ? strerrorname_np(errno) : "error");
	else
		snprintf(buf, n, "%s:%s:%u:%u", path, type_name(st.st_mode), major(st.st_rdev),
			 minor(st.st_rdev));
}

static const char *const PROPS[] = {"ID_VENDOR_ID",
				    "ID_MODEL_ID",
				    "ID_SERIAL_SHORT",
				    "ID_SERIAL",
				    "ID_PATH",
				    "ID_VENDOR_FROM_DATABASE",
				    "ID_MODEL_FROM_DATABASE",
				    "DRIVER",
				    "BUSNUM",
				    "DEVNUM",
				    "MAJOR",
				    "MINOR",
				    NULL};

static void print_device(struct udev *udev, struct udev_device *d)
{
	char buf[4096];
	const char *syspath = udev_device_get_syspath(d);
	printf("DEV");
	kv("syspath", syspath);
	kv("sysname", udev_device_get_sysname(d));
	kv("vid", udev_device_get_sysattr_value(d, "idVendor"));
	kv("pid", udev_device_get_sysattr_value(d, "idProduct"));
	kv("serial", udev_device_get_sysattr_value(d, "serial"));
	kv("busnum", udev_device_get_sysattr_value(d, "busnum"));
	kv("devnum", udev_device_get_sysattr_value(d, "devnum"));
	kv("devpath", udev_device_get_sysattr_value(d, "devpath"));
	kv("class", udev_device_get_sysattr_value(d, "bDeviceClass"));
	kv("manufacturer", udev_device_get_sysattr_value(d, "manufacturer"));
	kv("product", udev_device_get_sysattr_value(d, "product"));
	kv("driver", udev_device_get_driver(d));
	kvi("bound", udev_device_get_driver(d) != NULL);
	kvi("initialized", udev_device_get_is_initialized(d));
	kvi("devnum_t", (long)udev_device_get_devnum(d));
	for (int i = 0; PROPS[i]; i++)
		kv(PROPS[i], udev_device_get_property_value(d, PROPS[i]));
	const char *devnode = udev_device_get_devnode(d);
	if (devnode) {
		node_desc(devnode, buf, sizeof buf);
		kv("node", buf);
	} else
		kv("node", NULL);

	/* descendants: interfaces' classes and every node below */
	struct udev_enumerate *e = udev_enumerate_new(udev);
	udev_enumerate_add_match_parent(e, d);
	udev_enumerate_scan_devices(e);
	char ifs[1024] = "", kids[8192] = "";
	struct udev_list_entry *le;
	udev_list_entry_foreach(le, udev_enumerate_get_list_entry(e))
	{
		const char *p = udev_list_entry_get_name(le);
		if (!strcmp(p, syspath))
			continue;
		struct udev_device *c = udev_device_new_from_syspath(udev, p);
		if (!c)
			continue;
		const char *dt = udev_device_get_devtype(c);
		if (dt && !strcmp(dt, "usb_interface")) {
			const char *cls = udev_device_get_sysattr_value(c, "bInterfaceClass");
			const char *drv = udev_device_get_driver(c);
			snprintf(ifs + strlen(ifs), sizeof ifs - strlen(ifs), "%s%s/%s/%s",
				 *ifs ? "," : "", udev_device_get_sysname(c), cls ? cls : "-",
				 drv ? drv : "-");
		}
		const char *n = udev_device_get_devnode(c);
		if (n) {
			node_desc(n, buf, sizeof buf);
			const char *ss = udev_device_get_subsystem(c);
			snprintf(kids + strlen(kids), sizeof kids - strlen(kids), "%s%s:%s",
				 *kids ? "," : "", ss ? ss : "-", buf);
		}
		udev_device_unref(c);
	}
	udev_enumerate_unref(e);
	kv("interfaces", ifs);
	kv("children", kids);
	putchar('\n');
}

static int enumerate(struct udev *udev)
{
	struct udev_enumerate *e = udev_enumerate_new(udev);
	udev_enumerate_add_match_subsystem(e, "usb");
	udev_enumerate_add_match_property(e, "DEVTYPE", "usb_device");
	int r = udev_enumerate_scan_devices(e);
	int count = 0;
	struct udev_list_entry *le;
	udev_list_entry_foreach(le, udev_enumerate_get_list_entry(e))
	{
		struct udev_device *d =
		    udev_device_new_from_syspath(udev, udev_list_entry_get_name(le));
		if (!d) {
			printf("DEVERR");
			kv("syspath", udev_list_entry_get_name(le));
			putchar('\n');
			continue;
		}
		print_device(udev, d);
		udev_device_unref(d);
		count++;
	}
	udev_enumerate_unref(e);
	printf("ENUMERATED count=%d scan=%d\n", count, r);
	return count;
}

static void libusb_list(libusb_context *ctx)
{
	libusb_device **list;
	ssize_t n = libusb_get_device_list(ctx, &list);
	for (ssize_t i = 0; i < n; i++) {
		struct libusb_device_descriptor dd;
		if (libusb_get_device_descriptor(list[i], &dd) < 0)
			continue;
		printf("LIBUSB vid=%04x pid=%04x bus=%u addr=%u class=%02x\n", dd.idVendor,
		       dd.idProduct, libusb_get_bus_number(list[i]),
		       libusb_get_device_address(list[i]), dd.bDeviceClass);
	}
	printf("LIBUSB-LISTED count=%zd\n", n);
	if (n >= 0)
		libusb_free_device_list(list, 1);
}

static int LIBUSB_CALL hotplug_cb(libusb_context *ctx, libusb_device *dev, libusb_hotplug_event ev,
				  void *user)
{
	(void)ctx;
	(void)user;
	struct libusb_device_descriptor dd;
	memset(&dd, 0, sizeof dd);
	libusb_get_device_descriptor(dev, &dd);
	printf("EVENT t=%.6f src=libusb kind=%s vid=%04x pid=%04x bus=%u addr=%u\n", now(),
	       ev == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? "ARRIVED" : "LEFT", dd.idVendor,
	       dd.idProduct, libusb_get_bus_number(dev), libusb_get_device_address(dev));
	return 0;
}

static void print_event(struct udev_device *d)
{
	printf("EVENT t=%.6f src=udev", now());
	kv("action", udev_device_get_action(d));
	kv("subsystem", udev_device_get_subsystem(d));
	kv("devtype", udev_device_get_devtype(d));
	kv("syspath", udev_device_get_syspath(d));
	kv("devnode", udev_device_get_devnode(d));
	kv("driver", udev_device_get_driver(d));
	kvi("seqnum", (long)udev_device_get_seqnum(d));
	kv("vid", udev_device_get_sysattr_value(d, "idVendor"));
	kv("pid", udev_device_get_sysattr_value(d, "idProduct"));
	kv("ID_VENDOR_ID", udev_device_get_property_value(d, "ID_VENDOR_ID"));
	kv("ID_MODEL_ID", udev_device_get_property_value(d, "ID_MODEL_ID"));
	kv("ID_SERIAL_SHORT", udev_device_get_property_value(d, "ID_SERIAL_SHORT"));
	kvi("devnum_t", (long)udev_device_get_devnum(d));
	const char *n = udev_device_get_devnode(d);
	if (n) {
		char buf[4096];
		node_desc(n, buf, sizeof buf);
		kv("stat", buf);
	}
	putchar('\n');
}

int main(int argc, char **argv)
{
	int once = 0, no_libusb = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--once"))
			once = 1;
		else if (!strcmp(argv[i], "--no-libusb"))
			no_libusb = 1;
		else {
			fprintf(stderr, "usage: usbprobe [--once] [--no-libusb]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* SIGTERM/SIGINT through a signalfd, blocked in every thread (libusb's
	 * event thread inherits the mask): a handler could run in that thread
	 * and leave our poll() asleep */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("signalfd");
		return 1;
	}

	struct udev *udev = udev_new();
	if (!udev) {
		fprintf(stderr, "udev_new failed\n");
		return 1;
	}
	/* monitor first, so that nothing between enumeration and listening is lost */
	struct udev_monitor *mon = NULL;
	if (!once) {
		mon = udev_monitor_new_from_netlink(udev, "udev");
		if (!mon || udev_monitor_enable_receiving(mon) < 0) {
			fprintf(stderr, "udev monitor failed\n");
			return 1;
		}
	}
	double t0 = now();
	enumerate(udev);
	printf("ENUM-TIME seconds=%.6f\n", now() - t0);

	libusb_context *ctx = NULL;
	libusb_hotplug_callback_handle hh;
	if (!no_libusb) {
		int r = libusb_init(&ctx);
		if (r < 0) {
			printf("LIBUSB-INIT error=%s\n", libusb_error_name(r));
			ctx = NULL;
		} else {
			libusb_list(ctx);
			if (!once) {
				r = libusb_hotplug_register_callback(
				    ctx,
				    LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
					LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
				    0, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
				    LIBUSB_HOTPLUG_MATCH_ANY, hotplug_cb, NULL, &hh);
				if (r < 0)
					printf("LIBUSB-HOTPLUG error=%s\n", libusb_error_name(r));
			}
		}
	}
	if (once)
		goto out;

	printf("READY pid=%d\n", (int)getpid());
	for (;;) {
		struct pollfd pfd[32];
		int n = 0;
		pfd[n].fd = udev_monitor_get_fd(mon);
		pfd[n++].events = POLLIN;
		pfd[n].fd = sfd;
		pfd[n++].events = POLLIN;
		const struct libusb_pollfd **lfds = ctx ? libusb_get_pollfds(ctx) : NULL;
		for (int i = 0; lfds && lfds[i] && n < 32; i++) {
			pfd[n].fd = lfds[i]->fd;
			pfd[n++].events = lfds[i]->events;
		}
		libusb_free_pollfds(lfds);
		int r = poll(pfd, n, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			break;
		}
		if (pfd[1].revents & POLLIN)
			break;
		if (pfd[0].revents & POLLIN) {
			struct udev_device *d;
			while ((d = udev_monitor_receive_device(mon))) {
				print_event(d);
				udev_device_unref(d);
			}
		}
		int lib = 0;
		for (int i = 2; i < n; i++)
			lib |= pfd[i].revents != 0;
		if (lib) {
			struct timeval zero = {0, 0};
			libusb_handle_events_timeout_completed(ctx, &zero, NULL);
		}
	}
	printf("BYE\n");
out:
	if (ctx) {
		if (!once)
			libusb_hotplug_deregister_callback(ctx, hh);
		libusb_exit(ctx);
	}
	if (mon)
		udev_monitor_unref(mon);
	udev_unref(udev);
	close(sfd);
	return 0;
}
