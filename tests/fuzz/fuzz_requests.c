/* The input is a gRPC request body: decoded with protobuf-c as each of the
 * plugin's request messages, and each one that decodes is answered (as
 * server.c does) from one fixed snapshot, and the answer packed; then
 * again with one of the allocations of alloc.c failing (failalloc.h).
 *
 * The snapshot (resource "fuzz-dev") holds, with their device IDs:
 *   tty   a-0 a-1        /dev/null as /dev/ttyUSB0, env TTY and VENDOR
 *   zero  b-0 b-1 b-2    /dev/zero as /dev/zero, /dev/null mounted read-only
 *   same  c-0            /dev/zero as /dev/ttyUSB0 (shares tty's container path)
 *   sha   0f4e...5e      /dev/null, a 40-hex ID like the real ones
 *   bad   u-0            a missing file: Unhealthy
 *   gone  g-0            in group 1, then no longer discovered: Unhealthy "gone"
 * The seeds in corpus/fuzz_requests use these IDs. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "failalloc.h"
#include "fuzz_util.h"
#include "log.h"
#include "table.h"

#define SHA_ID "0f4e7c0b6c1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e"

static const char *const names[] = {"fuzz-dev"};
static struct table *table;
static struct snapshot *snap;

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	FUZZ_REQUIRE(d);
	return d;
}

/* One node: host -> container, a Device ("rw") or a read-only Mount. */
static void add_node(struct dev_instance *inst, const char *host, const char *container, bool mount)
{
	struct dev_node *n = realloc(inst->nodes, (inst->n_nodes + 1) * sizeof(*n));
	FUZZ_REQUIRE(n);
	inst->nodes = n;
	n = &n[inst->n_nodes++];
	memset(n, 0, sizeof(*n));
	n->host_path = xstrdup(host);
	n->container_path = xstrdup(container);
	n->mount = mount;
	n->read_only = mount;
	memcpy(n->permissions, mount ? "" : "rw", mount ? 1 : 3);
}

/* An instance keyed key with the given IDs (one per count slot). */
static struct dev_instance mk(const char *key, const char *const *ids, unsigned count)
{
	struct dev_instance inst = {.key = xstrdup(key), .count = count};
	inst.ids = calloc(count, sizeof(*inst.ids));
	FUZZ_REQUIRE(inst.ids);
	for (unsigned i = 0; i < count; i++)
		inst.ids[i] = xstrdup(ids[i]);
	return inst;
}

static void build_snapshot(void)
{
	static const char *const a[] = {"a-0", "a-1"}, *const b[] = {"b-0", "b-1", "b-2"},
				 *const c[] = {"c-0"}, *const sha[] = {SHA_ID},
				 *const u[] = {"u-0"}, *const g[] = {"g-0"};
	struct dev_instance *v = calloc(5, sizeof(*v));
	FUZZ_REQUIRE(v && (table = table_new(names[0], 3600 * 1000)));
	v[0] = mk("g0:tty", a, 2);
	add_node(&v[0], "/dev/null", "/dev/ttyUSB0", false);
	FUZZ_REQUIRE(dev_instance_add_env(&v[0], "TTY", "/dev/ttyUSB0") == 0);
	FUZZ_REQUIRE(dev_instance_add_env(&v[0], "VENDOR", "1a86") == 0);
	v[1] = mk("g0:zero", b, 3);
	add_node(&v[1], "/dev/zero", "/dev/zero", false);
	add_node(&v[1], "/dev/null", "/mnt/null", true);
	v[2] = mk("g0:same", c, 1);
	add_node(&v[2], "/dev/zero", "/dev/ttyUSB0", false);
	v[3] = mk("g0:sha", sha, 1);
	add_node(&v[3], "/dev/null", "/dev/null", false);
	v[4] = mk("g0:bad", u, 1);
	add_node(&v[4], "/nonexistent/udp-fuzz", "/dev/missing", false);
	FUZZ_REQUIRE(table_update_group(table, 0, v, 5, 1) == 1);

	struct dev_instance *w = calloc(1, sizeof(*w));
	FUZZ_REQUIRE(w);
	w[0] = mk("g1:gone", g, 1);
	add_node(&w[0], "/dev/null", "/dev/gone", false);
	FUZZ_REQUIRE(table_update_group(table, 1, w, 1, 2) == 1);
	FUZZ_REQUIRE(table_update_group(table, 1, NULL, 0, 3) == 1);
	FUZZ_REQUIRE((snap = table_snapshot(table)));
	FUZZ_REQUIRE(snap->n_devices == 9 && snap->n_healthy == 7);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!getenv("FUZZ_LOG"))
		log_set_level(LOG_LEVEL_NONE);
	build_snapshot();
	/* The snapshot lives as long as the process: LeakSanitizer still
	 * sees it through these globals. */
	return 0;
}

/* Packs m as the server would send it, and decodes that again. */
static void pack_roundtrip(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	FUZZ_REQUIRE(buf);
	FUZZ_REQUIRE(protobuf_c_message_pack(m, buf) == len);
	ProtobufCMessage *back = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	FUZZ_REQUIRE(back);
	FUZZ_REQUIRE(protobuf_c_message_get_packed_size(back) == len);
	protobuf_c_message_free_unpacked(back, NULL);
	free(buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* No string of v[0..n) twice. */
static bool all_distinct(char **v, size_t n)
{
	bool ok = true;
	char **copy = malloc((n ? n : 1) * sizeof(*copy));
	FUZZ_REQUIRE(copy);
	memcpy(copy, v, n * sizeof(*v));
	qsort(copy, n, sizeof(*copy), cmp_str);
	for (size_t i = 1; i < n && ok; i++)
		ok = strcmp(copy[i - 1], copy[i]) != 0;
	free(copy);
	return ok;
}

static const char *env_value(const V1beta1__ContainerAllocateResponse *c, const char *key)
{
	for (size_t i = 0; i < c->n_envs; i++)
		if (strcmp(c->envs[i]->key, key) == 0)
			return c->envs[i]->value;
	return NULL;
}

/* Whether c gives the container node: its host path at its container
 * path, as a DeviceSpec or a Mount as the node says. */
static bool has_node(const V1beta1__ContainerAllocateResponse *c, const struct dev_node *node)
{
	for (size_t i = 0; !node->mount && i < c->n_devices; i++)
		if (strcmp(c->devices[i]->container_path, node->container_path) == 0)
			return strcmp(c->devices[i]->host_path, node->host_path) == 0;
	for (size_t i = 0; node->mount && i < c->n_mounts; i++)
		if (strcmp(c->mounts[i]->container_path, node->container_path) == 0)
			return strcmp(c->mounts[i]->host_path, node->host_path) == 0;
	return false;
}

/* What alloc.h promises of one container's answer: every node of every
 * device asked for, each container path once, distinct variable names,
 * USBDP_FUZZ_DEV_IDS and _<k>_ID. */
static void check_container(const V1beta1__ContainerAllocateRequest *creq,
			    const V1beta1__ContainerAllocateResponse *c)
{
	size_t np = c->n_devices + c->n_mounts;
	char **v = malloc((np + c->n_envs + 1) * sizeof(*v));
	FUZZ_REQUIRE(v);
	for (size_t i = 0; i < c->n_devices; i++)
		v[i] = c->devices[i]->container_path;
	for (size_t i = 0; i < c->n_mounts; i++)
		v[c->n_devices + i] = c->mounts[i]->container_path;
	FUZZ_REQUIRE(all_distinct(v, np));
	for (size_t i = 0; i < c->n_envs; i++)
		v[i] = c->envs[i]->key;
	FUZZ_REQUIRE(all_distinct(v, c->n_envs));
	free(v);

	const char *ids = env_value(c, "USBDP_FUZZ_DEV_IDS");
	FUZZ_REQUIRE(ids);
	for (size_t k = 0; k < creq->n_devices_ids; k++) {
		size_t len = strlen(creq->devices_ids[k]);
		FUZZ_REQUIRE(strncmp(ids, creq->devices_ids[k], len) == 0);
		ids += len;
		FUZZ_REQUIRE(*ids == (k + 1 < creq->n_devices_ids ? ',' : '\0'));
		ids += *ids == ',';
		char key[64];
		snprintf(key, sizeof(key), "USBDP_FUZZ_DEV_%zu_ID", k);
		const char *id = env_value(c, key);
		FUZZ_REQUIRE(id && strcmp(id, creq->devices_ids[k]) == 0);
		const struct snap_device *d = snapshot_find(snap, creq->devices_ids[k]);
		FUZZ_REQUIRE(d);
		for (size_t i = 0; i < d->instance->inst.n_nodes; i++)
			FUZZ_REQUIRE(has_node(c, &d->instance->inst.nodes[i]));
	}
}

/* Every preferred ID was offered: available or must_include. */
static void check_preferred(const V1beta1__ContainerPreferredAllocationRequest *creq,
			    const V1beta1__ContainerPreferredAllocationResponse *c)
{
	int32_t want = creq->allocation_size;
	FUZZ_REQUIRE(c->n_deviceids <= (size_t)(want > 0 ? want : 0));
	for (size_t i = 0; i < c->n_deviceids; i++) {
		bool offered = false;
		for (size_t j = 0; j < creq->n_available_deviceids && !offered; j++)
			offered = strcmp(c->deviceids[i], creq->available_deviceids[j]) == 0;
		for (size_t j = 0; j < creq->n_must_include_deviceids && !offered; j++)
			offered = strcmp(c->deviceids[i], creq->must_include_deviceids[j]) == 0;
		FUZZ_REQUIRE(offered);
	}
}

/* Each answer is computed twice: normally, then with one of its
 * allocations failing (failalloc.h), chosen by the input's hash. */

static long allocate_pass(const V1beta1__AllocateRequest *req, long fail_at)
{
	V1beta1__AllocateResponse *resp = NULL;
	char err[512] = "";
	failalloc_start(fail_at);
	int r = alloc_allocate(snap, names[0], NULL, req, &resp, err, sizeof(err));
	bool failed = failalloc_failed();
	long n = failalloc_stop();
	FUZZ_REQUIRE(!failed || r == -ENOMEM);
	if (r == 0) {
		FUZZ_REQUIRE(resp && resp->n_container_responses == req->n_container_requests);
		for (size_t i = 0; i < resp->n_container_responses; i++)
			check_container(req->container_requests[i], resp->container_responses[i]);
		pack_roundtrip(&resp->base);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else {
		FUZZ_REQUIRE(!resp);
		fuzz_check_err(err, sizeof(err));
	}
	return n;
}

static void allocate(const uint8_t *data, size_t size, uint64_t hash)
{
	V1beta1__AllocateRequest *req = v1beta1__allocate_request__unpack(NULL, size, data);
	if (!req)
		return;
	long n = allocate_pass(req, -1);
	if (n > 0)
		allocate_pass(req, (long)(hash % (uint64_t)n));
	v1beta1__allocate_request__free_unpacked(req, NULL);
}

static long preferred_pass(const V1beta1__PreferredAllocationRequest *req, long fail_at)
{
	V1beta1__PreferredAllocationResponse *resp = NULL;
	char err[512] = "";
	failalloc_start(fail_at);
	int r = alloc_preferred(snap, req, &resp, err, sizeof(err));
	bool failed = failalloc_failed();
	long n = failalloc_stop();
	FUZZ_REQUIRE(!failed || r == -ENOMEM);
	if (r == 0) {
		FUZZ_REQUIRE(resp && resp->n_container_responses == req->n_container_requests);
		for (size_t i = 0; i < resp->n_container_responses; i++)
			check_preferred(req->container_requests[i], resp->container_responses[i]);
		pack_roundtrip(&resp->base);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else {
		FUZZ_REQUIRE(!resp);
		fuzz_check_err(err, sizeof(err));
	}
	return n;
}

static void preferred(const uint8_t *data, size_t size, uint64_t hash)
{
	V1beta1__PreferredAllocationRequest *req =
	    v1beta1__preferred_allocation_request__unpack(NULL, size, data);
	if (!req)
		return;
	long n = preferred_pass(req, -1);
	if (n > 0)
		preferred_pass(req, (long)(hash % (uint64_t)n));
	v1beta1__preferred_allocation_request__free_unpacked(req, NULL);
}

static void prestart(const uint8_t *data, size_t size)
{
	V1beta1__PreStartContainerRequest *req =
	    v1beta1__pre_start_container_request__unpack(NULL, size, data);
	char err[512] = "";
	if (!req)
		return;
	if (alloc_prestart(snap, req, err, sizeof(err)) < 0)
		fuzz_check_err(err, sizeof(err));
	v1beta1__pre_start_container_request__free_unpacked(req, NULL);
}

/* Packs m (a message decoded from the input) again. Not decoded a third
 * time: protobuf-c keeps unknown fields it would not decode once packed
 * (field number 0 in a two-byte tag), which is the library's business. */
static void pack_only(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	FUZZ_REQUIRE(buf);
	FUZZ_REQUIRE(protobuf_c_message_pack(m, buf) == len);
	free(buf);
}

/* Decoded and packed only: the plugin sends these, the kubelet answers. */
static void others(const uint8_t *data, size_t size)
{
	V1beta1__RegisterRequest *reg = v1beta1__register_request__unpack(NULL, size, data);
	if (reg) {
		pack_only(&reg->base);
		v1beta1__register_request__free_unpacked(reg, NULL);
	}
	V1beta1__Empty *e = v1beta1__empty__unpack(NULL, size, data);
	if (e) {
		pack_only(&e->base);
		v1beta1__empty__free_unpacked(e, NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t hash = failalloc_hash(data, size);
	allocate(data, size, hash);
	preferred(data, size, hash);
	prestart(data, size);
	others(data, size);
	return 0;
}
