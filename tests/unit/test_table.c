/* The device table: merge by key, health from the nodes, gone -> grace ->
 * dropped, generations, and snapshots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "check.h"
#include "deviceplugin.pb-c.h"
#include "log.h"
#include "sizelimits.h"
#include "table.h"

static char dir[64];
static const char *const names[] = {"t/a", "t/b"};

/* An instance of one Device node at dir/file, with count IDs "file-j". */
static struct dev_instance inst(const char *file, unsigned count)
{
	struct dev_instance i = {.count = count, .n_nodes = 1};
	char buf[256];
	snprintf(buf, sizeof(buf), "g0:%s/%s", dir, file);
	i.key = strdup(buf);
	i.ids = calloc(count, sizeof(*i.ids));
	for (unsigned j = 0; j < count; j++) {
		snprintf(buf, sizeof(buf), "%s-%u", file, j);
		i.ids[j] = strdup(buf);
	}
	i.nodes = calloc(1, sizeof(*i.nodes));
	snprintf(buf, sizeof(buf), "%s/%s", dir, file);
	i.nodes[0].host_path = strdup(buf);
	i.nodes[0].container_path = strdup(buf);
	strcpy(i.nodes[0].permissions, "mrw");
	return i;
}

static struct dev_instance *insts(int n, const char **files, unsigned count)
{
	struct dev_instance *a = calloc(n ? n : 1, sizeof(*a));
	for (int i = 0; i < n; i++)
		a[i] = inst(files[i], count);
	return a;
}

static void node(const char *file, int chr)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	unlink(p);
	if (chr)
		CHECK_INT(mknod(p, S_IFCHR | 0600, makedev(1, 3)), 0);
	else
		fclose(fopen(p, "w"));
}

static void rm(const char *file)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	unlink(p);
}

static const char *health(struct table *t, const char *id)
{
	struct snapshot *s = table_snapshot(t);
	const struct snap_device *d = snapshot_find(s, id);
	static char out[16];
	snprintf(out, sizeof(out), "%s", !d ? "absent" : d->instance->healthy ? "healthy" : "sick");
	snapshot_unref(s);
	return out;
}

TEST(add_update_gone_back_drop)
{
	struct table *t = table_new(names[0], 1000);
	node("x", 1);
	node("y", 1);
	const char *xy[] = {"x", "y"}, *y[] = {"y"}, *yx[] = {"y", "x"};
	CHECK_INT(table_update_group(t, 0, insts(2, xy, 2), 2, 1000000), 1);
	CHECK_INT(table_generation(t), 1);
	CHECK_STR(health(t, "x-1"), "healthy");
	/* the same again: nothing changes, generation stays */
	CHECK_INT(table_update_group(t, 0, insts(2, yx, 2), 2, 1000000), 0);
	CHECK_INT(table_generation(t), 1);
	/* x vanishes: unhealthy, still listed */
	rm("x");
	CHECK_INT(table_update_group(t, 0, insts(1, y, 2), 1, 2000000), 1);
	CHECK_STR(health(t, "x-0"), "sick");
	CHECK_STR(health(t, "y-0"), "healthy");
	CHECK_INT(table_next_expiry(t), 3000000);
	CHECK_INT(table_expire(t, 2999999), 0);
	/* back within grace: same instance, healthy again */
	node("x", 1);
	CHECK_INT(table_update_group(t, 0, insts(2, xy, 2), 2, 2500000), 1);
	CHECK_STR(health(t, "x-0"), "healthy");
	CHECK_INT(table_next_expiry(t), 0);
	/* gone again, then dropped after the grace period */
	rm("x");
	table_update_group(t, 0, insts(1, y, 2), 1, 4000000);
	uint64_t g = table_generation(t);
	CHECK_INT(table_expire(t, 5000000), 1);
	CHECK_INT(table_generation(t), g + 1);
	CHECK_STR(health(t, "x-0"), "absent");
	CHECK_INT(table_n_instances(t), 1);
	table_free(t);
	rm("y");
}

TEST(health_from_nodes)
{
	struct table *t = table_new(names[0], 1000);
	node("plain", 0); /* a regular file is no device */
	const char *f[] = {"plain"};
	CHECK_INT(table_update_group(t, 0, insts(1, f, 1), 1, 1), 1);
	CHECK_STR(health(t, "plain-0"), "sick");
	struct snapshot *s = table_snapshot(t);
	CHECK_CONTAINS(s->instances[0].why, "not a character or block device");
	CHECK_INT(s->n_healthy, 0);
	snapshot_unref(s);
	/* it becomes a device node: the next scan makes it healthy */
	node("plain", 1);
	CHECK_INT(table_update_group(t, 0, insts(1, f, 1), 1, 2), 1);
	CHECK_STR(health(t, "plain-0"), "healthy");
	table_free(t);
	rm("plain");
}

TEST(groups_are_separate_and_ids_unique)
{
	struct table *t = table_new(names[0], 1000);
	node("a", 1);
	node("b", 1);
	const char *a[] = {"a"}, *b[] = {"b"};
	table_update_group(t, 0, insts(1, a, 1), 1, 1);
	struct dev_instance *g1 = insts(1, b, 1);
	free(g1[0].key);
	g1[0].key = strdup("g1:b");
	table_update_group(t, 1, g1, 1, 1);
	/* group 1 updating to nothing does not touch group 0 */
	CHECK_INT(table_update_group(t, 1, NULL, 0, 5), 1);
	CHECK_STR(health(t, "a-0"), "healthy");
	CHECK_STR(health(t, "b-0"), "sick");
	/* the same ID from two groups is listed once */
	struct dev_instance *dup = insts(1, a, 1);
	free(dup[0].key);
	dup[0].key = strdup("g1:a");
	table_update_group(t, 1, dup, 1, 6);
	struct snapshot *s = table_snapshot(t);
	size_t n_a = 0;
	for (size_t i = 0; i < s->n_devices; i++)
		n_a += strcmp(s->devices[i].id, "a-0") == 0;
	CHECK_INT(n_a, 1);
	for (size_t i = 1; i < s->n_devices; i++)
		CHECK(strcmp(s->devices[i - 1].id, s->devices[i].id) < 0);
	snapshot_unref(s);
	table_free(t);
	rm("a");
	rm("b");
}

TEST(snapshot_outlives_table_changes)
{
	struct table *t = table_new(names[0], 0);
	node("s", 1);
	const char *f[] = {"s"};
	table_update_group(t, 0, insts(1, f, 3), 1, 1);
	struct snapshot *s = table_snapshot(t);
	CHECK_INT(s->n_devices, 3);
	CHECK_INT(s->generation, 1);
	rm("s");
	table_update_group(t, 0, NULL, 0, 2);
	table_expire(t, 2);
	table_free(t);
	/* the old snapshot is still whole */
	const struct snap_device *d = snapshot_find(s, "s-2");
	CHECK(d != NULL);
	CHECK_INT(d ? d->slot : 99, 2);
	CHECK(snapshot_find(s, "nope") == NULL);
	snapshot_unref(snapshot_ref(s));
	snapshot_unref(s);
}

static char shared_log[512];

static void on_shared(void *data, const char *path, size_t r1, const char *id1, size_t r2,
		      const char *id2)
{
	(void)data;
	size_t n = strlen(shared_log);
	snprintf(shared_log + n, sizeof(shared_log) - n, "%s:%zu:%s:%zu:%s;",
		 strrchr(path, '/') + 1, r1, id1, r2, id2);
}

TEST(nodes_shared_across_resources)
{
	struct table *t[2] = {table_new(names[0], 1000), table_new(names[1], 1000)};
	const struct table *const *ts = (const struct table *const *)t;
	node("s", 1);
	node("u", 1);
	const char *s1[] = {"s"}, *both[] = {"s", "u"};
	table_update_group(t[0], 0, insts(1, s1, 1), 1, 1);
	/* resource 1 has s twice (two groups) and u */
	table_update_group(t[1], 0, insts(2, both, 1), 2, 1);
	struct dev_instance *again = insts(1, s1, 1);
	free(again[0].key);
	again[0].key = strdup("g1:s");
	table_update_group(t[1], 1, again, 1, 1);
	shared_log[0] = '\0';
	CHECK_INT(table_shared_nodes(ts, 2, on_shared, NULL), 0);
	CHECK_STR(shared_log, "s:0:s-0:1:s-0;"); /* once, although r1 has it twice */
	/* a gone instance shares nothing */
	rm("s");
	table_update_group(t[0], 0, NULL, 0, 2);
	shared_log[0] = '\0';
	table_shared_nodes(ts, 2, on_shared, NULL);
	CHECK_STR(shared_log, "");
	table_free(t[0]);
	table_free(t[1]);
	rm("u");
}

/* One instance "<file>" with count IDs of id_len bytes: "<file>-<slot>"
 * padded with 'x' after the file name. */
static struct dev_instance *long_ids(const char *file, unsigned count, size_t id_len)
{
	struct dev_instance *a = insts(1, &file, 1);
	free(a->ids[0]);
	free(a->ids);
	a->ids = calloc(count, sizeof(*a->ids));
	a->count = count;
	for (unsigned j = 0; j < count; j++) {
		char tail[16];
		int n = snprintf(tail, sizeof(tail), "-%05u", j);
		size_t head = id_len - (size_t)n;
		a->ids[j] = malloc(id_len + 1);
		memset(a->ids[j], 'x', head);
		memcpy(a->ids[j], file, strlen(file) < head ? strlen(file) : head);
		memcpy(a->ids[j] + head, tail, (size_t)n + 1);
	}
	return a;
}

/* The encoded ListAndWatchResponse of the snapshot's devices, each with
 * health "Unhealthy" (what the limit counts). */
static size_t packed_unhealthy(const struct snapshot *s, size_t extra_id_len)
{
	size_t n = s->n_devices + (extra_id_len ? 1 : 0);
	V1beta1__Device *devs = calloc(n, sizeof(*devs));
	V1beta1__Device **ptrs = calloc(n, sizeof(*ptrs));
	char *extra = calloc(extra_id_len + 1, 1);
	memset(extra, 'y', extra_id_len);
	for (size_t i = 0; i < n; i++) {
		v1beta1__device__init(&devs[i]);
		devs[i].id = i < s->n_devices ? (char *)s->devices[i].id : extra;
		devs[i].health = "Unhealthy";
		ptrs[i] = &devs[i];
	}
	V1beta1__ListAndWatchResponse msg = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
	msg.n_devices = n;
	msg.devices = ptrs;
	size_t len = protobuf_c_message_get_packed_size(&msg.base);
	free(devs);
	free(ptrs);
	free(extra);
	return len;
}

TEST(entry_bytes_as_protobuf_packs_them)
{
	static const size_t lens[] = {1, 40, 100, 116, 117, 127, 128, 200, 16383, 16384, 70000};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct snapshot s = {.n_devices = 0};
		CHECK_INT(packed_unhealthy(&s, lens[i]), limit_list_entry_bytes(lens[i]));
	}
}

TEST(snapshot_keeps_to_the_device_limit)
{
	struct table *t = table_new(names[0], 1000);
	const char *abc[] = {"c", "a", "b"}; /* the table orders them by key */
	CHECK_INT(table_update_group(t, 0, insts(3, abc, 4000), 3, 1), 1);
	struct snapshot *s = table_snapshot(t);
	CHECK_INT(s->n_devices, LIMIT_DEVICES);
	CHECK_INT(s->n_withheld, 12000 - LIMIT_DEVICES);
	/* the first in table order: every slot of a and b, then c's first */
	CHECK(snapshot_find(s, "a-3999") && snapshot_find(s, "b-0"));
	CHECK(snapshot_find(s, "c-1999") != NULL);
	CHECK(snapshot_find(s, "c-2000") == NULL);
	int sorted = 1;
	for (size_t i = 1; i < s->n_devices; i++)
		sorted &= strcmp(s->devices[i - 1].id, s->devices[i].id) < 0;
	CHECK(sorted);
	snapshot_unref(s);
	/* c goes (dropped at once: grace 0): back under, nothing withheld */
	table_set_grace(t, 0);
	const char *ab[] = {"a", "b"};
	CHECK_INT(table_update_group(t, 0, insts(2, ab, 4000), 2, 2), 1);
	table_expire(t, 3);
	s = table_snapshot(t);
	CHECK_INT(s->n_devices, 8000);
	CHECK_INT(s->n_withheld, 0);
	snapshot_unref(s);
	table_free(t);
}

TEST(snapshot_keeps_to_the_list_bytes_limit)
{
	struct table *t = table_new(names[0], 1000);
	enum { ID_LEN = 600, COUNT = 8000 }; /* some 4.8 MB of list */
	CHECK_INT(table_update_group(t, 0, long_ids("L", COUNT, ID_LEN), 1, 1), 1);
	struct snapshot *s = table_snapshot(t);
	CHECK(s->n_devices > 0 && s->n_devices < COUNT);
	CHECK_INT(s->n_devices + s->n_withheld, COUNT);
	CHECK(packed_unhealthy(s, 0) <= LIMIT_LIST_BYTES);
	CHECK(packed_unhealthy(s, ID_LEN) > LIMIT_LIST_BYTES); /* one more would not fit */
	/* the first slots, in order */
	size_t last = 0;
	for (size_t i = 0; i < s->n_devices; i++)
		if (s->devices[i].slot > last)
			last = s->devices[i].slot;
	CHECK_INT(last + 1, s->n_devices);
	snapshot_unref(s);
	table_free(t);
}

static const char *touched_path;

static bool touched_is(void *data, const char *path)
{
	(void)data;
	return touched_path && strstr(path, touched_path) != NULL;
}

TEST(health_checked_again_only_where_touched)
{
	struct table *t = table_new(names[0], 1000);
	node("p", 1);
	node("q", 1);
	const char *pq[] = {"p", "q"};
	CHECK_INT(table_update_group(t, 0, insts(2, pq, 1), 2, 1000000), 1);
	/* p turns into a regular file; an event named only q: p's health is
	 * not looked at (no stat), q's is */
	node("p", 0);
	touched_path = "/q";
	CHECK_INT(table_update_group_touched(t, 0, insts(2, pq, 1), 2, 1000000, touched_is, NULL),
		  0);
	CHECK_STR(health(t, "p-0"), "healthy");
	/* the event that names p */
	touched_path = "/p";
	CHECK_INT(table_update_group_touched(t, 0, insts(2, pq, 1), 2, 1000000, touched_is, NULL),
		  1);
	CHECK_STR(health(t, "p-0"), "sick");
	/* no predicate: every one is checked */
	node("p", 1);
	CHECK_INT(table_update_group_touched(t, 0, insts(2, pq, 1), 2, 1000000, NULL, NULL), 1);
	CHECK_STR(health(t, "p-0"), "healthy");
	table_free(t);
}

int main(void)
{
	log_set_level(LOG_LEVEL_NONE);
	snprintf(dir, sizeof(dir), "/tmp/udp-table-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	/* The probe in our own directory: a fixed name in /tmp would make
	 * two runs at once see EEXIST and skip. */
	char probe[128];
	snprintf(probe, sizeof(probe), "%s/.mknod-probe", dir);
	if (mknod(probe, S_IFCHR | 0600, makedev(1, 3)) < 0)
		SKIP_ALL("mknod not permitted (%s): the tests need device nodes", strerror(errno));
	else
		unlink(probe);
	RUN(add_update_gone_back_drop);
	RUN(health_from_nodes);
	RUN(groups_are_separate_and_ids_unique);
	RUN(snapshot_outlives_table_changes);
	RUN(nodes_shared_across_resources);
	RUN(entry_bytes_as_protobuf_packs_them);
	RUN(snapshot_keeps_to_the_device_limit);
	RUN(snapshot_keeps_to_the_list_bytes_limit);
	RUN(health_checked_again_only_where_touched);
	rmdir(dir);
	return CHECK_SUMMARY();
}
