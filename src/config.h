/* Configuration: command-line flags and the --config file (YAML or JSON),
 * in generic-device-plugin's schema, validated completely at start. */
#ifndef UDP_CONFIG_H
#define UDP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "instance.h"
#include "log.h"

#define CONFIG_DEFAULT_DOMAIN		    "usb-device-plugin.dev"
#define CONFIG_DEFAULT_LISTEN		    ":8080"
#define CONFIG_DEFAULT_PLUGIN_DIR	    "/var/lib/kubelet/device-plugins/"
#define CONFIG_DEFAULT_GRACE_MS		    30000
#define CONFIG_DEFAULT_CDI_DIR		    "/var/run/cdi"
#define CONFIG_DEFAULT_POD_RESOURCES_SOCKET "/var/lib/kubelet/pod-resources/kubelet.sock"
#define CONFIG_DEFAULT_SA_DIR		    "/var/run/secrets/kubernetes.io/serviceaccount"
/* generic-device-plugin's resources are squat.ai/NAME. */
#define CONFIG_GDP_DOMAIN "squat.ai"
/* smarter-device-manager's resources are all smarter-devices/NAME. */
#define CONFIG_SDM_DOMAIN "smarter-devices"
/* Where smarter-device-manager's devicematch expressions look. */
#define CONFIG_SDM_DEV_DIR "/dev"

enum cfg_path_type {
	CFG_PATH_DEVICE = 0, /* a device node: DeviceSpec with cgroup permissions */
	CFG_PATH_MOUNT,	     /* any file or directory: bind Mount */
};

struct cfg_path {
	char *path;	  /* glob, never NULL, surrounding whitespace trimmed */
	char *mount_path; /* NULL: same as the host path; trailing '/': a directory */
	enum cfg_path_type type;
	char permissions[4]; /* subset of "mrw" in that order, NUL-terminated (Device) */
	bool read_only;	     /* Mount only */
	unsigned limit;	     /* >= 1 */
	bool optional;
};

/* A USB entry matches a USB device (a usb_device in sysfs). IDs and class:
 * -1 means "any" (omitted or "*"). */
struct cfg_usb {
	int32_t vendor;
	int32_t product;
	char *serial;	   /* NULL: any; otherwise a glob on the serial number */
	int32_t usb_class; /* device class or any interface's class, 0x00-0xff */
	char *port;	   /* NULL: any; otherwise a glob on the port path ("1-1.4") */
	char *mount_path;  /* NULL: nodes keep their host paths; else a directory
			    * (ends in '/') the device's class nodes are put in */
};

/* A virtual group: devices that need no file (scheduler and quota tests,
 * clusters without the hardware). */
struct cfg_virtual {
	unsigned count;	 /* devices, >= 1 */
	char *id_prefix; /* IDs are <id_prefix>-<node>-<i> */
	/* NULL, or an absolute path prefix ("/dev/sim-"): device i is the
	 * file <prefix><its ID>, or <prefix><i> when only that one exists. */
	char *device_file_prefix;
};

struct cfg_group {
	struct cfg_path *paths;
	size_t n_paths;
	struct cfg_usb *usb;
	size_t n_usb;
	struct cfg_virtual *virt; /* NULL unless a virtual group */
	/* smarter-device-manager: the file /dev/<dev_name> (every device below
	 * it when a directory), IDs "0".."count-1". Only in derived devices. */
	char *dev_name;
	unsigned count; /* >= 1 */
	/* generic-device-plugin's first schema {type, count, paths}: IDs are
	 * <matched path>-<slot>, as its versions of that time gave them. */
	bool old_ids;
	/* Allocate decorations: templates, checked by tmpl_check at load. */
	struct dev_kv *env;
	size_t n_env;
	struct dev_kv *annotations;
	size_t n_annotations;
};

struct cfg_device {
	char *name;   /* matches [a-z0-9][-a-z0-9]*[a-z0-9] (or one [a-z0-9]) */
	char *domain; /* NULL: the config's; else its own (the simulator's
		       * RESOURCE_NAME names its domain) */
	struct cfg_group *groups;
	size_t n_groups;
};

struct gore;

/* One entry of a smarter-device-manager config file: every file under
 * /dev whose name relative to /dev matches pattern (Go's regexp syntax,
 * unanchored as Go's MatchString) becomes a resource of its own, offered
 * nummaxdevices times. */
struct cfg_match {
	char *pattern;
	struct gore *re; /* pattern compiled (gore.h) */
	unsigned max;	 /* nummaxdevices, >= 1 */
	unsigned line;	 /* in the config file, 0 when unknown */
};

enum cfg_format {
	CFG_FORMAT_AUTO = 0, /* smarter-device-manager's when the file is a list */
	CFG_FORMAT_GDP,	     /* generic-device-plugin's schema (and ours) */
	CFG_FORMAT_SDM,	     /* smarter-device-manager's list of devicematch entries */
	CFG_FORMAT_SIM,	     /* the simple device plugin's map (resourceName, ...) */
};

struct config {
	char *domain;
	char *listen;
	char *plugin_dir;  /* always ends with '/' */
	char *config_file; /* NULL when none was given or found */
	enum log_level log_level;
	unsigned grace_ms; /* how long a vanished instance stays listed Unhealthy */
	char *nfd_file;	   /* NULL: off; else the NFD local feature file to keep */
	bool show_version;
	bool show_help;
	bool show_list;		    /* --list: print the USB devices and what they match */
	bool show_udev_rules;	    /* --udev-rules: print rules for the config's USB entries */
	bool cdi;		    /* write CDI specs and answer Allocate with CDI names */
	char *cdi_dir;		    /* where the CDI specs go */
	char *node_name;	    /* $NODE_NAME or the host name: virtual device IDs */
	unsigned evict_after_ms;    /* 0: off; else evict Pods whose device is gone this long */
	char *pod_resources_socket; /* the kubelet's PodResources API (eviction) */
	char *sa_dir;		    /* the service account's token and ca.crt (eviction) */
	enum cfg_format format;	    /* what the config file was read as */
	struct cfg_device *devices;
	size_t n_devices;
	struct cfg_match *matches; /* smarter-device-manager entries */
	size_t n_matches;
};

/* Fills *cfg from argv (argv[0] is the program name). Precedence: flag,
 * then environment (DOMAIN, LISTEN, LOG_LEVEL, PLUGIN_DIRECTORY, as
 * generic-device-plugin's viper reads them), then the config file, then
 * the defaults. --device flags replace the file's devices list.
 * On error returns a negative errno and writes one message naming the
 * source ("--device #2", "config.yaml:14"), the field path
 * ("groups[0].usb[1].vendor") and the reason into err; *cfg is then
 * zeroed. Warnings (deprecated schema) are logged with log_warn. */
int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

void config_free(struct config *cfg);

/* A reload applies the devices, the log level and the grace period; the
 * other settings of nc that differ from running's are said (warn) to wait
 * for the next start. */
void config_warn_reload(const struct config *running, const struct config *nc);

/* Frees what the device owns (not the struct); for derived devices. */
void config_device_clear(struct cfg_device *d);
/* A deep copy of src into *dst (zeroed on error); 0 or -ENOMEM. */
int config_device_copy(struct cfg_device *dst, const struct cfg_device *src);
/* True when a and b describe the same devices the same way. */
bool config_device_equal(const struct cfg_device *a, const struct cfg_device *b);

/* True when name can be a resource name: Kubernetes' qualified-name part,
 * ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters. */
bool config_resource_name_ok(const char *name);

/* Whether the entry's expression matches file, a name relative to
 * CONFIG_SDM_DEV_DIR ("ttyUSB0", "net/tun"). */
bool cfg_match_matches(const struct cfg_match *m, const char *file);

/* The --help text. */
const char *config_usage(void);

#endif
