/* usb.ids lookups without holding the file in memory.
 *
 * Why this design: the daemon has to stay within ~2 MiB of an idle gRPC
 * server, and the database is ~730 KiB of text (~3,400 vendors, ~20,000
 * products) while names are wanted only at plug time and by --list. So open
 * scans the file once through a 4 KiB buffer and keeps one uint64_t per vendor
 * and per class line, kind << 48 | id << 32 | offset of the line, sorted:
 * ~27 KiB for the real file, found by binary search. A lookup preads from the
 * vendor's offset and walks that vendor's block (product lines start with one
 * tab) until the product or the next vendor. A few recent results are kept
 * because one device plugged in logs its names more than once.
 *
 * The file can change under us. dpkg replaces it by rename, which leaves our
 * descriptor on the old, still consistent inode, so each call compares the
 * path's stat (device, inode, size, mtime) with the open file's and reloads
 * when they differ. A rewrite in place that keeps those is caught because the
 * line at an indexed offset must start a line and carry the expected id;
 * when not (or a read comes up short), the file is reopened and re-indexed
 * once for that call. */
#include "usbids.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	READ_BUF = 4096,       /* bytes per pread; the reader lives on the caller's stack */
	LINE_CAP = 512,	       /* longer lines are skipped whole; the longest real one is ~160 */
	CACHE_SLOTS = 4,       /* recent lookups remembered */
	SCAN_CAP = 64 << 20,   /* not a usb.ids past this: index no further (offsets fit 32 bits) */
	INDEX_FIRST_CAP = 512, /* first allocation of the index while scanning */
};

enum kind {
	KIND_VENDOR = 0,
	KIND_CLASS = 1,
};

/* Returned internally when the file no longer matches the index. */
#define ERR_STALE (-ESTALE)

struct cache_slot {
	bool used;
	uint16_t vendor, product;
	int rc; /* 0 or -ENOENT */
	char vname[LINE_CAP];
	char pname[LINE_CAP];
};

/* What identifies the file's contents without reading them. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct usbids {
	char *path; /* absolute, owned */
	int fd;
	struct file_id id;
	uint64_t *index; /* sorted kind << 48 | id << 32 | line offset, owned */
	size_t n_index, n_vendors;
	unsigned next_slot; /* the cache slot to replace next */
	struct cache_slot cache[CACHE_SLOTS];
};

/* A line-at-a-time reader over pread, starting anywhere in the file. */
struct reader {
	int fd;
	uint64_t base;	   /* file offset of buf[0] */
	size_t head, tail; /* unread bytes are buf[head..tail) */
	char buf[READ_BUF];
};

struct line {
	const char *s; /* without "\n" or "\r\n"; valid until the next read */
	size_t len;
	uint64_t off; /* where the line starts in the file */
};

struct slice {
	const char *s;
	size_t len;
};

static void reader_init(struct reader *r, int fd, uint64_t off)
{
	r->fd = fd;
	r->base = off;
	r->head = r->tail = 0;
}

/* Moves the unread bytes to the front and reads more after them.
 * Returns 1 when bytes were added, 0 at end of file, or -errno. */
static int reader_fill(struct reader *r)
{
	if (r->head > 0) {
		memmove(r->buf, r->buf + r->head, r->tail - r->head);
		r->base += r->head;
		r->tail -= r->head;
		r->head = 0;
	}
	for (;;) {
		ssize_t got = pread(r->fd, r->buf + r->tail, sizeof(r->buf) - r->tail,
				    (off_t)(r->base + r->tail));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		r->tail += (size_t)got;
		return got > 0;
	}
}

static void emit_line(struct reader *r, size_t len, struct line *out)
{
	out->s = r->buf + r->head;
	out->off = r->base + r->head;
	out->len = len;
	if (len > 0 && out->s[len - 1] == '\r')
		out->len--;
}

/* The next line; one longer than LINE_CAP is skipped whole, and the last
 * line may lack its newline. Returns 1 for a line, 0 at end of file, -errno. */
static int reader_line(struct reader *r, struct line *out)
{
	bool skipping = false; /* inside an over-long line */

	for (;;) {
		size_t avail = r->tail - r->head;
		const char *nl = memchr(r->buf + r->head, '\n', avail);
		int rc;

		if (nl) {
			size_t len = (size_t)(nl - (r->buf + r->head));

			if (!skipping && len <= LINE_CAP) {
				emit_line(r, len, out);
				r->head += len + 1;
				return 1;
			}
			r->head += len + 1;
			skipping = false;
			continue;
		}
		if (avail > LINE_CAP) {
			skipping = true;
			r->head = r->tail;
		}
		rc = reader_fill(r);
		if (rc < 0)
			return rc;
		if (rc > 0)
			continue;
		avail = r->tail - r->head;
		if (avail == 0 || skipping)
			return 0;
		emit_line(r, avail, out);
		r->head = r->tail;
		return 1;
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* "<digits hex digits><blanks><name>", the name trimmed and non-empty. */
static bool parse_entry(const char *s, size_t len, size_t digits, unsigned *id, struct slice *name)
{
	unsigned v = 0;
	size_t i, end;

	if (len <= digits || !is_blank(s[digits]))
		return false;
	for (i = 0; i < digits; i++) {
		int d = hex_digit(s[i]);

		if (d < 0)
			return false;
		v = v << 4 | (unsigned)d;
	}
	while (i < len && is_blank(s[i]))
		i++;
	end = len;
	while (end > i && is_blank(s[end - 1]))
		end--;
	if (end == i)
		return false;
	*id = v;
	name->s = s + i;
	name->len = end - i;
	return true;
}

/* A vendor line "vvvv  Name" or a class line "C cc  Name"; anything else
 * (comments, products, other sections, garbage) is not an index entry. */
static bool parse_top(const struct line *l, enum kind *kind, unsigned *id, struct slice *name)
{
	if (parse_entry(l->s, l->len, 4, id, name)) {
		*kind = KIND_VENDOR;
		return true;
	}
	if (l->len > 2 && l->s[0] == 'C' && l->s[1] == ' ' &&
	    parse_entry(l->s + 2, l->len - 2, 2, id, name)) {
		*kind = KIND_CLASS;
		return true;
	}
	return false;
}

/* A product line: one tab, "pppp  Name". Two tabs (interfaces) do not parse. */
static bool parse_product(const struct line *l, unsigned *id, struct slice *name)
{
	return l->len > 1 && l->s[0] == '\t' && parse_entry(l->s + 1, l->len - 1, 4, id, name);
}

/* Copies a name into dst (len > 0), cut at a UTF-8 character boundary when it
 * does not fit, with control characters replaced: names end up in log lines. */
static void copy_name(char *dst, size_t len, struct slice name)
{
	size_t n = name.len;

	if (n > len - 1) {
		n = len - 1;
		while (n > 0 && ((unsigned char)name.s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name.s[i];

		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	dst[n] = '\0';
}

static void set_empty(char *buf, size_t len)
{
	if (len > 0)
		buf[0] = '\0';
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t make_key(enum kind kind, unsigned id)
{
	return (uint64_t)kind << 16 | id;
}

static int index_append(uint64_t **v, size_t *n, size_t *cap, uint64_t entry)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : INDEX_FIRST_CAP;
		uint64_t *nv = realloc(*v, ncap * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = entry;
	return 0;
}

/* Sorts, keeps the first line of each (kind, id) and trims the allocation. */
static void index_finish(uint64_t **v, size_t *n)
{
	size_t kept = 0;

	if (*n > 1) /* qsort's array must not be NULL, even for 0 elements */
		qsort(*v, *n, sizeof(**v), cmp_u64);
	for (size_t i = 0; i < *n; i++)
		if (kept == 0 || (*v)[kept - 1] >> 32 != (*v)[i] >> 32)
			(*v)[kept++] = (*v)[i];
	*n = kept;
	if (kept == 0) {
		free(*v);
		*v = NULL;
	} else {
		uint64_t *nv = realloc(*v, kept * sizeof(**v));

		if (nv)
			*v = nv;
	}
}

/* Scans the file once. On success *out (owned by the caller, NULL when empty)
 * holds *n entries sorted; on failure nothing is allocated. */
static int index_build(int fd, uint64_t **out, size_t *n_out)
{
	struct reader r;
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	struct line l;
	int rc;

	reader_init(&r, fd, 0);
	while ((rc = reader_line(&r, &l)) > 0 && l.off < SCAN_CAP) {
		enum kind kind;
		unsigned id;
		struct slice name;

		if (!parse_top(&l, &kind, &id, &name))
			continue;
		rc = index_append(&v, &n, &cap, make_key(kind, id) << 32 | l.off);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		free(v);
		return rc;
	}
	index_finish(&v, &n);
	*out = v;
	*n_out = n;
	return 0;
}

/* The offset of the (kind, id) line, or -1 when not indexed. */
static int64_t index_find(const struct usbids *db, enum kind kind, unsigned id)
{
	uint64_t key = make_key(kind, id);
	size_t lo = 0, hi = db->n_index;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t k = db->index[mid] >> 32;

		if (k == key)
			return (int64_t)(db->index[mid] & UINT32_MAX);
		if (k < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int file_identify(int fd, struct file_id *id)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	return 0;
}

/* Opens and indexes db->path; replaces db's file, index and cache only on
 * success, so a failed reload leaves the old (still readable) file in use. */
static int db_load(struct usbids *db)
{
	struct file_id id;
	uint64_t *index = NULL;
	size_t n = 0, vendors = 0;
	int fd, rc;

	/* O_NONBLOCK: a FIFO at the path must not hang open(); it is then refused. */
	fd = open(db->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	rc = file_identify(fd, &id);
	if (rc == 0)
		rc = index_build(fd, &index, &n);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	while (vendors < n && index[vendors] >> 48 == KIND_VENDOR)
		vendors++;
	if (db->fd >= 0)
		close(db->fd);
	free(db->index);
	db->fd = fd;
	db->id = id;
	db->index = index;
	db->n_index = n;
	db->n_vendors = vendors;
	memset(db->cache, 0, sizeof(db->cache));
	db->next_slot = 0;
	return 0;
}

/* Reloads when the path now names another file or the file changed size or
 * mtime. A path that is briefly missing (mid-upgrade) keeps the open file. */
static void db_refresh(struct usbids *db)
{
	struct stat st;

	if (stat(db->path, &st) < 0)
		return;
	if (st.st_dev == db->id.dev && st.st_ino == db->id.ino && st.st_size == db->id.size &&
	    st.st_mtim.tv_sec == db->id.mtime.tv_sec && st.st_mtim.tv_nsec == db->id.mtime.tv_nsec)
		return;
	(void)db_load(db);
}

/* Positions r just after the indexed (kind, id) line and gives its name.
 * ERR_STALE when the line is not at a line start or not that entry. */
static int read_entry(struct usbids *db, enum kind kind, unsigned id, struct reader *r,
		      struct slice *name)
{
	int64_t off = index_find(db, kind, id);
	enum kind got_kind;
	unsigned got_id;
	struct line l;
	int rc;

	if (off < 0)
		return -ENOENT;
	/* Start one byte early and skip to the next line: unless that byte ends
	 * the previous line, the line read next does not start at off. */
	reader_init(r, db->fd, off > 0 ? (uint64_t)off - 1 : 0);
	if (off > 0 && (rc = reader_line(r, &l)) <= 0)
		return rc < 0 ? rc : ERR_STALE;
	rc = reader_line(r, &l);
	if (rc < 0)
		return rc;
	if (rc == 0 || l.off != (uint64_t)off || !parse_top(&l, &got_kind, &got_id, name) ||
	    got_kind != kind || got_id != id)
		return ERR_STALE;
	return 0;
}

/* Names into vname and pname (LINE_CAP bytes each). */
static int find_names(struct usbids *db, uint16_t vendor, uint16_t product, char *vname,
		      char *pname)
{
	struct reader r;
	struct slice name;
	struct line l;
	int rc;

	pname[0] = '\0';
	rc = read_entry(db, KIND_VENDOR, vendor, &r, &name);
	if (rc < 0)
		return rc;
	copy_name(vname, LINE_CAP, name);
	/* The vendor's block: tab lines, with comments and blank lines allowed
	 * inside, up to the next line of any other kind. */
	while ((rc = reader_line(&r, &l)) > 0) {
		unsigned id;

		if (l.len == 0 || l.s[0] == '#')
			continue;
		if (l.s[0] != '\t')
			break;
		if (parse_product(&l, &id, &name) && id == product) {
			copy_name(pname, LINE_CAP, name);
			break;
		}
	}
	return rc < 0 ? rc : 0;
}

static struct cache_slot *cache_find(struct usbids *db, uint16_t vendor, uint16_t product)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		struct cache_slot *s = &db->cache[i];

		if (s->used && s->vendor == vendor && s->product == product)
			return s;
	}
	return NULL;
}

static void cache_store(struct usbids *db, uint16_t vendor, uint16_t product, int rc,
			const char *vname, const char *pname)
{
	struct cache_slot *s = &db->cache[db->next_slot];

	db->next_slot = (db->next_slot + 1) % CACHE_SLOTS;
	s->used = true;
	s->vendor = vendor;
	s->product = product;
	s->rc = rc;
	memcpy(s->vname, vname, strlen(vname) + 1); /* both LINE_CAP bytes */
	memcpy(s->pname, pname, strlen(pname) + 1);
}

int usbids_lookup(struct usbids *db, uint16_t vendor, uint16_t product, char *vname, size_t vlen,
		  char *pname, size_t plen)
{
	char vbuf[LINE_CAP] = "", pbuf[LINE_CAP] = "";
	const struct cache_slot *hit;
	int rc;

	if ((!vname && vlen) || (!pname && plen))
		return -EINVAL;
	set_empty(vname, vlen);
	set_empty(pname, plen);
	if (!db)
		return -ENOENT;
	db_refresh(db);
	hit = cache_find(db, vendor, product);
	if (hit) {
		rc = hit->rc;
		memcpy(vbuf, hit->vname, sizeof(vbuf));
		memcpy(pbuf, hit->pname, sizeof(pbuf));
	} else {
		rc = find_names(db, vendor, product, vbuf, pbuf);
		if (rc == ERR_STALE && db_load(db) == 0)
			rc = find_names(db, vendor, product, vbuf, pbuf);
		if (rc == 0 || rc == -ENOENT)
			cache_store(db, vendor, product, rc, vbuf, pbuf);
	}
	if (rc < 0)
		vbuf[0] = pbuf[0] = '\0';
	if (vlen)
		copy_name(vname, vlen, (struct slice){vbuf, strlen(vbuf)});
	if (plen)
		copy_name(pname, plen, (struct slice){pbuf, strlen(pbuf)});
	return rc;
}

int usbids_class(struct usbids *db, uint8_t cls, char *name, size_t len)
{
	struct reader r;
	struct slice found;
	int rc;

	if (!name && len)
		return -EINVAL;
	set_empty(name, len);
	if (!db)
		return -ENOENT;
	db_refresh(db);
	rc = read_entry(db, KIND_CLASS, cls, &r, &found);
	if (rc == ERR_STALE && db_load(db) == 0)
		rc = read_entry(db, KIND_CLASS, cls, &r, &found);
	if (rc == 0 && len)
		copy_name(name, len, found);
	return rc;
}

/* path made absolute without resolving symlinks (the Debian path is one),
 * so a reload still finds it after a chdir. */
static int absolute_path(const char *path, char **out)
{
	char cwd[PATH_MAX], buf[PATH_MAX];
	int n;

	if (path[0] == '/') {
		*out = strdup(path);
		return *out ? 0 : -ENOMEM;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	n = snprintf(buf, sizeof(buf), "%s/%s", cwd, path);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

static struct usbids *open_one(const char *path)
{
	struct usbids *db = calloc(1, sizeof(*db));
	int rc;

	if (!db) {
		errno = ENOMEM;
		return NULL;
	}
	db->fd = -1;
	rc = absolute_path(path, &db->path);
	if (rc == 0)
		rc = db_load(db);
	if (rc == 0 && db->n_index == 0)
		rc = -ENODATA;
	if (rc < 0) {
		usbids_close(db);
		errno = -rc;
		return NULL;
	}
	return db;
}

/* ../usbids/usb.ids beside the running binary, for a checkout or an image
 * that ships the copy in the repository. */
static int beside_binary(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;
	int w;

	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(exe) - 1)
		return -ENAMETOOLONG;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	w = snprintf(buf, len, "%s/../usbids/usb.ids", exe);
	if (w < 0 || (size_t)w >= len)
		return -ENAMETOOLONG;
	return 0;
}

struct usbids *usbids_open(const char *path)
{
	static const char *const fixed[] = {
	    "/usr/share/misc/usb.ids",
	    "/usr/share/hwdata/usb.ids",
	    "/var/lib/usbutils/usb.ids",
	};
	const char *env = getenv("USB_IDS");
	char local[PATH_MAX];
	int err = 0;

	if (path) {
		if (!*path) {
			errno = EINVAL;
			return NULL;
		}
		return open_one(path);
	}
	for (size_t i = 0; i < 2 + sizeof(fixed) / sizeof(fixed[0]); i++) {
		const char *candidate;
		struct usbids *db;

		if (i == 0)
			candidate = env && *env ? env : NULL;
		else if (i <= sizeof(fixed) / sizeof(fixed[0]))
			candidate = fixed[i - 1];
		else
			candidate = beside_binary(local, sizeof(local)) == 0 ? local : NULL;
		if (!candidate)
			continue;
		db = open_one(candidate);
		if (db)
			return db;
		if (errno != ENOENT && !err)
			err = errno;
	}
	errno = err ? err : ENOENT;
	return NULL;
}

void usbids_close(struct usbids *db)
{
	if (!db)
		return;
	if (db->fd >= 0)
		close(db->fd);
	free(db->index);
	free(db->path);
	free(db);
}

const char *usbids_path(const struct usbids *db)
{
	return db ? db->path : NULL;
}

void usbids_stats(const struct usbids *db, struct usbids_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!db)
		return;
	out->vendors = db->n_vendors;
	out->classes = db->n_index - db->n_vendors;
	out->index_bytes = db->n_index * sizeof(db->index[0]);
	out->total_bytes = sizeof(*db) + out->index_bytes + strlen(db->path) + 1;
}
