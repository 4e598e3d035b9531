/* Configuration: where each setting comes from and in which order --
 * flags, environment, config file, defaults -- and the loading of the
 * device list, validated completely with the source, field path and reason
 * of the first problem. Typed values and messages are cfgval's, the device
 * schema cfgschema's. See docs/config-reference.md. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cdi.h"
#include "cfgschema.h"
#include "cfgtree.h"
#include "cfgval.h"
#include "errbuf.h"
#include "log.h"

#define MAX_FILE_SIZE (4 << 20) /* a config file is a few kB; refuse anything absurd */
#define MAX_DOMAIN    253
#define STR_(x)	      #x
#define STR(x)	      STR_(x)

/* ---- settings ---- */

static int apply_domain(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg)
{
	size_t len = strlen(v);
	bool ok = true;
	if (len == 0)
		return cfgval_fail(s, n, NULL, leaf, "must not be empty");
	if (len > MAX_DOMAIN)
		return cfgval_fail(s, n, NULL, leaf, "longer than %d characters", MAX_DOMAIN);
	/* Labels of [a-z0-9-], each starting and ending with [a-z0-9]. */
	for (size_t i = 0; i < len && ok; i++) {
		bool first = i == 0 || v[i - 1] == '.', last = i == len - 1 || v[i + 1] == '.';
		if (v[i] == '-' || v[i] == '.')
			ok = !first && !last;
		else
			ok = cfgval_is_digit(v[i]) || (v[i] >= 'a' && v[i] <= 'z');
	}
	if (!ok)
		return cfgval_fail(
		    s, n, NULL, leaf,
		    "\"%s\" is not a valid DNS-1123 subdomain: use lower-case letters, "
		    "digits, '-' and '.', each dot-separated label starting and ending "
		    "with a letter or digit",
		    v);
	/* The kubelet treats "*kubernetes.io/NAME" as a native resource. */
	if (len >= 13 && strcmp(v + len - 13, "kubernetes.io") == 0)
		return cfgval_fail(s, n, NULL, leaf,
				   "\"%s\" is reserved for Kubernetes' own resources", v);
	free(cfg->domain);
	cfg->domain = strdup(v);
	return cfg->domain ? 0 : -ENOMEM;
}

/* HOST:PORT or :PORT, with a numeric port, IPv6 hosts in brackets. */
static int apply_listen(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg)
{
	const char *colon = strrchr(v, ':');
	const char *port = colon ? colon + 1 : "";
	size_t hostlen = colon ? (size_t)(colon - v) : 0;
	bool ok = colon && *port && strlen(port) <= 5 && cfgval_is_integer(port) &&
		  cfgval_is_digit(*port) && atoi(port) <= 65535;
	if (ok && hostlen > 0 && v[0] == '[')
		ok = v[hostlen - 1] == ']';
	else if (ok)
		ok = !memchr(v, ':', hostlen);
	if (!ok)
		return cfgval_fail(
		    s, n, NULL, leaf,
		    "invalid address \"%s\": give HOST:PORT or :PORT with a numeric port "
		    "(e.g. \":8080\", \"127.0.0.1:8080\", \"[::1]:8080\")",
		    v);
	free(cfg->listen);
	cfg->listen = strdup(v);
	return cfg->listen ? 0 : -ENOMEM;
}

static int apply_log_level(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			   const char *v, struct config *cfg)
{
	if (log_level_parse(v, &cfg->log_level) < 0)
		return cfgval_fail(
		    s, n, NULL, leaf,
		    "unknown log level \"%s\": possible values are all, debug, info, warn, "
		    "error, none",
		    v);
	return 0;
}

static int apply_plugin_dir(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			    const char *v, struct config *cfg)
{
	size_t len = strlen(v);
	if (len == 0)
		return cfgval_fail(s, n, NULL, leaf, "must not be empty");
	bool slash = v[len - 1] == '/';
	char *dir = malloc(len + 2);
	if (!dir)
		return -ENOMEM;
	memcpy(dir, v, len);
	memcpy(dir + len, slash ? "" : "/", slash ? 1 : 2);
	free(cfg->plugin_dir);
	cfg->plugin_dir = dir;
	return 0;
}

static int apply_grace(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
		       const char *v, struct config *cfg)
{
	const char *why = cfgval_parse_duration(v, &cfg->grace_ms);
	if (why)
		return cfgval_fail(
		    s, n, NULL, leaf,
		    "invalid duration \"%s\": %s; give e.g. 30s, 500ms, 2m, 1m30s, or a "
		    "number of seconds",
		    v, why);
	return 0;
}

/* Empty: off; else an absolute path. */
static int apply_nfd_file(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			  const char *v, struct config *cfg)
{
	free(cfg->nfd_file);
	cfg->nfd_file = NULL;
	if (!*v)
		return 0;
	if (*v != '/' || v[strlen(v) - 1] == '/')
		return cfgval_fail(s, n, NULL, leaf, "must be an absolute file path, got \"%s\"",
				   v);
	return (cfg->nfd_file = strdup(v)) ? 0 : -ENOMEM;
}

static int apply_cdi(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
		     const char *v, struct config *cfg)
{
	/* a flag's spellings (Go's strconv.ParseBool) and YAML's booleans */
	static const char *const yes[] = {"1", "t", "T", NULL};
	static const char *const no[] = {"0", "f", "F", NULL};
	if (cfgval_in_list(v, yes) || cfgval_in_list(v, no)) {
		cfg->cdi = cfgval_in_list(v, yes);
		return 0;
	}
	if (cfgval_bool_word(v, &cfg->cdi))
		return 0;
	return cfgval_fail(s, n, NULL, leaf, "expected true or false, got \"%s\"", v);
}

static int apply_cdi_dir(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			 const char *v, struct config *cfg)
{
	if (*v != '/')
		return cfgval_fail(s, n, NULL, leaf,
				   "must be an absolute directory path, got \"%s\"", v);
	free(cfg->cdi_dir);
	return (cfg->cdi_dir = strdup(v)) ? 0 : -ENOMEM;
}

static int apply_evict_after(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			     const char *v, struct config *cfg)
{
	const char *why = cfgval_parse_duration(v, &cfg->evict_after_ms);
	if (why)
		return cfgval_fail(s, n, NULL, leaf,
				   "invalid duration \"%s\": %s; give e.g. 5m, 90s, 1h, or 0 (off)",
				   v, why);
	return 0;
}

/* An absolute path: the PodResources socket or the service account dir. */
static int apply_abs_path(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			  const char *v, char **out)
{
	if (*v != '/')
		return cfgval_fail(s, n, NULL, leaf, "must be an absolute path, got \"%s\"", v);
	free(*out);
	return (*out = strdup(v)) ? 0 : -ENOMEM;
}

static int apply_podres(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg)
{
	return apply_abs_path(s, n, leaf, v, &cfg->pod_resources_socket);
}

static int apply_sa_dir(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg)
{
	return apply_abs_path(s, n, leaf, v, &cfg->sa_dir);
}

typedef int (*apply_fn)(const struct cfg_src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg);

enum setting {
	SET_DOMAIN,
	SET_LISTEN,
	SET_LOG_LEVEL,
	SET_PLUGIN_DIR,
	SET_GRACE,
	SET_NFD,
	SET_CDI,
	SET_CDI_DIR,
	SET_EVICT_AFTER,
	SET_PODRES,
	SET_SA_DIR,
	N_SETTINGS
};

static const struct setting_def {
	const char *name; /* flag without "--", and config file key */
	const char *env;
	const char *def;
	apply_fn apply;
} settings[N_SETTINGS] = {
    [SET_DOMAIN] = {"domain", "DOMAIN", CONFIG_DEFAULT_DOMAIN, apply_domain},
    [SET_LISTEN] = {"listen", "LISTEN", CONFIG_DEFAULT_LISTEN, apply_listen},
    [SET_LOG_LEVEL] = {"log-level", "LOG_LEVEL", "info", apply_log_level},
    [SET_PLUGIN_DIR] = {"plugin-directory", "PLUGIN_DIRECTORY", CONFIG_DEFAULT_PLUGIN_DIR,
			apply_plugin_dir},
    [SET_GRACE] = {"grace-period", "GRACE_PERIOD", STR(CONFIG_DEFAULT_GRACE_MS) "ms", apply_grace},
    [SET_NFD] = {"nfd-features-file", "NFD_FEATURES_FILE", "", apply_nfd_file},
    [SET_CDI] = {"cdi", "CDI", "false", apply_cdi},
    [SET_CDI_DIR] = {"cdi-dir", "CDI_DIR", CONFIG_DEFAULT_CDI_DIR, apply_cdi_dir},
    [SET_EVICT_AFTER] = {"evict-after", "EVICT_AFTER", "0", apply_evict_after},
    [SET_PODRES] = {"pod-resources-socket", "POD_RESOURCES_SOCKET",
		    CONFIG_DEFAULT_POD_RESOURCES_SOCKET, apply_podres},
    [SET_SA_DIR] = {"service-account-dir", "SERVICE_ACCOUNT_DIR", CONFIG_DEFAULT_SA_DIR,
		    apply_sa_dir},
};

/* ---- flags ---- */

struct flags {
	const char *value[N_SETTINGS]; /* borrowed from argv; NULL: not given */
	const char *config;
	const char *format;   /* --config-format */
	const char **devices; /* malloc'd array of pointers into argv */
	size_t n_devices;
	bool help, version, list, udev_rules;
};

static const char *const flag_names[] = {"device",
					 "config",
					 "domain",
					 "listen",
					 "log-level",
					 "plugin-directory",
					 "grace-period",
					 "version",
					 "help",
					 "list",
					 "nfd-features-file",
					 "udev-rules",
					 "cdi",
					 "cdi-dir",
					 "config-format",
					 "evict-after",
					 "pod-resources-socket",
					 "service-account-dir",
					 NULL};

static int parse_bool_text(const char *t, bool *out)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True", NULL};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False", NULL};
	if (cfgval_in_list(t, yes))
		*out = true;
	else if (cfgval_in_list(t, no))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Stores a flag's value; name is the flag without "--". */
static int flag_store(struct flags *f, const char *name, const char *value)
{
	for (int i = 0; i < N_SETTINGS; i++) {
		if (strcmp(name, settings[i].name) == 0) {
			f->value[i] = value;
			return 0;
		}
	}
	if (strcmp(name, "config") == 0) {
		f->config = value;
		return 0;
	}
	if (strcmp(name, "config-format") == 0) {
		f->format = value;
		return 0;
	}
	const char **d = reallocarray(f->devices, f->n_devices + 1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	f->devices = d;
	f->devices[f->n_devices++] = value;
	return 0;
}

/* Handles argv[*i], a "--name[=value]" flag. Writes the reason into err. */
static int parse_long_flag(struct flags *f, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	char key[40];
	if (len >= sizeof(key))
		len = sizeof(key) - 1;
	memcpy(key, name, len);
	key[len] = '\0';
	if (!cfgval_in_list(key, flag_names)) {
		const char *sug = cfgval_suggest(key, flag_names);
		errbuf_put(err, errlen, "--%s: unknown flag (%s%s%s)", key,
			   sug ? "did you mean --" : "see --help", sug ? sug : "", sug ? "?" : "");
		return -EINVAL;
	}
	bool is_bool = strcmp(key, "version") == 0 || strcmp(key, "help") == 0 ||
		       strcmp(key, "list") == 0 || strcmp(key, "udev-rules") == 0;
	if (is_bool) {
		bool v = true;
		if (eq && parse_bool_text(eq + 1, &v) < 0) {
			errbuf_put(err, errlen, "--%s: invalid boolean \"%s\" (use true or false)",
				   key, eq + 1);
			return -EINVAL;
		}
		*(key[0] == 'v'	  ? &f->version
		  : key[0] == 'h' ? &f->help
		  : key[0] == 'u' ? &f->udev_rules
				  : &f->list) = v;
		return 0;
	}
	const char *value = eq ? eq + 1 : NULL;
	if (strcmp(key, "cdi") == 0 && !value) /* a boolean: --cdi, --cdi=false */
		value = "true";
	/* "--domain --listen x": --domain lacks its value (--flag=--v still works). */
	if (!value && *i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
		value = argv[++*i];
	if (!value) {
		errbuf_put(err, errlen, "--%s: missing value", key);
		return -EINVAL;
	}
	int r = flag_store(f, key, value);
	if (r < 0)
		errbuf_put(err, errlen, "--%s: out of memory", key);
	return r;
}

/* Fills *f from argv. Keeps going after an error so that --help and
 * --version are seen wherever they are; returns the first error. */
static int parse_args(struct flags *f, int argc, char **argv, char *err, size_t errlen)
{
	int first = 0;
	bool positional = false;
	char msg[256];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		msg[0] = '\0';
		if (!a)
			continue;
		if (!positional && strcmp(a, "--") == 0) {
			positional = true;
			continue;
		}
		if (!positional && (strcmp(a, "-h") == 0)) {
			f->help = true;
		} else if (i == 1 && strcmp(a, "list") == 0) {
			f->list = true; /* "usb-device-plugin list [flags]" */
		} else if (!positional && strncmp(a, "--", 2) == 0) {
			r = parse_long_flag(f, argc, argv, &i, msg, sizeof(msg));
		} else if (!positional && a[0] == '-' && a[1]) {
			const char *sug = cfgval_in_list(a + 1, flag_names) ? a + 1 : NULL;
			errbuf_put(msg, sizeof(msg), "%.40s: unknown flag (%s%s%s)", a,
				   sug ? "did you mean --" : "see --help", sug ? sug : "",
				   sug ? "?" : "");
			r = -EINVAL;
		} else {
			errbuf_put(msg, sizeof(msg),
				   "\"%.40s\": unexpected argument: settings are given as flags "
				   "(see --help)",
				   a);
			r = -EINVAL;
		}
		if (r < 0 && first == 0) {
			first = r;
			errbuf_put(err, errlen, "%s", msg);
		}
	}
	return first;
}

/* ---- config file ---- */

static const char *const default_files[] = {
    "/etc/usb-device-plugin/config.yaml",
    "/etc/usb-device-plugin/config.yml",
    "/etc/usb-device-plugin/config.json",
    "/etc/generic-device-plugin/config.yaml",
    "/etc/generic-device-plugin/config.yml",
    "/etc/generic-device-plugin/config.json",
    "./config.yaml",
    "./config.yml",
    "./config.json",
    /* smarter-device-manager's image reads config/conf.yaml from /root: its
     * DaemonSet mounts the ConfigMap there, so only the image changes. */
    "/root/config/conf.yaml",
    NULL,
};

/* The file to read into *out (malloc'd), or NULL when none is given and
 * none of the default locations exists. */
static int find_config(const struct flags *f, char **out, char *err, size_t errlen)
{
	const char *found = NULL;
	struct stat st;
	*out = NULL;
	if (f->config) {
		if (!*f->config) {
			errbuf_put(err, errlen, "--config: must not be empty");
			return -EINVAL;
		}
		found = f->config;
	}
	for (size_t i = 0; !found && default_files[i]; i++) {
		/* Only absence skips a location; EACCES and the like are reported
		 * when the file is read. */
		if (stat(default_files[i], &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
			found = default_files[i];
	}
	if (!found)
		return 0;
	*out = strdup(found);
	return *out ? 0 : -ENOMEM;
}

static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO (or a device) at the path must not block the
	 * start or, on SIGHUP, the event loop; only regular files are read
	 * (a ConfigMap's symlinks lead to one). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		errbuf_put(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		errbuf_put(err, errlen, "%s: cannot stat: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errbuf_put(err, errlen, "%s: not a regular file (a config file must be one)", path);
		return -EINVAL;
	}
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);
	int r = b ? 0 : -ENOMEM;
	while (r == 0) {
		if (n == cap) {
			char *nb = cap >= MAX_FILE_SIZE ? NULL : realloc(b, cap * 2 + 1);
			if (!nb) {
				r = cap >= MAX_FILE_SIZE ? -EFBIG : -ENOMEM;
				break;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t k = read(fd, b + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = -errno;
		else if (k == 0)
			break;
		else
			n += (size_t)k;
	}
	close(fd);
	if (r < 0) {
		free(b);
		if (r == -EFBIG)
			errbuf_put(err, errlen, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
		else
			errbuf_put(err, errlen, "%s: cannot read: %s", path, strerror(-r));
		return r;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* JSON when the first non-blank character (after a UTF-8 BOM) opens an
 * object or an array. */
static bool looks_like_json(const char *buf, size_t len)
{
	size_t i = 0;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && buf[i] && strchr(" \t\r\n", buf[i]))
		i++;
	return i < len && (buf[i] == '{' || buf[i] == '[');
}

/* Formats a cfgtree error of the source named name. */
static void tree_error(char *err, size_t errlen, const char *name, bool lines, bool json,
		       const struct cfgtree_error *e)
{
	char at[48] = "";
	int k = 0;
	if (e->syntax && lines)
		k = snprintf(at, sizeof(at), " at column %u", e->column);
	else if (e->syntax && e->line > 1)
		k = snprintf(at, sizeof(at), " at line %u, column %u", e->line, e->column);
	else if (e->syntax)
		k = snprintf(at, sizeof(at), " at column %u", e->column);
	if (k < 0 || (size_t)k >= sizeof(at))
		at[0] = '\0';
	char line[24] = "";
	if (lines && e->line && snprintf(line, sizeof(line), ":%u", e->line) >= (int)sizeof(line))
		line[0] = '\0';
	if (e->syntax)
		errbuf_put(err, errlen, "%s%s: invalid %s%s: %s", name, line,
			   json ? "JSON" : "YAML", at, e->msg);
	else
		errbuf_put(err, errlen, "%s%s: %s", name, line, e->msg);
}

static int parse_file(const char *path, struct cfg_node **root, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	struct cfgtree_error e;
	int r = read_file(path, &buf, &len, err, errlen);
	if (r < 0)
		return r;
	if (looks_like_json(buf, len)) {
		/* Strict JSON first, then libyaml for line numbers (JSON is YAML);
		 * the few valid JSON texts libyaml refuses (tab indentation,
		 * surrogate pairs) fall back to cJSON's tree, without lines. */
		r = cfgtree_check_json(buf, len, &e);
		if (r == 0) {
			r = cfgtree_parse_yaml(buf, len, root, &e);
			if (r == -EBADMSG)
				r = cfgtree_parse_json(buf, len, root, &e);
		}
		if (r < 0)
			tree_error(err, errlen, path, true, true, &e);
	} else {
		r = cfgtree_parse_yaml(buf, len, root, &e);
		if (r < 0)
			tree_error(err, errlen, path, true, false, &e);
	}
	free(buf);
	return r;
}

static int parse_format(const char *v, const char *label, enum cfg_format *out, char *err,
			size_t errlen)
{
	if (strcmp(v, "auto") == 0)
		*out = CFG_FORMAT_AUTO;
	else if (strcmp(v, "generic-device-plugin") == 0)
		*out = CFG_FORMAT_GDP;
	else if (strcmp(v, "smarter-device-manager") == 0)
		*out = CFG_FORMAT_SDM;
	else if (strcmp(v, "simple-device-plugin") == 0)
		*out = CFG_FORMAT_SIM;
	else {
		errbuf_put(err, errlen,
			   "%s: unknown format \"%s\" (allowed: auto, generic-device-plugin, "
			   "smarter-device-manager, simple-device-plugin)",
			   label, v);
		return -EINVAL;
	}
	return 0;
}

/* ---- the simulator's environment ---- */

/* $USBDP_VIRTUAL_RESOURCE (and its companions) add one resource of
 * virtual devices, for a DaemonSet that runs without a config file. */
static int add_env_virtual(struct cfgschema_devlist *l, char *err, size_t errlen)
{
	static const struct {
		const char *env, *key;
	} vars[] = {{"USBDP_VIRTUAL_COUNT", "count"},
		    {"USBDP_VIRTUAL_ID_PREFIX", "idPrefix"},
		    {"USBDP_VIRTUAL_ENV_PREFIX", "envPrefix"},
		    {"USBDP_VIRTUAL_ANNOTATION_PREFIX", "annotationPrefix"},
		    {"USBDP_VIRTUAL_DEVICE_FILE_PREFIX", "deviceFilePrefix"}};
	const char *name = getenv("USBDP_VIRTUAL_RESOURCE");
	if (!name || !*name)
		return 0;
	for (size_t j = 0; j < l->n; j++)
		if (strcmp(l->v[j].name, name) == 0) {
			errbuf_put(
			    err, errlen,
			    "$USBDP_VIRTUAL_RESOURCE: \"%s\" is also the name of a configured "
			    "device",
			    name);
			return -EINVAL;
		}
	cJSON *dev = cJSON_CreateObject(), *groups = cJSON_AddArrayToObject(dev, "groups");
	cJSON *group = cJSON_CreateObject(), *virt = cJSON_AddObjectToObject(group, "virtual");
	bool ok = dev && groups && group && virt && cJSON_AddStringToObject(dev, "name", name) &&
		  cJSON_AddItemToArray(groups, group);
	if (!ok)
		cJSON_Delete(group);
	for (size_t i = 0; ok && i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i].env);
		if (v && *v)
			ok = cJSON_AddStringToObject(virt, vars[i].key, v) != NULL;
	}
	char *text = ok ? cJSON_PrintUnformatted(dev) : NULL;
	cJSON_Delete(dev);
	struct cfg_node *root = NULL;
	int r = text ? cfgtree_parse_json(text, strlen(text), &root, NULL) : -ENOMEM;
	free(text);
	struct cfg_src s = {.name = "$USBDP_VIRTUAL_*", .err = err, .errlen = errlen};
	if (r == 0)
		r = cfgschema_devlist_add(l, &s, root, NULL, l->n);
	cfgtree_free(root);
	return r;
}

/* ---- the simple device plugin (simulator) ---- */

/* Its settings: environment variables as its deploy step takes them, and
 * the keys of the file that step renders (passed as --config). */
enum sim_key { SIM_RESOURCE, SIM_COUNT, SIM_PLUGIN, SIM_ID, SIM_ANN, SIM_ENV, SIM_FILE, N_SIM };

static const struct {
	const char *env, *key, *def, *ours;
} sim_keys[N_SIM] = {
    [SIM_RESOURCE] = {"RESOURCE_NAME", "resourceName", "example.com/simple-device", NULL},
    [SIM_COUNT] = {"NUMBER_DEVICES", "numberDevicesOnNode", "2", "count"},
    [SIM_PLUGIN] = {"PLUGIN_NAME", "pluginName", "simple-device-plugin", NULL},
    [SIM_ID] = {"DEVICE_ID_PREFIX", "deviceIDPrefix", "simple-device", "idPrefix"},
    [SIM_ANN] = {"ANNOTATION_PREFIX", "annotationPrefix", "", "annotationPrefix"},
    [SIM_ENV] = {"ENV_PREFIX", "envPrefix", "", "envPrefix"},
    [SIM_FILE] = {"DEVICE_FILE_PREFIX", "deviceFilePrefix", "", "deviceFilePrefix"},
};

/* A file in the simulator's form: a map with one of its keys. */
static bool sim_file_form(const struct cfg_node *root)
{
	for (int i = 0; root && root->kind == CFG_MAP && i < N_SIM; i++)
		if (cfgtree_get(root, sim_keys[i].key))
			return true;
	return false;
}

static int sim_check_file(const struct cfg_src *s, const struct cfg_node *root)
{
	static const char *const keys[] = {
	    "resourceName",	"numberDevicesOnNode", "pluginName",	   "deviceIDPrefix",
	    "annotationPrefix", "envPrefix",	       "deviceFilePrefix", NULL};
	if (cfgval_is_null(root) || root->kind != CFG_MAP)
		return cfgval_expect_kind(s, root, NULL, NULL, CFG_MAP);
	return cfgval_check_keys(s, root, NULL, keys, NULL, NULL);
}

/* Value i: its variable, else the file's key (null is empty), else the
 * simulator's default; *label names the source for messages. */
static int sim_value(int i, const struct cfg_src *file, const struct cfg_node *root, const char **v,
		     struct cfg_src *src, const struct cfg_node **node)
{
	const char *e = getenv(sim_keys[i].env);
	const struct cfg_node *n = root ? cfgtree_get(root, sim_keys[i].key) : NULL;
	*node = NULL;
	*v = sim_keys[i].def;
	if (e && *e) {
		*v = e;
		return 0;
	}
	if (!n)
		return 0;
	*src = *file;
	*node = n;
	if (cfgval_is_null(n)) {
		*v = "";
		return 0;
	}
	return cfgval_get_string(src, n, NULL, sim_keys[i].key, v);
}

/* The simulator's resource, from its variables or its rendered file: a
 * virtual group whose prefixes mean what they mean there. */
static int add_simulator(struct cfgschema_devlist *l, const struct cfg_src *file,
			 const struct cfg_node *root)
{
	bool any = root != NULL;
	for (int i = 0; i < N_SIM && !any; i++)
		any = getenv(sim_keys[i].env) && *getenv(sim_keys[i].env);
	if (!any)
		return 0;
	const char *v[N_SIM];
	char label[N_SIM][40];
	struct cfg_src src[N_SIM];
	const struct cfg_node *node[N_SIM];
	int r = 0;
	for (int i = 0; i < N_SIM && r == 0; i++) {
		src[i] =
		    (struct cfg_src){.name = label[i], .err = file->err, .errlen = file->errlen};
		if (snprintf(label[i], sizeof(label[i]), "$%s", sim_keys[i].env) >=
		    (int)sizeof(label[i]))
			return -ENAMETOOLONG;
		r = sim_value(i, file, root, &v[i], &src[i], &node[i]);
	}
	if (r < 0)
		return r;
	const char *c = v[SIM_COUNT];
	if (!*c || strlen(c) > 5 || strspn(c, "0123456789") != strlen(c) || atoi(c) < 1 ||
	    atoi(c) > 10000)
		return cfgval_fail(&src[SIM_COUNT], node[SIM_COUNT], NULL,
				   node[SIM_COUNT] ? sim_keys[SIM_COUNT].key : NULL,
				   "expected a number of devices from 1 to 10000, got \"%s\"", c);
	/* RESOURCE_NAME is the whole name: its domain is this resource's. */
	const char *slash = strrchr(v[SIM_RESOURCE], '/');
	const char *name = slash ? slash + 1 : v[SIM_RESOURCE];
	char *domain = NULL;
	if (slash) {
		struct config scratch = {0};
		char *d = strndup(v[SIM_RESOURCE], (size_t)(slash - v[SIM_RESOURCE]));
		r = d ? apply_domain(&src[SIM_RESOURCE], node[SIM_RESOURCE],
				     node[SIM_RESOURCE] ? sim_keys[0].key : NULL, d, &scratch)
		      : -ENOMEM;
		free(d);
		domain = scratch.domain;
		if (r < 0)
			return r;
	}
	cJSON *dev = cJSON_CreateObject(), *groups = cJSON_AddArrayToObject(dev, "groups");
	cJSON *group = cJSON_CreateObject(), *virt = cJSON_AddObjectToObject(group, "virtual");
	bool ok = dev && groups && group && virt && cJSON_AddStringToObject(dev, "name", name) &&
		  cJSON_AddItemToArray(groups, group);
	if (!ok)
		cJSON_Delete(group);
	for (int i = 0; ok && i < N_SIM; i++) {
		const char *val = v[i];
		if (i == SIM_FILE) /* a name below /dev there, whatever it starts with */
			val += strspn(val, "/");
		if (sim_keys[i].ours && *val)
			ok = cJSON_AddStringToObject(virt, sim_keys[i].ours, val) != NULL;
	}
	char *text = ok ? cJSON_PrintUnformatted(dev) : NULL;
	cJSON_Delete(dev);
	struct cfg_node *tree = NULL;
	r = text ? cfgtree_parse_json(text, strlen(text), &tree, NULL) : -ENOMEM;
	free(text);
	struct cfg_src s = {.name = root ? file->name : "$RESOURCE_NAME, $NUMBER_DEVICES...",
			    .err = file->err,
			    .errlen = file->errlen};
	if (r == 0)
		r = cfgschema_devlist_add(l, &s, tree, NULL, l->n);
	cfgtree_free(tree);
	if (r < 0) {
		free(domain);
		return r;
	}
	l->v[l->n - 1].domain = domain;
	log_info("simple device plugin's settings (%s): resource=%s/%s count=%s "
		 "ids=%s-<node>-<i>%s%s%s%s%s%s",
		 root ? file->name : "environment", domain ? domain : "<domain>", name,
		 v[SIM_COUNT], v[SIM_ID], *v[SIM_ENV] ? " env=" : "", v[SIM_ENV],
		 *v[SIM_ANN] ? " annotations=" : "", v[SIM_ANN],
		 *v[SIM_FILE] ? " device-files=/dev/" : "", v[SIM_FILE] + strspn(v[SIM_FILE], "/"));
	if (!slash)
		log_warn("simple device plugin: the resource name \"%s\" has no domain: it is "
			 "registered under --domain's (the kubelet refuses a name without one)",
			 name);
	if (strcmp(v[SIM_PLUGIN], sim_keys[SIM_PLUGIN].def) != 0)
		log_warn("simple device plugin: PLUGIN_NAME=%s not used: this plugin names its "
			 "sockets itself (usbdp-%s.<n>.sock)",
			 v[SIM_PLUGIN], name);
	if (*v[SIM_FILE])
		log_warn("simple device plugin: unlike the simulator, a device whose file "
			 "/dev/%s-<id> (or /dev/%s-<i>) is missing is listed Unhealthy",
			 v[SIM_FILE] + strspn(v[SIM_FILE], "/"),
			 v[SIM_FILE] + strspn(v[SIM_FILE], "/"));
	return 0;
}

/* $NODE_NAME (the downward API's spec.nodeName) or the host name, as a
 * device ID part: lower case, [a-z0-9.-]. */
static int resolve_node_name(struct config *cfg)
{
	char host[256] = "node";
	const char *v = getenv("NODE_NAME");
	if (!v || !*v) {
		if (gethostname(host, sizeof(host)) < 0 || !host[0])
			snprintf(host, sizeof(host), "node");
		host[sizeof(host) - 1] = '\0';
		v = host;
	}
	if (!(cfg->node_name = strdup(v)))
		return -ENOMEM;
	for (char *c = cfg->node_name; *c; c++)
		*c = isalnum((unsigned char)*c) || *c == '.' ? (char)tolower((unsigned char)*c)
							     : '-';
	return 0;
}

/* ---- putting it together ---- */

static const char *const top_keys[] = {"domain",
				       "listen",
				       "log-level",
				       "plugin-directory",
				       "grace-period",
				       "devices",
				       "device",
				       "nfd-features-file",
				       "cdi",
				       "cdi-dir",
				       "evict-after",
				       "pod-resources-socket",
				       "service-account-dir",
				       NULL};

/* Checks the file's top level; *devices is its devices list (or NULL),
 * *key the name it was given under. */
static int check_top(const struct cfg_src *s, const struct cfg_node *root,
		     const struct cfg_node **devices, const char **key)
{
	*devices = NULL;
	*key = "devices";
	if (cfgval_is_null(root))
		return 0;
	if (root->kind != CFG_MAP)
		return cfgval_expect_kind(s, root, NULL, NULL, CFG_MAP);
	int r = cfgval_check_keys(s, root, NULL, top_keys, NULL, NULL);
	if (r < 0)
		return r;
	const struct cfg_pair *a = cfgtree_get_pair(root, "devices");
	const struct cfg_pair *b = cfgtree_get_pair(root, "device");
	if (a && b)
		return cfgval_fail(s, b->key, NULL, "device",
				   "\"device\" is an alias of \"devices\": give only one");
	if (b)
		*key = "device";
	*devices = cfgval_field(root, *key);
	if (*devices && (r = cfgval_expect_kind(s, *devices, NULL, *key, CFG_SEQ)) < 0)
		return r;
	return 0;
}

/* Each setting from the flag, the environment, the file or the default. */
static int resolve_settings(const struct flags *f, const struct cfg_src *file,
			    const struct cfg_node *root, struct config *cfg)
{
	char label[48];
	for (int i = 0; i < N_SETTINGS; i++) {
		const struct setting_def *d = &settings[i];
		const char *env = getenv(d->env);
		const struct cfg_node *n = cfgval_field(root, d->name);
		struct cfg_src s = {.err = file->err, .errlen = file->errlen, .name = label};
		const char *v = d->def, *leaf = NULL;
		int r = 0;
		if (f->value[i]) {
			r = snprintf(label, sizeof(label), "--%s", d->name);
			v = f->value[i];
		} else if (env && *env) {
			r = snprintf(label, sizeof(label), "$%s", d->env);
			v = env;
		} else if (n) {
			s = *file;
			leaf = d->name;
			if (i == SET_CDI && n->kind == CFG_SCALAR && cfgval_is_bool(n))
				v = n->text;
			else if ((r = cfgval_get_string(&s, n, NULL, leaf, &v)) < 0)
				return r;
		} else if (i == SET_DOMAIN && cfg->format == CFG_FORMAT_SDM) {
			v = CONFIG_SDM_DOMAIN; /* its resources are smarter-devices/NAME */
		}
		if (r < 0 || (size_t)r >= sizeof(label))
			return -ENAMETOOLONG;
		if ((r = d->apply(&s, n && s.lines ? n : NULL, leaf, v, cfg)) < 0)
			return r;
	}
	return 0;
}

/* The i-th --device flag (value v) into l. JSON, or YAML flow syntax
 * too, as generic-device-plugin's ghodss/yaml reads it. */
static int add_flag_device(struct cfgschema_devlist *l, const struct cfg_src *file, const char *v,
			   size_t i)
{
	char label[32];
	struct cfg_node *root = NULL;
	struct cfgtree_error e;
	struct cfg_src s = {.name = label, .err = file->err, .errlen = file->errlen};
	int n = snprintf(label, sizeof(label), "--device #%zu", i + 1);
	if (n < 0 || (size_t)n >= sizeof(label))
		return -ENAMETOOLONG;
	int r = cfgtree_parse_json(v, strlen(v), &root, &e);
	if (r == -EBADMSG) {
		/* A YAML scalar is no device: then cJSON's error is the useful one. */
		int y = cfgtree_parse_yaml(v, strlen(v), &root, NULL);
		if (y == -ENOMEM || (y == 0 && root && root->kind == CFG_MAP))
			r = y;
	}
	if (r == 0)
		r = cfgschema_devlist_add(l, &s, root, NULL, i);
	else if (r == -ENOMEM)
		errbuf_put(file->err, file->errlen, "%s: out of memory", label);
	else
		tree_error(file->err, file->errlen, label, false, true, &e);
	cfgtree_free(root);
	return r;
}

/* The devices: from the --device flags if any, else from the file's list
 * (which is validated either way). */
static int load_devices(const struct flags *f, const struct cfg_src *file,
			const struct cfg_node *root, const struct cfg_node *list, const char *key,
			struct config *cfg)
{
	struct cfgschema_devlist from_file = {0}, from_flags = {0};
	int r = 0;
	for (size_t i = 0; list && r == 0 && i < list->n_items; i++)
		r = cfgschema_devlist_add(&from_file, file, list->items[i], key, i);
	for (size_t i = 0; r == 0 && i < f->n_devices; i++)
		r = add_flag_device(&from_flags, file, f->devices[i], i);
	struct cfgschema_devlist *use = f->n_devices ? &from_flags : &from_file;
	if (r == 0)
		r = add_env_virtual(use, file->err, file->errlen);
	if (r == 0)
		r = add_simulator(use, file, cfg->format == CFG_FORMAT_SIM ? root : NULL);
	if (r == 0) {
		cfg->devices = use->v;
		cfg->n_devices = use->n;
		free(use->lines);
		memset(use, 0, sizeof(*use));
	}
	cfgschema_devlist_free(&from_file);
	cfgschema_devlist_free(&from_flags);
	return r;
}

/* generic-device-plugin registers squat.ai/NAME. When the devices come in
 * its form -- its --device flags, or a file where its DaemonSets mount
 * theirs -- and no domain is given anywhere, its domain is kept, loudly:
 * changing only the image must not leave its Pods Pending. */
static int gdp_default_domain(const struct flags *f, const struct cfg_node *root,
			      struct config *cfg)
{
	static const char gdp_dir[] = "/etc/generic-device-plugin/";
	const char *env = getenv(settings[SET_DOMAIN].env);
	bool from_dir =
	    cfg->config_file && strncmp(cfg->config_file, gdp_dir, sizeof(gdp_dir) - 1) == 0;
	if (f->value[SET_DOMAIN] || (env && *env) || cfgval_field(root, "domain") ||
	    cfg->format == CFG_FORMAT_SDM || cfg->format == CFG_FORMAT_SIM)
		return 0;
	if (!f->n_devices && !from_dir) { /* ours, or theirs at a path of our choosing */
		if (cfg->n_devices)
			log_info("domain=%s (the default): resources are %s/NAME; give --domain=%s "
				 "to serve Pods written for generic-device-plugin",
				 cfg->domain, cfg->domain, CONFIG_GDP_DOMAIN);
		return 0;
	}
	struct cfg_src s = {.name = "default"};
	int r = apply_domain(&s, NULL, NULL, CONFIG_GDP_DOMAIN, cfg);
	if (r == 0)
		log_warn("domain=%s: no --domain given and the devices come as "
			 "generic-device-plugin's (%s), so its domain is kept: resources are "
			 "%s/NAME. Give --domain (or DOMAIN, or domain: in the file) to choose "
			 "another, e.g. --domain=" CONFIG_DEFAULT_DOMAIN,
			 CONFIG_GDP_DOMAIN, from_dir ? cfg->config_file : "--device flags",
			 CONFIG_GDP_DOMAIN);
	return r;
}

/* --help and --version: the defaults, whatever else is wrong. */
static int apply_defaults(struct config *cfg)
{
	struct cfg_src s = {.name = "default"};
	for (int i = 0; i < N_SETTINGS; i++) {
		int r = settings[i].apply(&s, NULL, NULL, settings[i].def, cfg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The file as the chosen (or recognised) format: its devices list or its
 * smarter-device-manager entries. */
static int load_file(const struct cfg_src *file, const struct cfg_node *root, enum cfg_format fmt,
		     const struct cfg_node **list, const char **key, struct config *cfg)
{
	if (fmt == CFG_FORMAT_AUTO) /* a list of {devicematch, ...}: theirs */
		fmt = root && root->kind == CFG_SEQ && root->n_items &&
			      (cfgtree_get(root->items[0], "devicematch") ||
			       cfgtree_get(root->items[0], "nummaxdevices"))
			  ? CFG_FORMAT_SDM
		      : sim_file_form(root) ? CFG_FORMAT_SIM
					    : CFG_FORMAT_GDP;
	cfg->format = fmt;
	if (fmt == CFG_FORMAT_SDM)
		return cfgschema_parse_sdm(file, root, cfg);
	if (fmt == CFG_FORMAT_SIM) /* its devices come with the environment's */
		return sim_check_file(file, root);
	return check_top(file, root, list, key);
}

static int load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	struct flags f = {0};
	struct cfg_node *root = NULL;
	const struct cfg_node *list = NULL;
	const char *key = "devices";
	struct cfg_src file = {.name = "", .lines = true, .err = err, .errlen = errlen};
	int r = parse_args(&f, argc, argv, err, errlen);
	if (f.help || f.version) {
		cfg->show_help = f.help;
		cfg->show_version = f.version;
		if (err && errlen)
			err[0] = '\0';
		r = apply_defaults(cfg);
		goto out;
	}
	const char *fmt = f.format ? f.format : getenv("CONFIG_FORMAT");
	enum cfg_format want = CFG_FORMAT_AUTO;
	if (r < 0 ||
	    (fmt && *fmt &&
	     (r = parse_format(fmt, f.format ? "--config-format" : "$CONFIG_FORMAT", &want, err,
			       errlen)) < 0) ||
	    (r = find_config(&f, &cfg->config_file, err, errlen)) < 0)
		goto out;
	if ((want == CFG_FORMAT_SDM || want == CFG_FORMAT_SIM) && !cfg->config_file) {
		errbuf_put(err, errlen, "%s: %s: no config file (give --config)",
			   f.format ? "--config-format" : "$CONFIG_FORMAT",
			   want == CFG_FORMAT_SDM ? "smarter-device-manager"
						  : "simple-device-plugin");
		r = -EINVAL;
		goto out;
	}
	if (cfg->config_file) {
		file.name = cfg->config_file;
		if ((r = parse_file(cfg->config_file, &root, err, errlen)) < 0 ||
		    (r = load_file(&file, root, want, &list, &key, cfg)) < 0)
			goto out;
	}
	if ((r = resolve_settings(&f, &file, root, cfg)) < 0 ||
	    (r = load_devices(&f, &file, root, list, key, cfg)) < 0 ||
	    (r = gdp_default_domain(&f, root, cfg)) < 0 || (r = resolve_node_name(cfg)) < 0)
		goto out;
	char kind[CDI_KIND_MAX];
	if (cfg->cdi && cdi_kind(cfg->domain, "x", kind, sizeof(kind)) < 0) {
		errbuf_put(err, errlen,
			   "cdi: the domain \"%s\" cannot be a CDI vendor (it must start with a "
			   "letter)",
			   cfg->domain);
		r = -EINVAL;
		goto out;
	}
	cfg->show_list = f.list;
	cfg->show_udev_rules = f.udev_rules;
	if (cfg->n_devices == 0 && cfg->n_matches == 0 && !f.list) {
		errbuf_put(err, errlen,
			   "no devices configured: give --device, a config file with a devices "
			   "list, a smarter-device-manager config, $USBDP_VIRTUAL_RESOURCE or "
			   "the simple device plugin's $RESOURCE_NAME");
		r = -EINVAL;
	}
out:
	free(f.devices);
	cfgtree_free(root);
	return r;
}

int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!cfg || argc < 0 || (argc > 0 && !argv)) {
		errbuf_put(err, errlen, "config_load: invalid argument");
		return -EINVAL;
	}
	struct config tmp = {.log_level = LOG_LEVEL_INFO};
	int r = load(&tmp, argc, argv, err, errlen);
	if (r < 0) {
		if (r == -ENOMEM && err && errlen && !err[0])
			errbuf_put(err, errlen, "out of memory while loading the configuration");
		else if (r == -ENAMETOOLONG && err && errlen && !err[0])
			errbuf_put(err, errlen, "configuration field path too long");
		config_free(&tmp);
		memset(cfg, 0, sizeof(*cfg));
		return r;
	}
	*cfg = tmp;
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; cfg->devices && i < cfg->n_devices; i++)
		config_device_clear(&cfg->devices[i]);
	free(cfg->devices);
	free(cfg->domain);
	free(cfg->listen);
	free(cfg->plugin_dir);
	free(cfg->config_file);
	free(cfg->nfd_file);
	free(cfg->cdi_dir);
	free(cfg->pod_resources_socket);
	free(cfg->sa_dir);
	free(cfg->node_name);
	cfgschema_matches_free(cfg->matches, cfg->n_matches);
	memset(cfg, 0, sizeof(*cfg));
}

const char *config_usage(void)
{
	return "Usage: usb-device-plugin [FLAGS]\n"
	       "\n"
	       "A Kubernetes device plugin for USB devices and other host device files;\n"
	       "a drop-in replacement for squat/generic-device-plugin (same flags,\n"
	       "environment variables and config file).\n"
	       "\n"
	       "Flags (--flag VALUE or --flag=VALUE):\n"
	       "  --device JSON            A resource to expose (see below). Repeatable; any\n"
	       "                           --device replaces the config file's devices list.\n"
	       "  --config FILE            YAML or JSON config file. Default: the first that\n"
	       "                           exists of /etc/usb-device-plugin/config.EXT,\n"
	       "                           /etc/generic-device-plugin/config.EXT,\n"
	       "                           ./config.EXT (EXT: yaml, yml or json) and\n"
	       "                           /root/config/conf.yaml.\n"
	       "  --config-format FORMAT   auto, generic-device-plugin,\n"
	       "                           smarter-device-manager (a list of {devicematch,\n"
	       "                           nummaxdevices}: a resource smarter-devices/NAME\n"
	       "                           per matching file under /dev) or\n"
	       "                           simple-device-plugin (a simulator's resourceName,\n"
	       "                           numberDevicesOnNode...). auto: by shape.\n"
	       "                           Env CONFIG_FORMAT. Default: auto\n"
	       "  --domain DOMAIN          Resources are named DOMAIN/NAME; squat.ai makes\n"
	       "                           this a drop-in for generic-device-plugin's Pods.\n"
	       "                           Env DOMAIN. Default: " CONFIG_DEFAULT_DOMAIN ";\n"
	       "                           " CONFIG_GDP_DOMAIN
	       " (with a warning) for --device flags\n"
	       "                           or /etc/generic-device-plugin/config.EXT.\n"
	       "  --listen ADDR            HOST:PORT or :PORT of /healthz and /metrics.\n"
	       "                           Env LISTEN. Default: " CONFIG_DEFAULT_LISTEN "\n"
	       "  --log-level LEVEL        all, debug, info, warn, error or none.\n"
	       "                           Env LOG_LEVEL. Default: info\n"
	       "  --plugin-directory DIR   The kubelet's device plugin directory.\n"
	       "                           Env PLUGIN_DIRECTORY.\n"
	       "                           Default: " CONFIG_DEFAULT_PLUGIN_DIR "\n"
	       "  --grace-period DURATION  How long an unplugged device stays listed\n"
	       "                           Unhealthy before it is dropped: 30s, 500ms, 2m,\n"
	       "                           1m30s, or a number of seconds.\n"
	       "                           Env GRACE_PERIOD. Default: 30s\n"
	       "  --nfd-features-file FILE Keep FILE, a node-feature-discovery local feature\n"
	       "                           file, up to date with what is plugged in (one\n"
	       "                           label per resource and per USB vendor:product).\n"
	       "                           Env NFD_FEATURES_FILE. Default: off\n"
	       "  --cdi                    Write a CDI spec per resource and answer Allocate\n"
	       "                           with CDI device names (kubelet 1.29+ by default;\n"
	       "                           containerd 1.7+ with enable_cdi, CRI-O 1.23+).\n"
	       "                           Env CDI. Default: false\n"
	       "  --cdi-dir DIR            Where the CDI specs go. Env CDI_DIR.\n"
	       "                           Default: " CONFIG_DEFAULT_CDI_DIR "\n"
	       "  --evict-after DURATION   Evict the Pods holding a device that has been\n"
	       "                           Unhealthy or gone this long (5m, 90s...), through\n"
	       "                           the Eviction API; 0: never. Needs the evict\n"
	       "                           variant's RBAC and mounts (manifests/variants/\n"
	       "                           evict). Env EVICT_AFTER. Default: 0\n"
	       "  --pod-resources-socket PATH  The kubelet's PodResources API.\n"
	       "                           Env POD_RESOURCES_SOCKET. Default:\n"
	       "                           " CONFIG_DEFAULT_POD_RESOURCES_SOCKET "\n"
	       "  --service-account-dir DIR  Where the token and ca.crt for the API server\n"
	       "                           are. Env SERVICE_ACCOUNT_DIR. Default:\n"
	       "                           " CONFIG_DEFAULT_SA_DIR "\n"
	       "  --udev-rules             Print udev rules for the configured USB devices\n"
	       "                           (tag, group plugdev, mode 0660) and exit.\n"
	       "  --list                   Print every USB device on this node with its\n"
	       "                           nodes and the resources it matches, and exit: a\n"
	       "                           dry run for writing config (also: list).\n"
	       "  --version                Print the version and exit.\n"
	       "  -h, --help               Print this help and exit.\n"
	       "\n"
	       "Each setting comes from its flag, else its environment variable (unless\n"
	       "empty), else the config file key named like the flag (domain, listen,\n"
	       "log-level, plugin-directory, grace-period, and devices: a list of\n"
	       "devices), else the default.\n"
	       "\n"
	       "A device (a --device value, or an item of the config file's devices):\n"
	       "  {\"name\": NAME, \"groups\": [GROUP, ...]}\n"
	       "  NAME   lower-case letters, digits and '-': the resource DOMAIN/NAME.\n"
	       "  GROUP  {\"paths\": [PATH, ...], \"count\": N} or {\"usb\": [USB, ...], "
	       "\"count\": N}\n"
	       "         or {\"virtual\": VIRTUAL, \"count\": N}, each optionally with\n"
	       "         \"env\": {KEY: VALUE} and \"annotations\": {KEY: VALUE}, templates\n"
	       "         with placeholders ({id}, {index}, {host}, {container}, {tty}...).\n"
	       "         Every match of a group is one allocatable device, which N\n"
	       "         containers may hold at once (count, default 1).\n"
	       "  VIRTUAL {\"count\": 4, \"idPrefix\": \"sim\", \"envPrefix\": \"SIM\",\n"
	       "          \"annotationPrefix\": \"sim.example.com/dev\", \"deviceFilePrefix\":\n"
	       "          \"sim\"}: devices that need no file (IDs sim-NODE-I; SIM_ID=/dev/ID,\n"
	       "          annotation sim.example.com/dev-ID, file /dev/sim-ID, as the simple\n"
	       "          device plugin has them); also from $USBDP_VIRTUAL_RESOURCE, _COUNT,\n"
	       "          _ID_PREFIX, _ENV_PREFIX, _ANNOTATION_PREFIX, _DEVICE_FILE_PREFIX,\n"
	       "          or the simulator's own RESOURCE_NAME, NUMBER_DEVICES,\n"
	       "          DEVICE_ID_PREFIX, ENV_PREFIX, ANNOTATION_PREFIX, DEVICE_FILE_PREFIX.\n"
	       "  PATH   {\"path\": \"/dev/GLOB\", \"mountPath\": \"/in/container\",\n"
	       "          \"type\": \"Device\" or \"Mount\", \"permissions\": \"mrw\",\n"
	       "          \"readOnly\": false, \"limit\": 1, \"optional\": false}\n"
	       "  USB    {\"vendor\": \"1a86\", \"product\": \"7523\", \"serial\": \"GLOB\",\n"
	       "          \"class\": \"02\" or \"cdc-acm\", \"port\": \"1-1.*\",\n"
	       "          \"mountPath\": \"/dev/serial/\"}\n"
	       "         IDs are hexadecimal (unquoted numbers too); \"*\" or omitted: any.\n"
	       "         Every matching USB device is one allocatable device, with its\n"
	       "         /dev/bus/usb node and all its children's nodes (tty, hidraw...).\n"
	       "The old form {\"type\": NAME, \"count\": N, \"paths\": [\"/dev/x\", ...]} is\n"
	       "still read (one group per path), with a warning.\n"
	       "\n"
	       "Examples:\n"
	       "  usb-device-plugin --device '{\"name\": \"serial\", \"groups\": [{\"usb\":\n"
	       "      [{\"vendor\": \"1a86\", \"product\": \"7523\"}]}]}'\n"
	       "  usb-device-plugin --domain squat.ai --device '{\"name\": \"fuse\",\n"
	       "      \"groups\": [{\"paths\": [{\"path\": \"/dev/fuse\"}], \"count\": 10}]}'\n"
	       "\n"
	       "Full reference: docs/config-reference.md\n";
}

static void warn_setting(const char *what, const char *old, const char *now)
{
	if (old != now && (!old || !now || strcmp(old, now) != 0))
		log_warn("reload: %s changed from \"%s\" to \"%s\": it takes effect at the next "
			 "start; still using \"%s\"",
			 what, old, now, old);
}

void config_warn_reload(const struct config *running, const struct config *nc)
{
	warn_setting("domain", running->domain, nc->domain);
	warn_setting("cdi", running->cdi ? "true" : "false", nc->cdi ? "true" : "false");
	warn_setting("cdi-dir", running->cdi_dir, nc->cdi_dir);
	warn_setting("plugin-directory", running->plugin_dir, nc->plugin_dir);
	warn_setting("listen", running->listen, nc->listen);
}
