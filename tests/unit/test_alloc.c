/* Allocate, GetPreferredAllocation and PreStartContainer answers computed
 * from a snapshot. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "alloc.h"
#include "check.h"
#include "log.h"

static char dir[64];
static const char *const names[] = {"t/serial-port"};

/* Instance `name` with nodes dir/<file> for each file, count slots. */
static struct dev_instance mk(const char *name, unsigned count, int n_files, const char **files,
			      int mount_last)
{
	struct dev_instance i = {.count = count, .n_nodes = (size_t)n_files};
	char buf[256];
	snprintf(buf, sizeof(buf), "g0:%s", name);
	i.key = strdup(buf);
	i.ids = calloc(count, sizeof(*i.ids));
	for (unsigned j = 0; j < count; j++) {
		snprintf(buf, sizeof(buf), "%s-%u", name, j);
		i.ids[j] = strdup(buf);
	}
	i.nodes = calloc((size_t)n_files, sizeof(*i.nodes));
	for (int k = 0; k < n_files; k++) {
		snprintf(buf, sizeof(buf), "%s/%s", dir, files[k]);
		i.nodes[k].host_path = strdup(buf);
		snprintf(buf, sizeof(buf), "/c/%s", files[k]);
		i.nodes[k].container_path = strdup(buf);
		strcpy(i.nodes[k].permissions, "rw");
		if (mount_last && k == n_files - 1) {
			i.nodes[k].mount = true;
			i.nodes[k].read_only = true;
		}
		snprintf(buf, sizeof(buf), "%s/%s", dir, files[k]);
		unlink(buf);
		mknod(buf, S_IFCHR | 0600, makedev(1, 3));
	}
	return i;
}

/* A snapshot with devices a (1 node, 2 slots), b (2 nodes, the second a
 * mount, 2 slots) and c (1 node, 2 slots). */
static struct snapshot *fixture(struct table **tp)
{
	struct table *t = table_new(names[0], 1000);
	const char *fa[] = {"a"}, *fb[] = {"b0", "b1"}, *fc[] = {"c"};
	struct dev_instance *v = calloc(3, sizeof(*v));
	v[0] = mk("a", 2, 1, fa, 0);
	v[1] = mk("b", 2, 2, fb, 1);
	v[2] = mk("c", 2, 1, fc, 0);
	dev_instance_add_env(&v[0], "TTY", "/c/a");
	dev_instance_add_env(&v[0], "VENDOR", "1a86");
	table_update_group(t, 0, v, 3, 1);
	*tp = t;
	return table_snapshot(t);
}

static V1beta1__ContainerAllocateRequest creq(size_t n, char **ids)
{
	V1beta1__ContainerAllocateRequest c = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT;
	c.n_devices_ids = n;
	c.devices_ids = ids;
	return c;
}

static const char *env(const V1beta1__ContainerAllocateResponse *c, const char *key)
{
	for (size_t i = 0; i < c->n_envs; i++)
		if (strcmp(c->envs[i]->key, key) == 0)
			return c->envs[i]->value;
	return NULL;
}

TEST(allocate_answers_in_order)
{
	struct table *t;
	struct snapshot *s = fixture(&t);
	char *ids0[] = {"b-1", "a-0", "b-0"}, *ids1[] = {"c-1"};
	V1beta1__ContainerAllocateRequest c0 = creq(3, ids0), c1 = creq(1, ids1);
	V1beta1__ContainerAllocateRequest *cs[] = {&c0, &c1};
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	req.n_container_requests = 2;
	req.container_requests = cs;
	V1beta1__AllocateResponse *resp = NULL;
	char err[256] = "";
	CHECK_INT(alloc_allocate(s, "serial-port", NULL, &req, &resp, err, sizeof(err)), 0);
	CHECK_INT(resp ? resp->n_container_responses : 0, 2);
	if (resp && resp->n_container_responses == 2) {
		const V1beta1__ContainerAllocateResponse *r0 = resp->container_responses[0];
		/* b's two slots share b's files: listed once */
		CHECK_INT(r0->n_devices, 2);
		CHECK_STR(r0->devices[0]->container_path, "/c/b0");
		CHECK_STR(r0->devices[0]->permissions, "rw");
		CHECK_STR(r0->devices[1]->container_path, "/c/a");
		CHECK_INT(r0->n_mounts, 1);
		CHECK_STR(r0->mounts[0]->container_path, "/c/b1");
		CHECK(r0->mounts[0]->read_only);
		CHECK_STR(env(r0, "USBDP_SERIAL_PORT_IDS"), "b-1,a-0,b-0");
		CHECK_STR(env(r0, "USBDP_SERIAL_PORT_0"), "/c/b0,/c/b1");
		CHECK_STR(env(r0, "USBDP_SERIAL_PORT_1"), "/c/a");
		CHECK_STR(env(r0, "USBDP_SERIAL_PORT_1_ID"), "a-0");
		CHECK_STR(env(r0, "USBDP_SERIAL_PORT_2_ID"), "b-0");
		CHECK_STR(env(r0, "USBDP_SERIAL_PORT_1_TTY"), "/c/a");
		CHECK_STR(env(r0, "USBDP_SERIAL_PORT_1_VENDOR"), "1a86");
		CHECK(env(r0, "USBDP_SERIAL_PORT_0_TTY") == NULL);
		const V1beta1__ContainerAllocateResponse *r1 = resp->container_responses[1];
		CHECK_INT(r1->n_devices, 1);
		CHECK_STR(env(r1, "USBDP_SERIAL_PORT_0"), "/c/c");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	snapshot_unref(s);
	table_free(t);
}

TEST(allocate_refuses)
{
	struct table *t;
	struct snapshot *s = fixture(&t);
	char *ids[] = {"a-0", "zzz"};
	V1beta1__ContainerAllocateRequest c0 = creq(2, ids);
	V1beta1__ContainerAllocateRequest *cs[] = {&c0};
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	req.n_container_requests = 1;
	req.container_requests = cs;
	V1beta1__AllocateResponse *resp = NULL;
	char err[256] = "";
	CHECK_INT(alloc_allocate(s, "serial-port", NULL, &req, &resp, err, sizeof(err)), -ENOENT);
	CHECK(resp == NULL);
	CHECK_CONTAINS(err, "\"zzz\"");
	req.n_container_requests = 0;
	CHECK_INT(alloc_allocate(s, "serial-port", NULL, &req, &resp, err, sizeof(err)), -EINVAL);
	snapshot_unref(s);
	/* c's file disappears: c is unhealthy and refused */
	char p[128];
	snprintf(p, sizeof(p), "%s/c", dir);
	unlink(p);
	const char *fa[] = {"a"}, *fb[] = {"b0", "b1"}, *fc[] = {"c"};
	struct dev_instance *v = calloc(3, sizeof(*v));
	v[0] = mk("a", 2, 1, fa, 0);
	v[1] = mk("b", 2, 2, fb, 1);
	v[2] = mk("c", 2, 1, fc, 0);
	unlink(p);
	table_update_group(t, 0, v, 3, 2);
	s = table_snapshot(t);
	char *idc[] = {"c-0"};
	c0 = creq(1, idc);
	req.n_container_requests = 1;
	CHECK_INT(alloc_allocate(s, "serial-port", NULL, &req, &resp, err, sizeof(err)), -EBUSY);
	CHECK_CONTAINS(err, "unhealthy");
	V1beta1__PreStartContainerRequest ps = V1BETA1__PRE_START_CONTAINER_REQUEST__INIT;
	ps.n_devices_ids = 1;
	ps.devices_ids = idc;
	CHECK(alloc_prestart(s, &ps, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "No such file");
	char *ida[] = {"a-1", "b-0"};
	ps.n_devices_ids = 2;
	ps.devices_ids = ida;
	CHECK_INT(alloc_prestart(s, &ps, err, sizeof(err)), 0);
	snapshot_unref(s);
	table_free(t);
}

/* Found by fuzz_requests: two devices whose files differ but land on the
 * same container path (a fixed mountPath) were answered with the first
 * file only, silently. Now refused; the same file shared by two devices
 * (a path entry's limit) is still given once. */
TEST(allocate_refuses_colliding_container_paths)
{
	static const char *const one[] = {"t/one"};
	struct table *t = table_new(one[0], 1000);
	const char *fp[] = {"p"}, *fq[] = {"q"}, *fr[] = {"r", "ctl"}, *fs[] = {"s", "ctl"};
	struct dev_instance *v = calloc(4, sizeof(*v));
	v[0] = mk("p", 1, 1, fp, 0);
	v[1] = mk("q", 1, 1, fq, 0);
	v[2] = mk("r", 1, 2, fr, 0);
	v[3] = mk("s", 1, 2, fs, 0);
	for (int i = 0; i < 2; i++) {
		free(v[i].nodes[0].container_path);
		v[i].nodes[0].container_path = strdup("/c/shared");
	}
	table_update_group(t, 0, v, 4, 1);
	struct snapshot *s = table_snapshot(t);
	char *pq[] = {"p-0", "q-0"}, *rs[] = {"r-0", "s-0"};
	V1beta1__ContainerAllocateRequest c0 = creq(2, pq);
	V1beta1__ContainerAllocateRequest *cs[] = {&c0};
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	req.n_container_requests = 1;
	req.container_requests = cs;
	V1beta1__AllocateResponse *resp = NULL;
	char err[256] = "";
	CHECK_INT(alloc_allocate(s, "one", NULL, &req, &resp, err, sizeof(err)), -EEXIST);
	CHECK(resp == NULL);
	CHECK_CONTAINS(err, "\"q-0\"");
	CHECK_CONTAINS(err, "/c/shared");
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	resp = NULL;
	c0 = creq(2, rs);
	CHECK_INT(alloc_allocate(s, "one", NULL, &req, &resp, err, sizeof(err)), 0);
	if (resp) {
		const V1beta1__ContainerAllocateResponse *r0 = resp->container_responses[0];
		CHECK_INT(r0->n_devices, 3); /* r, ctl, s */
		CHECK_STR(r0->devices[1]->container_path, "/c/ctl");
		CHECK_STR(env(r0, "USBDP_ONE_1"), "/c/s,/c/ctl");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	snapshot_unref(s);
	table_free(t);
}

/* Runs GetPreferredAllocation for one container; returns the instances
 * ("a", "b", "c") of the chosen IDs, in order, as one string. */
static void prefer(struct snapshot *s, size_t n_avail, char **avail, size_t n_must, char **must,
		   int size, char *out)
{
	V1beta1__ContainerPreferredAllocationRequest c =
	    V1BETA1__CONTAINER_PREFERRED_ALLOCATION_REQUEST__INIT;
	c.n_available_deviceids = n_avail;
	c.available_deviceids = avail;
	c.n_must_include_deviceids = n_must;
	c.must_include_deviceids = must;
	c.allocation_size = size;
	V1beta1__ContainerPreferredAllocationRequest *cs[] = {&c};
	V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
	req.n_container_requests = 1;
	req.container_requests = cs;
	V1beta1__PreferredAllocationResponse *resp = NULL;
	char err[128];
	out[0] = '\0';
	CHECK_INT(alloc_preferred(s, &req, &resp, err, sizeof(err)), 0);
	if (!resp)
		return;
	for (size_t i = 0; i < resp->container_responses[0]->n_deviceids; i++)
		strncat(out, resp->container_responses[0]->deviceids[i], 3);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* Issue 11: the nodes of a device listed Healthy vanish (an unplug whose
 * uevents are not read yet). Allocate itself checks them and refuses,
 * naming the node; before, it answered with nodes that did not exist. */
TEST(allocate_refuses_nodes_gone_since_the_snapshot)
{
	struct table *t;
	struct snapshot *s = fixture(&t);
	char p[128];
	snprintf(p, sizeof(p), "%s/b0", dir);
	CHECK_INT(unlink(p), 0);
	char *ids[] = {"a-0", "b-1"};
	V1beta1__ContainerAllocateRequest c0 = creq(2, ids);
	V1beta1__ContainerAllocateRequest *cs[] = {&c0};
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	req.n_container_requests = 1;
	req.container_requests = cs;
	V1beta1__AllocateResponse *resp = NULL;
	char err[512] = "";
	CHECK_INT(alloc_allocate(s, "serial-port", NULL, &req, &resp, err, sizeof(err)), -ENODEV);
	CHECK(resp == NULL);
	CHECK_CONTAINS(err, "\"b-1\"");
	CHECK_CONTAINS(err, p);
	/* with CDI too: the runtime would find no such node either */
	CHECK_INT(alloc_allocate(s, "serial-port", "t/serial-port", &req, &resp, err, sizeof(err)),
		  -ENODEV);
	/* back (these nodes ask for no particular number): handed out again */
	mknod(p, S_IFCHR | 0600, makedev(1, 5));
	CHECK_INT(alloc_allocate(s, "serial-port", NULL, &req, &resp, err, sizeof(err)), 0);
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	snapshot_unref(s);
	table_free(t);
}

TEST(preferred_spreads)
{
	struct table *t;
	struct snapshot *s = fixture(&t);
	char *all[] = {"a-0", "a-1", "b-0", "b-1", "c-0", "c-1"};
	char got[64];
	prefer(s, 6, all, 0, NULL, 3, got);
	CHECK_STR(got, "a-0b-0c-0"); /* distinct devices first */
	prefer(s, 6, all, 0, NULL, 4, got);
	CHECK_STR(got, "a-0b-0c-0a-1");
	char *must[] = {"c-1"};
	prefer(s, 6, all, 1, must, 2, got);
	CHECK_STR(got, "c-1a-0");
	/* a-0 is taken elsewhere: a has one slot left, b and c two: b, c first */
	char *some[] = {"a-1", "b-0", "b-1", "c-0", "c-1"};
	prefer(s, 5, some, 0, NULL, 2, got);
	CHECK_STR(got, "b-0c-0");
	/* unknown IDs are ignored, and size larger than what is there */
	char *odd[] = {"x-0", "a-1"};
	prefer(s, 2, odd, 0, NULL, 3, got);
	CHECK_STR(got, "a-1");
	snapshot_unref(s);
	table_free(t);
}

TEST(env_prefix)
{
	char buf[32];
	CHECK_INT(alloc_env_prefix("my-dongle-2", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "USBDP_MY_DONGLE_2");
	CHECK_INT(alloc_env_prefix("a-very-long-name-that-does-not-fit", buf, sizeof(buf)),
		  -ENAMETOOLONG);
}

int main(void)
{
	log_set_level(LOG_LEVEL_NONE);
	snprintf(dir, sizeof(dir), "/tmp/udp-alloc-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	char probe[128];
	snprintf(probe, sizeof(probe), "%s/probe", dir);
	if (mknod(probe, S_IFCHR | 0600, makedev(1, 3)) < 0) {
		printf("unit %s: skipped: mknod not permitted\n", __FILE__);
		rmdir(dir);
		return 0;
	}
	unlink(probe);
	RUN(allocate_answers_in_order);
	RUN(allocate_refuses);
	RUN(allocate_refuses_colliding_container_paths);
	RUN(allocate_refuses_nodes_gone_since_the_snapshot);
	RUN(preferred_spreads);
	RUN(env_prefix);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
	return CHECK_SUMMARY();
}
