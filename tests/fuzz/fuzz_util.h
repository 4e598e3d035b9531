/* Helpers shared by the libFuzzer targets: a scratch file per process and
 * a clean environment. Header-only, everything static. */
#ifndef UDP_FUZZ_UTIL_H
#define UDP_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A scratch file, created once per process and unlinked at once: callers
 * open it again through path ("/proc/self/fd/N"), which works for an
 * unlinked file and leaves nothing behind whatever way the process ends. */
struct fuzz_file {
	int fd;
	char path[64];
};

/* A promise of the code under test that this input broke: a crash that
 * libFuzzer saves the input of. */
#define FUZZ_REQUIRE(cond)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static inline void fuzz_die(const char *what)
{
	perror(what);
	abort();
}

static inline void fuzz_file_init(struct fuzz_file *f, const char *tag)
{
	char tmpl[128];
	/* tmpfs when there is one: the file is rewritten for every input. */
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	int n = snprintf(tmpl, sizeof(tmpl), "%s/udp-fuzz-%s.XXXXXX", dir, tag);
	if (n < 0 || (size_t)n >= sizeof(tmpl))
		fuzz_die("fuzz_file_init: template");
	f->fd = mkostemp(tmpl, O_CLOEXEC);
	if (f->fd < 0)
		fuzz_die("fuzz_file_init: mkostemp");
	unlink(tmpl);
	n = snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
	if (n < 0 || (size_t)n >= sizeof(f->path))
		fuzz_die("fuzz_file_init: path");
}

/* Replaces the file's contents with data[0..size). */
static inline void fuzz_file_write(struct fuzz_file *f, const uint8_t *data, size_t size)
{
	if (ftruncate(f->fd, 0) < 0)
		fuzz_die("fuzz_file_write: ftruncate");
	size_t done = 0;
	while (done < size) {
		ssize_t w = pwrite(f->fd, data + done, size - done, (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fuzz_die("fuzz_file_write: pwrite");
		done += (size_t)w;
	}
}

/* The settings config_load also takes from the environment: unset, so
 * that only the input decides. */
static inline void fuzz_clear_config_env(void)
{
	static const char *const vars[] = {"DOMAIN", "LISTEN", "LOG_LEVEL", "PLUGIN_DIRECTORY",
					   "GRACE_PERIOD"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

/* Makes path (relative to the current directory) absolute; malloc'd. */
static inline char *fuzz_abs(const char *cwd, const char *path)
{
	char *out = NULL;
	if (path[0] == '/' ? asprintf(&out, "%s", path) < 0
			   : asprintf(&out, "%s/%s", cwd, path) < 0)
		fuzz_die("fuzz_abs: asprintf");
	return out;
}

/* Moves the process into a new, empty directory that is removed at once
 * (so that nothing is found through a relative path), after making
 * libFuzzer's own relative paths absolute: it reads its arguments only
 * after LLVMFuzzerInitialize, and writes crash inputs relative to the
 * working directory ("./crash-..." by default). Call it from there. */
static inline void fuzz_chdir_empty(int *argc, char ***argv)
{
	static const char *const path_flags[] = {"-artifact_prefix=",
						 "-exact_artifact_path=",
						 "-dict=",
						 "-merge_control_file=",
						 "-features_dir=",
						 "-mutation_graph_file=",
						 "-data_flow_trace=",
						 NULL};
	char cwd[4096], dir[] = "/tmp/udp-fuzz-cwd.XXXXXX";
	bool prefix_given = false;
	if (!getcwd(cwd, sizeof(cwd)))
		fuzz_die("fuzz_chdir_empty: getcwd");
	char **args = calloc((size_t)*argc + 2, sizeof(*args));
	if (!args)
		fuzz_die("fuzz_chdir_empty: calloc");
	for (int i = 0; i < *argc; i++) {
		const char *a = (*argv)[i];
		args[i] = (char *)a;
		if (i > 0 && a[0] != '-') { /* a corpus directory or an input */
			args[i] = fuzz_abs(cwd, a);
			continue;
		}
		for (size_t k = 0; a[0] == '-' && path_flags[k]; k++) {
			size_t n = strlen(path_flags[k]);
			if (strncmp(a, path_flags[k], n) != 0)
				continue;
			char *value = fuzz_abs(cwd, a + n);
			if (asprintf(&args[i], "%.*s%s", (int)n, a, value) < 0)
				fuzz_die("fuzz_chdir_empty: asprintf");
			free(value);
			prefix_given |= k == 0;
		}
	}
	int n = *argc;
	if (!prefix_given && asprintf(&args[n++], "-artifact_prefix=%s/", cwd) < 0)
		fuzz_die("fuzz_chdir_empty: asprintf");
	args[n] = NULL;
	/* libFuzzer's main keeps using these for the whole run: not freed. */
	*argc = n;
	*argv = args;
	if (!mkdtemp(dir) || chdir(dir) < 0 || rmdir(dir) < 0)
		fuzz_die("fuzz_chdir_empty: empty working directory");
}

/* An error message must end within its buffer, and be there when the
 * buffer has room for more than the NUL. */
static inline void fuzz_check_err(const char *err, size_t errlen)
{
	if (!memchr(err, '\0', errlen) || (errlen > 1 && !err[0])) {
		fprintf(stderr, "error return without a message (or unterminated)\n");
		abort();
	}
}

#endif
