/* Templates for the env vars and annotations a group adds at Allocate: both
 * keys and values may hold placeholders that expand per allocated device.
 *
 * Syntax: "{name}" or "{name[N]}" (N decimal, 0 to 999); "{{" is a literal
 * "{" and "}}" a literal "}"; any other "{" or "}" is an error. Names:
 *   id          the device ID being allocated
 *   index       its 0-based position in the container's request
 *   slot        its count slot (0 when the group has count 1)
 *   resource    the resource name without its domain
 *   host        host path of node 0; host[N] of node N
 *   container   container path of node 0; container[N] of node N
 *   hosts       every node's host path, joined with ","
 *   containers  every node's container path, joined with ","
 * and for USB groups only, the instance's dev_env whose suffix is the
 * upper-cased name (e.g. {tty} -> "TTY"):
 *   bus vendor product serial port tty hidraw video sound input
 * A node or a fact the instance lacks expands to "". Other text is copied
 * byte for byte. Pure functions: no state. */
#ifndef UDP_TMPL_H
#define UDP_TMPL_H

#include <stddef.h>

struct dev_instance;

/* The kind of group a template belongs to: it decides which names exist. */
enum tmpl_kind { TMPL_PATHS, TMPL_USB, TMPL_VIRTUAL };

/* Validates text for a group of the given kind, for checking config at
 * start. Returns 0, or -EINVAL with a message in err (when err is not NULL
 * and errlen > 0; truncated to fit, ending in "..." then), offsets counted
 * in bytes from 0, e.g.
 *   unknown placeholder "{vendr}" at offset 7, did you mean "{vendor}"?
 *     (known: id, index, slot, resource, host, container, hosts, ...)
 *   placeholder "{tty}" at offset 0 is only known for usb groups
 *   placeholder "{tty[0]}" at offset 0: only host and container take an index
 *   placeholder "{host[x]}" at offset 0: index must be a number from 0 to 999
 *   unterminated "{" at offset 3 (write "{{" for a literal brace)
 *   nested "{" at offset 4 (write "{{" for a literal brace)
 *   empty placeholder "{}" at offset 0 (write "{{}}" for literal braces)
 *   lone "}" at offset 2 (write "}}" for a literal brace)
 * The did-you-mean names the closest name known for the kind within an
 * edit distance of 2 (ignoring case), if any. */
int tmpl_check(const char *text, enum tmpl_kind kind, char *err, size_t errlen);

/* What placeholders expand to for one allocated device. All borrowed. */
struct tmpl_ctx {
	const char *id;			 /* {id}; NULL expands to "" */
	size_t index;			 /* {index} */
	unsigned slot;			 /* {slot} */
	const char *resource;		 /* with or without "domain/": {resource} is the part
					    after the last '/'; NULL expands to "" */
	const struct dev_instance *inst; /* nodes and facts; may have 0 of either,
					    or be NULL (no nodes, no facts) */
};

/* Expands text into *out (malloc'd, NUL-terminated, owned by the caller;
 * written only on success). Every name of every kind is expanded (a USB
 * fact the instance lacks is ""), so text should have passed tmpl_check for
 * its group. Malformed text is refused, never read past its NUL. Returns 0,
 * -EINVAL (NULL argument or malformed text) or -ENOMEM. */
int tmpl_expand(const char *text, const struct tmpl_ctx *ctx, char **out);

#endif
