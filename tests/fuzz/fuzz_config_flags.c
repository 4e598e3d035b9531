/* The input is a command line: argv entries separated by NUL bytes (at
 * most MAX_ARGS). When the first byte is a control character (below 0x20)
 * the rest is instead one or more --device values, NUL-separated, given
 * as `--device VALUE ...`: the quick way into the device JSON/YAML parser.
 *
 * The environment variables config_load reads are unset and the working
 * directory is an empty, removed directory, so no ./config.* is found.
 * A non-empty --config is skipped (the input could name a FIFO or a
 * terminal and block): fuzz_config_file covers files. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_config.h"
#include "fuzz_util.h"
#include "log.h"

#define MAX_ARGS    32
#define MAX_DEVICES 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_clear_config_env();
	fuzz_chdir_empty(argc, argv);
	if (!getenv("FUZZ_LOG"))
		log_set_level(LOG_LEVEL_NONE);
	return 0;
}

/* Splits buf (len bytes, buf[len] == '\0') at NULs into out[0..max). */
static int split(char *buf, size_t len, char **out, int max)
{
	int n = 0;
	for (size_t i = 0; n < max;) {
		out[n++] = buf + i;
		i += strlen(buf + i) + 1;
		if (i > len)
			break;
	}
	return n;
}

static bool reads_a_file(char *const *argv, int argc)
{
	for (int i = 1; i < argc; i++)
		if ((strcmp(argv[i], "--config") == 0 && i + 1 < argc && argv[i + 1][0]) ||
		    (strncmp(argv[i], "--config=", 9) == 0 && argv[i][9]))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[1 + 2 * MAX_ARGS + 1] = {"usb-device-plugin"};
	int argc = 1;
	char *buf = malloc(size + 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (size > 0 && data[0] < 0x20) {
		char *values[MAX_DEVICES];
		int n = split(buf + 1, size - 1, values, MAX_DEVICES);
		for (int i = 0; i < n; i++) {
			argv[argc++] = "--device";
			argv[argc++] = values[i];
		}
	} else if (size > 0) {
		argc += split(buf, size, argv + 1, MAX_ARGS);
	}
	argv[argc] = NULL;
	if (!reads_a_file(argv, argc))
		fuzz_config_run(argc, argv, fuzz_errlen(size), failalloc_hash(data, size));
	free(buf);
	return 0;
}
