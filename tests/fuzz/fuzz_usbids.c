/* The input is a usb.ids database: written to a file, opened, and looked
 * up: a few fixed IDs, plus the first vendor lines of the input (and the
 * product line after each), so that the fuzzer reaches the block walk.
 * When the input holds "\n===\n", the part after it is written over the
 * file once the database is open: the lookups then see a replaced file.
 * Each input is run twice, the second time with one allocation failing. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failalloc.h"
#include "fuzz_util.h"
#include "usbids.h"

#define MAX_SCANNED 4

static struct fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_file_init(&file, "usbids");
	return 0;
}

static int hex4(const uint8_t *p, size_t len)
{
	unsigned v = 0;
	if (len < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	return (int)v;
}

static void lookup(struct usbids *db, uint16_t vendor, uint16_t product)
{
	char v[256], p[256], small_v[6], small_p[3];
	int r = usbids_lookup(db, vendor, product, v, sizeof(v), p, sizeof(p));
	if (r == 0 && (!memchr(v, '\0', sizeof(v)) || !v[0]))
		abort();
	/* Names cut to tiny buffers, and no buffers at all. */
	usbids_lookup(db, vendor, product, small_v, sizeof(small_v), small_p, sizeof(small_p));
	usbids_lookup(db, vendor, product, NULL, 0, NULL, 0);
}

/* Looks up the IDs of the first vendor lines ("vvvv ...") of data and of
 * the product line ("\tpppp ...") that follows each. */
static void lookup_scanned(struct usbids *db, const uint8_t *data, size_t size)
{
	int found = 0;
	for (size_t i = 0; i < size && found < MAX_SCANNED; i++) {
		if (i > 0 && data[i - 1] != '\n')
			continue;
		int vendor = hex4(data + i, size - i);
		if (vendor < 0)
			continue;
		int product = 0;
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		if (nl && (size_t)(nl - data) + 2 < size && nl[1] == '\t') {
			size_t at = (size_t)(nl - data) + 2;
			int p = hex4(data + at, size - at);
			product = p < 0 ? 0 : p;
		}
		lookup(db, (uint16_t)vendor, (uint16_t)product);
		found++;
	}
}

/* Opens, looks up and closes, with allocation number fail_at failing
 * (-1: none); returns the number of allocations. */
static long pass(const uint8_t *data, size_t size, long fail_at)
{
	const uint8_t *sep = size >= 5 ? memmem(data, size, "\n===\n", 5) : NULL;
	size_t first = sep ? (size_t)(sep - data) + 1 : size;
	fuzz_file_write(&file, data, first);
	failalloc_start(fail_at);
	struct usbids *db = usbids_open(file.path);
	if (!db)
		return failalloc_stop();
	if (sep)
		fuzz_file_write(&file, sep + 5, size - first - 4);
	struct usbids_stats st;
	usbids_stats(db, &st);
	lookup(db, 0x1a86, 0x7523);
	lookup(db, 0x0000, 0x0000);
	lookup(db, 0xffff, 0xffff);
	lookup_scanned(db, data, size);
	lookup(db, 0x1a86, 0x7523); /* again: from the cache */
	char name[64], tiny[2];
	for (unsigned c = 0; c < 0x100; c += 0x11) /* 00 11 22 ... ff */
		usbids_class(db, (uint8_t)c, name, sizeof(name));
	usbids_class(db, 0x02, tiny, sizeof(tiny));
	usbids_class(db, 0x03, NULL, 0);
	usbids_close(db);
	return failalloc_stop();
}

/* Each input twice: normally, then with one allocation failing
 * (failalloc.h), chosen by the input's hash. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long n = pass(data, size, -1);
	if (n > 0)
		pass(data, size, (long)(failalloc_hash(data, size) % (uint64_t)n));
	return 0;
}
