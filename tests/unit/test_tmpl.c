/* tmpl_check and tmpl_expand: every placeholder, escapes, every error and
 * its message, and malformed text handed to tmpl_expand directly. */
#include "check.h"
#include "instance.h"
#include "tmpl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A USB instance of two nodes with six facts, as discovery would make it. */
struct fixture {
	char h0[32], c0[32], h1[32], c1[32];
	char sfx[7][16], val[7][32];
	struct dev_node nodes[2];
	struct dev_env env[7];
	struct dev_instance inst;
	struct tmpl_ctx ctx;
};

static void fixture_init(struct fixture *f)
{
	static const char *const facts[7][2] = {
	    {"TTY", "/dev/ttyACM3"},	   {"VENDOR", "0403"}, {"PRODUCT", "6001"},
	    {"SERIAL", "A1B2C3"},	   {"PORT", "1-1.4"},  {"BUS", "001"},
	    {"DEV1_VIDEO", "/dev/video9"},
	};

	memset(f, 0, sizeof(*f));
	strcpy(f->h0, "/dev/bus/usb/001/004");
	strcpy(f->c0, "/dev/usb0");
	strcpy(f->h1, "/dev/ttyACM3");
	strcpy(f->c1, "/dev/tty0");
	f->nodes[0].host_path = f->h0;
	f->nodes[0].container_path = f->c0;
	f->nodes[1].host_path = f->h1;
	f->nodes[1].container_path = f->c1;
	for (size_t i = 0; i < 7; i++) {
		strcpy(f->sfx[i], facts[i][0]);
		strcpy(f->val[i], facts[i][1]);
		f->env[i].suffix = f->sfx[i];
		f->env[i].value = f->val[i];
	}
	f->inst.nodes = f->nodes;
	f->inst.n_nodes = 2;
	f->inst.env = f->env;
	f->inst.n_env = 7;
	f->ctx.id = "dev-7";
	f->ctx.index = 3;
	f->ctx.slot = 2;
	f->ctx.resource = "example.com/usb-serial";
	f->ctx.inst = &f->inst;
}

/* Expands text, which must succeed; the result is compared and freed. */
static void expect(const struct tmpl_ctx *ctx, const char *text, const char *want)
{
	char *out = NULL;
	int r = tmpl_expand(text, ctx, &out);

	CHECK_INT(r, 0);
	if (r == 0) {
		CHECK_STR(out, want);
		if (strcmp(out, want) != 0)
			fprintf(stderr, "    template: %s\n", text);
	}
	free(out);
}

/* tmpl_check must refuse text for kind with a message equal to want. */
static void expect_err(const char *text, enum tmpl_kind kind, const char *want)
{
	char err[512] = "untouched";

	CHECK_INT(tmpl_check(text, kind, err, sizeof(err)), -EINVAL);
	CHECK_STR(err, want);
}

/* ... or with a message that contains want. */
static void expect_err_has(const char *text, enum tmpl_kind kind, const char *want)
{
	char err[512] = "untouched";

	CHECK_INT(tmpl_check(text, kind, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, want);
}

static void expect_ok(const char *text, enum tmpl_kind kind)
{
	char err[512] = "";
	int r = tmpl_check(text, kind, err, sizeof(err));

	CHECK_INT(r, 0);
	if (r != 0)
		fprintf(stderr, "    %s: %s\n", text, err);
}

/* tmpl_expand must refuse text with -EINVAL and leave *out alone. */
static void expect_expand_einval(const struct tmpl_ctx *ctx, const char *text)
{
	char sentinel[] = "x";
	char *out = sentinel;

	CHECK_INT(tmpl_expand(text, ctx, &out), -EINVAL);
	CHECK(out == sentinel);
}

TEST(test_generic_placeholders)
{
	struct fixture f;

	fixture_init(&f);
	expect(&f.ctx, "{id}", "dev-7");
	expect(&f.ctx, "{index}", "3");
	expect(&f.ctx, "{slot}", "2");
	expect(&f.ctx, "{resource}", "usb-serial");
	expect(&f.ctx, "SERIAL_PORT_{index}={id}/{slot}@{resource}",
	       "SERIAL_PORT_3=dev-7/2@usb-serial");
	f.ctx.index = 12345678901ULL;
	f.ctx.slot = 0;
	expect(&f.ctx, "{index}.{slot}", "12345678901.0");
}

TEST(test_resource_and_id_variants)
{
	struct fixture f;

	fixture_init(&f);
	f.ctx.resource = "plain";
	expect(&f.ctx, "[{resource}]", "[plain]");
	f.ctx.resource = "a.io/b/c";
	expect(&f.ctx, "[{resource}]", "[c]");
	f.ctx.resource = NULL;
	f.ctx.id = NULL;
	expect(&f.ctx, "[{resource}][{id}]", "[][]");
}

TEST(test_node_paths)
{
	struct fixture f;

	fixture_init(&f);
	expect(&f.ctx, "{host}", "/dev/bus/usb/001/004");
	expect(&f.ctx, "{container}", "/dev/usb0");
	expect(&f.ctx, "{host[0]}|{container[0]}", "/dev/bus/usb/001/004|/dev/usb0");
	expect(&f.ctx, "{host[1]}|{container[1]}", "/dev/ttyACM3|/dev/tty0");
}

TEST(test_node_index_out_of_range)
{
	struct fixture f;

	fixture_init(&f);
	expect(&f.ctx, "<{host[2]}>", "<>");
	expect(&f.ctx, "<{container[999]}>", "<>");
	f.inst.n_nodes = 0;
	expect(&f.ctx, "<{host}{container}{host[0]}>", "<>");
}

TEST(test_joined_paths)
{
	struct fixture f;

	fixture_init(&f);
	expect(&f.ctx, "{hosts}", "/dev/bus/usb/001/004,/dev/ttyACM3");
	expect(&f.ctx, "{containers}", "/dev/usb0,/dev/tty0");
	f.inst.n_nodes = 1;
	expect(&f.ctx, "{hosts};{containers}", "/dev/bus/usb/001/004;/dev/usb0");
	f.inst.n_nodes = 0;
	expect(&f.ctx, "<{hosts}|{containers}>", "<|>");
	f.ctx.inst = NULL;
	expect(&f.ctx, "<{hosts}|{host[1]}|{tty}>", "<||>");
}

TEST(test_usb_facts)
{
	struct fixture f;

	fixture_init(&f);
	expect(&f.ctx, "{bus}", "001");
	expect(&f.ctx, "{vendor}:{product}", "0403:6001");
	expect(&f.ctx, "{serial}", "A1B2C3");
	expect(&f.ctx, "{vendor}:{product} at {port}", "0403:6001 at 1-1.4");
	expect(&f.ctx, "{tty}", "/dev/ttyACM3");
	/* Facts the instance lacks; DEV1_VIDEO is not VIDEO. */
	expect(&f.ctx, "<{hidraw}{video}{sound}{input}>", "<>");
	f.inst.n_env = 0;
	expect(&f.ctx, "<{tty}{vendor}>", "<>");
}

TEST(test_escapes)
{
	struct fixture f;

	fixture_init(&f);
	expect(&f.ctx, "{{id}}", "{id}");
	expect(&f.ctx, "{{{id}}}", "{dev-7}");
	expect(&f.ctx, "a}}b{{c", "a}b{c");
	expect(&f.ctx, "{{}}", "{}");
	expect(&f.ctx, "}}}}{{{{", "}}{{");
	expect_ok("{{{id}}}", TMPL_PATHS);
	expect_ok("}}{{", TMPL_VIRTUAL);
}

TEST(test_literal_text)
{
	struct fixture f;

	fixture_init(&f);
	expect(&f.ctx, "plain text, no braces", "plain text, no braces");
	expect(&f.ctx, "h\xc3\xa9llo \xe2\x9c\x93 [0] ]x[", "h\xc3\xa9llo \xe2\x9c\x93 [0] ]x[");
	expect_ok("h\xc3\xa9llo \xe2\x9c\x93", TMPL_USB);
}

TEST(test_empty_template)
{
	struct fixture f;
	char err[64] = "untouched";

	fixture_init(&f);
	expect(&f.ctx, "", "");
	CHECK_INT(tmpl_check("", TMPL_PATHS, err, sizeof(err)), 0);
	CHECK_STR(err, "");
}

TEST(test_long_template)
{
	static const char piece[] = "{index}:{host[1]}:{{x}};";
	static const char want_piece[] = "3:/dev/ttyACM3:{x};";
	size_t reps = 10240 / (sizeof(piece) - 1) + 1;
	char *text = malloc(reps * (sizeof(piece) - 1) + 1);
	char *want = malloc(reps * (sizeof(want_piece) - 1) + 1);
	struct fixture f;

	CHECK(text && want);
	if (!text || !want) {
		free(text);
		free(want);
		return;
	}
	fixture_init(&f);
	text[0] = want[0] = '\0';
	for (size_t i = 0; i < reps; i++) {
		memcpy(text + i * (sizeof(piece) - 1), piece, sizeof(piece));
		memcpy(want + i * (sizeof(want_piece) - 1), want_piece, sizeof(want_piece));
	}
	CHECK(strlen(text) >= 10240);
	expect_ok(text, TMPL_PATHS);
	expect(&f.ctx, text, want);
	free(text);
	free(want);
}

/* Output far longer than the text: no fixed-size buffer anywhere. */
TEST(test_long_output)
{
	struct fixture f;
	char big[8192];
	char *out = NULL;

	fixture_init(&f);
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	f.nodes[0].host_path = big;
	CHECK_INT(tmpl_expand("{host}{hosts}{host}", &f.ctx, &out), 0);
	CHECK_INT(out ? strlen(out) : 0, 3 * (sizeof(big) - 1) + strlen(",/dev/ttyACM3"));
	free(out);
}

TEST(test_check_accepts_every_name)
{
	static const char generic[] = "{id}{index}{slot}{resource}{host}{container}{host[0]}"
				      "{container[999]}{hosts}{containers}";
	static const char usb[] = "{bus}{vendor}{product}{serial}{port}{tty}{hidraw}{video}"
				  "{sound}{input}";

	expect_ok(generic, TMPL_PATHS);
	expect_ok(generic, TMPL_USB);
	expect_ok(generic, TMPL_VIRTUAL);
	expect_ok(usb, TMPL_USB);
	expect_ok("SERIAL_PORT_{index}", TMPL_USB);
	expect_ok("example.com/usb-{index}", TMPL_USB);
}

TEST(test_check_unknown_did_you_mean)
{
	expect_err("{vendor}:{vendr}", TMPL_USB,
		   "unknown placeholder \"{vendr}\" at offset 9, did you mean \"{vendor}\"? "
		   "(known: id, index, slot, resource, host, container, hosts, containers, bus, "
		   "vendor, product, serial, port, tty, hidraw, video, sound, input)");
	expect_err_has("{hst}", TMPL_PATHS, "did you mean \"{host}\"?");
	expect_err_has("{hots}", TMPL_PATHS, "did you mean \"{hosts}\"?");
	expect_err_has("{containrs}", TMPL_VIRTUAL, "did you mean \"{containers}\"?");
	expect_err_has("{TTY}", TMPL_USB, "did you mean \"{tty}\"?");
	expect_err_has("{indx[1]}", TMPL_USB,
		       "unknown placeholder \"{indx[1]}\" at offset 0, "
		       "did you mean \"{index}\"?");
}

TEST(test_check_unknown_no_suggestion)
{
	char err[512];

	expect_err("{xyzzy}", TMPL_PATHS,
		   "unknown placeholder \"{xyzzy}\" at offset 0 (known: id, index, slot, resource, "
		   "host, container, hosts, containers)");
	/* vendor is not known for a path group, so it is not suggested. */
	CHECK_INT(tmpl_check("{vendr}", TMPL_PATHS, err, sizeof(err)), -EINVAL);
	CHECK(!strstr(err, "did you mean"));
	CHECK(!strstr(err, "vendor"));
	/* Three edits away: too far to guess. */
	CHECK_INT(tmpl_check("{vnedr}", TMPL_USB, err, sizeof(err)), -EINVAL);
	CHECK(!strstr(err, "did you mean"));
	CHECK_CONTAINS(err, "unknown placeholder \"{vnedr}\"");
}

TEST(test_check_usb_only)
{
	static const char *const usb[] = {"bus", "vendor", "product", "serial", "port",
					  "tty", "hidraw", "video",   "sound",	"input"};
	char text[32], want[96];

	expect_err("dev={tty}", TMPL_PATHS,
		   "placeholder \"{tty}\" at offset 4 is only known for usb groups");
	for (size_t i = 0; i < sizeof(usb) / sizeof(usb[0]); i++) {
		snprintf(text, sizeof(text), "{%s}", usb[i]);
		snprintf(want, sizeof(want),
			 "placeholder \"{%s}\" at offset 0 is only known for usb groups", usb[i]);
		expect_err(text, TMPL_PATHS, want);
		expect_err(text, TMPL_VIRTUAL, want);
		expect_ok(text, TMPL_USB);
	}
}

TEST(test_check_index_not_taken)
{
	expect_err("{tty[0]}", TMPL_USB,
		   "placeholder \"{tty[0]}\" at offset 0: only host and container take an index");
	expect_err_has("{id[1]}", TMPL_PATHS, "only host and container take an index");
	expect_err_has("{hosts[0]}", TMPL_VIRTUAL, "only host and container take an index");
}

TEST(test_check_bad_index)
{
	expect_err("{host[x]}", TMPL_PATHS,
		   "placeholder \"{host[x]}\" at offset 0: index must be a number from 0 to 999");
	expect_err_has("a{host[]}", TMPL_PATHS, "\"{host[]}\" at offset 1: index must be a number");
	expect_err_has("{host[1000]}", TMPL_PATHS, "index must be a number from 0 to 999");
	expect_err_has("{container[-1]}", TMPL_PATHS, "index must be a number from 0 to 999");
	expect_err_has("{host[1}", TMPL_PATHS, "index must be a number from 0 to 999");
	expect_err_has("{host[}", TMPL_PATHS, "index must be a number from 0 to 999");
	expect_err("{host[1]x}", TMPL_PATHS,
		   "placeholder \"{host[1]x}\" at offset 0: expected \"}\" after \"]\"");
	expect_ok("{host[999]}", TMPL_PATHS);
}

TEST(test_check_syntax_errors)
{
	expect_err("abc{id", TMPL_USB,
		   "unterminated \"{\" at offset 3 (write \"{{\" for a literal brace)");
	expect_err_has("{", TMPL_USB, "unterminated \"{\" at offset 0");
	expect_err_has("{{{", TMPL_USB, "unterminated \"{\" at offset 2");
	expect_err("x{}", TMPL_PATHS,
		   "empty placeholder \"{}\" at offset 1 (write \"{{}}\" for literal braces)");
	expect_err("{a{b}}", TMPL_PATHS,
		   "nested \"{\" at offset 2 (write \"{{\" for a literal brace)");
	expect_err("a}b", TMPL_VIRTUAL,
		   "lone \"}\" at offset 1 (write \"}}\" for a literal brace)");
	expect_err_has("{id}}", TMPL_VIRTUAL, "lone \"}\" at offset 4");
	/* The first error in the text is the one reported. */
	expect_err_has("{nope} {", TMPL_USB, "unknown placeholder \"{nope}\"");
}

TEST(test_check_message_bounds)
{
	char text[300], err[512], small[16];

	text[0] = '{';
	memset(text + 1, 'z', 200);
	strcpy(text + 201, "}");
	CHECK_INT(tmpl_check(text, TMPL_USB, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "unknown placeholder \"{zzzzzzzzzzzzzzzz");
	CHECK_CONTAINS(err, "zzz...\" at offset 0");
	CHECK(strlen(err) < 300);

	CHECK_INT(tmpl_check("{vendr}", TMPL_USB, small, sizeof(small)), -EINVAL);
	CHECK_STR(small, "unknown plac...");
	CHECK_INT(tmpl_check("{vendr}", TMPL_USB, NULL, 0), -EINVAL);
	CHECK_INT(tmpl_check("{vendr}", TMPL_USB, small, 0), -EINVAL);
	CHECK_INT(tmpl_check(NULL, TMPL_USB, err, sizeof(err)), -EINVAL);
	CHECK_INT(tmpl_check("{id}", (enum tmpl_kind)42, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "unknown group kind 42");
}

TEST(test_expand_refuses_malformed)
{
	struct fixture f;

	fixture_init(&f);
	expect_expand_einval(&f.ctx, "abc{id");
	expect_expand_einval(&f.ctx, "{");
	expect_expand_einval(&f.ctx, "{}");
	expect_expand_einval(&f.ctx, "}");
	expect_expand_einval(&f.ctx, "{a{b}}");
	expect_expand_einval(&f.ctx, "{vendr}");
	expect_expand_einval(&f.ctx, "{tty[0]}");
	expect_expand_einval(&f.ctx, "{host[x]}");
	expect_expand_einval(&f.ctx, "{host[1]x}");
	expect_expand_einval(&f.ctx, "{host[");
	expect_expand_einval(NULL, "{id}");
	expect_expand_einval(&f.ctx, NULL);
	CHECK_INT(tmpl_expand("{id}", &f.ctx, NULL), -EINVAL);
}

/* Text cut off anywhere, as a fuzzer would: refused or expanded, never
 * read past its end (ASan would tell). */
TEST(test_expand_every_prefix)
{
	static const char text[] = "a{{b}}{host[12]}{vendor}:{id}x";
	struct fixture f;
	char buf[sizeof(text)];
	int ok = 0;

	fixture_init(&f);
	for (size_t n = 0; n < sizeof(text); n++) {
		char *heap = malloc(n + 1);
		char *out = NULL;

		CHECK(heap != NULL);
		if (!heap)
			return;
		memcpy(heap, text, n);
		heap[n] = '\0';
		memcpy(buf, text, n);
		buf[n] = '\0';
		int r = tmpl_expand(heap, &f.ctx, &out);
		CHECK(r == 0 || r == -EINVAL);
		CHECK_INT(r, tmpl_check(buf, TMPL_USB, NULL, 0));
		ok += r == 0;
		free(out);
		free(heap);
	}
	/* "", "a", "a{{", "a{{b", "a{{b}}", ... and the whole text. */
	CHECK_INT(ok, 10);
}

int main(void)
{
	RUN(test_generic_placeholders);
	RUN(test_resource_and_id_variants);
	RUN(test_node_paths);
	RUN(test_node_index_out_of_range);
	RUN(test_joined_paths);
	RUN(test_usb_facts);
	RUN(test_escapes);
	RUN(test_literal_text);
	RUN(test_empty_template);
	RUN(test_long_template);
	RUN(test_long_output);
	RUN(test_check_accepts_every_name);
	RUN(test_check_unknown_did_you_mean);
	RUN(test_check_unknown_no_suggestion);
	RUN(test_check_usb_only);
	RUN(test_check_index_not_taken);
	RUN(test_check_bad_index);
	RUN(test_check_syntax_errors);
	RUN(test_check_message_bounds);
	RUN(test_expand_refuses_malformed);
	RUN(test_expand_every_prefix);
	return CHECK_SUMMARY();
}
