#include "udevrules.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* udev match values are globs in double quotes: a quote, backslash or
 * newline in a serial or port pattern cannot be written safely. */
static bool expressible(const char *v)
{
	return !v || !strpbrk(v, "\"\\\n");
}

/* The match keys for the usb_device itself (dev) or for a device below
 * it (ATTRS/KERNELS: any parent). */
static void matches(FILE *out, const struct cfg_usb *u, bool dev)
{
	const char *a = dev ? "ATTR" : "ATTRS";
	if (u->vendor >= 0)
		fprintf(out, ", %s{idVendor}==\"%04x\"", a, (unsigned)u->vendor);
	if (u->product >= 0)
		fprintf(out, ", %s{idProduct}==\"%04x\"", a, (unsigned)u->product);
	if (u->serial)
		fprintf(out, ", %s{serial}==\"%s\"", a, u->serial);
	if (u->port)
		fprintf(out, ", %s==\"%s\"", dev ? "KERNEL" : "KERNELS", u->port);
}

static void entry(FILE *out, const char *name, size_t g, size_t e, const struct cfg_usb *u)
{
	fprintf(out, "\n# %s: groups[%zu].usb[%zu]\n", name, g, e);
	if (!expressible(u->serial) || !expressible(u->port)) {
		fprintf(out, "# not written: a quote, backslash or newline in serial or port\n");
		return;
	}
	const char *set = ", TAG+=\"" UDEV_RULES_TAG "\", GROUP=\"" UDEV_RULES_GROUP
			  "\", MODE=\"" UDEV_RULES_MODE "\"\n";
	bool device_keys = u->vendor >= 0 || u->product >= 0 || u->serial || u->port;
	if (device_keys) {
		/* the /dev/bus/usb node */
		fprintf(out, "SUBSYSTEM==\"usb\", ENV{DEVTYPE}==\"usb_device\"");
		matches(out, u, true);
		if (u->usb_class >= 0)
			fprintf(out, ", ATTR{bDeviceClass}==\"%02x\"", (unsigned)u->usb_class);
		fputs(set, out);
	}
	/* its class nodes (tty, hidraw, video, sound...), found through their
	 * parents; a class entry matches the interface's class */
	fprintf(out, "SUBSYSTEM!=\"usb\", SUBSYSTEMS==\"usb\"");
	matches(out, u, false);
	if (u->usb_class >= 0)
		fprintf(out, ", ATTRS{bInterfaceClass}==\"%02x\"", (unsigned)u->usb_class);
	fputs(set, out);
}

int udev_rules_write(FILE *out, const struct config *cfg)
{
	fprintf(out,
		"# udev rules for usb-device-plugin, written by `usb-device-plugin --udev-rules`.\n"
		"# Install: copy to /etc/udev/rules.d/70-usb-device-plugin.rules on every node,\n"
		"# then `udevadm control --reload && udevadm trigger --subsystem-match=usb`.\n"
		"# The matching devices and their nodes are tagged \"" UDEV_RULES_TAG "\" and\n"
		"# given group " UDEV_RULES_GROUP " and mode " UDEV_RULES_MODE
		": a container running as a non-root user\n"
		"# opens them with securityContext.supplementalGroups: [<" UDEV_RULES_GROUP
		"'s GID on the node>].\n");
	size_t written = 0;
	for (size_t r = 0; r < cfg->n_devices; r++)
		for (size_t g = 0; g < cfg->devices[r].n_groups; g++)
			for (size_t e = 0; e < cfg->devices[r].groups[g].n_usb; e++, written++)
				entry(out, cfg->devices[r].name, g, e,
				      &cfg->devices[r].groups[g].usb[e]);
	if (!written)
		fprintf(out, "\n# (the configuration has no usb entries)\n");
	return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}
