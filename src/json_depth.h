/*
 * json_depth: the nesting check the hub and the plugins run on untrusted
 * JSON text before cJSON parses it. cJSON recurses while parsing (its own
 * limit is 1000 levels), so a deeply nested document must never reach it.
 * Header only: each plugin is its own shared object.
 */
#ifndef HEARTH_JSON_DEPTH_H
#define HEARTH_JSON_DEPTH_H

#include <stdbool.h>
#include <stddef.h>

/* True when no object or array in s (len bytes) nests deeper than max. */
static inline bool json_depth_ok(const char *s, size_t len, int max)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return false;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return true;
}

#endif
