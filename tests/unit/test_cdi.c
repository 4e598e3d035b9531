/* CDI specs: kinds and device names as the spec and its parser allow them,
 * the spec JSON of hand-made snapshots (parsed back with cJSON), and the
 * atomic spec file in a temporary directory. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdi.h"
#include "check.h"
#include "log.h"

#define KIND "usb-device-plugin.dev/ttyUSB0"

/* ---- building snapshots ---- */

static struct dev_node dnode(const char *host, const char *ctr, const char *perms)
{
	struct dev_node n = {.host_path = strdup(host), .container_path = strdup(ctr)};
	snprintf(n.permissions, sizeof(n.permissions), "%s", perms);
	return n;
}

static struct dev_node mnode(const char *host, const char *ctr, bool ro)
{
	struct dev_node n = {.host_path = strdup(host), .container_path = strdup(ctr)};
	n.mount = true;
	n.read_only = ro;
	return n;
}

/* A healthy instance with ID id (NULL: none) and nodes[0..n) (taken). */
static struct snap_instance inst(const char *id, const struct dev_node *nodes, size_t n)
{
	struct snap_instance si = {.healthy = true};
	si.inst.key = strdup(id ? id : "no-id");
	if (id) {
		si.inst.count = 1;
		si.inst.ids = calloc(1, sizeof(char *));
		si.inst.ids[0] = strdup(id);
	}
	si.inst.nodes = calloc(n ? n : 1, sizeof(*nodes));
	if (n)
		memcpy(si.inst.nodes, nodes, n * sizeof(*nodes));
	si.inst.n_nodes = n;
	return si;
}

/* A healthy instance with ID id and one Device node /dev/<id>. */
static struct snap_instance simple(const char *id)
{
	struct dev_node n = dnode("/dev/ttyUSB0", "/dev/ttyUSB0", "rw");
	return inst(id, &n, 1);
}

static struct snapshot snap(struct snap_instance *a, size_t n)
{
	return (struct snapshot){.refs = 1, .instances = a, .n_instances = n};
}

static void snap_clear(struct snapshot *s)
{
	for (size_t i = 0; i < s->n_instances; i++)
		dev_instance_clear(&s->instances[i].inst);
}

/* cdi_spec_json of s parsed back; NULL (and a failed check) on error. */
static cJSON *spec_of(const char *kind, const struct snapshot *s)
{
	char *text = NULL;
	int r = cdi_spec_json(kind, s, &text);
	CHECK_INT(r, 0);
	if (r < 0)
		return NULL;
	size_t len = strlen(text);
	CHECK(len > 2 && text[len - 1] == '\n' && text[len - 2] != '\n');
	cJSON *j = cJSON_Parse(text);
	CHECK(j != NULL);
	free(text);
	return j;
}

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *device_at(const cJSON *spec, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(spec, "devices"), i);
}

static const cJSON *edits_at(const cJSON *spec, int i, const char *key)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(device_at(spec, i), "containerEdits");
	return cJSON_GetObjectItemCaseSensitive(e, key);
}

static int n_devices(const cJSON *spec)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(spec, "devices"));
}

/* ---- names ---- */

TEST(test_kind)
{
	char buf[CDI_KIND_MAX];
	char long_name[80];

	CHECK_INT(cdi_kind("usb-device-plugin.dev", "ttyUSB0", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "usb-device-plugin.dev/ttyUSB0");
	/* '.' in the class needs cdiVersion 0.6.0. */
	CHECK_INT(cdi_kind("usb-device-plugin.dev", "vcsm.cma", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "usb-device-plugin.dev/vcsm_cma");
	CHECK_INT(cdi_kind("squat.ai", "serial_port-1", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "squat.ai/serial_port-1");
	/* The parser wants a letter first, a letter or digit last. */
	CHECK_INT(cdi_kind("squat.ai", "3dprinter", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "squat.ai/d3dprinter");
	CHECK_INT(cdi_kind("squat.ai", "a/b c.", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "squat.ai/a_b_c_d");

	/* Class: at most 63 characters. */
	memset(long_name, 'a', 63);
	long_name[63] = '\0';
	CHECK_INT(cdi_kind("squat.ai", long_name, buf, sizeof(buf)), 0);
	CHECK_INT(strlen(buf), strlen("squat.ai/") + 63);
	long_name[0] = '1'; /* 'd' in front makes 64 */
	CHECK_INT(cdi_kind("squat.ai", long_name, buf, sizeof(buf)), -ENAMETOOLONG);
	long_name[0] = 'a';
	long_name[63] = 'a';
	long_name[64] = '\0';
	CHECK_INT(cdi_kind("squat.ai", long_name, buf, sizeof(buf)), -ENAMETOOLONG);

	/* Vendors CDI refuses. */
	CHECK_INT(cdi_kind("3com.example", "x", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_kind("example.com.", "x", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_kind("exa/mple.com", "x", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_kind("", "x", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_kind("squat.ai", "", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_kind(NULL, "x", buf, sizeof(buf)), -EINVAL);
	char vendor[300];
	memset(vendor, 'v', 254);
	vendor[254] = '\0';
	CHECK_INT(cdi_kind(vendor, "x", buf, sizeof(buf)), -ENAMETOOLONG);
	vendor[253] = '\0';
	CHECK_INT(cdi_kind(vendor, "x", buf, sizeof(buf)), 0);
	CHECK_INT(strlen(buf), 253 + 2);

	/* The buffer: exactly enough, one short. */
	CHECK_INT(cdi_kind("squat.ai", "tty", buf, 13), 0);
	CHECK_STR(buf, "squat.ai/tty");
	CHECK_INT(cdi_kind("squat.ai", "tty", buf, 12), -ENAMETOOLONG);
}

/* What cdi_device_name gives for ID id in kind KIND, "=" and after. */
static void check_devname(const char *id, const char *want)
{
	struct snap_instance si = simple(id);
	char buf[256], full[256];

	snprintf(full, sizeof(full), "%s=%s", KIND, want);
	CHECK_INT(cdi_device_name(KIND, &si.inst, buf, sizeof(buf)), 0);
	CHECK_STR(buf, full);
	dev_instance_clear(&si.inst);
}

TEST(test_device_name)
{
	check_devname("1a86-7523-port-1-1.4", "1a86-7523-port-1-1.4");
	check_devname("0a1b", "0a1b"); /* a digit first: fine from 0.5.0 */
	check_devname("a/b", "a_b");
	check_devname("x y", "x_y");
	check_devname("-lead", "d-lead");
	check_devname("trail.", "trail.d");
	check_devname("_", "d_d");
	check_devname("ok:colon", "ok_colon"); /* the parser takes ':', the spec's text not */
	check_devname("\xc3\xa9t\xc3\xa9", "d__t__d");

	struct snap_instance si = simple("abc");
	char buf[64];
	CHECK_INT(cdi_device_name("v.io/c", &si.inst, buf, sizeof("v.io/c=abc")), 0);
	CHECK_STR(buf, "v.io/c=abc");
	CHECK_INT(cdi_device_name("v.io/c", &si.inst, buf, sizeof("v.io/c=abc") - 1),
		  -ENAMETOOLONG);
	CHECK_INT(cdi_device_name("v.io/c", &si.inst, buf, 4), -ENAMETOOLONG);
	CHECK_INT(cdi_device_name("noslash", &si.inst, buf, sizeof(buf)), -EINVAL);
	dev_instance_clear(&si.inst);

	si = inst(NULL, NULL, 0);
	CHECK_INT(cdi_device_name("v.io/c", &si.inst, buf, sizeof(buf)), -EINVAL);
	dev_instance_clear(&si.inst);
}

/* ---- the spec ---- */

TEST(test_spec_edits)
{
	struct dev_node nodes[] = {
	    mnode("/run/udev/data", "/run/udev/data", true),
	    dnode("/dev/ttyUSB0", "/dev/ttyUSB0", "rw"),
	    dnode("/dev/bus/usb/001/004", "/dev/bus/usb/001/004", "mrw"),
	    mnode("/var/lib/dev-state", "/state", false),
	};
	struct snap_instance a[] = {inst("1a86-7523-port-1-1.4", nodes, 4)};
	struct snapshot s = snap(a, 1);

	cJSON *j = spec_of(KIND, &s);
	/* Keys in this order. */
	const cJSON *k = j ? j->child : NULL;
	CHECK(k && strcmp(k->string, "cdiVersion") == 0 && cJSON_IsString(k));
	CHECK(k && k->next && strcmp(k->next->string, "kind") == 0);
	CHECK(k && k->next && k->next->next && strcmp(k->next->next->string, "devices") == 0);
	CHECK(k && k->next && k->next->next && !k->next->next->next);
	CHECK_STR(str_at(j, "cdiVersion"), "0.5.0");
	CHECK_STR(str_at(j, "cdiVersion"), CDI_VERSION);
	CHECK_STR(str_at(j, "kind"), KIND);
	CHECK_INT(n_devices(j), 1);
	CHECK_STR(str_at(device_at(j, 0), "name"), "1a86-7523-port-1-1.4");

	const cJSON *dn = edits_at(j, 0, "deviceNodes");
	CHECK_INT(cJSON_GetArraySize(dn), 2);
	CHECK_STR(str_at(cJSON_GetArrayItem(dn, 0), "path"), "/dev/ttyUSB0");
	CHECK_STR(str_at(cJSON_GetArrayItem(dn, 0), "hostPath"), "/dev/ttyUSB0");
	CHECK_STR(str_at(cJSON_GetArrayItem(dn, 0), "permissions"), "rw");
	CHECK_STR(str_at(cJSON_GetArrayItem(dn, 1), "path"), "/dev/bus/usb/001/004");
	CHECK_STR(str_at(cJSON_GetArrayItem(dn, 1), "permissions"), "mrw");

	const cJSON *mn = edits_at(j, 0, "mounts");
	CHECK_INT(cJSON_GetArraySize(mn), 2);
	const cJSON *m0 = cJSON_GetArrayItem(mn, 0), *m1 = cJSON_GetArrayItem(mn, 1);
	CHECK_STR(str_at(m0, "hostPath"), "/run/udev/data");
	CHECK_STR(str_at(m0, "containerPath"), "/run/udev/data");
	const cJSON *o0 = cJSON_GetObjectItemCaseSensitive(m0, "options");
	CHECK_INT(cJSON_GetArraySize(o0), 2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(o0, 0)), "rbind");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(o0, 1)), "ro");
	CHECK_STR(str_at(m1, "hostPath"), "/var/lib/dev-state");
	CHECK_STR(str_at(m1, "containerPath"), "/state");
	const cJSON *o1 = cJSON_GetObjectItemCaseSensitive(m1, "options");
	CHECK_INT(cJSON_GetArraySize(o1), 2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(o1, 0)), "rbind");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(o1, 1)), "rw");
	/* No top-level edits. */
	CHECK(!cJSON_GetObjectItemCaseSensitive(j, "containerEdits"));
	cJSON_Delete(j);
	snap_clear(&s);
}

/* Empty arrays are left out: only nodes, only mounts. */
TEST(test_spec_omits_empty)
{
	struct dev_node n1 = dnode("/dev/a", "/dev/a", "r");
	struct dev_node n2 = mnode("/srv/b", "/b", true);
	struct snap_instance a[] = {inst("a", &n1, 1), inst("b", &n2, 1)};
	struct snapshot s = snap(a, 2);

	cJSON *j = spec_of(KIND, &s);
	CHECK_INT(n_devices(j), 2);
	CHECK(edits_at(j, 0, "deviceNodes") != NULL);
	CHECK(edits_at(j, 0, "mounts") == NULL);
	CHECK(edits_at(j, 1, "deviceNodes") == NULL);
	CHECK(edits_at(j, 1, "mounts") != NULL);
	cJSON_Delete(j);
	snap_clear(&s);
}

TEST(test_spec_leaves_out)
{
	struct dev_node empty_perm = dnode("/dev/c", "/dev/c", "");
	struct dev_node no_host = dnode("", "/dev/d", "rw");
	struct dev_node no_id = dnode("/dev/e", "/dev/e", "rw");
	struct snap_instance a[] = {
	    simple("first"),
	    simple("sick"),
	    inst("nodeless", NULL, 0),
	    inst(NULL, &no_id, 1),
	    inst("noperm", &empty_perm, 1),
	    inst("nohost", &no_host, 1),
	    simple("last"),
	};
	a[1].healthy = false;
	struct snapshot s = snap(a, sizeof(a) / sizeof(a[0]));

	cJSON *j = spec_of(KIND, &s);
	CHECK_INT(n_devices(j), 2);
	CHECK_STR(str_at(device_at(j, 0), "name"), "first");
	CHECK_STR(str_at(device_at(j, 1), "name"), "last");
	cJSON_Delete(j);

	/* Snapshot order, not name order. */
	struct snap_instance t = a[0];
	a[0] = a[6];
	a[6] = t;
	j = spec_of(KIND, &s);
	CHECK_STR(str_at(device_at(j, 0), "name"), "last");
	CHECK_STR(str_at(device_at(j, 1), "name"), "first");
	cJSON_Delete(j);
	snap_clear(&s);
}

/* A spec without devices is invalid (SPEC.md, "CDI Devices"): none is made. */
TEST(test_spec_empty)
{
	char *out = (char *)"untouched";
	struct snapshot s = snap(NULL, 0);

	CHECK_INT(cdi_spec_json(KIND, &s, &out), -ENODEV);
	CHECK_STR(out, "untouched");

	struct snap_instance a[] = {simple("sick"), inst("nodeless", NULL, 0)};
	a[0].healthy = false;
	s = snap(a, 2);
	CHECK_INT(cdi_spec_json(KIND, &s, &out), -ENODEV);
	CHECK_STR(out, "untouched");
	CHECK_INT(cdi_spec_json("nokind", &s, &out), -EINVAL);
	CHECK_INT(cdi_spec_json(KIND, NULL, &out), -EINVAL);
	CHECK_STR(out, "untouched");
	snap_clear(&s);
}

/* Sanitized names in the spec, and cdi_device_name names the same device. */
TEST(test_spec_names)
{
	char kind[CDI_KIND_MAX], full[512], want[512];
	struct snap_instance a[] = {simple("a/b"), simple("x y"), simple("-lead"),
				    simple("0a1b.port-2")};
	struct snapshot s = snap(a, 4);
	const char *names[] = {"a_b", "x_y", "d-lead", "0a1b.port-2"};

	CHECK_INT(cdi_kind("usb-device-plugin.dev", "vcsm.cma", kind, sizeof(kind)), 0);
	cJSON *j = spec_of(kind, &s);
	CHECK_STR(str_at(j, "kind"), "usb-device-plugin.dev/vcsm_cma");
	CHECK_INT(n_devices(j), 4);
	for (int i = 0; i < 4; i++) {
		const char *name = str_at(device_at(j, i), "name");
		CHECK_STR(name, names[i]);
		CHECK_INT(cdi_device_name(kind, &a[i].inst, full, sizeof(full)), 0);
		snprintf(want, sizeof(want), "%s=%s", kind, name ? name : "?");
		CHECK_STR(full, want);
	}
	cJSON_Delete(j);
	snap_clear(&s);
}

/* "a/b" and "a_b" would both be named "a_b": neither is in the spec, so
 * Allocate can never hand out the other one's device. */
TEST(test_spec_clash)
{
	struct snap_instance a[] = {simple("a/b"), simple("c"), simple("a_b"), simple("a b")};
	struct snapshot s = snap(a, 4);

	cJSON *j = spec_of(KIND, &s);
	CHECK_INT(n_devices(j), 1);
	CHECK_STR(str_at(device_at(j, 0), "name"), "c");
	cJSON_Delete(j);

	/* Only clashes: nothing is left. */
	char *out = NULL;
	s = snap(a + 2, 2);
	CHECK_INT(cdi_spec_json(KIND, &s, &out), -ENODEV);
	CHECK(out == NULL);
	s = snap(a, 4);
	snap_clear(&s);
}

/* Every key is one the spec defines at that level, and no array is empty. */
static bool key_in(const char *key, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(key, *set) == 0)
			return true;
	return false;
}

static int bad_keys(const cJSON *o, const char *const *set)
{
	int bad = 0;
	for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
		if (!key_in(c->string, set)) {
			fprintf(stderr, "  unknown key \"%s\"\n", c->string);
			bad++;
		}
		if (cJSON_IsArray(c) && cJSON_GetArraySize(c) == 0) {
			fprintf(stderr, "  empty array \"%s\"\n", c->string);
			bad++;
		}
	}
	return bad;
}

TEST(test_spec_field_names)
{
	/* specs-go/config.go (and SPEC.md "JSON Definition"). */
	static const char *const spec_keys[] = {"cdiVersion", "kind",		"annotations",
						"devices",    "containerEdits", NULL};
	static const char *const device_keys[] = {"name", "annotations", "containerEdits", NULL};
	static const char *const edits_keys[] = {"env",	   "deviceNodes", "netDevices",	    "hooks",
						 "mounts", "intelRdt",	  "additionalGids", NULL};
	static const char *const node_keys[] = {"path",	    "hostPath",	   "type", "major", "minor",
						"fileMode", "permissions", "uid",  "gid",   NULL};
	static const char *const mount_keys[] = {"hostPath", "containerPath", "options", "type",
						 NULL};
	struct dev_node nodes[] = {dnode("/dev/a", "/dev/a", "rw"), mnode("/srv", "/srv", false)};
	struct snap_instance a[] = {inst("a", nodes, 2), simple("b")};
	struct snapshot s = snap(a, 2);

	cJSON *j = spec_of(KIND, &s);
	CHECK(j != NULL);
	CHECK_INT(bad_keys(j, spec_keys), 0);
	int checked = 0;
	const cJSON *dev, *item;
	cJSON_ArrayForEach(dev, cJSON_GetObjectItemCaseSensitive(j, "devices"))
	{
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(dev, "containerEdits");
		CHECK(cJSON_IsObject(e));
		CHECK_INT(bad_keys(dev, device_keys), 0);
		CHECK_INT(bad_keys(e, edits_keys), 0);
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(e, "deviceNodes"))
		{
			CHECK_INT(bad_keys(item, node_keys), 0);
			checked++;
		}
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(e, "mounts"))
		{
			CHECK_INT(bad_keys(item, mount_keys), 0);
			checked++;
		}
	}
	CHECK_INT(checked, 3);
	cJSON_Delete(j);
	snap_clear(&s);
}

/* ---- the file ---- */

TEST(test_spec_path)
{
	char buf[256];

	CHECK_INT(cdi_spec_path("/var/run/cdi", KIND, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "/var/run/cdi/usb-device-plugin.dev-ttyUSB0.json");
	CHECK_INT(cdi_spec_path("/var/run/cdi/", KIND, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "/var/run/cdi/usb-device-plugin.dev-ttyUSB0.json");
	CHECK_INT(cdi_spec_path("/", "v.io/c", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "/v.io-c.json");
	CHECK_INT(cdi_spec_path("/d", "v.io/c", buf, sizeof("/d/v.io-c.json")), 0);
	CHECK_INT(cdi_spec_path("/d", "v.io/c", buf, sizeof("/d/v.io-c.json") - 1), -ENAMETOOLONG);
	CHECK_INT(cdi_spec_path("/d", "noslash", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_spec_path("/d", "v.io/c/../x", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_spec_path("/d", "/c", buf, sizeof(buf)), -EINVAL);
	CHECK_INT(cdi_spec_path("", "v.io/c", buf, sizeof(buf)), -EINVAL);
}

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The names in dir (not "." or ".."), joined with ' ' in order of readdir;
 * how many. */
static int list_dir(const char *dir, char *buf, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	buf[0] = '\0';
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		size_t off = strlen(buf);
		snprintf(buf + off, len - off, "%s%s", n ? " " : "", e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	if (f && buf)
		buf[fread(buf, 1, 65535, f)] = '\0';
	if (f)
		fclose(f);
	return buf;
}

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_cdi.XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
}

TEST(test_write)
{
	char path[256], names[512];
	struct stat st;
	const char *json = "{\"cdiVersion\":\"0.5.0\"}\n";
	mode_t old = umask(077); /* the mode must not depend on it */

	make_tmpdir();
	CHECK_INT(cdi_write(tmpdir, KIND, json), 0);
	umask(old);
	CHECK_INT(cdi_spec_path(tmpdir, KIND, path, sizeof(path)), 0);
	char *got = slurp(path);
	CHECK_STR(got, json);
	free(got);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);
	CHECK(S_ISREG(st.st_mode));
	/* Only the spec: no temporary file left behind. */
	CHECK_INT(list_dir(tmpdir, names, sizeof(names)), 1);
	CHECK_STR(names, "usb-device-plugin.dev-ttyUSB0.json");

	/* A rewrite is a new file renamed over the old one. */
	const char *json2 = "{\"cdiVersion\":\"0.5.0\",\"kind\":\"" KIND "\"}\n";
	ino_t ino = st.st_ino;
	CHECK_INT(cdi_write(tmpdir, KIND, json2), 0);
	got = slurp(path);
	CHECK_STR(got, json2);
	free(got);
	CHECK_INT(stat(path, &st), 0);
	CHECK(st.st_ino != ino);
	CHECK_INT(list_dir(tmpdir, names, sizeof(names)), 1);

	/* The temporary file, seen being made: hidden and without the
	 * ".json" or ".yaml" suffix a CDI registry reads. */
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CHECK(fd >= 0 && inotify_add_watch(fd, tmpdir, IN_CREATE | IN_MOVED_TO) >= 0);
	CHECK_INT(cdi_write(tmpdir, KIND, json), 0);
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t got_len = read(fd, ev, sizeof(ev));
	int created = 0, moved = 0;
	for (char *p = ev; got_len > 0 && p < ev + got_len;) {
		const struct inotify_event *e = (const struct inotify_event *)p;
		const char *name = e->len ? e->name : "";
		size_t nl = strlen(name);
		if (e->mask & IN_CREATE) {
			created++;
			CHECK(strncmp(name, ".usb-device-plugin.dev-ttyUSB0.json.", 36) == 0);
			CHECK(nl < 5 || strcmp(name + nl - 5, ".json") != 0);
			CHECK(nl < 5 || strcmp(name + nl - 5, ".yaml") != 0);
		}
		if (e->mask & IN_MOVED_TO) {
			moved++;
			CHECK_STR(name, "usb-device-plugin.dev-ttyUSB0.json");
		}
		p += sizeof(*e) + e->len;
	}
	CHECK_INT(created, 1);
	CHECK_INT(moved, 1);
	if (fd >= 0)
		close(fd);

	/* Removed, and removing again is fine. */
	CHECK_INT(cdi_remove(tmpdir, KIND), 0);
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	CHECK_INT(cdi_remove(tmpdir, KIND), 0);
	CHECK_INT(list_dir(tmpdir, names, sizeof(names)), 0);
	rm_rf(tmpdir);
}

TEST(test_write_creates_dir)
{
	char dir[128], path[256];
	struct stat st;
	mode_t old = umask(022);

	make_tmpdir();
	snprintf(dir, sizeof(dir), "%s/var/run/cdi", tmpdir);
	CHECK_INT(cdi_remove(dir, KIND), 0); /* no directory: nothing to remove */
	CHECK_INT(cdi_write(dir, KIND, "{}\n"), 0);
	umask(old);
	CHECK_INT(stat(dir, &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(st.st_mode & 07777, 0755);
	snprintf(path, sizeof(path), "%s/var", tmpdir);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0755);
	CHECK_INT(cdi_spec_path(dir, KIND, path, sizeof(path)), 0);
	char *got = slurp(path);
	CHECK_STR(got, "{}\n");
	free(got);
	rm_rf(tmpdir);
}

/* Failures leave no temporary file and the old state alone. */
TEST(test_write_fails_clean)
{
	char path[512], file[600], names[512];

	make_tmpdir();
	/* The spec's name is taken by a non-empty directory: rename fails. */
	CHECK_INT(cdi_spec_path(tmpdir, KIND, path, sizeof(path)), 0);
	CHECK_INT(mkdir(path, 0755), 0);
	snprintf(file, sizeof(file), "%s/keep", path);
	FILE *f = fopen(file, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK(cdi_write(tmpdir, KIND, "{}\n") < 0);
	CHECK_INT(list_dir(tmpdir, names, sizeof(names)), 1);
	CHECK_STR(names, "usb-device-plugin.dev-ttyUSB0.json");
	CHECK(cdi_remove(tmpdir, KIND) < 0); /* a directory: not ours to remove */

	/* The CDI directory is a file. */
	snprintf(file, sizeof(file), "%s/notadir", tmpdir);
	f = fopen(file, "w");
	if (f)
		fclose(f);
	CHECK_INT(cdi_write(file, KIND, "{}\n"), -ENOTDIR);
	CHECK_INT(cdi_write(tmpdir, "nokind", "{}\n"), -EINVAL);
	CHECK_INT(cdi_write(tmpdir, KIND, NULL), -EINVAL);
	CHECK_INT(list_dir(tmpdir, names, sizeof(names)), 2);
	rm_rf(tmpdir);
}

/* The whole path: spec of a snapshot written, read back, parsed. */
TEST(test_write_spec)
{
	char path[256], *json = NULL;
	struct snap_instance a[] = {simple("x")};
	struct snapshot s = snap(a, 1);

	make_tmpdir();
	CHECK_INT(cdi_spec_json(KIND, &s, &json), 0);
	CHECK_INT(cdi_write(tmpdir, KIND, json), 0);
	CHECK_INT(cdi_spec_path(tmpdir, KIND, path, sizeof(path)), 0);
	char *got = slurp(path);
	CHECK_STR(got, json);
	cJSON *j = cJSON_Parse(got ? got : "");
	CHECK_STR(str_at(device_at(j, 0), "name"), "x");
	cJSON_Delete(j);
	free(got);
	free(json);
	snap_clear(&s);
	rm_rf(tmpdir);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR); /* the clashes logged on purpose */
	RUN(test_kind);
	RUN(test_device_name);
	RUN(test_spec_edits);
	RUN(test_spec_omits_empty);
	RUN(test_spec_leaves_out);
	RUN(test_spec_empty);
	RUN(test_spec_names);
	RUN(test_spec_clash);
	RUN(test_spec_field_names);
	RUN(test_spec_path);
	RUN(test_write);
	RUN(test_write_creates_dir);
	RUN(test_write_fails_clean);
	RUN(test_write_spec);
	return CHECK_SUMMARY();
}
