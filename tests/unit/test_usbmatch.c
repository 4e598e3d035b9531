/* usbmatch: entry matching, sanitizing, and the IDs chosen for sets of
 * devices (twins, serials that sanitize alike, long and odd serials),
 * without any USB device or umockdev. */
#include "check.h"
#include "usbmatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct usbmatch_dev dev(int32_t vendor, int32_t product, const char *serial,
			       const char *port)
{
	return (struct usbmatch_dev){
	    .vendor = vendor, .product = product, .serial = serial, .port = port, .dev_class = 0};
}

/* An ID the kubelet, env vars and CDI take as is. */
static bool valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= USBMATCH_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && c != '.' && c != '-' && c != '_')
			return false;
		if ((i == 0 || i == n - 1) && !alnum)
			return false;
	}
	return true;
}

static struct cfg_usb entry(void)
{
	return (struct cfg_usb){.vendor = -1, .product = -1, .usb_class = -1};
}

TEST(matching)
{
	uint8_t ifs[] = {0x02, 0x0a};
	struct usbmatch_dev d = dev(0x1d50, 0x6018, "7BB180B4", "1-1.4");
	d.dev_class = 0xef;
	d.if_class = ifs;
	d.n_if = 2;
	struct cfg_usb u = entry();
	CHECK(usbmatch_entry(&u, &d)); /* no condition: every device */
	u.vendor = 0x1d50;
	u.product = 0x6018;
	CHECK(usbmatch_entry(&u, &d));
	u.product = 0x6017;
	CHECK(!usbmatch_entry(&u, &d));
	u = entry();
	u.usb_class = 0x0a; /* an interface's */
	CHECK(usbmatch_entry(&u, &d));
	u.usb_class = 0xef; /* the device's */
	CHECK(usbmatch_entry(&u, &d));
	u.usb_class = 0x03;
	CHECK(!usbmatch_entry(&u, &d));
	u = entry();
	char ser[] = "7BB*", port[] = "1-1.*", port2[] = "1-2*", exact[] = "7BB180B4";
	u.serial = ser;
	CHECK(usbmatch_entry(&u, &d));
	u.serial = exact;
	CHECK(usbmatch_entry(&u, &d));
	u.port = port;
	CHECK(usbmatch_entry(&u, &d));
	u.port = port2;
	CHECK(!usbmatch_entry(&u, &d));
	/* a serial pattern wants a serial */
	struct usbmatch_dev none = dev(0x1a86, 0x7523, NULL, "1-1");
	struct usbmatch_dev empty = dev(0x1a86, 0x7523, "", "1-1");
	char star[] = "*";
	u = entry();
	u.serial = star;
	CHECK(!usbmatch_entry(&u, &none));
	CHECK(!usbmatch_entry(&u, &empty));
}

/* Serial and port globs are Go's path.Match, as paths are, not fnmatch(3):
 * where the two dialects differ, Go's answer. */
TEST(one_glob_dialect)
{
	struct usbmatch_dev d = dev(0x0403, 0x6001, "A50285BI", "1-1.4");
	struct cfg_usb u = entry();
	char bang[] = "A[!5]*", caret[] = "A[^5]*", bad[] = "A5[", esc[] = "A\\5*";
	u.serial = bang; /* Go: '!' is a member of the class, fnmatch: negation */
	CHECK(usbmatch_entry(&u, &d));
	u.serial = caret; /* Go's negation */
	CHECK(!usbmatch_entry(&u, &d));
	u.serial = esc;
	CHECK(usbmatch_entry(&u, &d));
	struct usbmatch_dev odd = dev(0x0403, 0x6001, "A5[", "1-1");
	u.serial = bad; /* malformed: matches nothing, not even itself */
	CHECK(!usbmatch_entry(&u, &odd));
	struct usbmatch_dev slash = dev(0x0403, 0x6001, "AB/12", "1-1");
	char star[] = "AB*", two[] = "AB/*";
	u.serial = star; /* '*' stops at '/' */
	CHECK(!usbmatch_entry(&u, &slash));
	u.serial = two;
	CHECK(usbmatch_entry(&u, &slash));
	u = entry();
	char port[] = "1-1.[3-5]";
	u.port = port;
	CHECK(usbmatch_entry(&u, &d));
}

/* One device, one resource: the first group in config order with a
 * matching entry has it. */
TEST(first_group_in_config_order_has_the_device)
{
	struct cfg_usb ftdi = entry(), vendor = entry(), ch340 = entry();
	ftdi.vendor = 0x0403;
	vendor.usb_class = 0xff;
	ch340.vendor = 0x1a86;
	struct cfg_group g_ftdi = {.usb = &ftdi, .n_usb = 1};
	struct cfg_group g_vendor[2] = {{.usb = &ch340, .n_usb = 1}, {.usb = &vendor, .n_usb = 1}};
	char n1[] = "ftdi", n2[] = "vendor";
	struct cfg_device devs[2] = {{.name = n1, .groups = &g_ftdi, .n_groups = 1},
				     {.name = n2, .groups = g_vendor, .n_groups = 2}};
	struct config cfg = {.devices = devs, .n_devices = 2};
	uint8_t ff = 0xff;
	struct usbmatch_dev ft = dev(0x0403, 0x6001, "A50285BI", "1-1");
	struct usbmatch_dev ch = dev(0x1a86, 0x7523, NULL, "1-2");
	struct usbmatch_dev other = dev(0x10c4, 0xea60, "1", "1-3");
	ft.if_class = ch.if_class = other.if_class = &ff;
	ft.n_if = ch.n_if = other.n_if = 1;
	CHECK(!usbmatch_claimed_before(&cfg, "ftdi", 0, &ft)); /* the first has it */
	CHECK(usbmatch_claimed_before(&cfg, "vendor", 1, &ft));
	/* within one resource too: group 0 before group 1 */
	CHECK(!usbmatch_claimed_before(&cfg, "vendor", 0, &ch));
	CHECK(usbmatch_claimed_before(&cfg, "vendor", 1, &ch));
	CHECK(!usbmatch_claimed_before(&cfg, "vendor", 1, &other));
	/* a group of no resource of cfg, or no config: nothing before it */
	CHECK(!usbmatch_claimed_before(&cfg, "stray", 0, &ft));
	CHECK(!usbmatch_claimed_before(&cfg, "vendor", 2, &ft));
	CHECK(!usbmatch_claimed_before(NULL, "vendor", 1, &ft));
}

TEST(sanitize)
{
	char buf[USBMATCH_ID_MAX];
	bool lossy = true;
	CHECK_INT(usbmatch_sanitize("A50285BI", buf, sizeof(buf), &lossy), 8);
	CHECK_STR(buf, "A50285BI");
	CHECK(!lossy);
	usbmatch_sanitize("AB 12/x", buf, sizeof(buf), &lossy);
	CHECK_STR(buf, "AB_12_x");
	CHECK(lossy);
	usbmatch_sanitize("AB_12_x", buf, sizeof(buf), &lossy);
	CHECK_STR(buf, "AB_12_x");
	CHECK(!lossy);
	/* trailing non-alphanumerics go: an ID ends with a letter or digit */
	usbmatch_sanitize("ABC-. ", buf, sizeof(buf), &lossy);
	CHECK_STR(buf, "ABC");
	CHECK(lossy);
	CHECK_INT(usbmatch_sanitize("  ", buf, sizeof(buf), &lossy), 0);
	/* UTF-8: every byte outside the set is one '_' */
	usbmatch_sanitize("Z\xc3\xa9Z", buf, sizeof(buf), &lossy);
	CHECK_STR(buf, "Z__Z");
	/* cut to fit */
	CHECK_INT(usbmatch_sanitize("abcdef", buf, 4, &lossy), 3);
	CHECK_STR(buf, "abc");
	CHECK(lossy);
}

TEST(fnv1a64_reference_values)
{
	/* the published FNV-1a 64 test vectors */
	CHECK(usbmatch_fnv1a64("") == 0xcbf29ce484222325ULL);
	CHECK(usbmatch_fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
	CHECK(usbmatch_fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

TEST(lone_devices)
{
	struct usbmatch_dev a = dev(0x0403, 0x6001, "A50285BI", "1-3");
	struct usbmatch_dev b = dev(0x1a86, 0x7523, NULL, "1-1.4");
	struct usbmatch_dev c = dev(0x10c4, 0xea60, "", "2-1");
	struct usbmatch_dev *set[] = {&a, &b, &c};
	CHECK_INT(usbmatch_assign(set, 3), 3);
	CHECK_STR(a.id, "0403-6001-A50285BI");
	CHECK_STR(b.id, "1a86-7523-port-1-1.4");
	CHECK_STR(c.id, "10c4-ea60-port-2-1");
	CHECK_INT(usbmatch_assign(set, 3), 0); /* nothing new: nothing changes */
	CHECK_STR(a.id, "0403-6001-A50285BI");
}

/* The renamed-today case: a twin comes, the first keeps its ID. */
TEST(twin_arrives_later_first_keeps_serial_id)
{
	struct usbmatch_dev first = dev(0x0403, 0x6001, "A50285BI", "1-3");
	struct usbmatch_dev *set[2] = {&first};
	usbmatch_assign(set, 1);
	CHECK_STR(first.id, "0403-6001-A50285BI");
	/* the twin goes to a lower port: order of arrival wins, not port */
	struct usbmatch_dev twin = dev(0x0403, 0x6001, "A50285BI", "1-1");
	set[1] = &twin;
	CHECK_INT(usbmatch_assign(set, 2), 1);
	CHECK_STR(first.id, "0403-6001-A50285BI");
	CHECK_STR(twin.id, "0403-6001-port-1-1");
	/* the first leaves: the twin keeps its port ID */
	struct usbmatch_dev *left[] = {&twin};
	CHECK_INT(usbmatch_assign(left, 1), 0);
	CHECK_STR(twin.id, "0403-6001-port-1-1");
	/* the first comes back (a new record, no ID yet): its serial ID is free */
	struct usbmatch_dev back = dev(0x0403, 0x6001, "A50285BI", "1-3");
	struct usbmatch_dev *again[] = {&twin, &back};
	usbmatch_assign(again, 2);
	CHECK_STR(back.id, "0403-6001-A50285BI");
	CHECK_STR(twin.id, "0403-6001-port-1-1");
}

TEST(twins_at_start_by_port_order)
{
	/* given in any order, named in port order (1-1.2 before 1-1.10) */
	struct usbmatch_dev x = dev(0x0403, 0x6001, "A50285BI", "1-1.10");
	struct usbmatch_dev y = dev(0x0403, 0x6001, "A50285BI", "1-1.2");
	struct usbmatch_dev z = dev(0x0403, 0x6001, "A50285BI", "1-1.3");
	struct usbmatch_dev *set[] = {&x, &y, &z};
	usbmatch_assign(set, 3);
	CHECK_STR(y.id, "0403-6001-A50285BI");
	CHECK_STR(z.id, "0403-6001-port-1-1.3");
	CHECK_STR(x.id, "0403-6001-port-1-1.10");
	CHECK(usbmatch_unique(set, 3));
}

TEST(serials_that_sanitize_alike)
{
	struct usbmatch_dev a = dev(0x0403, 0x6001, "AB 12/x", "1-1");
	struct usbmatch_dev b = dev(0x0403, 0x6001, "AB_12_x", "1-2");
	struct usbmatch_dev *set[] = {&a, &b};
	usbmatch_assign(set, 1); /* a arrives first */
	usbmatch_assign(set, 2);
	CHECK_STR(a.id, "0403-6001-AB_12_x");
	char want[64];
	snprintf(want, sizeof(want), "0403-6001-AB_12_x-x%016llx",
		 (unsigned long long)usbmatch_fnv1a64("AB_12_x"));
	CHECK_STR(b.id, want); /* not a twin: a form that follows it to any port */
	CHECK(usbmatch_unique(set, 2));
	/* seen together (a restart): the serial that is its own ID first,
	 * whatever the ports */
	struct usbmatch_dev e = dev(0x0403, 0x6001, "AB 12/x", "1-1");
	struct usbmatch_dev f = dev(0x0403, 0x6001, "AB_12_x", "1-2");
	struct usbmatch_dev *together[] = {&e, &f};
	usbmatch_assign(together, 2);
	CHECK_STR(f.id, "0403-6001-AB_12_x");
	CHECK(strncmp(e.id, "0403-6001-AB_12_x-x", 19) == 0);
	/* the other way round: whoever comes first keeps the plain form */
	struct usbmatch_dev c = dev(0x0403, 0x6001, "AB_12_x", "1-1");
	struct usbmatch_dev d = dev(0x0403, 0x6001, "AB 12/x", "1-2");
	struct usbmatch_dev *set2[] = {&c, &d};
	usbmatch_assign(set2, 2);
	CHECK_STR(c.id, "0403-6001-AB_12_x");
	CHECK(strncmp(d.id, "0403-6001-AB_12_x-x", 19) == 0);
	CHECK(valid_id(d.id));
}

TEST(long_odd_serials)
{
	/* 126 characters: spaces, slashes, UTF-8 (é, 2 bytes), as a USB
	 * string descriptor can hold */
	char s1[400] = "", s2[400];
	while (strlen(s1) < 120)
		strcat(s1, "a b/\xc3\xa9");
	s1[126] = '\0';
	memcpy(s2, s1, sizeof(s1));
	s2[125] = 'Z'; /* differs only past where IDs are cut */
	struct usbmatch_dev a = dev(0x0403, 0x6001, s1, "1-1");
	struct usbmatch_dev b = dev(0x0403, 0x6001, s2, "1-2");
	struct usbmatch_dev *set[] = {&a, &b};
	usbmatch_assign(set, 2);
	CHECK(valid_id(a.id));
	CHECK(valid_id(b.id));
	CHECK(strcmp(a.id, b.id) != 0);
	CHECK(strncmp(a.id, "0403-6001-a_b_", 14) == 0);
}

TEST(no_form_collides_with_another)
{
	/* a serial that spells another device's port form */
	struct usbmatch_dev liar = dev(0x1a86, 0x7523, "port-1-1", "1-5");
	struct usbmatch_dev plain = dev(0x1a86, 0x7523, NULL, "1-1");
	struct usbmatch_dev *set[] = {&liar, &plain};
	usbmatch_assign(set, 1); /* the liar first */
	CHECK_STR(liar.id, "1a86-7523-port-1-1");
	usbmatch_assign(set, 2);
	CHECK(valid_id(plain.id));
	CHECK(usbmatch_unique(set, 2));
	/* many twins and near-twins at once: all distinct, all valid */
	enum { N = 40 };
	struct usbmatch_dev d[N];
	struct usbmatch_dev *all[N];
	char ports[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(ports[i], sizeof(ports[i]), "3-%d", i + 1);
		const char *serial = i % 3 == 0 ? "SAME" : i % 3 == 1 ? "SAME " : "SAME/";
		d[i] = dev(0x0403, 0x6001, serial, ports[i]);
		all[i] = &d[i];
	}
	CHECK_INT(usbmatch_assign(all, N), N);
	CHECK(usbmatch_unique(all, N));
	for (int i = 0; i < N; i++)
		CHECK(valid_id(d[i].id));
}

TEST(unreadable_ids_and_serial_without_id_characters)
{
	struct usbmatch_dev a = dev(-1, -1, "/// ", "1-1");
	struct usbmatch_dev *set[] = {&a};
	usbmatch_assign(set, 1);
	/* nothing of the serial survives sanitizing: its hash still follows it */
	char want[64];
	snprintf(want, sizeof(want), "ffff-ffff-x%016llx",
		 (unsigned long long)usbmatch_fnv1a64("/// "));
	CHECK_STR(a.id, want);
	CHECK(valid_id(a.id));
}

int main(void)
{
	RUN(matching);
	RUN(one_glob_dialect);
	RUN(first_group_in_config_order_has_the_device);
	RUN(sanitize);
	RUN(fnv1a64_reference_values);
	RUN(lone_devices);
	RUN(twin_arrives_later_first_keeps_serial_id);
	RUN(twins_at_start_by_port_order);
	RUN(serials_that_sanitize_alike);
	RUN(long_odd_serials);
	RUN(no_form_collides_with_another);
	RUN(unreadable_ids_and_serial_without_id_characters);
	return CHECK_SUMMARY();
}
