#include "usbmatch.h"

#include "pathmatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- matching ---- */

/* One glob dialect for paths, serials and ports: Go's path.Match. A
 * malformed pattern matches nothing. */
static bool glob_ok(const char *pattern, const char *s)
{
	return pathmatch(pattern, s) == 1;
}

bool usbmatch_entry(const struct cfg_usb *u, const struct usbmatch_dev *d)
{
	if (u->vendor >= 0 && d->vendor != u->vendor)
		return false;
	if (u->product >= 0 && d->product != u->product)
		return false;
	if (u->serial && (!d->serial || !*d->serial || !glob_ok(u->serial, d->serial)))
		return false;
	if (u->port && (!d->port || !glob_ok(u->port, d->port)))
		return false;
	if (u->usb_class >= 0) {
		bool any = d->dev_class == u->usb_class;
		for (size_t i = 0; i < d->n_if && !any; i++)
			any = d->if_class[i] == u->usb_class;
		if (!any)
			return false;
	}
	return true;
}

bool usbmatch_claimed_before(const struct config *cfg, const char *name, size_t gi,
			     const struct usbmatch_dev *d)
{
	bool claimed = false;
	for (size_t r = 0; cfg && name && r < cfg->n_devices; r++)
		for (size_t k = 0; k < cfg->devices[r].n_groups; k++) {
			const struct cfg_group *x = &cfg->devices[r].groups[k];
			if (k == gi && strcmp(cfg->devices[r].name, name) == 0)
				return claimed;
			for (size_t e = 0; e < x->n_usb && !claimed; e++)
				claimed = usbmatch_entry(&x->usb[e], d);
		}
	return false;
}

/* ---- IDs ---- */

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool alnum(char c)
{
	return id_char(c) && c != '.' && c != '-' && c != '_';
}

size_t usbmatch_sanitize(const char *s, char *buf, size_t len, bool *lossy)
{
	*lossy = false;
	if (len == 0)
		return 0;
	size_t n = 0;
	for (; n < len - 1 && s[n]; n++) {
		buf[n] = id_char(s[n]) ? s[n] : '_';
		if (buf[n] != s[n])
			*lossy = true;
	}
	if (s[n])
		*lossy = true; /* cut */
	while (n > 0 && !alnum(buf[n - 1])) {
		n--;
		*lossy = true;
	}
	buf[n] = '\0';
	return n;
}

uint64_t usbmatch_fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* "vvvv-pppp-": every form starts with it (10 bytes). */
#define PREFIX_LEN 10
/* "-x" and 16 hex digits. */
#define HASH_LEN 18
/* "-" and the digits of an unsigned. */
#define NUM_LEN 11

static bool has_serial(const struct usbmatch_dev *d)
{
	return d->serial && *d->serial;
}

/* The device's ID in form 1, 2 (port) or 2 (hash) into buf
 * (USBMATCH_ID_MAX bytes); false when the form does not apply. */
static bool serial_form(const struct usbmatch_dev *d, char *buf)
{
	if (!has_serial(d))
		return false;
	char s[USBMATCH_ID_MAX];
	bool lossy;
	if (usbmatch_sanitize(d->serial, s, sizeof(s) - PREFIX_LEN, &lossy) == 0)
		return false;
	int n = snprintf(buf, USBMATCH_ID_MAX, "%04x-%04x-%s", (unsigned)(d->vendor & 0xffff),
			 (unsigned)(d->product & 0xffff), s);
	return n > 0 && n < USBMATCH_ID_MAX;
}

static bool hash_form(const struct usbmatch_dev *d, char *buf)
{
	if (!has_serial(d))
		return false;
	char s[USBMATCH_ID_MAX];
	bool lossy;
	size_t k = usbmatch_sanitize(d->serial, s, sizeof(s) - PREFIX_LEN - HASH_LEN, &lossy);
	int n = snprintf(buf, USBMATCH_ID_MAX, "%04x-%04x-%s%sx%016llx",
			 (unsigned)(d->vendor & 0xffff), (unsigned)(d->product & 0xffff), s,
			 k ? "-" : "", (unsigned long long)usbmatch_fnv1a64(d->serial));
	return n > 0 && n < USBMATCH_ID_MAX;
}

/* The port form, with "-num" when num > 0. Always fits: the port is cut
 * to leave room. */
static bool port_form(const struct usbmatch_dev *d, unsigned num, char *buf)
{
	char p[USBMATCH_ID_MAX];
	bool lossy;
	usbmatch_sanitize(d->port ? d->port : "", p, sizeof(p) - PREFIX_LEN - 5 - NUM_LEN, &lossy);
	int n =
	    num ? snprintf(buf, USBMATCH_ID_MAX, "%04x-%04x-port-%s-%u",
			   (unsigned)(d->vendor & 0xffff), (unsigned)(d->product & 0xffff), p, num)
		: snprintf(buf, USBMATCH_ID_MAX, "%04x-%04x-port-%s",
			   (unsigned)(d->vendor & 0xffff), (unsigned)(d->product & 0xffff), p);
	return n > 0 && n < USBMATCH_ID_MAX;
}

static bool held(struct usbmatch_dev *const *devs, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (devs[i]->id[0] && strcmp(devs[i]->id, id) == 0)
			return true;
	return false;
}

/* Another present device with the same vendor, product and raw serial. */
static bool has_twin(struct usbmatch_dev *const *devs, size_t n, const struct usbmatch_dev *d)
{
	if (!has_serial(d))
		return false;
	for (size_t i = 0; i < n; i++)
		if (devs[i] != d && devs[i]->vendor == d->vendor &&
		    devs[i]->product == d->product && has_serial(devs[i]) &&
		    strcmp(devs[i]->serial, d->serial) == 0)
			return true;
	return false;
}

static void choose(struct usbmatch_dev *const *devs, size_t n, struct usbmatch_dev *d)
{
	char c[USBMATCH_ID_MAX];
	bool twin = has_twin(devs, n, d);
	for (int step = 0; step < 3; step++) {
		bool ok;
		if (step == 0)
			ok = serial_form(d, c);
		else if ((step == 1) == twin)
			ok = port_form(d, 0, c);
		else
			ok = hash_form(d, c);
		if (ok && !held(devs, n, c)) {
			memcpy(d->id, c, sizeof(c));
			return;
		}
	}
	/* n devices hold at most n IDs: one of n + 1 numbers is free */
	for (unsigned num = 2; num < n + 3; num++)
		if (port_form(d, num, c) && !held(devs, n, c)) {
			memcpy(d->id, c, sizeof(c));
			return;
		}
}

/* Whether the serial form of d would be its serial unchanged. */
static bool plain_serial(const struct usbmatch_dev *d)
{
	char s[USBMATCH_ID_MAX];
	bool lossy = true;
	if (has_serial(d))
		usbmatch_sanitize(d->serial, s, sizeof(s) - PREFIX_LEN, &lossy);
	return !lossy;
}

/* The order devices seen together are named in: a serial that is its
 * own ID first (so "AB_12_x" keeps its form whatever port "AB 12/x" is
 * in), then by port. */
static int by_port(const void *a, const void *b)
{
	const struct usbmatch_dev *x = *(struct usbmatch_dev *const *)a;
	const struct usbmatch_dev *y = *(struct usbmatch_dev *const *)b;
	bool px = plain_serial(x), py = plain_serial(y);
	if (px != py)
		return px ? -1 : 1;
	return strverscmp(x->port ? x->port : "", y->port ? y->port : "");
}

size_t usbmatch_assign(struct usbmatch_dev *const *devs, size_t n)
{
	size_t todo = 0;
	for (size_t i = 0; i < n; i++)
		todo += devs[i]->id[0] == '\0';
	if (todo == 0)
		return 0;
	struct usbmatch_dev **order = malloc(todo * sizeof(*order));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (devs[i]->id[0] == '\0') {
			if (order)
				order[k++] = devs[i];
			else
				choose(devs, n, devs[i]); /* no memory: in the given order */
		}
	if (order) {
		qsort(order, k, sizeof(*order), by_port);
		for (size_t i = 0; i < k; i++)
			choose(devs, n, order[i]);
		free(order);
	}
	return todo;
}

bool usbmatch_unique(struct usbmatch_dev *const *devs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (devs[i]->id[0] && strcmp(devs[i]->id, devs[j]->id) == 0)
				return false;
	return true;
}
