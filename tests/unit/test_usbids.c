/* usb.ids lookups against small databases written here (products, classes,
 * CRLF, garbage, truncated and over-long lines, duplicates, a file replaced
 * under an open database), then spot checks and timings against the real
 * /usr/share/misc/usb.ids when it is installed. */
#include "check.h"
#include "usbids.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REAL_DB "/usr/share/misc/usb.ids"

struct fixture {
	char dir[64];
	char path[128];
};

/* Writes len bytes to dir/name (replacing it in place) and sets fx->path. */
static int write_file(struct fixture *fx, const char *name, const void *data, size_t len)
{
	int n = snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, name);
	int fd;
	ssize_t w;

	if (n < 0 || (size_t)n >= sizeof(fx->path))
		return -ENAMETOOLONG;
	fd = open(fx->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	w = write(fd, data, len);
	close(fd);
	return w == (ssize_t)len ? 0 : -EIO;
}

static int write_str(struct fixture *fx, const char *name, const char *text)
{
	return write_file(fx, name, text, strlen(text));
}

static void fixture_init(struct fixture *fx)
{
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_usbids.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		perror("mkdtemp");
		exit(1);
	}
	fx->path[0] = '\0';
}

static void fixture_remove(struct fixture *fx, const char *name)
{
	char p[192];

	snprintf(p, sizeof(p), "%s/%s", fx->dir, name);
	unlink(p);
}

/* Looks vendor:product up and checks the result and both names. */
#define CHECK_LOOKUP(db, v, p, want_rc, want_vendor, want_product)                                 \
	do {                                                                                       \
		char vn_[256], pn_[256];                                                           \
		CHECK_INT(usbids_lookup(db, v, p, vn_, sizeof(vn_), pn_, sizeof(pn_)), want_rc);   \
		CHECK_STR(vn_, want_vendor);                                                       \
		CHECK_STR(pn_, want_product);                                                      \
	} while (0)

#define CHECK_CLASS(db, c, want_rc, want_name)                                                     \
	do {                                                                                       \
		char cn_[256];                                                                     \
		CHECK_INT(usbids_class(db, c, cn_, sizeof(cn_)), want_rc);                         \
		CHECK_STR(cn_, want_name);                                                         \
	} while (0)

static const char basic_db[] = "#\n"
			       "#\tList of USB ID's (a fixture)\n"
			       "#\n"
			       "\n"
			       "# Syntax:\n"
			       "# vendor  vendor_name\n"
			       "0001  Fry's Electronics\n"
			       "\t7778  Counterfeit flash drive [Kingston]\n"
			       "0403  Future Technology Devices International, Ltd\n"
			       "\t6001  FT232 Serial (UART) IC\n"
			       "\t\t00  an interface, not a product\n"
			       "\t6010  FT2232C/D/H Dual UART/FIFO IC\n"
			       "# a comment inside a vendor's block\n"
			       "\n"
			       "\t6014  FT232H Single HS USB-UART/FIFO IC\n"
			       "0bad  No Products Here\n"
			       "10C4  Upper Case Labs\n"
			       "\tEA60  CP210x UART Bridge\n"
			       "1a86  QinHeng Electronics\n"
			       "\t7523  CH340 serial converter\n"
			       "ffff  Last Vendor\n"
			       "\t0001  Last Product\n"
			       "\n"
			       "# List of known device classes, subclasses and protocols\n"
			       "C 00  (Defined at Interface level)\n"
			       "C 02  Communications\n"
			       "\t01  Direct Line\n"
			       "\t02  Abstract (modem)\n"
			       "\t\t01  AT-commands (v.25ter)\n"
			       "C FF  Vendor Specific Class\n"
			       "\tff  Vendor Specific Subclass\n"
			       "AT 0001  Audio Terminal\n"
			       "HID 21  HID\n"
			       "HUT 01  Generic Desktop Controls\n"
			       "\t0001  looks like a product of ffff but is in another section\n"
			       "L 0001  Afrikaans\n";

TEST(test_basic)
{
	struct fixture fx;
	struct usbids *db;
	struct usbids_stats st;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "usb.ids", basic_db), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_STR(usbids_path(db), fx.path);

	CHECK_LOOKUP(db, 0x0001, 0x7778, 0, "Fry's Electronics",
		     "Counterfeit flash drive [Kingston]");
	CHECK_LOOKUP(db, 0x0403, 0x6001, 0, "Future Technology Devices International, Ltd",
		     "FT232 Serial (UART) IC");
	/* Past a two-tab line, a comment and a blank line in the block. */
	CHECK_LOOKUP(db, 0x0403, 0x6014, 0, "Future Technology Devices International, Ltd",
		     "FT232H Single HS USB-UART/FIFO IC");
	/* Interface codes are not product ids. */
	CHECK_LOOKUP(db, 0x0403, 0x0000, 0, "Future Technology Devices International, Ltd", "");
	CHECK_LOOKUP(db, 0x0bad, 0x0001, 0, "No Products Here", "");
	/* The block ends at the next vendor: 0bad has no 7523 of 1a86's. */
	CHECK_LOOKUP(db, 0x0bad, 0x7523, 0, "No Products Here", "");
	CHECK_LOOKUP(db, 0x10c4, 0xea60, 0, "Upper Case Labs", "CP210x UART Bridge");
	CHECK_LOOKUP(db, 0x1a86, 0x7523, 0, "QinHeng Electronics", "CH340 serial converter");
	CHECK_LOOKUP(db, 0xffff, 0x0001, 0, "Last Vendor", "Last Product");
	CHECK_LOOKUP(db, 0x1234, 0x5678, -ENOENT, "", "");
	CHECK_LOOKUP(db, 0x0000, 0x0000, -ENOENT, "", "");

	CHECK_CLASS(db, 0x00, 0, "(Defined at Interface level)");
	CHECK_CLASS(db, 0x02, 0, "Communications");
	CHECK_CLASS(db, 0xff, 0, "Vendor Specific Class");
	CHECK_CLASS(db, 0x03, -ENOENT, "");
	/* "HUT 01" and "L 0001" lines are neither vendors nor classes. */
	CHECK_CLASS(db, 0x01, -ENOENT, "");

	usbids_stats(db, &st);
	CHECK_INT(st.vendors, 6);
	CHECK_INT(st.classes, 3);
	CHECK_INT(st.index_bytes, 9 * 8);
	CHECK(st.total_bytes > st.index_bytes);

	/* The product buffer is optional. */
	{
		char vn[64];

		CHECK_INT(usbids_lookup(db, 0x1a86, 0x7523, vn, sizeof(vn), NULL, 0), 0);
		CHECK_STR(vn, "QinHeng Electronics");
		CHECK_INT(usbids_lookup(db, 0x1a86, 0x7523, NULL, 0, NULL, 0), 0);
		CHECK_INT(usbids_lookup(db, 0x1a86, 0x7523, NULL, 5, NULL, 0), -EINVAL);
		CHECK_INT(usbids_lookup(db, 0x1a86, 0x7523, vn, sizeof(vn), NULL, 1), -EINVAL);
		CHECK_INT(usbids_class(db, 2, NULL, 3), -EINVAL);
		CHECK_INT(usbids_class(db, 2, NULL, 0), 0);
	}
	usbids_close(db);
	fixture_remove(&fx, "usb.ids");
	rmdir(fx.dir);
}

/* More lookups than cache slots, repeated: the same answers each time. */
TEST(test_cache)
{
	static const struct {
		uint16_t v, p;
		int rc;
		const char *vn, *pn;
	} want[] = {
	    {0x0001, 0x7778, 0, "Fry's Electronics", "Counterfeit flash drive [Kingston]"},
	    {0x0403, 0x6010, 0, "Future Technology Devices International, Ltd",
	     "FT2232C/D/H Dual UART/FIFO IC"},
	    {0x0bad, 0x0000, 0, "No Products Here", ""},
	    {0x10c4, 0xea60, 0, "Upper Case Labs", "CP210x UART Bridge"},
	    {0x1a86, 0x7523, 0, "QinHeng Electronics", "CH340 serial converter"},
	    {0x4242, 0x0001, -ENOENT, "", ""},
	    {0xffff, 0x0001, 0, "Last Vendor", "Last Product"},
	};
	struct fixture fx;
	struct usbids *db;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "usb.ids", basic_db), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	for (int round = 0; round < 5; round++) {
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			CHECK_LOOKUP(db, want[i].v, want[i].p, want[i].rc, want[i].vn, want[i].pn);
			/* And the same one again at once: a cache hit. */
			CHECK_LOOKUP(db, want[i].v, want[i].p, want[i].rc, want[i].vn, want[i].pn);
		}
	}
	usbids_close(db);
	fixture_remove(&fx, "usb.ids");
	rmdir(fx.dir);
}

TEST(test_crlf)
{
	static const char text[] = "# comment\r\n"
				   "\r\n"
				   "0403  Future Technology Devices International, Ltd\r\n"
				   "\t6001  FT232 Serial (UART) IC\r\n"
				   "1a86  QinHeng Electronics \r\n"
				   "\t7523  CH340 serial converter\r\n"
				   "C 02  Communications\r\n"
				   "\t02  Abstract (modem)\r\n";
	struct fixture fx;
	struct usbids *db;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "crlf.ids", text), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0403, 0x6001, 0, "Future Technology Devices International, Ltd",
		     "FT232 Serial (UART) IC");
	/* Trailing blanks are trimmed, and no '\r' is left in a name. */
	CHECK_LOOKUP(db, 0x1a86, 0x7523, 0, "QinHeng Electronics", "CH340 serial converter");
	CHECK_CLASS(db, 0x02, 0, "Communications");
	usbids_close(db);
	fixture_remove(&fx, "crlf.ids");
	rmdir(fx.dir);
}

TEST(test_garbage)
{
	static const char text[] = "\x01\x02\xff\xfe binary junk\n"
				   "zzzz  not hex\n"
				   "12  too short an id\n"
				   "1234\n"
				   "1235  \n"
				   "12345  five digits\n"
				   "1236Nospace\n"
				   "\t\n"
				   "\t\t\t\n"
				   "C\n"
				   "C 2  one digit\n"
				   "C 0g  bad digit\n"
				   "C 023  three digits\n"
				   "0aaa  Good Vendor\n"
				   "\tzzzz  bad product\n"
				   "\t00  short product\n"
				   "\t0001\n"
				   "\t0002  Bell\a and\x1b[31m escape\n"
				   "\t0003  Good Product\n"
				   "0bbb\tTab Separated\n"
				   "\t0001\tTab Product\n";
	/* A NUL in the middle of a line must not end the file for the scan. */
	static const char with_nul[] = "0ccc  Before\0NUL\n"
				       "0ddd  After NUL\n";
	struct fixture fx;
	struct usbids *db;
	struct usbids_stats st;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "garbage.ids", text), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0aaa, 0x0003, 0, "Good Vendor", "Good Product");
	CHECK_LOOKUP(db, 0x0aaa, 0x0001, 0, "Good Vendor", "");
	CHECK_LOOKUP(db, 0x0aaa, 0x0002, 0, "Good Vendor", "Bell? and?[31m escape");
	CHECK_LOOKUP(db, 0x0bbb, 0x0001, 0, "Tab Separated", "Tab Product");
	CHECK_LOOKUP(db, 0x1234, 0x0000, -ENOENT, "", "");
	CHECK_LOOKUP(db, 0x1235, 0x0000, -ENOENT, "", "");
	CHECK_LOOKUP(db, 0x1236, 0x0000, -ENOENT, "", "");
	CHECK_LOOKUP(db, 0x2345, 0x0000, -ENOENT, "", "");
	CHECK_CLASS(db, 0x02, -ENOENT, "");
	CHECK_CLASS(db, 0x23, -ENOENT, "");
	usbids_stats(db, &st);
	CHECK_INT(st.vendors, 2);
	CHECK_INT(st.classes, 0);
	usbids_close(db);

	CHECK_INT(write_file(&fx, "nul.ids", with_nul, sizeof(with_nul) - 1), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0ccc, 0x0000, 0, "Before?NUL", "");
	CHECK_LOOKUP(db, 0x0ddd, 0x0000, 0, "After NUL", "");
	usbids_close(db);

	fixture_remove(&fx, "garbage.ids");
	fixture_remove(&fx, "nul.ids");
	rmdir(fx.dir);
}

TEST(test_truncated)
{
	struct fixture fx;
	struct usbids *db;

	fixture_init(&fx);
	/* The last line, a product, lacks its newline. */
	CHECK_INT(write_str(&fx, "a.ids", "0001  First\n\t0001  One\n0002  Second\n\t0002  Two"),
		  0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0001, 0x0001, 0, "First", "One");
	CHECK_LOOKUP(db, 0x0002, 0x0002, 0, "Second", "Two");
	usbids_close(db);

	/* The last line, a vendor, lacks its newline. */
	CHECK_INT(write_str(&fx, "b.ids", "0001  First\n0002  Second"), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0002, 0x0000, 0, "Second", "");
	usbids_close(db);

	/* Cut in the middle of a line: what is left of it does not parse. */
	CHECK_INT(write_str(&fx, "c.ids", "0001  First\n\t0001  One\n000"), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0001, 0x0001, 0, "First", "One");
	CHECK_LOOKUP(db, 0x0000, 0x0000, -ENOENT, "", "");
	usbids_close(db);

	fixture_remove(&fx, "a.ids");
	fixture_remove(&fx, "b.ids");
	fixture_remove(&fx, "c.ids");
	rmdir(fx.dir);
}

/* Appends n copies of c to buf at *at. */
static void fill(char *buf, size_t *at, char c, size_t n)
{
	memset(buf + *at, c, n);
	*at += n;
}

static void append(char *buf, size_t *at, const char *s)
{
	size_t n = strlen(s);

	memcpy(buf + *at, s, n);
	*at += n;
}

TEST(test_long_lines)
{
	size_t cap = 300000, n = 0;
	char *buf = malloc(cap);
	struct fixture fx;
	struct usbids *db;
	struct usbids_stats st;

	fixture_init(&fx);
	CHECK(buf != NULL);
	if (!buf)
		return;
	append(buf, &n, "0001  Before\n");
	/* A vendor line of 100,000 bytes: skipped whole, including its id. */
	append(buf, &n, "0002  ");
	fill(buf, &n, 'x', 100000);
	append(buf, &n, "\n\t0002  orphan of the long line\n");
	append(buf, &n, "0003  After\n\t0003  Product After\n");
	/* A product line of 600 bytes, skipped; the block goes on after it. */
	append(buf, &n, "\t0004  ");
	fill(buf, &n, 'y', 600);
	append(buf, &n, "\n\t0005  Five\n");
	/* A 512-byte vendor line is kept (the cap), 513 is not. */
	append(buf, &n, "0006  ");
	fill(buf, &n, 'z', 512 - 6);
	append(buf, &n, "\n0007  ");
	fill(buf, &n, 'z', 513 - 6);
	append(buf, &n, "\n0008  Eight\n");
	/* A long last line without a newline. */
	append(buf, &n, "0009  ");
	fill(buf, &n, 'w', 150000);

	CHECK_INT(write_file(&fx, "long.ids", buf, n), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0001, 0x0000, 0, "Before", "");
	CHECK_LOOKUP(db, 0x0002, 0x0002, -ENOENT, "", "");
	CHECK_LOOKUP(db, 0x0003, 0x0003, 0, "After", "Product After");
	CHECK_LOOKUP(db, 0x0003, 0x0004, 0, "After", "");
	CHECK_LOOKUP(db, 0x0003, 0x0005, 0, "After", "Five");
	CHECK_LOOKUP(db, 0x0007, 0x0000, -ENOENT, "", "");
	CHECK_LOOKUP(db, 0x0008, 0x0000, 0, "Eight", "");
	CHECK_LOOKUP(db, 0x0009, 0x0000, -ENOENT, "", "");
	{
		char vn[600];

		CHECK_INT(usbids_lookup(db, 0x0006, 0, vn, sizeof(vn), NULL, 0), 0);
		CHECK_INT(strlen(vn), 512 - 6);
		/* A small buffer gets the start of the name. */
		CHECK_INT(usbids_lookup(db, 0x0006, 0, vn, 4, NULL, 0), 0);
		CHECK_STR(vn, "zzz");
		CHECK_INT(usbids_lookup(db, 0x0006, 0, vn, 1, NULL, 0), 0);
		CHECK_STR(vn, "");
	}
	usbids_stats(db, &st);
	CHECK_INT(st.vendors, 4);
	usbids_close(db);
	free(buf);
	fixture_remove(&fx, "long.ids");
	rmdir(fx.dir);
}

TEST(test_utf8_cut)
{
	struct fixture fx;
	struct usbids *db;
	char vn[16];

	fixture_init(&fx);
	/* "Señor Müller": ñ and ü are two bytes each. */
	CHECK_INT(write_str(&fx, "u.ids", "0001  Se\xc3\xb1or M\xc3\xbcller\n"), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_INT(usbids_lookup(db, 1, 0, vn, sizeof(vn), NULL, 0), 0);
	CHECK_STR(vn, "Se\xc3\xb1or M\xc3\xbcller");
	/* Room for "Se" and half of ñ: the half is dropped. */
	CHECK_INT(usbids_lookup(db, 1, 0, vn, 4, NULL, 0), 0);
	CHECK_STR(vn, "Se");
	CHECK_INT(usbids_lookup(db, 1, 0, vn, 5, NULL, 0), 0);
	CHECK_STR(vn, "Se\xc3\xb1");
	usbids_close(db);
	fixture_remove(&fx, "u.ids");
	rmdir(fx.dir);
}

TEST(test_duplicate_vendor)
{
	static const char text[] = "0001  First Name\n"
				   "\t0001  First Product\n"
				   "0002  Between\n"
				   "0001  Second Name\n"
				   "\t0001  Second Product\n"
				   "\t0002  Only In The Second Block\n"
				   "C 02  First Class\n"
				   "C 02  Second Class\n";
	struct fixture fx;
	struct usbids *db;
	struct usbids_stats st;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "dup.ids", text), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x0001, 0x0001, 0, "First Name", "First Product");
	CHECK_LOOKUP(db, 0x0001, 0x0002, 0, "First Name", "");
	CHECK_CLASS(db, 0x02, 0, "First Class");
	usbids_stats(db, &st);
	CHECK_INT(st.vendors, 2);
	CHECK_INT(st.classes, 1);
	usbids_close(db);
	fixture_remove(&fx, "dup.ids");
	rmdir(fx.dir);
}

/* Thousands of vendors in descending order: the index grows, is sorted, and
 * every entry is found across many read buffers. */
TEST(test_many_vendors)
{
	enum { N = 6000 };
	size_t cap = (size_t)N * 64, n = 0;
	char *buf = malloc(cap);
	struct fixture fx;
	struct usbids *db;
	struct usbids_stats st;
	int bad = 0;

	fixture_init(&fx);
	CHECK(buf != NULL);
	if (!buf)
		return;
	for (int i = N - 1; i >= 0; i--) {
		int w = snprintf(buf + n, cap - n, "%04x  Vendor %d\n\t%04x  Product %d\n",
				 (unsigned)(i * 7 + 1), i, (unsigned)i, i);

		n += (size_t)w;
	}
	CHECK_INT(write_file(&fx, "many.ids", buf, n), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	usbids_stats(db, &st);
	CHECK_INT(st.vendors, N);
	CHECK_INT(st.index_bytes, N * 8);
	for (int i = 0; i < N; i++) {
		char vn[64], pn[64], wv[64], wp[64];
		int rc = usbids_lookup(db, (uint16_t)(i * 7 + 1), (uint16_t)i, vn, sizeof(vn), pn,
				       sizeof(pn));

		snprintf(wv, sizeof(wv), "Vendor %d", i);
		snprintf(wp, sizeof(wp), "Product %d", i);
		if (rc != 0 || strcmp(vn, wv) != 0 || strcmp(pn, wp) != 0)
			bad++;
		/* Ids between entries are unknown. */
		if (usbids_lookup(db, (uint16_t)(i * 7 + 2), 0, vn, sizeof(vn), NULL, 0) != -ENOENT)
			bad++;
	}
	CHECK_INT(bad, 0);
	usbids_close(db);
	free(buf);
	fixture_remove(&fx, "many.ids");
	rmdir(fx.dir);
}

TEST(test_replaced)
{
	/* Same size, other order: offsets point at the wrong vendor. */
	static const char v1[] = "1111  Alpha\n\t0001  A-one\n2222  Beta\n\t0002  B-two\n";
	static const char v2[] = "2222  Beta\n\t0002  B-two\n1111  Alpha\n\t0001  A-one\n";
	static const char v3[] = "1111  Alpha Renamed\n3333  Gamma\nC 02  Comms\n";
	struct fixture fx;
	char tmp[192];
	struct stat st;
	struct timespec times[2];
	struct usbids *db;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "usb.ids", v1), 0);
	db = usbids_open(fx.path);
	CHECK(db != NULL);
	CHECK_LOOKUP(db, 0x2222, 0x0002, 0, "Beta", "B-two");
	CHECK_INT(stat(fx.path, &st), 0);

	/* Rewritten in place with the same size and mtime: only the content
	 * check at the offset can tell; the file is re-indexed once. */
	CHECK_INT(write_str(&fx, "usb.ids", v2), 0);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	CHECK_INT(utimensat(AT_FDCWD, fx.path, times, 0), 0);
	CHECK_LOOKUP(db, 0x1111, 0x0001, 0, "Alpha", "A-one");
	CHECK_LOOKUP(db, 0x2222, 0x0002, 0, "Beta", "B-two");

	/* Again in place, and the indexed offset of 2222 now falls inside a
	 * line that a later 2222 line follows: the entry must start at the
	 * offset, else the file is re-indexed and the first 2222 wins. */
	CHECK_INT(write_str(&fx, "usb.ids", "0001  A\n2222  Beta\n2222  Dup\n"), 0);
	CHECK_INT(stat(fx.path, &st), 0);
	CHECK_LOOKUP(db, 0x2222, 0x0000, 0, "Beta", "");
	CHECK_INT(write_str(&fx, "usb.ids", "2222  Beta\n2222  Dup\n0001  A\n"), 0);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	CHECK_INT(utimensat(AT_FDCWD, fx.path, times, 0), 0);
	CHECK_LOOKUP(db, 0x2222, 0x0001, 0, "Beta", "");
	CHECK_LOOKUP(db, 0x0001, 0x0000, 0, "A", "");

	/* Replaced by rename, as dpkg does: new names, new vendors. */
	CHECK_INT(write_str(&fx, "usb.ids.new", v3), 0);
	snprintf(tmp, sizeof(tmp), "%s/usb.ids", fx.dir);
	CHECK_INT(rename(fx.path, tmp), 0);
	CHECK_LOOKUP(db, 0x1111, 0x0001, 0, "Alpha Renamed", "");
	CHECK_LOOKUP(db, 0x3333, 0x0000, 0, "Gamma", "");
	CHECK_LOOKUP(db, 0x2222, 0x0002, -ENOENT, "", "");
	CHECK_CLASS(db, 0x02, 0, "Comms");

	/* Truncated in place to less than it indexed. */
	CHECK_INT(write_str(&fx, "usb.ids", "1111  A\n"), 0);
	CHECK_LOOKUP(db, 0x3333, 0x0000, -ENOENT, "", "");
	CHECK_LOOKUP(db, 0x1111, 0x0000, 0, "A", "");
	CHECK_CLASS(db, 0x02, -ENOENT, "");

	/* Gone for a moment (mid-upgrade): the open file still answers. */
	CHECK_INT(unlink(tmp), 0);
	CHECK_LOOKUP(db, 0x1111, 0x0000, 0, "A", "");
	CHECK_STR(usbids_path(db), tmp);
	usbids_close(db);
	rmdir(fx.dir);
}

TEST(test_relative_path)
{
	struct fixture fx;
	char cwd[PATH_MAX], want[256];
	struct usbids *db;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "rel.ids", "0001  Relative\n"), 0);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK_INT(chdir(fx.dir), 0);
	db = usbids_open("rel.ids");
	CHECK_INT(chdir(cwd), 0);
	CHECK(db != NULL);
	snprintf(want, sizeof(want), "%s/rel.ids", fx.dir);
	CHECK_STR(usbids_path(db), want);
	/* After the chdir a reload still finds the file. */
	CHECK_INT(write_str(&fx, "rel.ids", "0001  Relative Again\n"), 0);
	CHECK_LOOKUP(db, 0x0001, 0x0000, 0, "Relative Again", "");
	usbids_close(db);
	fixture_remove(&fx, "rel.ids");
	rmdir(fx.dir);
}

TEST(test_open_errors)
{
	struct fixture fx;
	struct usbids *db;
	char missing[192];

	fixture_init(&fx);
	snprintf(missing, sizeof(missing), "%s/missing.ids", fx.dir);
	errno = 0;
	CHECK(usbids_open(missing) == NULL);
	CHECK_INT(errno, ENOENT);

	errno = 0;
	CHECK(usbids_open(fx.dir) == NULL);
	CHECK_INT(errno, EISDIR);

	errno = 0;
	CHECK(usbids_open("") == NULL);
	CHECK_INT(errno, EINVAL);

	errno = 0;
	CHECK(usbids_open("/dev/null") == NULL);
	CHECK_INT(errno, EINVAL);

	/* Readable, but not a database. */
	CHECK_INT(write_str(&fx, "empty.ids", ""), 0);
	errno = 0;
	CHECK(usbids_open(fx.path) == NULL);
	CHECK_INT(errno, ENODATA);
	CHECK_INT(write_str(&fx, "comments.ids", "# nothing\n\n\tlost product\n"), 0);
	errno = 0;
	CHECK(usbids_open(fx.path) == NULL);
	CHECK_INT(errno, ENODATA);

	/* Unreadable (root reads anything, so only when not root). */
	if (geteuid() != 0) {
		CHECK_INT(write_str(&fx, "secret.ids", "0001  x\n"), 0);
		chmod(fx.path, 0);
		errno = 0;
		CHECK((db = usbids_open(fx.path)) == NULL);
		CHECK_INT(errno, EACCES);
		usbids_close(db);
		fixture_remove(&fx, "secret.ids");
	}

	/* No database: lookups answer "unknown" with empty names. */
	CHECK_LOOKUP(NULL, 0x1a86, 0x7523, -ENOENT, "", "");
	CHECK_CLASS(NULL, 0x02, -ENOENT, "");
	CHECK(usbids_path(NULL) == NULL);
	usbids_close(NULL);
	{
		struct usbids_stats st;

		usbids_stats(NULL, &st);
		CHECK_INT(st.vendors + st.classes + st.index_bytes + st.total_bytes, 0);
	}
	fixture_remove(&fx, "empty.ids");
	fixture_remove(&fx, "comments.ids");
	rmdir(fx.dir);
}

/* $USB_IDS comes first in the search; a bad one falls through to the rest. */
TEST(test_search_order)
{
	struct fixture fx;
	struct usbids *db;
	char missing[192];
	const char *old = getenv("USB_IDS");
	char *saved = old ? strdup(old) : NULL;

	fixture_init(&fx);
	CHECK_INT(write_str(&fx, "env.ids", "0001  From The Environment\n"), 0);
	setenv("USB_IDS", fx.path, 1);
	db = usbids_open(NULL);
	CHECK(db != NULL);
	CHECK_STR(usbids_path(db), fx.path);
	CHECK_LOOKUP(db, 0x0001, 0x0000, 0, "From The Environment", "");
	usbids_close(db);

	snprintf(missing, sizeof(missing), "%s/missing.ids", fx.dir);
	setenv("USB_IDS", missing, 1);
	errno = 0;
	db = usbids_open(NULL);
	if (access(REAL_DB, R_OK) == 0) {
		CHECK(db != NULL);
		CHECK_STR(usbids_path(db), REAL_DB);
	} else {
		/* Only ../usbids/usb.ids beside this binary could be found. */
		CHECK(db == NULL || strstr(usbids_path(db), "/usbids/usb.ids") != NULL);
	}
	usbids_close(db);

	if (saved)
		setenv("USB_IDS", saved, 1);
	else
		unsetenv("USB_IDS");
	free(saved);
	fixture_remove(&fx, "env.ids");
	rmdir(fx.dir);
}

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Spot checks against the installed database (strings checked against the
 * file by hand), then the figures: index size and 10,000 lookups. */
TEST(test_real_file)
{
	static const struct {
		uint16_t v, p;
	} ids[] = {
	    {0x1a86, 0x7523}, {0x0403, 0x6001}, {0x10c4, 0xea60}, {0x046d, 0xc52b},
	    {0x8087, 0x0024}, {0x1d6b, 0x0002}, {0x0bda, 0x8153}, {0x2341, 0x0043},
	    {0x05ac, 0x12a8}, {0x0781, 0x5567}, {0x8086, 0x0001}, {0x04b4, 0x0008},
	    {0x0001, 0x7778}, {0x046d, 0xffff}, {0x4321, 0x0000}, {0xffff, 0xffff},
	};
	enum { LOOKUPS = 10000 };
	struct usbids *db;
	struct usbids_stats st;
	struct timespec t0, t1, t2, t3;
	int failures = 0;

	if (access(REAL_DB, R_OK) != 0)
		SKIP("%s not readable (the usb.ids package): %s", REAL_DB, strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	db = usbids_open(REAL_DB);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(db != NULL);
	if (!db)
		return;
	CHECK_LOOKUP(db, 0x1a86, 0x7523, 0, "QinHeng Electronics", "CH340 serial converter");
	CHECK_LOOKUP(db, 0x0403, 0x6001, 0, "Future Technology Devices International, Ltd",
		     "FT232 Serial (UART) IC");
	CHECK_LOOKUP(db, 0x10c4, 0xea60, 0, "Silicon Labs", "CP210x UART Bridge");
	CHECK_LOOKUP(db, 0x0001, 0x7778, 0, "Fry's Electronics",
		     "Counterfeit flash drive [Kingston]");
	CHECK_CLASS(db, 0x02, 0, "Communications");
	CHECK_CLASS(db, 0xff, 0, "Vendor Specific Class");

	usbids_stats(db, &st);
	CHECK(st.vendors > 3000);
	CHECK(st.classes > 20);
	CHECK(st.index_bytes < 64 * 1024);

	/* Sixteen ids in turn, more than the cache holds: every one a miss. */
	for (int i = 0; i < LOOKUPS; i++) {
		char vn[128], pn[128];
		size_t k = (size_t)i % (sizeof(ids) / sizeof(ids[0]));
		int rc = usbids_lookup(db, ids[k].v, ids[k].p, vn, sizeof(vn), pn, sizeof(pn));

		if (rc != 0 && rc != -ENOENT)
			failures++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	/* One id over and over: cache hits. */
	for (int i = 0; i < LOOKUPS; i++) {
		char vn[128], pn[128];

		if (usbids_lookup(db, 0x1a86, 0x7523, vn, sizeof(vn), pn, sizeof(pn)) != 0)
			failures++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t3);
	CHECK_INT(failures, 0);
	/* Generous: a lookup reads a few KiB, even under sanitizers or valgrind. */
	CHECK(elapsed_ms(&t1, &t2) < 60000);

	printf("usbids real file: vendors=%zu classes=%zu index_bytes=%zu total_bytes=%zu "
	       "open_ms=%.2f\n",
	       st.vendors, st.classes, st.index_bytes, st.total_bytes, elapsed_ms(&t0, &t1));
	printf("usbids real file: %d lookups uncached_ms=%.1f (%.2f us each) cached_ms=%.1f "
	       "(%.2f us each)\n",
	       LOOKUPS, elapsed_ms(&t1, &t2), elapsed_ms(&t1, &t2) * 1e3 / LOOKUPS,
	       elapsed_ms(&t2, &t3), elapsed_ms(&t2, &t3) * 1e3 / LOOKUPS);
	usbids_close(db);
}

int main(void)
{
	RUN(test_basic);
	RUN(test_cache);
	RUN(test_crlf);
	RUN(test_garbage);
	RUN(test_truncated);
	RUN(test_long_lines);
	RUN(test_utf8_cut);
	RUN(test_duplicate_vendor);
	RUN(test_many_vendors);
	RUN(test_replaced);
	RUN(test_relative_path);
	RUN(test_open_errors);
	RUN(test_search_order);
	RUN(test_real_file);
	return CHECK_SUMMARY();
}
