/* virtual_expand: the instances of a virtual group, from a hand-built
 * group and from one config_load parsed. */
#include "check.h"
#include "config.h"
#include "virtual.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct cfg_group group(struct cfg_virtual *v, unsigned count)
{
	return (struct cfg_group){.virt = v, .count = count};
}

TEST(ids_and_keys)
{
	char prefix[] = "sim";
	struct cfg_virtual v = {.count = 3, .id_prefix = prefix};
	struct cfg_group g = group(&v, 1);
	struct dev_instance *in = (struct dev_instance *)1;
	size_t n = 99;
	CHECK_INT(virtual_expand(&g, "node-1", &in, &n), 0);
	CHECK_INT(n, 3);
	CHECK(in != NULL);
	char want[64];
	for (size_t i = 0; in && i < n && i < 3; i++) {
		snprintf(want, sizeof(want), "v%06zu", i);
		CHECK_STR(in[i].key, want);
		CHECK_INT(in[i].count, 1);
		snprintf(want, sizeof(want), "sim-node-1-%zu", i);
		CHECK_STR(in[i].ids[0], want);
		/* No file: no node, no facts, no templates (the daemon adds those). */
		CHECK_INT(in[i].n_nodes, 0);
		CHECK(in[i].nodes == NULL);
		CHECK_INT(in[i].n_env, 0);
		CHECK_INT(in[i].n_env_tmpl, 0);
	}
	dev_instances_free(in, n);
}

TEST(count_slots)
{
	char prefix[] = "gpu";
	struct cfg_virtual v = {.count = 2, .id_prefix = prefix};
	struct cfg_group g = group(&v, 3);
	struct dev_instance *in = NULL;
	size_t n = 0;
	CHECK_INT(virtual_expand(&g, "n", &in, &n), 0);
	CHECK_INT(n, 2);
	static const char *const want[2][3] = {{"gpu-n-0-0", "gpu-n-0-1", "gpu-n-0-2"},
					       {"gpu-n-1-0", "gpu-n-1-1", "gpu-n-1-2"}};
	for (size_t i = 0; i < n && i < 2; i++) {
		CHECK_INT(in[i].count, 3);
		for (size_t j = 0; j < 3 && j < in[i].count; j++)
			CHECK_STR(in[i].ids[j], want[i][j]);
	}
	/* Every ID distinct. */
	for (size_t a = 0; a < n * 3; a++)
		for (size_t b = a + 1; b < n * 3; b++)
			CHECK(strcmp(in[a / 3].ids[a % 3], in[b / 3].ids[b % 3]) != 0);
	dev_instances_free(in, n);
}

/* Keys sort as the devices' numbers do (v000009 before v000010). */
TEST(keys_sortable)
{
	char prefix[] = "x";
	struct cfg_virtual v = {.count = 120, .id_prefix = prefix};
	struct cfg_group g = group(&v, 1);
	struct dev_instance *in = NULL;
	size_t n = 0;
	CHECK_INT(virtual_expand(&g, "n", &in, &n), 0);
	CHECK_INT(n, 120);
	for (size_t i = 0; i + 1 < n; i++)
		CHECK(strcmp(in[i].key, in[i + 1].key) < 0);
	if (n == 120) {
		CHECK_STR(in[9].key, "v000009");
		CHECK_STR(in[10].key, "v000010");
		CHECK_STR(in[119].key, "v000119");
		CHECK_STR(in[119].ids[0], "x-n-119");
	}
	dev_instances_free(in, n);
}

/* Creates an empty file at dir/name. */
static void touch(const char *dir, const char *name)
{
	char p[256];
	if (snprintf(p, sizeof(p), "%s/%s", dir, name) >= (int)sizeof(p))
		abort();
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

/* Device i is <prefix><ID> (the simple device plugin's code), or
 * <prefix><i> (its README) when only that one exists. */
TEST(device_file_prefix)
{
	char dir[] = "/tmp/test_virtual.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char prefix[] = "sim", file[300], want[320];
	snprintf(file, sizeof(file), "%s/sim-", dir);
	touch(dir, "sim-1");
	struct cfg_virtual v = {.count = 2, .id_prefix = prefix, .device_file_prefix = file};
	struct cfg_group g = group(&v, 1);
	struct dev_instance *in = NULL;
	size_t n = 0;
	for (int round = 0; round < 2; round++) {
		CHECK_INT(virtual_expand(&g, "n", &in, &n), 0);
		CHECK_INT(n, 2);
		for (size_t i = 0; i < n && i < 2; i++) {
			CHECK_INT(in[i].n_nodes, 1);
			if (in[i].n_nodes != 1)
				continue;
			if (i == 1 && round == 0)
				snprintf(want, sizeof(want), "%s/sim-1", dir);
			else
				snprintf(want, sizeof(want), "%s/sim-sim-n-%zu", dir, i);
			CHECK_STR(in[i].nodes[0].host_path, want);
			CHECK_STR(in[i].nodes[0].container_path, want);
			CHECK_STR(in[i].nodes[0].permissions, "rw");
			CHECK(!in[i].nodes[0].mount);
			CHECK(in[i].nodes[0].host_path != in[i].nodes[0].container_path);
		}
		dev_instances_free(in, n);
		touch(dir, "sim-sim-n-1"); /* both: the ID's wins */
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

TEST(invalid)
{
	struct cfg_group g = group(NULL, 1);
	struct dev_instance *in = (struct dev_instance *)1;
	size_t n = 99;
	CHECK_INT(virtual_expand(&g, "n", &in, &n), -EINVAL);
	CHECK(in == NULL);
	CHECK_INT(n, 0);
	char prefix[] = "sim";
	struct cfg_virtual v = {.count = 1, .id_prefix = prefix};
	g = group(&v, 0);
	in = (struct dev_instance *)1;
	n = 99;
	CHECK_INT(virtual_expand(&g, "n", &in, &n), -EINVAL);
	CHECK(in == NULL);
	CHECK_INT(n, 0);
	/* A paths group is no virtual group. */
	struct cfg_path p = {.path = prefix, .limit = 1};
	g = (struct cfg_group){.paths = &p, .n_paths = 1, .count = 1};
	CHECK_INT(virtual_expand(&g, "n", &in, &n), -EINVAL);
}

/* From the config, as the daemon does: the node name from $NODE_NAME. */
TEST(from_config)
{
	setenv("NODE_NAME", "Worker.A", 1);
	char *argv[] = {
	    "usb-device-plugin", "--device",
	    "{\"name\": \"sim\", \"groups\": [{\"count\": 2, \"virtual\": {\"count\": 2, "
	    "\"idPrefix\": \"s\", \"deviceFilePrefix\": \"/dev/s\"}}]}",
	    NULL};
	struct config c;
	char err[256] = "";
	int r = config_load(&c, 3, argv, err, sizeof(err));
	unsetenv("NODE_NAME");
	CHECK_INT(r, 0);
	if (r != 0) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	struct dev_instance *in = NULL;
	size_t n = 0;
	CHECK_INT(virtual_expand(&c.devices[0].groups[0], c.node_name, &in, &n), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(in[1].ids[0], "s-worker.a-1-0");
		CHECK_STR(in[1].ids[1], "s-worker.a-1-1");
		CHECK_STR(in[1].nodes[0].host_path, "/dev/s-s-worker.a-1-0");
	}
	dev_instances_free(in, n);
	config_free(&c);
}

int main(void)
{
	RUN(ids_and_keys);
	RUN(count_slots);
	RUN(keys_sortable);
	RUN(device_file_prefix);
	RUN(invalid);
	RUN(from_config);
	return CHECK_SUMMARY();
}
