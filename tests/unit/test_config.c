/* Unit tests for config.c and cfgtree.c: flags, environment, files, the
 * device schema, and every error message's source, field path and reason.
 * Runs in a temporary directory of its own (so ./config.* is controlled). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgtree.h"
#include "check.h"
#include "config.h"

#define ARGV(...) ((char *[]){"usb-device-plugin", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"usb-device-plugin", __VA_ARGS__}) / sizeof(char *)))
#define LOAD(cfg, err, ...)                                                                        \
	config_load((cfg), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (err), sizeof(err))

/* A minimal valid --device. */
#define DEV_FUSE "{\"name\": \"fuse\", \"groups\": [{\"paths\": [{\"path\": \"/dev/fuse\"}]}]}"

static char tmpdir[64];
static char default_yaml[PATH_MAX]; /* config/default.yaml of the repository */

static bool is_zero(const struct config *c)
{
	static const struct config zero;
	return memcmp(c, &zero, sizeof(zero)) == 0;
}

/* Loads argv, which must fail with a message containing want; checks that
 * the config is left zeroed. */
#define EXPECT_ERR(want, ...)                                                                      \
	do {                                                                                       \
		struct config c_;                                                                  \
		char e_[512];                                                                      \
		memset(&c_, 0x5a, sizeof(c_));                                                     \
		int r_ = LOAD(&c_, e_, __VA_ARGS__);                                               \
		CHECK(r_ < 0);                                                                     \
		CHECK_CONTAINS(e_, want);                                                          \
		CHECK(is_zero(&c_));                                                               \
		if (r_ == 0)                                                                       \
			config_free(&c_);                                                          \
	} while (0)

/* Loads argv, which must succeed. */
#define EXPECT_OK(cfg, ...)                                                                        \
	do {                                                                                       \
		char e_[512] = "";                                                                 \
		int r_ = LOAD((cfg), e_, __VA_ARGS__);                                             \
		CHECK_INT(r_, 0);                                                                  \
		if (r_ != 0)                                                                       \
			fprintf(stderr, "  error: %s\n", e_);                                      \
	} while (0)

/* Writes content to name in the test directory; returns the path in buf. */
static const char *write_file(char *buf, size_t size, const char *name, const char *content)
{
	int n = snprintf(buf, size, "%s/%s", tmpdir, name);
	if (n < 0 || (size_t)n >= size)
		abort();
	FILE *f = fopen(buf, "w");
	if (!f || fputs(content, f) < 0 || fclose(f) != 0)
		abort();
	return buf;
}

/* Captures what is written to stderr (the log) between begin and end. */
struct capture {
	int saved;
	char path[96];
};

static void capture_begin(struct capture *c)
{
	int n = snprintf(c->path, sizeof(c->path), "%s/stderr.txt", tmpdir);
	if (n < 0 || (size_t)n >= sizeof(c->path))
		abort();
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (c->saved < 0 || fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		abort();
	close(fd);
}

/* Returns what was captured (malloc'd). */
static char *capture_end(struct capture *c)
{
	if (dup2(c->saved, STDERR_FILENO) < 0)
		abort();
	close(c->saved);
	static char text[8192];
	FILE *f = fopen(c->path, "r");
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	if (f)
		fclose(f);
	text[n] = '\0';
	return strdup(text);
}

/* ---- flags, defaults, precedence ---- */

TEST(defaults)
{
	struct config c;
	EXPECT_OK(&c, "--device", DEV_FUSE);
	/* generic-device-plugin's --device flags, no domain: its domain */
	CHECK_STR(c.domain, CONFIG_GDP_DOMAIN);
	CHECK_STR(c.listen, ":8080");
	CHECK_STR(c.plugin_dir, "/var/lib/kubelet/device-plugins/");
	CHECK_INT(c.log_level, LOG_LEVEL_INFO);
	CHECK_INT(c.grace_ms, CONFIG_DEFAULT_GRACE_MS);
	CHECK(c.config_file == NULL);
	CHECK(!c.show_help && !c.show_version);
	CHECK_INT(c.n_devices, 1);
	CHECK_STR(c.devices[0].name, "fuse");
	CHECK_INT(c.devices[0].n_groups, 1);
	const struct cfg_group *g = &c.devices[0].groups[0];
	CHECK_INT(g->count, 1);
	CHECK_INT(g->n_paths, 1);
	CHECK_INT(g->n_usb, 0);
	CHECK_STR(g->paths[0].path, "/dev/fuse");
	CHECK(g->paths[0].mount_path == NULL);
	CHECK_INT(g->paths[0].type, CFG_PATH_DEVICE);
	CHECK_STR(g->paths[0].permissions, "mrw");
	CHECK(!g->paths[0].read_only);
	CHECK_INT(g->paths[0].limit, 1);
	CHECK(!g->paths[0].optional);
	config_free(&c);
	CHECK(is_zero(&c));
	config_free(&c); /* a zeroed struct: no-op */
	config_free(NULL);
}

TEST(flags_both_forms)
{
	struct config c;
	EXPECT_OK(&c, "--domain", "squat.ai", "--listen=127.0.0.1:9090", "--log-level", "debug",
		  "--plugin-directory=/tmp/plugins", "--grace-period", "1m30s", "--device",
		  DEV_FUSE);
	CHECK_STR(c.domain, "squat.ai");
	CHECK_STR(c.listen, "127.0.0.1:9090");
	CHECK_INT(c.log_level, LOG_LEVEL_DEBUG);
	CHECK_STR(c.plugin_dir, "/tmp/plugins/"); /* trailing '/' added */
	CHECK_INT(c.grace_ms, 90000);
	config_free(&c);

	/* Already ending with '/': not doubled; the last of a repeated flag wins. */
	EXPECT_OK(&c, "--plugin-directory", "/a/", "--plugin-directory", "/b/",
		  "--device=" DEV_FUSE);
	CHECK_STR(c.plugin_dir, "/b/");
	config_free(&c);
}

TEST(grace_periods)
{
	static const struct {
		const char *text;
		unsigned ms;
	} ok[] = {
	    {"30s", 30000}, {"500ms", 500}, {"2m", 120000},    {"1m30s", 90000},
	    {"45", 45000},  {"0", 0},	    {"1.5h", 5400000}, {"1h2m3s4ms", 3723004},
	    {"1500us", 1},  {"0.5s", 500},  {"+10s", 10000},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config c;
		EXPECT_OK(&c, "--grace-period", (char *)ok[i].text, "--device", DEV_FUSE);
		CHECK_INT(c.grace_ms, ok[i].ms);
		config_free(&c);
	}
	EXPECT_ERR("--grace-period: invalid duration \"5x\": unknown unit", "--grace-period", "5x",
		   "--device", DEV_FUSE);
	EXPECT_ERR("--grace-period: invalid duration \"-1s\": must not be negative",
		   "--grace-period=-1s", "--device", DEV_FUSE);
	EXPECT_ERR("--grace-period: invalid duration \"\": must not be empty",
		   "--grace-period=", "--device", DEV_FUSE);
	EXPECT_ERR("invalid duration \"s\": expected a number", "--grace-period", "s", "--device",
		   DEV_FUSE);
	EXPECT_ERR("invalid duration \"1.5\": missing unit", "--grace-period", "1.5", "--device",
		   DEV_FUSE);
	EXPECT_ERR("invalid duration \"2000h\": too long", "--grace-period", "2000h", "--device",
		   DEV_FUSE);
	EXPECT_ERR("invalid duration \"99999999999999999999s\": too long", "--grace-period",
		   "99999999999999999999s", "--device", DEV_FUSE);
}

TEST(bad_flags)
{
	EXPECT_ERR("--bogus: unknown flag (see --help)", "--bogus", "--device", DEV_FUSE);
	EXPECT_ERR("--log_level: unknown flag (did you mean --log-level?)", "--log_level=info",
		   "--device", DEV_FUSE);
	EXPECT_ERR("-device: unknown flag (did you mean --device?)", "-device", DEV_FUSE);
	EXPECT_ERR("-x: unknown flag", "-x", "--device", DEV_FUSE);
	EXPECT_ERR("--domain: missing value", "--device", DEV_FUSE, "--domain");
	EXPECT_ERR("--domain: missing value", "--domain", "--device", DEV_FUSE);
	EXPECT_ERR("--device: missing value", "--device");
	EXPECT_ERR("\"extra\": unexpected argument", "--device", DEV_FUSE, "extra");
	EXPECT_ERR("\"--x\": unexpected argument", "--device", DEV_FUSE, "--", "--x");
	EXPECT_ERR("--version: invalid boolean \"maybe\"", "--version=maybe");
	EXPECT_ERR("--log-level: unknown log level \"verbose\": possible values are all, debug, "
		   "info, warn, error, none",
		   "--log-level", "verbose", "--device", DEV_FUSE);
	EXPECT_ERR("--listen: invalid address \"8080\"", "--listen", "8080", "--device", DEV_FUSE);
	EXPECT_ERR("--listen: invalid address \"::1:80\"", "--listen", "::1:80", "--device",
		   DEV_FUSE);
	EXPECT_ERR("--listen: invalid address \":70000\"", "--listen", ":70000", "--device",
		   DEV_FUSE);
	EXPECT_ERR("--plugin-directory: must not be empty", "--plugin-directory=", "--device",
		   DEV_FUSE);
	EXPECT_ERR("--config: must not be empty", "--config=", "--device", DEV_FUSE);

	struct config c;
	EXPECT_OK(&c, "--listen", "[::1]:8080", "--device", DEV_FUSE);
	CHECK_STR(c.listen, "[::1]:8080");
	config_free(&c);
}

/* serial and port are globs in Go's dialect, checked at load like paths. */
TEST(usb_globs_checked_at_load)
{
	EXPECT_ERR("--device #1: groups[0].usb[0].serial: malformed glob \"A[1\"", "--device",
		   "{\"name\":\"x\",\"groups\":[{\"usb\":[{\"vendor\":\"1a86\","
		   "\"serial\":\"A[1\"}]}]}");
	EXPECT_ERR("--device #1: groups[0].usb[0].port: malformed glob \"1-[\"", "--device",
		   "{\"name\":\"x\",\"groups\":[{\"usb\":[{\"vendor\":\"1a86\","
		   "\"port\":\"1-[\"}]}]}");
	struct config c;
	EXPECT_OK(&c, "--device",
		  "{\"name\":\"x\",\"groups\":[{\"usb\":[{\"vendor\":\"1a86\","
		  "\"serial\":\"A[0-9]*\",\"port\":\"1-1.*\"}]}]}");
	config_free(&c);
}

/* Issue 12 item 18: mountPath is made plain, and /proc, /sys and the root
 * are refused; "/dev/x" and "/dev/../dev/x" are one container path. */
TEST(mount_paths_normalized)
{
	EXPECT_ERR("mountPath: \"/dev/../proc/x\" is inside /proc or /sys", "--device",
		   "{\"name\":\"x\",\"groups\":[{\"paths\":[{\"path\":\"/dev/null\","
		   "\"mountPath\":\"/dev/../proc/x\"}]}]}");
	EXPECT_ERR("mountPath: \"/sys\" is inside /proc or /sys", "--device",
		   "{\"name\":\"x\",\"groups\":[{\"paths\":[{\"path\":\"/dev/null\","
		   "\"mountPath\":\"/sys\"}]}]}");
	EXPECT_ERR("mountPath: \"/../x\" climbs above '/'", "--device",
		   "{\"name\":\"x\",\"groups\":[{\"paths\":[{\"path\":\"/dev/null\","
		   "\"mountPath\":\"/../x\"}]}]}");
	EXPECT_ERR("mountPath: \"/dev/..\" is the root", "--device",
		   "{\"name\":\"x\",\"groups\":[{\"paths\":[{\"path\":\"/dev/null\","
		   "\"mountPath\":\"/dev/..\"}]}]}");
	struct config c;
	EXPECT_OK(&c, "--device",
		  "{\"name\":\"x\",\"groups\":[{\"paths\":[{\"path\":\"/dev/null\","
		  "\"mountPath\":\"/dev/../dev//x/./y\"},{\"path\":\"/dev/zero\","
		  "\"mountPath\":\"/dev/serial/./\"}]}]}");
	CHECK_STR(c.devices[0].groups[0].paths[0].mount_path, "/dev/x/y");
	CHECK_STR(c.devices[0].groups[0].paths[1].mount_path, "/dev/serial/");
	config_free(&c);
}

TEST(bad_domains)
{
	EXPECT_ERR("--domain: \"Squat.ai\" is not a valid DNS-1123 subdomain", "--domain",
		   "Squat.ai", "--device", DEV_FUSE);
	EXPECT_ERR("not a valid DNS-1123 subdomain", "--domain", "-a.com", "--device", DEV_FUSE);
	EXPECT_ERR("not a valid DNS-1123 subdomain", "--domain", "a..b", "--device", DEV_FUSE);
	EXPECT_ERR("not a valid DNS-1123 subdomain", "--domain", "a.b.", "--device", DEV_FUSE);
	EXPECT_ERR("not a valid DNS-1123 subdomain", "--domain", "a-.b", "--device", DEV_FUSE);
	EXPECT_ERR("not a valid DNS-1123 subdomain", "--domain", "a_b.io", "--device", DEV_FUSE);
	EXPECT_ERR("--domain: must not be empty", "--domain=", "--device", DEV_FUSE);
	EXPECT_ERR("reserved for Kubernetes", "--domain", "kubernetes.io", "--device", DEV_FUSE);
	char longd[300];
	memset(longd, 'a', sizeof(longd) - 1);
	longd[sizeof(longd) - 1] = '\0';
	EXPECT_ERR("--domain: longer than 253 characters", "--domain", longd, "--device", DEV_FUSE);

	struct config c;
	EXPECT_OK(&c, "--domain", "a", "--device", DEV_FUSE);
	config_free(&c);
	EXPECT_OK(&c, "--domain", "my-org.example.com", "--device", DEV_FUSE);
	CHECK_STR(c.domain, "my-org.example.com");
	config_free(&c);
}

TEST(help_and_version)
{
	struct config c;
	/* No devices, and even a bad flag: --help and --version still win. */
	EXPECT_OK(&c, "--version");
	CHECK(c.show_version);
	CHECK(!c.show_help);
	CHECK_INT(c.n_devices, 0);
	CHECK_STR(c.domain, CONFIG_DEFAULT_DOMAIN);
	config_free(&c);
	EXPECT_OK(&c, "-h");
	CHECK(c.show_help);
	config_free(&c);
	EXPECT_OK(&c, "--bogus", "--help", "--log-level", "nope");
	CHECK(c.show_help);
	CHECK_INT(c.log_level, LOG_LEVEL_INFO);
	config_free(&c);
	EXPECT_OK(&c, "--config", "/nonexistent/config.yaml", "--version=true");
	CHECK(c.show_version);
	CHECK(c.config_file == NULL);
	config_free(&c);
	/* --version=false is not --version. */
	EXPECT_ERR("no devices configured", "--version=false");

	const char *u = config_usage();
	static const char *const flags[] = {"--device",
					    "--config",
					    "--domain",
					    "--listen",
					    "--log-level",
					    "--plugin-directory",
					    "--grace-period",
					    "--version",
					    "--help",
					    CONFIG_DEFAULT_DOMAIN,
					    ":8080",
					    "/var/lib/kubelet/device-plugins/",
					    "30s",
					    "DOMAIN",
					    "LOG_LEVEL",
					    "PLUGIN_DIRECTORY",
					    "/etc/generic-device-plugin/",
					    "\"usb\"",
					    "\"paths\"",
					    NULL};
	for (size_t i = 0; flags[i]; i++)
		CHECK_CONTAINS(u, flags[i]);
}

TEST(no_devices)
{
	EXPECT_ERR("no devices configured: give --device, a config file with a devices list",
		   "--domain", "squat.ai");
	char path[128];
	write_file(path, sizeof(path), "empty.yaml", "# nothing here\n");
	EXPECT_ERR("no devices configured", "--config", path);
	write_file(path, sizeof(path), "nulldev.yaml", "devices:\n");
	EXPECT_ERR("no devices configured", "--config", path);
	write_file(path, sizeof(path), "nodev.yaml", "devices: []\n");
	EXPECT_ERR("no devices configured", "--config", path);
	/* argc 0 is tolerated. */
	struct config c;
	char err[128];
	CHECK(config_load(&c, 0, NULL, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "no devices configured");
	CHECK(config_load(NULL, 0, NULL, err, sizeof(err)) == -EINVAL);
}

TEST(env_and_file_precedence)
{
	char path[128];
	write_file(path, sizeof(path), "prec.yaml",
		   "domain: file.example\n"
		   "listen: \":1111\"\n"
		   "log-level: warn\n"
		   "plugin-directory: /file/dir\n"
		   "grace-period: 10\n"
		   "devices:\n"
		   "  - name: fromfile\n"
		   "    groups: [{paths: [{path: /dev/null}]}]\n");
	struct config c;

	/* The file over the defaults. */
	EXPECT_OK(&c, "--config", path);
	CHECK_STR(c.config_file, path);
	CHECK_STR(c.domain, "file.example");
	CHECK_STR(c.listen, ":1111");
	CHECK_INT(c.log_level, LOG_LEVEL_WARN);
	CHECK_STR(c.plugin_dir, "/file/dir/");
	CHECK_INT(c.grace_ms, 10000);
	CHECK_STR(c.devices[0].name, "fromfile");
	config_free(&c);

	/* The environment over the file; empty variables count as unset. */
	setenv("DOMAIN", "env.example", 1);
	setenv("LISTEN", ":2222", 1);
	setenv("LOG_LEVEL", "error", 1);
	setenv("PLUGIN_DIRECTORY", "/env/dir/", 1);
	setenv("GRACE_PERIOD", "", 1);
	EXPECT_OK(&c, "--config", path);
	CHECK_STR(c.domain, "env.example");
	CHECK_STR(c.listen, ":2222");
	CHECK_INT(c.log_level, LOG_LEVEL_ERROR);
	CHECK_STR(c.plugin_dir, "/env/dir/");
	CHECK_INT(c.grace_ms, 10000);
	config_free(&c);

	/* Flags over the environment; --device replaces the file's devices. */
	EXPECT_OK(&c, "--config", path, "--domain", "flag.example", "--listen", ":3333",
		  "--log-level", "none", "--plugin-directory", "/flag/dir", "--grace-period", "2s",
		  "--device", DEV_FUSE);
	CHECK_STR(c.domain, "flag.example");
	CHECK_STR(c.listen, ":3333");
	CHECK_INT(c.log_level, LOG_LEVEL_NONE);
	CHECK_STR(c.plugin_dir, "/flag/dir/");
	CHECK_INT(c.grace_ms, 2000);
	CHECK_INT(c.n_devices, 1);
	CHECK_STR(c.devices[0].name, "fuse");
	config_free(&c);

	/* A bad value says which variable it came from. */
	setenv("LOG_LEVEL", "loud", 1);
	EXPECT_ERR("$LOG_LEVEL: unknown log level \"loud\"", "--config", path);
	setenv("GRACE_PERIOD", "forever", 1);
	EXPECT_ERR("$GRACE_PERIOD: invalid duration \"forever\"", "--log-level", "info", "--config",
		   path);
	unsetenv("DOMAIN");
	unsetenv("LISTEN");
	unsetenv("LOG_LEVEL");
	unsetenv("PLUGIN_DIRECTORY");
	unsetenv("GRACE_PERIOD");
}

TEST(file_settings_errors)
{
	char path[128], want[512];
	write_file(path, sizeof(path), "badset.yaml",
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\n"
		   "log-level: chatty\n");
	snprintf(want, sizeof(want), "%s:2: log-level: unknown log level \"chatty\"", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "badset2.yaml", "domain: [a, b]\n");
	snprintf(want, sizeof(want), "%s:1: domain: expected a string, got a list", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "badset3.yaml", "\n\nlog_level: info\n");
	snprintf(want, sizeof(want), "%s:3: log_level: unknown key (did you mean \"log-level\"?)",
		 path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "badset4.yaml", "plugins: 1\n");
	snprintf(want, sizeof(want), "%s:1: plugins: unknown key", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "badset5.yaml", "- a\n- b\n");
	snprintf(want, sizeof(want), "%s:1: expected a map, got a list", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "badset6.yaml", "grace-period: 5 s\n");
	snprintf(want, sizeof(want), "%s:1: grace-period: invalid duration \"5 s\"", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "badset7.yaml", "devices: {name: a}\n");
	snprintf(want, sizeof(want), "%s:1: devices: expected a list, got a map", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "badset8.yaml", "devices: []\ndevice: []\n");
	snprintf(want, sizeof(want), "%s:2: device: \"device\" is an alias of \"devices\"", path);
	EXPECT_ERR(want, "--config", path);

	EXPECT_ERR("/nonexistent/x.yaml: cannot open: No such file or directory", "--config",
		   "/nonexistent/x.yaml");
	EXPECT_ERR(": not a regular file (a config file must be one)", "--config", tmpdir);
}

TEST(device_alias_key)
{
	char path[128];
	write_file(path, sizeof(path), "alias.yaml",
		   "device:\n  - name: one\n    groups: [{usb: [{vendor: \"1a86\"}]}]\n");
	struct config c;
	EXPECT_OK(&c, "--config", path);
	CHECK_INT(c.n_devices, 1);
	CHECK_INT(c.devices[0].groups[0].usb[0].vendor, 0x1a86);
	CHECK_INT(c.devices[0].groups[0].usb[0].product, -1);
	config_free(&c);
	write_file(path, sizeof(path), "alias2.yaml",
		   "device:\n  - name: one\n    groups: [{usb: [{vendor: \"1a86\", x: 1}]}]\n");
	char want[512];
	snprintf(want, sizeof(want), "%s:3: device[0].groups[0].usb[0].x: unknown key", path);
	EXPECT_ERR(want, "--config", path);
}

TEST(default_file_lookup)
{
	static const char *const etc[] = {"/etc/usb-device-plugin", "/etc/generic-device-plugin"};
	for (size_t i = 0; i < 2; i++) {
		if (access(etc[i], F_OK) == 0)
			SKIP("%s exists and would be found first", etc[i]);
	}
	char path[128];
	write_file(path, sizeof(path), "config.json",
		   "{\"devices\": [{\"name\": \"j\", \"groups\": [{\"paths\": [{\"path\": "
		   "\"/dev/j\"}]}]}]}\n");
	write_file(path, sizeof(path), "config.yml",
		   "devices: [{name: y, groups: [{paths: [{path: /dev/y}]}]}]\n");
	struct config c;
	/* yml before json. */
	EXPECT_OK(&c, "--log-level", "info");
	CHECK_STR(c.config_file, "./config.yml");
	CHECK_STR(c.devices[0].name, "y");
	config_free(&c);
	unlink(path);
	EXPECT_OK(&c, "--log-level", "info");
	CHECK_STR(c.config_file, "./config.json");
	CHECK_STR(c.devices[0].name, "j");
	config_free(&c);
	snprintf(path, sizeof(path), "%s/config.json", tmpdir);
	unlink(path);
	/* With none, no file and no error but the missing devices. */
	EXPECT_ERR("no devices configured", "--log-level", "info");
}

TEST(shipped_default_config)
{
	if (!default_yaml[0])
		SKIP("config/default.yaml not found (run from the repository's top)");
	struct config c;
	EXPECT_OK(&c, "--config", default_yaml);
	CHECK_STR(c.domain, CONFIG_DEFAULT_DOMAIN);
	CHECK_INT(c.n_devices, 4);
	if (c.n_devices == 4) {
		CHECK_STR(c.devices[0].name, "serial");
		CHECK_INT(c.devices[0].n_groups, 5);
		CHECK_INT(c.devices[0].groups[0].usb[0].vendor, 0x1a86);
		CHECK_INT(c.devices[0].groups[0].usb[0].product, 0x7523);
		CHECK_INT(c.devices[0].groups[2].usb[0].vendor, 0x0403);
		CHECK_INT(c.devices[0].groups[2].usb[0].product, 0x6001);
		CHECK_STR(c.devices[1].name, "ttyacm");
		CHECK_STR(c.devices[1].groups[0].paths[0].path, "/dev/ttyACM*");
		CHECK_STR(c.devices[2].name, "ttyusb");
		CHECK_STR(c.devices[3].name, "fuse");
		CHECK_INT(c.devices[3].groups[0].count, 10);
	}
	config_free(&c);
}

/* ---- parsing ---- */

TEST(bad_json_device)
{
	/* Missing the closing brace: JSON and YAML both fail, cJSON's error wins. */
	EXPECT_ERR("--device #1: invalid JSON at column 61: unexpected end of input", "--device",
		   "{\"name\": \"serial\", \"groups\": [{\"usb\": [{\"vendor\": \"1a86\"}]}]");
	EXPECT_ERR("--device #2: invalid JSON at column 31: unexpected ','", "--device", DEV_FUSE,
		   "--device", "{\"name\": \"x\", \"groups\": [1, 2,, ]}");
	EXPECT_ERR("--device #1: invalid JSON at column 1: unexpected end of input", "--device=");
	/* A plain word is YAML, but no device: the JSON error is the useful one. */
	EXPECT_ERR("--device #1: invalid JSON at column 1: unexpected 's'", "--device", "serial");
	EXPECT_ERR("--device #1: invalid JSON at line 2, column 13: unexpected '}'", "--device",
		   "{\"name\": \"a\",\n \"groups\": [}");
	/* cJSON reports these one byte late; the culprit is found. */
	EXPECT_ERR("--device #1: invalid JSON at column 2: expected a quoted key, got 'n'",
		   "--device", "{name: \"a\", \"groups\": [}");
	EXPECT_ERR("--device #1: invalid JSON at column 10: unterminated string", "--device",
		   "{\"name\": \"a}");
	EXPECT_ERR("--device #1: invalid JSON at column 14: expected a quoted key, got ','",
		   "--device", "{\"name\": 1,  , \"x\": [}");
	/* ... and not where cJSON is exact (a value inside an array). */
	EXPECT_ERR("--device #1: invalid JSON at column 5: unexpected 'x'", "--device", "[1,2x]");
	EXPECT_ERR("--device #1: invalid JSON at column 4: unexpected 'x' after the JSON value",
		   "--device", "{} x");
	EXPECT_ERR("--device #1: duplicate key \"name\"", "--device",
		   "{\"name\": \"a\", \"name\": \"b\"}");
	EXPECT_ERR("--device #1: expected a map, got a list", "--device", "[" DEV_FUSE "]");
	EXPECT_ERR("--device #1: expected a map, got null", "--device", "null");
}

TEST(yaml_flow_device)
{
	struct config c;
	EXPECT_OK(&c, "--device",
		  "{name: serial, groups: [{usb: [{vendor: 1a86, product: 7523}]}, "
		  "{paths: [{path: /dev/ttyUSB*, mountPath: /dev/serial/, optional: yes}]}]}");
	CHECK_STR(c.devices[0].name, "serial");
	CHECK_INT(c.devices[0].groups[0].usb[0].vendor, 0x1a86);
	CHECK_INT(c.devices[0].groups[0].usb[0].product, 0x7523);
	CHECK_STR(c.devices[0].groups[1].paths[0].path, "/dev/ttyUSB*");
	CHECK_STR(c.devices[0].groups[1].paths[0].mount_path, "/dev/serial/");
	CHECK(c.devices[0].groups[1].paths[0].optional);
	config_free(&c);
}

TEST(bad_yaml_file)
{
	char path[128], want[512];
	write_file(path, sizeof(path), "bad.yaml",
		   "devices:\n"
		   "  - name: a\n"
		   "     groups: []\n");
	snprintf(want, sizeof(want),
		 "%s:3: invalid YAML at column 12: mapping values are not "
		 "allowed in this context",
		 path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "dup.yaml",
		   "devices:\n"
		   "  - name: a\n"
		   "    groups: [{paths: [{path: /dev/a}]}]\n"
		   "    name: b\n");
	snprintf(want, sizeof(want), "%s:4: duplicate key \"name\" (first at line 2)", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "alias.yaml",
		   "x: &g [{paths: [{path: /dev/a}]}]\n"
		   "devices: [{name: a, groups: *g}]\n");
	snprintf(want, sizeof(want), "%s:2: aliases (*g) are not supported", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "docs.yaml", "devices: []\n---\ndevices: []\n");
	snprintf(want, sizeof(want), "%s:2: more than one YAML document", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "tag.yaml", "domain: !custom x\n");
	snprintf(want, sizeof(want), "%s:1: unsupported tag \"!custom\"", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "quote.yaml", "domain: \"abc\n");
	snprintf(want, sizeof(want),
		 "%s:2: invalid YAML at column 1: found unexpected end of "
		 "stream while scanning a quoted scalar",
		 path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "tab.yaml", "devices:\n\t- name: x\n");
	snprintf(want, sizeof(want),
		 "%s:2: invalid YAML at column 1: a tab: YAML indents with "
		 "spaces only",
		 path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "key.yaml", "? [a]\n: b\n");
	snprintf(want, sizeof(want), "%s:1: a map key must be a scalar, not a list", path);
	EXPECT_ERR(want, "--config", path);

	/* Nesting bomb. */
	char deep[300] = "a: ";
	memset(deep + 3, '[', 200);
	deep[203] = '\0';
	write_file(path, sizeof(path), "deep.yaml", deep);
	EXPECT_ERR("nested deeper than 64 levels", "--config", path);
	EXPECT_ERR("--device #1: invalid JSON at column 201: unexpected end of input", "--device",
		   deep + 3);
}

TEST(json_file)
{
	char path[128], want[512];
	write_file(path, sizeof(path), "good.json",
		   "{\n"
		   "  \"domain\": \"squat.ai\",\n"
		   "  \"devices\": [\n"
		   "    {\"name\": \"serial\", \"groups\": [{\"usb\": [{\"vendor\": \"1a86\", "
		   "\"product\": 7523}]}]}\n"
		   "  ]\n"
		   "}\n");
	struct config c;
	struct capture cap = {0};
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path);
	char *log = capture_end(&cap);
	CHECK_STR(c.domain, "squat.ai");
	CHECK_INT(c.devices[0].groups[0].usb[0].product, 0x7523);
	CHECK_CONTAINS(log, "unquoted number 7523 read as hex 0x7523");
	free(log);
	config_free(&c);

	/* Syntax: strict cJSON, position from its error offset. */
	write_file(path, sizeof(path), "syntax.json",
		   "{\n  \"devices\": [\n    {\"name\": \"a\",}\n");
	snprintf(want, sizeof(want),
		 "%s:3: invalid JSON at column 18: expected a quoted key, "
		 "got '}'",
		 path);
	EXPECT_ERR(want, "--config", path);

	/* Semantics: read through libyaml, so with line numbers. */
	write_file(path, sizeof(path), "sem.json",
		   "{\"devices\": [\n"
		   "  {\"name\": \"a\",\n"
		   "   \"groups\": [{\"paths\": [{\"path\": \"dev/a\"}]}]}\n"
		   "]}\n");
	snprintf(want, sizeof(want),
		 "%s:3: devices[0].groups[0].paths[0].path: must be an absolute path (start "
		 "with '/'), got \"dev/a\"",
		 path);
	EXPECT_ERR(want, "--config", path);

	/* Tab indentation is JSON but not YAML: the cJSON tree is used. */
	write_file(path, sizeof(path), "tabs.json",
		   "\t{\"devices\": [{\"name\": \"t\", \"groups\": [{\"paths\": [{\"path\": "
		   "\"/dev/\\ud83d\\ude00\"}]}]}]}\n");
	EXPECT_OK(&c, "--config", path);
	CHECK_STR(c.devices[0].name, "t");
	CHECK_STR(c.devices[0].groups[0].paths[0].path, "/dev/\xf0\x9f\x98\x80");
	config_free(&c);
	/* ... where errors have no line. */
	write_file(path, sizeof(path), "tabs2.json", "\t{\"devices\": [{\"name\": \"t\"}]}\n");
	snprintf(want, sizeof(want), "%s: devices[0].groups: required key is missing", path);
	EXPECT_ERR(want, "--config", path);
}

/* ---- the device schema ---- */

TEST(unknown_keys)
{
	EXPECT_ERR("--device #1: groups[0].paths[0].mountpath: unknown key (did you mean "
		   "\"mountPath\"?)",
		   "--device",
		   "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/dev/a\", "
		   "\"mountpath\": \"/b\"}]}]}");
	EXPECT_ERR("--device #1: groups[0].usb[0].Vendor: unknown key (did you mean \"vendor\"?)",
		   "--device", "{\"name\": \"a\", \"groups\": [{\"usb\": [{\"Vendor\": \"1\"}]}]}");
	EXPECT_ERR("--device #1: groups[0].path: unknown key (did you mean \"paths\"?)", "--device",
		   "{\"name\": \"a\", \"groups\": [{\"path\": \"/dev/a\"}]}");
	EXPECT_ERR("--device #1: groups[0].vendor: unknown key (it belongs in an entry", "--device",
		   "{\"name\": \"a\", \"groups\": [{\"vendor\": \"1a86\"}]}");
	EXPECT_ERR("--device #1: paths: unknown key (it belongs in a group", "--device",
		   "{\"name\": \"a\", \"paths\": [{\"path\": \"/dev/a\"}]}");
	EXPECT_ERR("--device #1: colour: unknown key", "--device",
		   "{\"name\": \"a\", \"colour\": 1, \"groups\": []}");
}

TEST(size_limits)
{
	/* 257 resources: the one over the limit is named */
	enum { N = 257 };
	char *argv[1 + 2 * N];
	argv[0] = "usb-device-plugin";
	for (int i = 0; i < N; i++) {
		argv[1 + 2 * i] = "--device";
		if (asprintf(&argv[2 + 2 * i],
			     "{\"name\": \"r%d\", \"groups\": [{\"paths\": [{\"path\": "
			     "\"/dev/x%d\"}]}]}",
			     i, i) < 0)
			abort();
	}
	struct config c;
	char err[512];
	CHECK(config_load(&c, 1 + 2 * N, argv, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "--device #257: name: \"r256\" is resource number 257: at most 256");
	CHECK_INT(config_load(&c, 1 + 2 * (N - 1), argv, err, sizeof(err)), 0);
	config_free(&c);
	for (int i = 0; i < N; i++)
		free(argv[2 + 2 * i]);
	/* devices per resource: count x instances over the groups */
	EXPECT_ERR(
	    "--device #1: groups: resource \"v\" offers at least 10001 devices", "--device",
	    "{\"name\": \"v\", \"groups\": [{\"virtual\": {\"count\": 1}, \"count\": 10000}, "
	    "{\"virtual\": {\"count\": 1}}]}");
	EXPECT_ERR("offers at least 20000 devices", "--device",
		   "{\"type\": \"old\", \"count\": 10000, \"paths\": [\"/dev/a\", \"/dev/b\"]}");
	struct config ok;
	EXPECT_OK(
	    &ok, "--device",
	    "{\"name\": \"v\", \"groups\": [{\"virtual\": {\"count\": 100}, \"count\": 100}]}");
	config_free(&ok);
}

TEST(wrong_types)
{
	EXPECT_ERR("--device #1: groups: expected a list, got a map", "--device",
		   "{\"name\": \"a\", \"groups\": {}}");
	EXPECT_ERR("--device #1: groups[0]: expected a map, got a string (x)", "--device",
		   "{\"name\": \"a\", \"groups\": [\"x\"]}");
	EXPECT_ERR("--device #1: groups[0].count: expected an integer, got a boolean (true)",
		   "--device",
		   "{\"name\": \"a\", \"groups\": [{\"count\": true, \"usb\": [{\"vendor\": "
		   "\"1\"}]}]}");
	EXPECT_ERR("--device #1: groups[0].count: expected an integer, got a number (1.5)",
		   "--device",
		   "{\"name\": \"a\", \"groups\": [{\"count\": 1.5, \"usb\": [{\"vendor\": "
		   "\"1\"}]}]}");
	EXPECT_ERR("--device #1: groups[0].paths[0].optional: expected a boolean (true or "
		   "false), got a string (yes)",
		   "--device",
		   "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\", \"optional\": "
		   "\"yes\"}]}]}");
	EXPECT_ERR("--device #1: name: expected a string, got a boolean (true): quote it",
		   "--device", "{\"name\": true, \"groups\": []}");
	EXPECT_ERR("--device #1: name: expected a string, got a list", "--device",
		   "{\"name\": [], \"groups\": []}");
	EXPECT_ERR("--device #1: groups[0].paths: expected a list, got a string (/dev/a)",
		   "--device", "{\"name\": \"a\", \"groups\": [{\"paths\": \"/dev/a\"}]}");
	EXPECT_ERR("--device #1: groups[0].usb[0].serial: expected a string, got a map", "--device",
		   "{\"name\": \"a\", \"groups\": [{\"usb\": [{\"vendor\": \"1\", \"serial\": "
		   "{}}]}]}");
	EXPECT_ERR("--device #1: groups[0].paths[0].limit: expected an integer, got a string "
		   "(two)",
		   "--device",
		   "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\", \"limit\": "
		   "\"two\"}]}]}");

	/* Quoted digits are integers; YAML 1.1 booleans are booleans; a plain
	 * number is a fine string. */
	char path[128];
	write_file(path, sizeof(path), "types.yaml",
		   "devices:\n"
		   "  - name: 42\n"
		   "    groups:\n"
		   "      - count: \"3\"\n"
		   "        paths: [{path: /dev/a, optional: On, limit: \"2\"}]\n");
	struct config c;
	EXPECT_OK(&c, "--config", path);
	CHECK_STR(c.devices[0].name, "42");
	CHECK_INT(c.devices[0].groups[0].count, 3);
	CHECK(c.devices[0].groups[0].paths[0].optional);
	CHECK_INT(c.devices[0].groups[0].paths[0].limit, 2);
	config_free(&c);

	char want[512];
	write_file(path, sizeof(path), "norway.yaml",
		   "devices:\n  - name: no\n    groups: [{paths: [{path: /dev/a}]}]\n");
	snprintf(want, sizeof(want),
		 "%s:2: devices[0].name: expected a string, got a boolean (no): quote it", path);
	EXPECT_ERR(want, "--config", path);
}

TEST(names)
{
	EXPECT_ERR("--device #1: name: must not be empty", "--device",
		   "{\"name\": \"  \", \"groups\": []}");
	EXPECT_ERR("--device #1: name: \"Serial\" is not a valid name", "--device",
		   "{\"name\": \"Serial\", \"groups\": []}");
	EXPECT_ERR("--device #1: name: \"-x\" is not a valid name", "--device",
		   "{\"name\": \"-x\", \"groups\": []}");
	EXPECT_ERR("--device #1: name: \"x-\" is not a valid name", "--device",
		   "{\"name\": \"x-\", \"groups\": []}");
	EXPECT_ERR("--device #1: name: \"a_b\" is not a valid name", "--device",
		   "{\"name\": \"a_b\", \"groups\": []}");
	EXPECT_ERR("--device #1: name: \"a.b\" is not a valid name", "--device",
		   "{\"name\": \"a.b\", \"groups\": []}");
	EXPECT_ERR(
	    "--device #1: name: \"aaaaaaaaaaaaaaaaaaaa...\" is longer than 63 characters",
	    "--device",
	    "{\"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
	    "\"groups\": []}");
	EXPECT_ERR("--device #1: name: required key is missing", "--device", "{\"groups\": []}");
	EXPECT_ERR("--device #1: name: must not be null", "--device",
		   "{\"name\": null, \"groups\": []}");
	EXPECT_ERR("--device #1: groups[0].paths[0].path: must not be null", "--device",
		   "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": null}]}]}");

	struct config c;
	EXPECT_OK(
	    &c, "--device", "{\"name\": \" x \", \"groups\": [{\"paths\": [{\"path\": \"/a\"}]}]}",
	    "--device", "{\"name\": \"a-0-b\", \"groups\": [{\"paths\": [{\"path\": \"/a\"}]}]}");
	CHECK_STR(c.devices[0].name, "x"); /* trimmed; one character is fine */
	CHECK_STR(c.devices[1].name, "a-0-b");
	config_free(&c);
}

TEST(duplicate_names)
{
	EXPECT_ERR("--device #3: name: duplicate name \"fuse\" (also given by --device #1)",
		   "--device", DEV_FUSE, "--device",
		   "{\"name\": \"b\", \"groups\": [{\"paths\": [{\"path\": \"/b\"}]}]}", "--device",
		   "{\"name\": \" fuse\", \"groups\": [{\"paths\": [{\"path\": \"/b\"}]}]}");
	char path[128], want[512];
	write_file(path, sizeof(path), "dupname.yaml",
		   "devices:\n"
		   "  - name: a\n"
		   "    groups: [{paths: [{path: /dev/a}]}]\n"
		   "  - type: a\n"
		   "    paths: [/dev/b]\n");
	snprintf(want, sizeof(want),
		 "%s:4: devices[1].type: duplicate name \"a\" (first at devices[0], line 2)", path);
	struct capture cap = {0};
	capture_begin(&cap);
	EXPECT_ERR(want, "--config", path);
	free(capture_end(&cap));
}

TEST(groups)
{
	EXPECT_ERR("--device #1: groups: required key is missing", "--device", "{\"name\": \"a\"}");
	EXPECT_ERR("--device #1: groups: must not be empty", "--device",
		   "{\"name\": \"a\", \"groups\": []}");
	EXPECT_ERR("--device #1: groups[0]: a group has one of paths, usb or virtual", "--device",
		   "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\"}], \"usb\": "
		   "[{\"vendor\": \"1\"}]}]}");
	EXPECT_ERR("--device #1: groups[1]: a group needs a non-empty paths or usb list",
		   "--device",
		   "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\"}]}, {\"count\": "
		   "2}]}");
	EXPECT_ERR("--device #1: groups[0].usb: must not be empty", "--device",
		   "{\"name\": \"a\", \"groups\": [{\"usb\": []}]}");
	EXPECT_ERR(
	    "--device #1: groups[0].count: must be at least 1, got 0", "--device",
	    "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\"}], \"count\": 0}]}");
	EXPECT_ERR(
	    "--device #1: groups[0].count: must be at least 1, got -1", "--device",
	    "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\"}], \"count\": -1}]}");
	EXPECT_ERR("--device #1: groups[0].count: must be at most 10000, got 10001", "--device",
		   "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\"}], \"count\": "
		   "10001}]}");
	EXPECT_ERR("groups[0].count: must be at most 10000, got 99999999999999999999", "--device",
		   "{name: a, groups: [{paths: [{path: /a}], count: 99999999999999999999}]}");

	/* In a file, a missing key is reported at the line of the map lacking it. */
	char path[128], want[512];
	write_file(path, sizeof(path), "nogroups.yaml",
		   "devices:\n"
		   "  - name: a\n"
		   "    groups: [{paths: [{path: /dev/a}]}]\n"
		   "  - name: b\n"
		   "    groups:\n"
		   "      - count: 2\n"
		   "        paths:\n"
		   "          - mountPath: /x\n");
	snprintf(want, sizeof(want),
		 "%s:8: devices[1].groups[0].paths[0].path: required key is missing", path);
	EXPECT_ERR(want, "--config", path);
}

TEST(path_entries)
{
	struct config c;
	EXPECT_OK(
	    &c, "--device",
	    "{\"name\": \"a\", \"groups\": [{\"count\": 4, \"paths\": ["
	    "{\"path\": \" /dev/snd/pcm* \", \"mountPath\": \" /dev/snd/ \", \"permissions\": "
	    "\"wr\", \"limit\": 2, \"optional\": true},"
	    "{\"path\": \"/dev/snd/controlC0\", \"type\": \"Device\", \"permissions\": \"mr\", "
	    "\"mountPath\": \"  \"},"
	    "{\"path\": \"/etc/asound.conf\", \"type\": \"Mount\", \"readOnly\": true},"
	    "{\"path\": \"/dev/x\", \"type\": \"\", \"permissions\": \"r\"}]}]}");
	const struct cfg_group *g = &c.devices[0].groups[0];
	CHECK_INT(g->count, 4);
	CHECK_INT(g->n_paths, 4);
	CHECK_STR(g->paths[0].path, "/dev/snd/pcm*");
	CHECK_STR(g->paths[0].mount_path, "/dev/snd/");
	CHECK_STR(g->paths[0].permissions, "rw");
	CHECK_INT(g->paths[0].limit, 2);
	CHECK(g->paths[0].optional);
	CHECK_STR(g->paths[1].permissions, "mr");
	CHECK(g->paths[1].mount_path == NULL); /* blank: same as the host path */
	CHECK_INT(g->paths[2].type, CFG_PATH_MOUNT);
	CHECK(g->paths[2].read_only);
	CHECK_STR(g->paths[2].permissions, "");
	CHECK_INT(g->paths[3].type, CFG_PATH_DEVICE);
	CHECK_STR(g->paths[3].permissions, "r");
	config_free(&c);

	EXPECT_OK(&c, "--device",
		  "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\", \"permissions\": "
		  "\"wmr\"}]}]}");
	CHECK_STR(c.devices[0].groups[0].paths[0].permissions, "mrw");
	config_free(&c);

#define PATH_DEV(entry) "{\"name\": \"a\", \"groups\": [{\"paths\": [" entry "]}]}"
	EXPECT_ERR("--device #1: groups[0].paths[0].path: \"/dev/tty[0-\" is not a valid glob",
		   "--device", PATH_DEV("{\"path\": \"/dev/tty[0-\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].permissions: invalid permission 'x' in \"rwx\"",
		   "--device", PATH_DEV("{\"path\": \"/a\", \"permissions\": \"rwx\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].permissions: must not be empty", "--device",
		   PATH_DEV("{\"path\": \"/a\", \"permissions\": \"\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].permissions: 'r' given twice in \"rr\"",
		   "--device", PATH_DEV("{\"path\": \"/a\", \"permissions\": \"rr\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].type: unknown type \"device\": allowed are "
		   "\"Device\" (the default) and \"Mount\"",
		   "--device", PATH_DEV("{\"path\": \"/a\", \"type\": \"device\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].path: required key is missing", "--device",
		   PATH_DEV("{\"mountPath\": \"/a\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].path: must not be empty", "--device",
		   PATH_DEV("{\"path\": \" \"}"));
	EXPECT_ERR("--device #1: groups[0].paths[1].path: must be an absolute path (start with "
		   "'/'), got \"dev/a\"",
		   "--device", PATH_DEV("{\"path\": \"/a\"}, {\"path\": \"dev/a\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].mountPath: must be an absolute path",
		   "--device", PATH_DEV("{\"path\": \"/a\", \"mountPath\": \"b\"}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].limit: must be at least 1, got 0", "--device",
		   PATH_DEV("{\"path\": \"/a\", \"limit\": 0}"));
	EXPECT_ERR("--device #1: groups[0].paths[0].path: contains a NUL character", "--device",
		   "{name: a, groups: [{paths: [{path: \"/a\\0b\"}]}]}");
}

TEST(ignored_fields_warn)
{
	struct capture cap = {0};
	struct config c;
	capture_begin(&cap);
	EXPECT_OK(&c, "--device",
		  PATH_DEV("{\"path\": \"/etc/x\", \"type\": \"Mount\", \"permissions\": \"r\"}, "
			   "{\"path\": \"/dev/y\", \"readOnly\": true}"));
	char *log = capture_end(&cap);
	CHECK_STR(c.devices[0].groups[0].paths[0].permissions, "");
	CHECK(!c.devices[0].groups[0].paths[1].read_only);
	CHECK_STR(c.devices[0].groups[0].paths[1].permissions, "mrw");
	CHECK_CONTAINS(log, "level=warn");
	CHECK_CONTAINS(log, "--device #1: groups[0].paths[0].permissions: ignored on a Mount");
	CHECK_CONTAINS(log, "--device #1: groups[0].paths[1].readOnly: ignored on a Device");
	free(log);
	config_free(&c);
}

TEST(usb_entries)
{
#define USB_DEV(entry) "{\"name\": \"a\", \"groups\": [{\"usb\": [" entry "]}]}"
	struct config c;
	EXPECT_OK(&c, "--device",
		  USB_DEV("{\"vendor\": \"0x1A86\", \"product\": \"7523\"}, "
			  "{\"vendor\": \"10C4\", \"product\": \"*\", \"serial\": \"0001*\"}, "
			  "{\"vendor\": 403, \"product\": 6001, \"serial\": \"\"}, "
			  "{\"product\": \"0X0F\", \"vendor\": null}, {\"serial\": \"ABC\"}"));
	const struct cfg_group *g = &c.devices[0].groups[0];
	CHECK_INT(g->n_usb, 5);
	CHECK_INT(g->usb[0].vendor, 0x1a86);
	CHECK_INT(g->usb[0].product, 0x7523);
	CHECK(g->usb[0].serial == NULL);
	CHECK_INT(g->usb[1].vendor, 0x10c4);
	CHECK_INT(g->usb[1].product, -1);
	CHECK_STR(g->usb[1].serial, "0001*");
	CHECK_INT(g->usb[2].vendor, 0x0403); /* a JSON number is read as hex */
	CHECK_INT(g->usb[2].product, 0x6001);
	CHECK(g->usb[2].serial == NULL); /* empty: any */
	CHECK_INT(g->usb[3].vendor, -1);
	CHECK_INT(g->usb[3].product, 0x0f);
	CHECK_INT(g->usb[4].vendor, -1);
	CHECK_STR(g->usb[4].serial, "ABC");
	config_free(&c);

	EXPECT_ERR("--device #1: groups[0].usb[0].vendor: invalid USB ID \"xyz1\"", "--device",
		   USB_DEV("{\"vendor\": \"xyz1\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].product: invalid USB ID \"12345\"", "--device",
		   USB_DEV("{\"vendor\": \"1\", \"product\": \"12345\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].vendor: invalid USB ID \"\"", "--device",
		   USB_DEV("{\"vendor\": \"\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].vendor: invalid USB ID \"0x\"", "--device",
		   USB_DEV("{\"vendor\": \"0x\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].vendor: invalid USB ID \"-1\"", "--device",
		   USB_DEV("{\"vendor\": -1}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].vendor: expected a hex USB ID such as "
		   "\"1a86\", got a boolean (false)",
		   "--device", USB_DEV("{\"vendor\": false}"));
	EXPECT_ERR(
	    "--device #1: groups[0].usb[1]: matches every USB device; give at least vendor, "
	    "product, class, port or serial",
	    "--device",
	    USB_DEV("{\"vendor\": \"1\"}, {\"vendor\": \"*\", \"product\": \"*\", \"serial\": "
		    "\"\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0]: matches every USB device", "--device",
		   USB_DEV("{}"));

	/* extensions: class (hex or name), port glob, mountPath directory */
	EXPECT_OK(&c, "--device",
		  USB_DEV("{\"class\": \"cdc-acm\"}, {\"class\": \"0x0E\"}, {\"class\": \"HID\"}, "
			  "{\"vendor\": \"1a86\", \"port\": \" 1-1.* \", \"mountPath\": "
			  "\"/dev/serial/\"}, {\"class\": \"ff\", \"vendor\": \"0403\"}"));
	g = &c.devices[0].groups[0];
	CHECK_INT(g->usb[0].usb_class, 0x02);
	CHECK_INT(g->usb[1].usb_class, 0x0e);
	CHECK_INT(g->usb[2].usb_class, 0x03);
	CHECK_INT(g->usb[3].usb_class, -1);
	CHECK_STR(g->usb[3].port, "1-1.*");
	CHECK_STR(g->usb[3].mount_path, "/dev/serial/");
	CHECK(g->usb[0].port == NULL && g->usb[0].mount_path == NULL);
	CHECK_INT(g->usb[4].usb_class, 0xff);
	config_free(&c);
	EXPECT_ERR("--device #1: groups[0].usb[0].class: USB class 0x100 is out of range",
		   "--device", USB_DEV("{\"class\": \"100\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].class: invalid USB ID \"modem\"", "--device",
		   USB_DEV("{\"class\": \"modem\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].mountPath: must be a directory ending in '/'",
		   "--device", USB_DEV("{\"vendor\": \"1\", \"mountPath\": \"/dev/x\"}"));
	EXPECT_ERR("--device #1: groups[0].usb[0].mountPath: must be an absolute path", "--device",
		   USB_DEV("{\"vendor\": \"1\", \"mountPath\": \"dev/\"}"));
}

TEST(unquoted_hex_in_yaml)
{
	char path[128];
	write_file(path, sizeof(path), "hex.yaml",
		   "devices:\n"
		   "  - name: sdr\n"
		   "    groups:\n"
		   "      - usb:\n"
		   "          - vendor: 0bda\n"
		   "            product: 2838\n"
		   "          - vendor: 0x0403\n"
		   "            product: 6001\n"
		   "          - vendor: \"0403\"\n"
		   "            product: 1\n");
	struct capture cap = {0};
	struct config c;
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path);
	char *log = capture_end(&cap);
	const struct cfg_group *g = &c.devices[0].groups[0];
	CHECK_INT(g->usb[0].vendor, 0x0bda);
	CHECK_INT(g->usb[0].product, 0x2838); /* generic-device-plugin read 2838 decimal */
	CHECK_INT(g->usb[1].vendor, 0x0403);
	CHECK_INT(g->usb[1].product, 0x6001);
	CHECK_INT(g->usb[2].vendor, 0x0403);
	CHECK_INT(g->usb[2].product, 1);
	config_free(&c);
	/* Warned where the reading differs from generic-device-plugin's. */
	char want[512];
	snprintf(want, sizeof(want),
		 "%s:6: devices[0].groups[0].usb[0].product: unquoted number 2838 read as hex "
		 "0x2838",
		 path);
	CHECK_CONTAINS(log, want);
	snprintf(want, sizeof(want), "%s:8: devices[0].groups[0].usb[1].product", path);
	CHECK_CONTAINS(log, want);
	CHECK(!strstr(log, "usb[0].vendor")); /* 0bda is no number */
	CHECK(!strstr(log, "usb[2]"));	      /* quoted, and 1 reads the same */
	free(log);
}

TEST(old_schema)
{
	struct capture cap = {0};
	struct config c;
	capture_begin(&cap);
	EXPECT_OK(
	    &c, "--device",
	    "{\"type\": \"serial\", \"count\": 2, \"paths\": [\"/dev/ttyUSB*\", \" /dev/ttyACM* "
	    "\"]}");
	char *log = capture_end(&cap);
	CHECK_INT(c.n_devices, 1);
	CHECK_STR(c.devices[0].name, "serial");
	CHECK_INT(c.devices[0].n_groups, 2);
	for (size_t i = 0; i < c.devices[0].n_groups && i < 2; i++) {
		const struct cfg_group *g = &c.devices[0].groups[i];
		CHECK_INT(g->count, 2);
		CHECK_INT(g->n_paths, 1);
		CHECK_INT(g->paths[0].type, CFG_PATH_DEVICE);
		CHECK_STR(g->paths[0].permissions, "mrw");
		CHECK_INT(g->paths[0].limit, 1);
		CHECK(g->old_ids); /* <path>-<slot>, as then */
	}
	CHECK_STR(c.devices[0].groups[0].paths[0].path, "/dev/ttyUSB*");
	CHECK_STR(c.devices[0].groups[1].paths[0].path, "/dev/ttyACM*");
	CHECK_CONTAINS(log, "level=warn");
	CHECK_CONTAINS(log, "--device #1: deprecated device schema {type, count, paths}");
	CHECK_CONTAINS(log, "device IDs <path>-<slot> as before");
	free(log);
	config_free(&c);
	/* The new schema's groups keep the new IDs. */
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK(!c.devices[0].groups[0].old_ids);
	config_free(&c);

	/* From a file, the warning names the file and line. */
	char path[128], want[512];
	write_file(path, sizeof(path), "old.yaml",
		   "devices:\n  - type: fuse\n    paths: [/dev/fuse]\n");
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path);
	log = capture_end(&cap);
	CHECK_INT(c.devices[0].groups[0].count, 1);
	snprintf(want, sizeof(want), "%s:2: devices[0]: deprecated device schema", path);
	CHECK_CONTAINS(log, want);
	free(log);
	config_free(&c);

	EXPECT_ERR("--device #1: mixes the old device schema (type, count, paths) with the new one",
		   "--device", "{\"type\": \"a\", \"name\": \"a\", \"paths\": [\"/a\"]}");
	EXPECT_ERR("--device #1: paths: required key is missing", "--device", "{\"type\": \"a\"}");
	EXPECT_ERR("--device #1: paths[1]: must be an absolute path", "--device",
		   "{\"type\": \"a\", \"paths\": [\"/a\", \"b\"]}");
	EXPECT_ERR("--device #1: paths[0]: expected a string, got a map", "--device",
		   "{\"type\": \"a\", \"paths\": [{\"path\": \"/a\"}]}");
	EXPECT_ERR("--device #1: limit: unknown key", "--device",
		   "{\"type\": \"a\", \"paths\": [\"/a\"], \"limit\": 1}");
	EXPECT_ERR("--device #1: type: \"A\" is not a valid name", "--device",
		   "{\"type\": \"A\", \"paths\": [\"/a\"]}");
	EXPECT_ERR("--device #1: count: must be at least 1, got 0", "--device",
		   "{\"type\": \"a\", \"count\": 0, \"paths\": [\"/a\"]}");
}

TEST(file_devices_replaced_but_checked)
{
	char path[128], want[512];
	write_file(path, sizeof(path), "repl.yaml",
		   "devices:\n  - name: a\n    groups: [{paths: [{path: /dev/a}]}]\n"
		   "  - name: b\n    groups: [{paths: [{path: /dev/b}]}]\n");
	struct config c;
	EXPECT_OK(&c, "--config", path, "--device", DEV_FUSE);
	CHECK_INT(c.n_devices, 1);
	CHECK_STR(c.devices[0].name, "fuse");
	config_free(&c);
	/* Replaced, yet a broken file list is still an error. */
	write_file(path, sizeof(path), "repl2.yaml",
		   "devices:\n  - name: A\n    groups: [{paths: [{path: /dev/a}]}]\n");
	snprintf(want, sizeof(want), "%s:2: devices[0].name: \"A\" is not a valid name", path);
	EXPECT_ERR(want, "--config", path, "--device", DEV_FUSE);
}

TEST(long_message_truncated)
{
	struct config c;
	char err[24];
	int r = LOAD(&c, err, "--device", "{\"name\": \"NOT-VALID\", \"groups\": []}");
	CHECK(r < 0);
	CHECK_INT(strlen(err), sizeof(err) - 1);
	CHECK_STR(err + sizeof(err) - 4, "...");
	CHECK(is_zero(&c));
	/* No buffer at all is fine too. */
	CHECK(config_load(&c, ARGC("--bogus"), ARGV("--bogus"), NULL, 0) < 0);
}

/* ---- cfgtree directly ---- */

TEST(cfgtree_yaml)
{
	struct cfg_node *root = NULL;
	struct cfgtree_error e;
	const char *doc = "a: 1\n"
			  "b: 'x'\n"
			  "c: [true, ~, \"\"]\n"
			  "d: !!str 12\n"
			  "e: |\n  lit\n"
			  "f: &anchor {g: h}\n";
	CHECK_INT(cfgtree_parse_yaml(doc, strlen(doc), &root, &e), 0);
	CHECK(root && root->kind == CFG_MAP);
	if (!root)
		return;
	CHECK_INT(root->n_pairs, 6);
	const struct cfg_node *a = cfgtree_get(root, "a");
	CHECK(a && a->kind == CFG_SCALAR && !a->quoted);
	if (!a) {
		cfgtree_free(root);
		return;
	}
	CHECK_STR(a->text, "1");
	CHECK_INT(a->line, 1);
	CHECK_INT(a->column, 4);
	CHECK(cfgtree_get(root, "b")->quoted);
	const struct cfg_node *c = cfgtree_get(root, "c");
	CHECK_INT(c->kind, CFG_SEQ);
	CHECK_INT(c->n_items, 3);
	CHECK_INT(c->line, 3);
	CHECK(!c->items[1]->quoted);
	CHECK_STR(c->items[1]->text, "~");
	CHECK(c->items[2]->quoted);
	CHECK_INT(c->items[2]->len, 0);
	CHECK(cfgtree_get(root, "d")->quoted);
	CHECK(cfgtree_get(root, "e")->quoted);
	CHECK_STR(cfgtree_get(root, "e")->text, "lit\n");
	CHECK_STR(cfgtree_get(cfgtree_get(root, "f"), "g")->text, "h");
	CHECK(cfgtree_get(root, "zz") == NULL);
	CHECK(cfgtree_get(a, "x") == NULL);
	CHECK_STR(cfgtree_kind_name(CFG_MAP), "map");
	cfgtree_free(root);

	root = (struct cfg_node *)1;
	CHECK_INT(cfgtree_parse_yaml("", 0, &root, &e), 0);
	CHECK(root == NULL);
	CHECK_INT(cfgtree_parse_yaml("a: [", 4, &root, &e), -EBADMSG);
	CHECK(e.syntax);
	CHECK_INT(cfgtree_parse_yaml("a: 1\na: 2\n", 10, &root, &e), -EINVAL);
	CHECK(!e.syntax);
	CHECK_INT(e.line, 2);
	CHECK_INT(e.column, 1);
	CHECK_INT(cfgtree_parse_yaml("a: [*x]", 7, &root, NULL), -EINVAL);
	/* Not NUL-terminated: only len bytes are read. */
	CHECK_INT(cfgtree_parse_yaml("k: vXXXX", 4, &root, &e), 0);
	CHECK_STR(cfgtree_get(root, "k")->text, "v");
	cfgtree_free(root);
	/* Invalid UTF-8: a reader error with a position. */
	CHECK_INT(cfgtree_parse_yaml("a: b\nc: \xff\n", 10, &root, &e), -EBADMSG);
	CHECK_INT(e.line, 2);
	CHECK_INT(e.column, 4);
}

TEST(cfgtree_json)
{
	struct cfg_node *root = NULL;
	struct cfgtree_error e;
	const char *doc = "{\"n\": [2838, -7, 1.5, 1e3, true, false, null, \"s\"], \"o\": {}}";
	CHECK_INT(cfgtree_parse_json(doc, strlen(doc), &root, &e), 0);
	const struct cfg_node *n = cfgtree_get(root, "n");
	CHECK(n && n->n_items == 8);
	static const char *const want[] = {"2838", "-7",    "1.5",  "1000",
					   "true", "false", "null", "s"};
	for (size_t i = 0; n && i < 8 && i < n->n_items; i++) {
		CHECK_STR(n->items[i]->text, want[i]);
		CHECK_INT(n->items[i]->quoted, i == 7);
		CHECK_INT(n->items[i]->line, 0);
	}
	CHECK_INT(cfgtree_get(root, "o")->kind, CFG_MAP);
	cfgtree_free(root);

	CHECK_INT(cfgtree_check_json("[1, 2]", 6, &e), 0);
	CHECK_INT(cfgtree_check_json("[1, 2", 5, &e), -EBADMSG);
	CHECK_INT(e.column, 6);
	CHECK_CONTAINS(e.msg, "unexpected end of input");
	CHECK_INT(cfgtree_check_json("{\"a\": 1}\n\n x", 12, &e), -EBADMSG);
	CHECK_INT(e.line, 3);
	CHECK_INT(e.column, 2);
	CHECK_INT(cfgtree_check_json("[1]\0", 4, &e), -EBADMSG);
	CHECK_CONTAINS(e.msg, "unexpected byte 0x00");
	CHECK_INT(cfgtree_parse_json("{\"a\": 1, \"a\": 2}", 16, &root, &e), -EINVAL);
	CHECK_CONTAINS(e.msg, "duplicate key \"a\"");
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	CHECK_INT(cfgtree_parse_json(deep, sizeof(deep), &root, &e), -EINVAL);
	CHECK_CONTAINS(e.msg, "nested deeper than 64 levels");
	CHECK_INT(cfgtree_parse_json(deep + 40, 120, &root, &e), 0); /* 60 deep: fine */
	cfgtree_free(root);
	CHECK_INT(cfgtree_parse_json("1", 1, NULL, &e), -EINVAL);
	cfgtree_free(NULL);
}

/* Found by fuzz_config_file: cJSON lets raw control characters through
 * in strings, and libyaml then folds a raw line break into a space, so a
 * JSON file and the same text given to --device meant different paths.
 * Strict JSON wants them escaped. */
TEST(json_control_characters)
{
	struct cfgtree_error e = {0};
	struct cfg_node *root = NULL;
	CHECK_INT(cfgtree_check_json("[\"a\nb\"]", 7, &e), -EBADMSG);
	CHECK_INT(e.line, 1);
	CHECK_INT(e.column, 4);
	CHECK_CONTAINS(e.msg, "control character");
	CHECK_INT(cfgtree_parse_json("{\"k\": \"\tx\"}", 11, &root, &e), -EBADMSG);
	cfgtree_free(root);
	/* Escaped, and outside strings: fine. */
	const char *ok1 = "[\"a\\nb\\t\"]\n", *ok2 = "[\"\\\\\",\n\t1]";
	CHECK_INT(cfgtree_check_json(ok1, strlen(ok1), &e), 0);
	CHECK_INT(cfgtree_check_json(ok2, strlen(ok2), &e), 0);
	/* A file that starts like JSON must be JSON. */
	char path[128], want[512];
	write_file(path, sizeof(path), "ctl.json",
		   "{\"devices\": [{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": "
		   "\"/dev/a\n  b\"}]}]}]}\n");
	snprintf(want, sizeof(want),
		 "%s:1: invalid JSON at column 66: unescaped control character 0x0a in a string",
		 path);
	EXPECT_ERR(want, "--config", path);
	/* A --device value that is not JSON may be YAML, which folds the line. */
	struct config c;
	EXPECT_OK(&c, "--device", PATH_DEV("{\"path\": \"/dev/a\n  b\"}"));
	CHECK_STR(c.devices[0].groups[0].paths[0].path, "/dev/a b");
	config_free(&c);
}

/* Found by fuzz_config_file: cJSON cuts a string at an escaped NUL, so
 * {"path": "/dev/a\u0000b"} given to --device configured /dev/a and a key
 * "name\u0000x" was read as "name". JSON that cJSON cannot hold is refused;
 * as YAML (--device's fallback) the NUL is seen and refused too. */
TEST(json_escaped_nul)
{
	struct cfgtree_error e = {0};
	const char *doc = "{\"a\": \"x\\u0000y\"}";
	CHECK_INT(cfgtree_check_json(doc, strlen(doc), &e), -EBADMSG);
	CHECK_INT(e.column, 9);
	CHECK_CONTAINS(e.msg, "\\u0000");
	doc = "[\"\\\\u0000\"]"; /* an escaped backslash, then u0000: fine */
	CHECK_INT(cfgtree_check_json(doc, strlen(doc), &e), 0);
	EXPECT_ERR("--device #1: groups[0].paths[0].path: contains a NUL character", "--device",
		   PATH_DEV("{\"path\": \"/dev/a\\u0000b\"}"));
	EXPECT_ERR("--device #1: name: required key is missing", "--device",
		   "{\"name\\u0000x\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/a\"}]}]}");
}

/* ---- --config-format and smarter-device-manager files ---- */

/* A smarter-device-manager config: two expressions and nvidia-gpu. */
#define SDM_FILE                                                                                   \
	"- devicematch: ^snd$\n"                                                                   \
	"  nummaxdevices: 20\n"                                                                    \
	"- devicematch: ^ttyUSB[0-9]*$\n"                                                          \
	"  nummaxdevices: 1\n"                                                                     \
	"- devicematch: nvidia-gpu\n"                                                              \
	"  nummaxdevices: 1\n"

TEST(sdm_file)
{
	char path[128], want[512];
	write_file(path, sizeof(path), "sdm.yaml", SDM_FILE);
	struct config c;
	struct capture cap = {0};
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path);
	char *log = capture_end(&cap);
	CHECK_INT(c.format, CFG_FORMAT_SDM);
	CHECK_STR(c.domain, CONFIG_SDM_DOMAIN);
	CHECK_INT(c.n_devices, 0);
	CHECK_INT(c.n_matches, 2); /* nvidia-gpu makes no entry */
	if (c.n_matches == 2) {
		CHECK_STR(c.matches[0].pattern, "^snd$");
		CHECK_INT(c.matches[0].max, 20);
		CHECK_INT(c.matches[0].line, 1);
		CHECK_STR(c.matches[1].pattern, "^ttyUSB[0-9]*$");
		CHECK_INT(c.matches[1].max, 1);
		CHECK_INT(c.matches[1].line, 3);
		/* Compiled, anchored as written. */
		CHECK(cfg_match_matches(&c.matches[0], "snd"));
		CHECK(!cfg_match_matches(&c.matches[0], "snd/pcmC0D0p"));
		CHECK(cfg_match_matches(&c.matches[1], "ttyUSB12"));
		CHECK(!cfg_match_matches(&c.matches[1], "ttyACM0"));
	}
	snprintf(want, sizeof(want), "%s:5: [2].devicematch: \"nvidia-gpu\" skipped", path);
	CHECK_CONTAINS(log, "level=warn");
	CHECK_CONTAINS(log, want);
	free(log);
	config_free(&c);

	/* The domain: --domain and $DOMAIN still win over smarter-devices. */
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path, "--domain", "squat.ai");
	free(capture_end(&cap));
	CHECK_STR(c.domain, "squat.ai");
	config_free(&c);
	setenv("DOMAIN", "env.example", 1);
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path);
	free(capture_end(&cap));
	CHECK_STR(c.domain, "env.example");
	config_free(&c);
	unsetenv("DOMAIN");

	/* A generic-device-plugin file keeps the usual default domain. */
	write_file(path, sizeof(path), "gdp.yaml",
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\n");
	EXPECT_OK(&c, "--config", path);
	CHECK_INT(c.format, CFG_FORMAT_GDP);
	CHECK_STR(c.domain, CONFIG_DEFAULT_DOMAIN);
	CHECK_INT(c.n_matches, 0);
	CHECK(c.matches == NULL);
	config_free(&c);

	/* JSON works too, and nummaxdevices alone is enough to recognise it. */
	write_file(path, sizeof(path), "sdm.json",
		   "[{\"nummaxdevices\": 2, \"devicematch\": \"^fuse$\"}]\n");
	EXPECT_OK(&c, "--config", path);
	CHECK_INT(c.format, CFG_FORMAT_SDM);
	CHECK_INT(c.n_matches, 1);
	if (c.n_matches == 1)
		CHECK_INT(c.matches[0].max, 2);
	config_free(&c);
}

TEST(config_format_choice)
{
	char path[128], gdp[128], want[512];
	write_file(path, sizeof(path), "fmt-sdm.yaml", SDM_FILE);
	write_file(gdp, sizeof(gdp), "fmt-gdp.yaml",
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\n");
	struct config c;
	struct capture cap = {0};

	/* Forced, each format refuses the other's files. */
	snprintf(want, sizeof(want), "%s:1: expected a map, got a list", path);
	EXPECT_ERR(want, "--config", path, "--config-format", "generic-device-plugin");
	snprintf(want, sizeof(want),
		 "%s:1: expected smarter-device-manager's format, a list of {devicematch, "
		 "nummaxdevices}, got a map",
		 gdp);
	EXPECT_ERR(want, "--config", gdp, "--config-format=smarter-device-manager");
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path, "--config-format", "smarter-device-manager");
	free(capture_end(&cap));
	CHECK_INT(c.format, CFG_FORMAT_SDM);
	CHECK_INT(c.n_matches, 2);
	config_free(&c);
	EXPECT_OK(&c, "--config", gdp, "--config-format", "auto");
	CHECK_INT(c.format, CFG_FORMAT_GDP);
	config_free(&c);

	/* $CONFIG_FORMAT, below the flag. */
	setenv("CONFIG_FORMAT", "generic-device-plugin", 1);
	EXPECT_ERR("expected a map, got a list", "--config", path);
	capture_begin(&cap);
	EXPECT_OK(&c, "--config", path, "--config-format", "smarter-device-manager");
	free(capture_end(&cap));
	CHECK_INT(c.format, CFG_FORMAT_SDM);
	config_free(&c);

	/* A bad value names where it came from. */
	setenv("CONFIG_FORMAT", "smarter", 1);
	EXPECT_ERR("$CONFIG_FORMAT: unknown format \"smarter\" (allowed: auto, "
		   "generic-device-plugin, smarter-device-manager, simple-device-plugin)",
		   "--config", gdp);
	unsetenv("CONFIG_FORMAT");
	EXPECT_ERR("--config-format: unknown format \"SDM\" (allowed: auto, "
		   "generic-device-plugin, smarter-device-manager, simple-device-plugin)",
		   "--config", gdp, "--config-format", "SDM");
	EXPECT_ERR("--config-format: missing value", "--config", gdp, "--config-format");

	/* Forced smarter-device-manager on an empty file or an empty list. */
	write_file(path, sizeof(path), "fmt-empty.yaml", "# nothing\n");
	snprintf(want, sizeof(want),
		 "%s: expected smarter-device-manager's format, a list of {devicematch, "
		 "nummaxdevices}, got an empty file",
		 path);
	EXPECT_ERR(want, "--config", path, "--config-format", "smarter-device-manager");
	write_file(path, sizeof(path), "fmt-emptylist.yaml", "[]\n");
	snprintf(want, sizeof(want), "%s:1: the list of devicematch entries is empty", path);
	EXPECT_ERR(want, "--config", path, "--config-format", "smarter-device-manager");
	/* Auto: an empty list is no smarter-device-manager list. */
	snprintf(want, sizeof(want), "%s:1: expected a map, got a list", path);
	EXPECT_ERR(want, "--config", path);
}

/* --config-format and $CONFIG_FORMAT are checked even when no config file
 * is read (they were not before 602ac32), and smarter-device-manager's
 * format without a file is refused. */
TEST(config_format_checked_without_file)
{
	EXPECT_ERR("--config-format: unknown format \"bogus\"", "--config-format", "bogus",
		   "--device", DEV_FUSE);
	setenv("CONFIG_FORMAT", "bogus", 1);
	EXPECT_ERR("$CONFIG_FORMAT: unknown format \"bogus\"", "--device", DEV_FUSE);
	unsetenv("CONFIG_FORMAT");
	EXPECT_ERR("--config-format: smarter-device-manager: no config file (give --config)",
		   "--config-format", "smarter-device-manager", "--device", DEV_FUSE);
	struct config c;
	EXPECT_OK(&c, "--config-format", "generic-device-plugin", "--device", DEV_FUSE);
	CHECK_INT(c.n_devices, 1);
	config_free(&c);
}

/* The error names where the format came from: $CONFIG_FORMAT here. */
TEST(config_format_env_named_without_file)
{
	setenv("CONFIG_FORMAT", "smarter-device-manager", 1);
	EXPECT_ERR("$CONFIG_FORMAT: smarter-device-manager: no config file", "--device", DEV_FUSE);
	unsetenv("CONFIG_FORMAT");
}

TEST(sdm_auto_detection)
{
	char path[128], want[512];
	/* A plain list is still generic-device-plugin's, and wrong. */
	write_file(path, sizeof(path), "auto1.yaml", "- name: a\n  groups: []\n");
	snprintf(want, sizeof(want), "%s:1: expected a map, got a list", path);
	EXPECT_ERR(want, "--config", path);
	write_file(path, sizeof(path), "auto2.yaml", "- devicematch\n");
	snprintf(want, sizeof(want), "%s:1: expected a map, got a list", path);
	EXPECT_ERR(want, "--config", path);
	/* Recognised by the first item: later items are then checked as entries. */
	write_file(path, sizeof(path), "auto3.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 1\n- name: b\n");
	snprintf(want, sizeof(want), "%s:3: [1].name: unknown key", path);
	EXPECT_ERR(want, "--config", path);
	write_file(path, sizeof(path), "auto4.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 1\n- x\n");
	snprintf(want, sizeof(want), "%s:3: [1]: expected a map, got a string (x)", path);
	EXPECT_ERR(want, "--config", path);
}

TEST(sdm_errors)
{
	char path[128], want[512];
	struct capture cap = {0};

	write_file(path, sizeof(path), "sdm-re.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 1\n"
		   "- devicematch: \"tty[0-\"\n  nummaxdevices: 1\n");
	snprintf(want, sizeof(want), "%s:3: [1].devicematch: invalid regular expression \"tty[0-\"",
		 path);
	EXPECT_ERR(want, "--config", path);

	/* RE2's reason, at the expression's line. */
	write_file(path, sizeof(path), "sdm-rep.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 1\n"
		   "- devicematch: 'a**'\n  nummaxdevices: 1\n");
	snprintf(want, sizeof(want),
		 "%s:3: [1].devicematch: invalid regular expression \"a**\": bad repetition "
		 "operator: **",
		 path);
	EXPECT_ERR(want, "--config", path);
	/* Repetitions beyond Go's (and RE2's) 1000, also when nested, are
	 * refused; small ones, and braces in a class, are fine. */
	static const char *const huge[] = {"x{1,32767}", "(a{1000}){1000}", "((a{20}){20}){20}",
					   "x{1,1001}"};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "- devicematch: '%s'\n  nummaxdevices: 1\n", huge[i]);
		write_file(path, sizeof(path), "sdm-big.yaml", text);
		snprintf(want, sizeof(want),
			 "%s:1: [0].devicematch: invalid regular expression \"%s\": invalid "
			 "repetition size",
			 path, huge[i]);
		EXPECT_ERR(want, "--config", path);
	}
	/* What Go's regexp/syntax refuses though RE2 takes it: \C. */
	write_file(path, sizeof(path), "sdm-c.yaml",
		   "- devicematch: 'tty\\C'\n  nummaxdevices: 1\n");
	EXPECT_ERR("invalid regular expression \"tty\\C\": invalid escape sequence: \\C",
		   "--config", path);
	/* UTF-8, as in Go: '.' is one character, not one byte. */
	write_file(path, sizeof(path), "sdm-utf8.yaml",
		   "- devicematch: '^tty.$'\n  nummaxdevices: 1\n");
	struct config c;
	EXPECT_OK(&c, "--config", path);
	CHECK(c.n_matches == 1 && cfg_match_matches(&c.matches[0], "tty\xc3\xa9"));
	config_free(&c);

	/* Go's syntax, which POSIX ERE lacks, now accepted and matching as in
	 * Go: Perl classes, flags, \Q...\E; unanchored unless anchored. */
	static const struct {
		const char *re, *yes, *no;
	} go[] = {
	    {"^tty\\d+$", "tty12", "ttyUSB0"},
	    {"(?i)^snd$", "SND", "snd/x"},
	    {"tty\\S", "ttyUSB0", "tty"},
	    {"\\Qa.b\\E", "xa.by", "axb"},
	    {"^i2c-[0-9]{1,3}$", "i2c-12", "i2c-1234"},
	    {"x{1,1000}", "x", "y"},
	    {"^[]{]+$", "]{", "a"},
	    {"(ab){4}", "abababab", "ababab"},
	    {"\\bUSB", "tty/USB0", "ttyUSB0"},
	    {"a\\\\d", "a\\d", "a1"}, /* an escaped backslash, then d */
	};
	for (size_t i = 0; i < sizeof(go) / sizeof(go[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "- devicematch: '%s'\n  nummaxdevices: 1\n", go[i].re);
		write_file(path, sizeof(path), "sdm-go.yaml", text);
		EXPECT_OK(&c, "--config", path);
		CHECK_INT(c.n_matches, 1);
		if (c.n_matches == 1) {
			CHECK_STR(c.matches[0].pattern, go[i].re);
			CHECK(cfg_match_matches(&c.matches[0], go[i].yes));
			CHECK(!cfg_match_matches(&c.matches[0], go[i].no));
		}
		config_free(&c);
	}

	write_file(path, sizeof(path), "sdm-nomax.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 1\n- devicematch: ^b$\n");
	snprintf(want, sizeof(want), "%s:3: [1].nummaxdevices: required key is missing", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "sdm-zero.yaml", "- devicematch: ^a$\n  nummaxdevices: 0\n");
	snprintf(want, sizeof(want), "%s:2: [0].nummaxdevices: must be at least 1, got 0", path);
	EXPECT_ERR(want, "--config", path);
	write_file(path, sizeof(path), "sdm-many.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 10001\n");
	EXPECT_ERR("[0].nummaxdevices: must be at most 10000, got 10001", "--config", path);
	write_file(path, sizeof(path), "sdm-str.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: lots\n");
	EXPECT_ERR("[0].nummaxdevices: expected an integer, got a string (lots)", "--config", path);

	write_file(path, sizeof(path), "sdm-nomatch.yaml", "- nummaxdevices: 1\n");
	snprintf(want, sizeof(want), "%s:1: [0].devicematch: required key is missing", path);
	EXPECT_ERR(want, "--config", path);
	write_file(path, sizeof(path), "sdm-list.yaml", "- devicematch: [a]\n  nummaxdevices: 1\n");
	snprintf(want, sizeof(want), "%s:1: [0].devicematch: expected a string, got a list", path);
	EXPECT_ERR(want, "--config", path);

	write_file(path, sizeof(path), "sdm-key.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 1\n"
		   "- deviceMatch: ^b$\n  nummaxdevices: 1\n");
	snprintf(want, sizeof(want),
		 "%s:3: [1].deviceMatch: unknown key (did you mean \"devicematch\"?)", path);
	EXPECT_ERR(want, "--config", path);
	/* The same typo in the first entry, with the format given. */
	write_file(path, sizeof(path), "sdm-key0.yaml", "- deviceMatch: ^b$\n  nummaxdevices: 1\n");
	snprintf(want, sizeof(want),
		 "%s:1: [0].deviceMatch: unknown key (did you mean \"devicematch\"?)", path);
	EXPECT_ERR(want, "--config", path, "--config-format", "smarter-device-manager");
	write_file(path, sizeof(path), "sdm-key2.yaml",
		   "- devicematch: ^a$\n  nummaxdevices: 1\n  max: 2\n");
	snprintf(want, sizeof(want), "%s:3: [0].max: unknown key", path);
	EXPECT_ERR(want, "--config", path);

	/* Only nvidia-gpu: nothing left to offer. */
	write_file(path, sizeof(path), "sdm-gpu.yaml",
		   "- devicematch: nvidia-gpu\n  nummaxdevices: 1\n");
	capture_begin(&cap);
	EXPECT_ERR("no devices configured", "--config", path);
	char *log = capture_end(&cap);
	CHECK_CONTAINS(log, "\"nvidia-gpu\" skipped");
	free(log);
}

/* ---- virtual groups ---- */

#define VIRT_DEV(group) "{\"name\": \"sim\", \"groups\": [" group "]}"

TEST(virtual_groups)
{
	char path[128];
	write_file(path, sizeof(path), "virt.yaml",
		   "devices:\n"
		   "  - name: sim\n"
		   "    groups:\n"
		   "      - count: 2\n"
		   "        virtual:\n"
		   "          count: 3\n"
		   "          idPrefix: ' sim '\n"
		   "          envPrefix: SIM\n"
		   "          annotationPrefix: sim.example.com/dev\n"
		   "          deviceFilePrefix: /dev/sim\n");
	struct config c;
	EXPECT_OK(&c, "--config", path);
	const struct cfg_group *g = &c.devices[0].groups[0];
	CHECK(g->virt != NULL);
	if (g->virt) {
		CHECK_INT(g->virt->count, 3);
		CHECK_STR(g->virt->id_prefix, "sim"); /* trimmed */
		CHECK_STR(g->virt->device_file_prefix, "/dev/sim-");
	}
	CHECK_INT(g->count, 2);
	CHECK_INT(g->n_paths, 0);
	CHECK_INT(g->n_usb, 0);
	CHECK(g->paths == NULL && g->usb == NULL);
	CHECK_INT(g->n_env, 1);
	CHECK_INT(g->n_annotations, 1);
	if (g->n_env == 1 && g->n_annotations == 1) {
		/* the simple device plugin's meaning of each prefix */
		CHECK_STR(g->env[0].key, "SIM_{id}");
		CHECK_STR(g->env[0].value, "/dev/{id}");
		CHECK_STR(g->annotations[0].key, "sim.example.com/dev-{id}");
		CHECK_STR(g->annotations[0].value, "");
	}
	config_free(&c);

	/* Defaults: one device, IDs virtual-..., no file, no decorations. */
	EXPECT_OK(&c, "--device", VIRT_DEV("{\"virtual\": {}}"));
	g = &c.devices[0].groups[0];
	CHECK(g->virt != NULL);
	if (g->virt) {
		CHECK_INT(g->virt->count, 1);
		CHECK_STR(g->virt->id_prefix, "virtual");
		CHECK(g->virt->device_file_prefix == NULL);
	}
	CHECK_INT(g->count, 1);
	CHECK_INT(g->n_env, 0);
	CHECK_INT(g->n_annotations, 0);
	config_free(&c);

	/* Braces in a prefix are doubled (literal); env maps add to envPrefix's. */
	EXPECT_OK(&c, "--device",
		  VIRT_DEV("{\"virtual\": {\"envPrefix\": \"A{B}_\", \"annotationPrefix\": "
			   "\"x/{\", \"deviceFilePrefix\": \"\"}, \"env\": {\"MORE\": \"{id}\"}}"));
	g = &c.devices[0].groups[0];
	CHECK_INT(g->n_env, 2);
	if (g->n_env == 2) {
		CHECK_STR(g->env[0].key, "A{{B}}__{id}");
		CHECK_STR(g->env[1].key, "MORE");
	}
	if (g->n_annotations == 1)
		CHECK_STR(g->annotations[0].key, "x/{{-{id}");
	if (g->virt)
		CHECK(g->virt->device_file_prefix == NULL); /* empty: none */
	config_free(&c);

	/* A relative deviceFilePrefix is below /dev, as the simulator has it;
	 * empty or null prefixes add nothing. */
	EXPECT_OK(&c, "--device",
		  VIRT_DEV("{\"virtual\": {\"deviceFilePrefix\": \"sim/x\", \"envPrefix\": "
			   "\"\", \"annotationPrefix\": null}}"));
	g = &c.devices[0].groups[0];
	if (g->virt)
		CHECK_STR(g->virt->device_file_prefix, "/dev/sim/x-");
	CHECK_INT(g->n_env, 0);
	CHECK_INT(g->n_annotations, 0);
	config_free(&c);
}

TEST(virtual_errors)
{
	EXPECT_ERR("--device #1: groups[0].virtual.count: must be at least 1, got 0", "--device",
		   VIRT_DEV("{\"virtual\": {\"count\": 0}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.count: must be at most 10000", "--device",
		   VIRT_DEV("{\"virtual\": {\"count\": 10001}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.idPrefix: \"a b\" must be a non-empty string of "
		   "letters, digits, '-', '_' and '.'",
		   "--device", VIRT_DEV("{\"virtual\": {\"idPrefix\": \"a b\"}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.idPrefix: \"a/b\" must be", "--device",
		   VIRT_DEV("{\"virtual\": {\"idPrefix\": \"a/b\"}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.idPrefix: \"\" must be a non-empty", "--device",
		   VIRT_DEV("{\"virtual\": {\"idPrefix\": \"  \"}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.deviceFilePrefix: \"../sim\" must name a file "
		   "below /dev (no \"..\", no trailing '/')",
		   "--device", VIRT_DEV("{\"virtual\": {\"deviceFilePrefix\": \"../sim\"}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.idprefix: unknown key (did you mean "
		   "\"idPrefix\"?)",
		   "--device", VIRT_DEV("{\"virtual\": {\"idprefix\": \"x\"}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.colour: unknown key", "--device",
		   VIRT_DEV("{\"virtual\": {\"colour\": 1}}"));
	EXPECT_ERR("--device #1: groups[0]: a group has one of paths, usb or virtual", "--device",
		   VIRT_DEV("{\"virtual\": {}, \"paths\": [{\"path\": \"/dev/a\"}]}"));
	EXPECT_ERR("--device #1: groups[0]: a group has one of paths, usb or virtual", "--device",
		   VIRT_DEV("{\"virtual\": {}, \"usb\": [{\"vendor\": \"1\"}]}"));
	EXPECT_ERR("--device #1: groups[0].virtual: expected a map, got an integer (3)", "--device",
		   VIRT_DEV("{\"virtual\": 3}"));
	EXPECT_ERR("--device #1: groups[0].virtual.envPrefix: \"1X_\" cannot start an "
		   "environment variable name",
		   "--device", VIRT_DEV("{\"virtual\": {\"envPrefix\": \"1X_\"}}"));
	EXPECT_ERR("--device #1: groups[0].virtual.envPrefix: \"A=\" cannot start", "--device",
		   VIRT_DEV("{\"virtual\": {\"envPrefix\": \"A=\"}}"));
	EXPECT_ERR("--device #1: groups[0].idPrefix: unknown key (it belongs in an entry of the "
		   "group's paths, usb or virtual)",
		   "--device", VIRT_DEV("{\"virtual\": {}, \"idPrefix\": \"x\"}"));
	/* From a file, with the line. */
	char path[128], want[512];
	write_file(path, sizeof(path), "virt-bad.yaml",
		   "devices:\n"
		   "  - name: sim\n"
		   "    groups:\n"
		   "      - virtual:\n"
		   "          count: 2\n"
		   "          deviceFilePrefix: sim/\n");
	snprintf(want, sizeof(want),
		 "%s:6: devices[0].groups[0].virtual.deviceFilePrefix: \"sim/\" must name a file",
		 path);
	EXPECT_ERR(want, "--config", path);
}

/* ---- env and annotations templates ---- */

TEST(group_decorations)
{
	struct config c;
	EXPECT_OK(&c, "--device",
		  "{\"name\": \"a\", \"groups\": [{\"paths\": [{\"path\": \"/dev/a*\"}], "
		  "\"env\": {\"DEV_{index}\": \"{host}\", \"PLAIN\": \"x\", \"EMPTY\": null, "
		  "\"NUM\": 5, \"BRACE\": \"{{literal}}\"}, "
		  "\"annotations\": {\"example.com/dev-{index}\": \"{id}@{container[1]}\"}}]}");
	const struct cfg_group *g = &c.devices[0].groups[0];
	CHECK_INT(g->n_env, 5);
	if (g->n_env == 5) {
		CHECK_STR(g->env[0].key, "DEV_{index}");
		CHECK_STR(g->env[0].value, "{host}");
		CHECK_STR(g->env[1].key, "PLAIN");
		CHECK_STR(g->env[1].value, "x");
		CHECK_STR(g->env[2].value, ""); /* null: empty */
		CHECK_STR(g->env[3].value, "5");
		CHECK_STR(g->env[4].value, "{{literal}}");
	}
	CHECK_INT(g->n_annotations, 1);
	if (g->n_annotations == 1) {
		CHECK_STR(g->annotations[0].key, "example.com/dev-{index}");
		CHECK_STR(g->annotations[0].value, "{id}@{container[1]}");
	}
	config_free(&c);

	/* USB facts are known in usb groups. */
	EXPECT_OK(&c, "--device",
		  "{\"name\": \"u\", \"groups\": [{\"usb\": [{\"vendor\": \"1a86\"}], "
		  "\"env\": {\"TTY\": \"{tty}\", \"V_{vendor}\": \"{serial}\"}}]}");
	CHECK_INT(c.devices[0].groups[0].n_env, 2);
	config_free(&c);
}

#define DECOR_DEV(kind, decor) "{\"name\": \"a\", \"groups\": [{" kind ", " decor "}]}"
#define KIND_PATHS	       "\"paths\": [{\"path\": \"/dev/a\"}]"
#define KIND_VIRT	       "\"virtual\": {}"

TEST(group_decoration_errors)
{
	EXPECT_ERR("--device #1: groups[0].env.X: value \"{vendr}\": unknown placeholder "
		   "\"{vendr}\" at offset 0",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"X\": \"{vendr}\"}"));
	EXPECT_ERR("--device #1: groups[0].env.X: value \"a{tty}\": placeholder \"{tty}\" at "
		   "offset 1 is only known for usb groups",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"X\": \"a{tty}\"}"));
	EXPECT_ERR("--device #1: groups[0].annotations.x/{vendor}: key \"x/{vendor}\": "
		   "placeholder \"{vendor}\" at offset 2 is only known for usb groups",
		   "--device", DECOR_DEV(KIND_VIRT, "\"annotations\": {\"x/{vendor}\": \"v\"}"));
	EXPECT_ERR("--device #1: groups[0].annotations.k: value \"{id\": unterminated \"{\"",
		   "--device", DECOR_DEV(KIND_PATHS, "\"annotations\": {\"k\": \"{id\"}"));
	EXPECT_ERR("--device #1: groups[0].env.A=B: not a valid environment variable name",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"A=B\": \"x\"}"));
	EXPECT_ERR("--device #1: groups[0].env.1A: not a valid environment variable name",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"1A\": \"x\"}"));
	EXPECT_ERR("--device #1: groups[0].env.X: expected a string, got a map", "--device",
		   DECOR_DEV(KIND_PATHS, "\"env\": {\"X\": {\"a\": 1}}"));
	EXPECT_ERR("--device #1: groups[0].env.X: expected a string, got a boolean (true): quote "
		   "it",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"X\": true}"));
	EXPECT_ERR("--device #1: groups[0].annotations.k: expected a string, got a list",
		   "--device", DECOR_DEV(KIND_PATHS, "\"annotations\": {\"k\": []}"));
	EXPECT_ERR("--device #1: groups[0].env: expected a map, got a list", "--device",
		   DECOR_DEV(KIND_PATHS, "\"env\": [\"A=1\"]"));
	EXPECT_ERR("--device #1: groups[0].env: empty key", "--device",
		   DECOR_DEV(KIND_PATHS, "\"env\": {\"\": \"x\"}"));
	/* Annotation keys may hold '=' and start with a digit; env keys not. */
	struct config c;
	EXPECT_OK(&c, "--device", DECOR_DEV(KIND_PATHS, "\"annotations\": {\"1a=b\": \"x\"}"));
	CHECK_INT(c.devices[0].groups[0].n_annotations, 1);
	config_free(&c);

	/* From a file: file, line and the full field path. */
	char path[128], want[512];
	write_file(path, sizeof(path), "decor.yaml",
		   "devices:\n"
		   "  - name: a\n"
		   "    groups:\n"
		   "      - paths: [{path: /dev/a}]\n"
		   "        env:\n"
		   "          OK: \"{id}\"\n"
		   "          KEY: \"{bogus}\"\n");
	snprintf(want, sizeof(want),
		 "%s:7: devices[0].groups[0].env.KEY: value \"{bogus}\": unknown placeholder",
		 path);
	EXPECT_ERR(want, "--config", path);
}

/* An env key whose literal first character is a digit is refused whatever
 * follows; one that starts with a placeholder cannot be judged at load. */
TEST(env_key_leading_digit_before_placeholder)
{
	EXPECT_ERR("--device #1: groups[0].env.1{index}: not a valid environment variable name",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"1{index}\": \"x\"}"));
	EXPECT_ERR("--device #1: groups[0].env.9_{id}: not a valid environment variable name",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"9_{id}\": \"x\"}"));
	EXPECT_ERR("--device #1: groups[0].env.2{{x}}: not a valid environment variable name",
		   "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"2{{x}}\": \"x\"}"));
	struct config c;
	EXPECT_OK(&c, "--device", DECOR_DEV(KIND_PATHS, "\"env\": {\"{resource}_X\": \"x\"}"));
	CHECK_INT(c.devices[0].groups[0].n_env, 1);
	config_free(&c);
}

/* ---- $USBDP_VIRTUAL_RESOURCE ---- */

static const char *const virt_vars[] = {
    "USBDP_VIRTUAL_RESOURCE",	       "USBDP_VIRTUAL_COUNT",
    "USBDP_VIRTUAL_ID_PREFIX",	       "USBDP_VIRTUAL_ENV_PREFIX",
    "USBDP_VIRTUAL_ANNOTATION_PREFIX", "USBDP_VIRTUAL_DEVICE_FILE_PREFIX"};

static void unset_virt_vars(void)
{
	for (size_t i = 0; i < sizeof(virt_vars) / sizeof(virt_vars[0]); i++)
		unsetenv(virt_vars[i]);
}

TEST(env_virtual_resource)
{
	struct config c;
	setenv("USBDP_VIRTUAL_RESOURCE", "sim", 1);
	setenv("USBDP_VIRTUAL_COUNT", "4", 1);
	setenv("USBDP_VIRTUAL_ID_PREFIX", "s", 1);
	setenv("USBDP_VIRTUAL_ENV_PREFIX", "SIM_", 1);
	setenv("USBDP_VIRTUAL_ANNOTATION_PREFIX", "sim.io/", 1);
	setenv("USBDP_VIRTUAL_DEVICE_FILE_PREFIX", "/dev/sim", 1);
	/* No config file, no --device: the variables alone make a device. */
	EXPECT_OK(&c, "--log-level", "info");
	CHECK(c.config_file == NULL);
	CHECK_INT(c.n_devices, 1);
	if (c.n_devices == 1) {
		CHECK_STR(c.devices[0].name, "sim");
		CHECK_INT(c.devices[0].n_groups, 1);
		const struct cfg_group *g = &c.devices[0].groups[0];
		CHECK(g->virt != NULL);
		if (g->virt) {
			CHECK_INT(g->virt->count, 4);
			CHECK_STR(g->virt->id_prefix, "s");
			CHECK_STR(g->virt->device_file_prefix, "/dev/sim-");
		}
		CHECK_INT(g->count, 1);
		if (g->n_env == 1)
			CHECK_STR(g->env[0].key, "SIM__{id}");
		CHECK_INT(g->n_env, 1);
		if (g->n_annotations == 1)
			CHECK_STR(g->annotations[0].key, "sim.io/-{id}");
		CHECK_INT(g->n_annotations, 1);
	}
	config_free(&c);

	/* Empty companions count as unset; added after the --device ones. */
	setenv("USBDP_VIRTUAL_COUNT", "", 1);
	unsetenv("USBDP_VIRTUAL_ID_PREFIX");
	unsetenv("USBDP_VIRTUAL_ENV_PREFIX");
	unsetenv("USBDP_VIRTUAL_ANNOTATION_PREFIX");
	unsetenv("USBDP_VIRTUAL_DEVICE_FILE_PREFIX");
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK_INT(c.n_devices, 2);
	if (c.n_devices == 2) {
		CHECK_STR(c.devices[0].name, "fuse");
		CHECK_STR(c.devices[1].name, "sim");
		const struct cfg_group *g = &c.devices[1].groups[0];
		if (g->virt) {
			CHECK_INT(g->virt->count, 1);
			CHECK_STR(g->virt->id_prefix, "virtual");
			CHECK(g->virt->device_file_prefix == NULL);
		}
		CHECK_INT(g->n_env, 0);
	}
	config_free(&c);

	/* With a config file's devices too. */
	char path[128];
	write_file(path, sizeof(path), "envvirt.yaml",
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\n");
	EXPECT_OK(&c, "--config", path);
	CHECK_INT(c.n_devices, 2);
	if (c.n_devices == 2)
		CHECK_STR(c.devices[1].name, "sim");
	config_free(&c);

	/* An empty name: off. */
	setenv("USBDP_VIRTUAL_RESOURCE", "", 1);
	EXPECT_ERR("no devices configured", "--log-level", "info");
	unset_virt_vars();
}

TEST(env_virtual_errors)
{
	setenv("USBDP_VIRTUAL_RESOURCE", "fuse", 1);
	EXPECT_ERR("$USBDP_VIRTUAL_RESOURCE: \"fuse\" is also the name of a configured device",
		   "--device", DEV_FUSE);
	char path[128];
	write_file(path, sizeof(path), "envclash.yaml", "devices: [" DEV_FUSE "]\n");
	EXPECT_ERR("$USBDP_VIRTUAL_RESOURCE: \"fuse\" is also the name of a configured device",
		   "--config", path);

	setenv("USBDP_VIRTUAL_RESOURCE", "Sim", 1);
	EXPECT_ERR("$USBDP_VIRTUAL_*: name: \"Sim\" is not a valid name", "--log-level", "info");
	setenv("USBDP_VIRTUAL_RESOURCE", "sim", 1);
	setenv("USBDP_VIRTUAL_COUNT", "0", 1);
	EXPECT_ERR("$USBDP_VIRTUAL_*: groups[0].virtual.count: must be at least 1, got 0",
		   "--log-level", "info");
	setenv("USBDP_VIRTUAL_COUNT", "four", 1);
	EXPECT_ERR("$USBDP_VIRTUAL_*: groups[0].virtual.count: expected an integer, got a string "
		   "(four)",
		   "--log-level", "info");
	unsetenv("USBDP_VIRTUAL_COUNT");
	setenv("USBDP_VIRTUAL_ID_PREFIX", "a:b", 1);
	EXPECT_ERR("$USBDP_VIRTUAL_*: groups[0].virtual.idPrefix: \"a:b\" must be a non-empty",
		   "--log-level", "info");
	unsetenv("USBDP_VIRTUAL_ID_PREFIX");
	setenv("USBDP_VIRTUAL_ENV_PREFIX", "9X", 1);
	EXPECT_ERR("$USBDP_VIRTUAL_*: groups[0].virtual.envPrefix: \"9X\" cannot start",
		   "--log-level", "info");
	unsetenv("USBDP_VIRTUAL_ENV_PREFIX");
	setenv("USBDP_VIRTUAL_DEVICE_FILE_PREFIX", "dev/../sim", 1);
	EXPECT_ERR("$USBDP_VIRTUAL_*: groups[0].virtual.deviceFilePrefix: \"dev/../sim\" must name",
		   "--log-level", "info");
	unset_virt_vars();
}

/* ---- the simple device plugin's variables and rendered file ---- */

static const char *const sim_vars[] = {"RESOURCE_NAME",	    "NUMBER_DEVICES", "PLUGIN_NAME",
				       "DEVICE_ID_PREFIX",  "ENV_PREFIX",     "ANNOTATION_PREFIX",
				       "DEVICE_FILE_PREFIX"};

static void unset_sim_vars(void)
{
	for (size_t i = 0; i < sizeof(sim_vars) / sizeof(sim_vars[0]); i++)
		unsetenv(sim_vars[i]);
}

/* The one device of a simulator config, checked against what is given. */
static void check_sim(const struct config *c, const char *domain, const char *name, unsigned count,
		      const char *id_prefix, size_t n_env, size_t n_ann, const char *file_prefix)
{
	CHECK_INT(c->n_devices, 1);
	if (c->n_devices != 1)
		return;
	const struct cfg_device *d = &c->devices[0];
	CHECK_STR(d->name, name);
	if (domain)
		CHECK_STR(d->domain, domain);
	else
		CHECK(d->domain == NULL);
	const struct cfg_group *g = &d->groups[0];
	CHECK(g->virt != NULL);
	if (!g->virt)
		return;
	CHECK_INT(g->virt->count, count);
	CHECK_STR(g->virt->id_prefix, id_prefix);
	if (file_prefix)
		CHECK_STR(g->virt->device_file_prefix, file_prefix);
	else
		CHECK(g->virt->device_file_prefix == NULL);
	CHECK_INT(g->n_env, n_env);
	CHECK_INT(g->n_annotations, n_ann);
}

TEST(simulator_variables)
{
	struct config c;
	unset_sim_vars();
	/* Its defaults, once any of its variables is set. */
	setenv("NUMBER_DEVICES", "2", 1);
	EXPECT_OK(&c, "--log-level", "info");
	check_sim(&c, "example.com", "simple-device", 2, "simple-device", 0, 0, NULL);
	CHECK_STR(c.domain, CONFIG_DEFAULT_DOMAIN); /* the others' domain is untouched */
	config_free(&c);
	setenv("RESOURCE_NAME", "nvidia.com/gpu", 1);
	setenv("NUMBER_DEVICES", "3", 1);
	setenv("DEVICE_ID_PREFIX", "gpu-device", 1);
	setenv("ENV_PREFIX", "GPU_DEVICE", 1);
	setenv("ANNOTATION_PREFIX", "sim.example.com/gpu", 1);
	setenv("DEVICE_FILE_PREFIX", "/gpu", 1);
	setenv("PLUGIN_NAME", "other", 1);
	EXPECT_OK(&c, "--log-level", "info");
	check_sim(&c, "nvidia.com", "gpu", 3, "gpu-device", 1, 1, "/dev/gpu-");
	const struct cfg_group *g = &c.devices[0].groups[0];
	if (g->n_env == 1 && g->n_annotations == 1) {
		CHECK_STR(g->env[0].key, "GPU_DEVICE_{id}");
		CHECK_STR(g->env[0].value, "/dev/{id}");
		CHECK_STR(g->annotations[0].key, "sim.example.com/gpu-{id}");
		CHECK_STR(g->annotations[0].value, "");
	}
	config_free(&c);
	/* No domain in the name: the plugin's. */
	setenv("RESOURCE_NAME", "gpu", 1);
	EXPECT_OK(&c, "--domain", "sim.example.com");
	check_sim(&c, NULL, "gpu", 3, "gpu-device", 1, 1, "/dev/gpu-");
	config_free(&c);
	/* Beside --device flags. */
	EXPECT_OK(&c, "--domain", "x.io", "--device", DEV_FUSE);
	CHECK_INT(c.n_devices, 2);
	config_free(&c);

	setenv("NUMBER_DEVICES", "0", 1);
	EXPECT_ERR("$NUMBER_DEVICES: expected a number of devices from 1 to 10000, got \"0\"",
		   "--log-level", "info");
	setenv("NUMBER_DEVICES", "2", 1);
	setenv("RESOURCE_NAME", "Nvidia.com/gpu", 1);
	EXPECT_ERR("$RESOURCE_NAME: \"Nvidia.com\" is not a valid DNS-1123 subdomain",
		   "--log-level", "info");
	setenv("RESOURCE_NAME", "k8s.kubernetes.io/gpu", 1);
	EXPECT_ERR("$RESOURCE_NAME: \"k8s.kubernetes.io\" is reserved", "--log-level", "info");
	unset_sim_vars();
}

TEST(simulator_file)
{
	struct config c;
	char path[128], want[256];
	unset_sim_vars();
	/* As its deploy step renders its template with its defaults. */
	write_file(path, sizeof(path), "device_plugin_config.yaml",
		   "resourceName: example.com/simple-device\n"
		   "numberDevicesOnNode: 2\n"
		   "pluginName: simple-device-plugin\n"
		   "deviceIDPrefix: simple-device\n"
		   "annotationPrefix: \n"
		   "envPrefix: \n"
		   "deviceFilePrefix: \n");
	EXPECT_OK(&c, "--config", path);
	CHECK_INT(c.format, CFG_FORMAT_SIM);
	check_sim(&c, "example.com", "simple-device", 2, "simple-device", 0, 0, NULL);
	CHECK_STR(c.domain, CONFIG_DEFAULT_DOMAIN);
	config_free(&c);
	/* Keys left out: its defaults; and the format can be named. */
	write_file(path, sizeof(path), "sim2.yaml", "numberDevicesOnNode: 4\nenvPrefix: SIM\n");
	EXPECT_OK(&c, "--config", path, "--config-format", "simple-device-plugin");
	check_sim(&c, "example.com", "simple-device", 4, "simple-device", 1, 0, NULL);
	config_free(&c);
	write_file(path, sizeof(path), "sim3.yaml", "resourceName: a.io/x\nnumberDevices: 4\n");
	snprintf(want, sizeof(want), "%s:2: numberDevices: unknown key", path);
	EXPECT_ERR(want, "--config", path);
	write_file(path, sizeof(path), "sim4.yaml",
		   "resourceName: a.io/x\nnumberDevicesOnNode: x\n");
	snprintf(want, sizeof(want),
		 "%s:2: numberDevicesOnNode: expected a number of devices from 1 to 10000", path);
	EXPECT_ERR(want, "--config", path);
	EXPECT_ERR("--config-format: simple-device-plugin: no config file (give --config)",
		   "--config-format", "simple-device-plugin");
}

TEST(gdp_domain_kept)
{
	struct config c;
	char path[128];
	unsetenv("DOMAIN");
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK_STR(c.domain, CONFIG_GDP_DOMAIN);
	config_free(&c);
	EXPECT_OK(&c, "--device", DEV_FUSE, "--domain", CONFIG_DEFAULT_DOMAIN);
	CHECK_STR(c.domain, CONFIG_DEFAULT_DOMAIN);
	config_free(&c);
	setenv("DOMAIN", "x.example", 1);
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK_STR(c.domain, "x.example");
	config_free(&c);
	unsetenv("DOMAIN");
	write_file(path, sizeof(path), "dom.yaml", "domain: y.example\n");
	EXPECT_OK(&c, "--config", path, "--device", DEV_FUSE);
	CHECK_STR(c.domain, "y.example");
	config_free(&c);
	/* Our own file, no domain: ours. */
	write_file(path, sizeof(path), "ours.yaml", "devices: [" DEV_FUSE "]\n");
	EXPECT_OK(&c, "--config", path);
	CHECK_STR(c.domain, CONFIG_DEFAULT_DOMAIN);
	config_free(&c);
}

/* ---- CDI, node name ---- */

TEST(cdi_settings)
{
	struct config c;
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK(!c.cdi);
	CHECK_STR(c.cdi_dir, CONFIG_DEFAULT_CDI_DIR);
	config_free(&c);
	EXPECT_OK(&c, "--cdi", "--device", DEV_FUSE);
	CHECK(c.cdi);
	config_free(&c);
	EXPECT_OK(&c, "--device", DEV_FUSE, "--cdi"); /* last, with no value */
	CHECK(c.cdi);
	config_free(&c);
	EXPECT_OK(&c, "--cdi=false", "--device", DEV_FUSE);
	CHECK(!c.cdi);
	config_free(&c);
	EXPECT_OK(&c, "--cdi=true", "--cdi-dir", "/run/cdi", "--device", DEV_FUSE);
	CHECK(c.cdi);
	CHECK_STR(c.cdi_dir, "/run/cdi");
	config_free(&c);
	EXPECT_ERR("--cdi: expected true or false, got \"maybe\"", "--cdi=maybe", "--device",
		   DEV_FUSE);
	EXPECT_ERR("--cdi-dir: must be an absolute directory path, got \"cdi\"", "--cdi-dir", "cdi",
		   "--device", DEV_FUSE);

	/* The environment, below the flags. */
	setenv("CDI", "true", 1);
	setenv("CDI_DIR", "/env/cdi", 1);
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK(c.cdi);
	CHECK_STR(c.cdi_dir, "/env/cdi");
	config_free(&c);
	EXPECT_OK(&c, "--cdi=false", "--cdi-dir=/flag/cdi", "--device", DEV_FUSE);
	CHECK(!c.cdi);
	CHECK_STR(c.cdi_dir, "/flag/cdi");
	config_free(&c);
	setenv("CDI", "sometimes", 1);
	EXPECT_ERR("$CDI: expected true or false, got \"sometimes\"", "--device", DEV_FUSE);
	setenv("CDI", "", 1);
	setenv("CDI_DIR", "rel/cdi", 1);
	EXPECT_ERR("$CDI_DIR: must be an absolute directory path, got \"rel/cdi\"", "--device",
		   DEV_FUSE);
	unsetenv("CDI");
	unsetenv("CDI_DIR");

	/* The file, below the environment. */
	char path[128], want[512];
	write_file(path, sizeof(path), "cdi.yaml",
		   "cdi: true\ncdi-dir: /file/cdi\n"
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\n");
	EXPECT_OK(&c, "--config", path);
	CHECK(c.cdi);
	CHECK_STR(c.cdi_dir, "/file/cdi");
	config_free(&c);
	setenv("CDI", "0", 1);
	EXPECT_OK(&c, "--config", path);
	CHECK(!c.cdi);
	config_free(&c);
	unsetenv("CDI");
	write_file(path, sizeof(path), "cdi2.yaml",
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\ncdi: maybe\n");
	snprintf(want, sizeof(want), "%s:2: cdi: expected true or false, got \"maybe\"", path);
	EXPECT_ERR(want, "--config", path);
	write_file(path, sizeof(path), "cdi3.yaml",
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\ncdi-dir: x/y\n");
	snprintf(want, sizeof(want), "%s:2: cdi-dir: must be an absolute directory path", path);
	EXPECT_ERR(want, "--config", path);
	write_file(path, sizeof(path), "cdi4.yaml",
		   "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\ncdi: [true]\n");
	snprintf(want, sizeof(want), "%s:2: cdi: expected a string, got a list", path);
	EXPECT_ERR(want, "--config", path);

	/* A CDI vendor starts with a letter; the domain need not without --cdi. */
	EXPECT_ERR("cdi: the domain \"1example.com\" cannot be a CDI vendor (it must start with a "
		   "letter)",
		   "--cdi", "--domain", "1example.com", "--device", DEV_FUSE);
	EXPECT_OK(&c, "--domain", "1example.com", "--device", DEV_FUSE);
	CHECK_STR(c.domain, "1example.com");
	CHECK(!c.cdi);
	config_free(&c);
}

/* "cdi: on" (or yes/YES/On/ON) is a YAML boolean -- the file reader
 * classifies it as one and other boolean fields accept it ("optional: On");
 * refused as "expected true or false" before 602ac32. */
TEST(cdi_yaml_booleans)
{
	static const char *const words[] = {"on", "On", "ON", "YES", "off", "OFF", "NO"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		char path[128], text[160];
		snprintf(text, sizeof(text),
			 "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\ncdi: %s\n",
			 words[i]);
		write_file(path, sizeof(path), "cdi-bool.yaml", text);
		struct config c;
		char err[512] = "";
		int r = LOAD(&c, err, "--config", path);
		CHECK_INT(r, 0);
		if (r != 0) {
			fprintf(stderr, "  cdi: %s: %s\n", words[i], err);
			continue;
		}
		CHECK_INT(c.cdi, i < 4);
		config_free(&c);
	}
}

TEST(node_name)
{
	struct config c;
	setenv("NODE_NAME", "Worker_1.Example:X", 1);
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK_STR(c.node_name, "worker-1.example-x");
	config_free(&c);
	/* Unset or empty: the host name, made the same way. */
	setenv("NODE_NAME", "", 1);
	EXPECT_OK(&c, "--device", DEV_FUSE);
	CHECK(c.node_name && *c.node_name);
	for (const char *p = c.node_name; p && *p; p++)
		CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '-');
	char host[256] = "";
	if (gethostname(host, sizeof(host)) == 0 && host[0]) {
		host[sizeof(host) - 1] = '\0';
		CHECK_INT(strlen(c.node_name), strlen(host));
	}
	config_free(&c);
	unsetenv("NODE_NAME");
}

static void setup(const char *argv0)
{
	(void)argv0;
	static const char *const vars[] = {
	    "DOMAIN",	     "LISTEN", "LOG_LEVEL", "PLUGIN_DIRECTORY", "GRACE_PERIOD",
	    "CONFIG_FORMAT", "CDI",    "CDI_DIR",   "NODE_NAME"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	unset_virt_vars();
	if (!realpath("config/default.yaml", default_yaml))
		default_yaml[0] = '\0';
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (!mkdtemp(tmpdir) || chdir(tmpdir) != 0) {
		perror("test_config: temporary directory");
		exit(1);
	}
}

static void teardown(void)
{
	char cmd[128];
	if (chdir("/") != 0)
		return;
	int n = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (n > 0 && (size_t)n < sizeof(cmd) && system(cmd) != 0)
		fprintf(stderr, "test_config: could not remove %s\n", tmpdir);
}

int main(int argc, char **argv)
{
	(void)argc;
	setup(argv[0]);
	RUN(defaults);
	RUN(flags_both_forms);
	RUN(grace_periods);
	RUN(bad_flags);
	RUN(usb_globs_checked_at_load);
	RUN(mount_paths_normalized);
	RUN(bad_domains);
	RUN(help_and_version);
	RUN(no_devices);
	RUN(env_and_file_precedence);
	RUN(file_settings_errors);
	RUN(device_alias_key);
	RUN(default_file_lookup);
	RUN(shipped_default_config);
	RUN(bad_json_device);
	RUN(yaml_flow_device);
	RUN(bad_yaml_file);
	RUN(json_file);
	RUN(unknown_keys);
	RUN(wrong_types);
	RUN(size_limits);
	RUN(names);
	RUN(duplicate_names);
	RUN(groups);
	RUN(path_entries);
	RUN(ignored_fields_warn);
	RUN(usb_entries);
	RUN(unquoted_hex_in_yaml);
	RUN(old_schema);
	RUN(file_devices_replaced_but_checked);
	RUN(long_message_truncated);
	RUN(cfgtree_yaml);
	RUN(cfgtree_json);
	RUN(json_control_characters);
	RUN(json_escaped_nul);
	RUN(sdm_file);
	RUN(config_format_choice);
	RUN(config_format_checked_without_file);
	RUN(config_format_env_named_without_file);
	RUN(sdm_auto_detection);
	RUN(sdm_errors);
	RUN(virtual_groups);
	RUN(virtual_errors);
	RUN(group_decorations);
	RUN(group_decoration_errors);
	RUN(env_key_leading_digit_before_placeholder);
	RUN(env_virtual_resource);
	RUN(env_virtual_errors);
	RUN(simulator_variables);
	RUN(simulator_file);
	RUN(gdp_domain_kept);
	RUN(cdi_settings);
	RUN(cdi_yaml_booleans);
	RUN(node_name);
	teardown();
	return CHECK_SUMMARY();
}
