/* The yardstick of the USB start-up benchmark (bench_usb.py): what a plain
 * libudev program does to learn every USB device the way the plugin needs
 * it. Every usb_device of the usb subsystem, the attributes and properties
 * the plugin reads (idVendor, idProduct, bDeviceClass, busnum, devnum,
 * serial, ID_SERIAL_SHORT, DEVNAME, driver, dev), then its children
 * (udev_enumerate_add_match_parent, the usual libudev way): each one's
 * subsystem and type, an interface's bInterfaceClass, a node's DEVNAME and
 * dev. Prints one line: devices=N interfaces=N nodes=N seconds=S (in
 * process, from udev_new to the last unref). */
#include <libudev.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* keeps the reads from being optimised away, and shows they happened */
static unsigned long sum;

static void take(const char *v)
{
	sum += v ? strlen(v) : 0;
}

int main(void)
{
	static const char *const attrs[] = {"idVendor", "idProduct", "bDeviceClass",
					    "busnum",	"devnum",    "serial"};
	double t0 = now();
	unsigned long devs = 0, ifs = 0, nodes = 0;
	struct udev *udev = udev_new();
	if (!udev)
		return 1;
	struct udev_enumerate *e = udev_enumerate_new(udev);
	if (!e)
		return 1;
	udev_enumerate_add_match_subsystem(e, "usb");
	udev_enumerate_add_match_property(e, "DEVTYPE", "usb_device");
	udev_enumerate_scan_devices(e);
	struct udev_list_entry *it;
	udev_list_entry_foreach(it, udev_enumerate_get_list_entry(e))
	{
		struct udev_device *ud =
		    udev_device_new_from_syspath(udev, udev_list_entry_get_name(it));
		if (!ud)
			continue;
		devs++;
		for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
			take(udev_device_get_sysattr_value(ud, attrs[i]));
		take(udev_device_get_property_value(ud, "ID_SERIAL_SHORT"));
		take(udev_device_get_devnode(ud));
		take(udev_device_get_driver(ud));
		sum += udev_device_get_devnum(ud);
		struct udev_enumerate *ce = udev_enumerate_new(udev);
		if (ce) {
			udev_enumerate_add_match_parent(ce, ud);
			udev_enumerate_scan_devices(ce);
			struct udev_list_entry *ci;
			udev_list_entry_foreach(ci, udev_enumerate_get_list_entry(ce))
			{
				const char *sp = udev_list_entry_get_name(ci);
				if (strcmp(sp, udev_device_get_syspath(ud)) == 0)
					continue;
				struct udev_device *c = udev_device_new_from_syspath(udev, sp);
				if (!c)
					continue;
				const char *type = udev_device_get_devtype(c);
				take(udev_device_get_subsystem(c));
				if (type && strcmp(type, "usb_interface") == 0) {
					take(udev_device_get_sysattr_value(c, "bInterfaceClass"));
					ifs++;
				} else if (udev_device_get_devnode(c)) {
					take(udev_device_get_devnode(c));
					sum += udev_device_get_devnum(c);
					nodes++;
				}
				udev_device_unref(c);
			}
			udev_enumerate_unref(ce);
		}
		udev_device_unref(ud);
	}
	udev_enumerate_unref(e);
	udev_unref(udev);
	printf("devices=%lu interfaces=%lu nodes=%lu seconds=%.4f check=%lu\n", devs, ifs, nodes,
	       now() - t0, sum);
	return 0;
}
