// Go's regexp syntax and semantics via RE2, the library Go's regexp was
// modelled on (and that gRPC already loads). C++ because RE2 has only a C++
// API and Debian ships no C wrapper; this file is the whole boundary: plain
// C types in and out, no exception crosses it.
#include "gore.h"

#include <cerrno>
#include <cstring>
#include <new>

#include <re2/re2.h>

extern "C" {
#include "errbuf.h"
}

// /dev names are short: this bounds what one expression may hold (its
// compiled program and its DFA cache). An expression whose program does not
// fit is refused ("pattern too large"), also where Go would take it, as
// "\pL{1000}": RE2 compiles a Unicode class to many instructions.
static const int64_t MAX_MEM = 2 << 20;

struct gore {
	re2::RE2 re;
	explicit gore(const char *pattern, const re2::RE2::Options &o) : re(pattern, o)
	{
	}
};

// Go's regexp/syntax refuses \C (one byte) outside \Q...\E; RE2 takes it.
static bool has_any_byte(const char *p)
{
	for (; *p; p++) {
		if (*p != '\\' || !p[1])
			continue;
		p++;
		if (*p == 'C')
			return true;
		if (*p == 'Q') {
			const char *e = std::strstr(p, "\\E");
			if (!e)
				return false;
			p = e + 1;
		}
	}
	return false;
}

extern "C" int gore_compile(const char *pattern, struct gore **out, char *err, size_t errlen)
{
	try {
		re2::RE2::Options o; // UTF-8, Perl classes, as Go's syntax.Perl
		o.set_log_errors(false);
		o.set_max_mem(MAX_MEM);
		if (has_any_byte(pattern)) {
			errbuf_put(err, errlen, "invalid escape sequence: \\C");
			return -EINVAL;
		}
		gore *g = new gore(pattern, o);
		if (!g->re.ok()) {
			errbuf_put(err, errlen, "%s", g->re.error().c_str());
			delete g;
			return -EINVAL;
		}
		*out = g;
		return 0;
	} catch (...) { // std::bad_alloc: RE2 reports nothing else by throwing
		errbuf_put(err, errlen, "out of memory");
		return -ENOMEM;
	}
}

extern "C" bool gore_match(const struct gore *g, const char *text)
{
	try {
		return re2::RE2::PartialMatch(text, g->re);
	} catch (...) { // out of memory for the matcher's cache
		return false;
	}
}

extern "C" void gore_free(struct gore *g)
{
	delete g;
}
