// SPDX-License-Identifier: MIT
// jsonl.c — JSON Lines (https://jsonlines.org): one UTF-8 JSON value per
// line, '\n' separated ("\r\n" accepted). We check UTF-8 ourselves (cJSON
// does not) and require each non-blank line to hold exactly one object.
#include "data/data.h"

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

bool keel_jsonl_next(keel_jsonl_iter *it, const char **s, size_t *n, int64_t *line) {
    while (it->p < it->end) {
        const char *a = it->p;
        const char *nl = memchr(a, '\n', (size_t)(it->end - a));
        const char *b = nl ? nl : it->end;
        it->p = nl ? nl + 1 : it->end;
        it->line++;
        size_t len = (size_t)(b - a);
        if (len && a[len - 1] == '\r') len--;
        if (blank(a, len)) continue;
        *s = a;
        *n = len;
        *line = it->line;
        return true;
    }
    return false;
}

cJSON *keel_jsonl_parse(const char *s, size_t n, char *why, size_t cap) {
    size_t bad;
    if (!keel_utf8_valid(s, n, &bad)) {
        snprintf(why, cap, "invalid UTF-8 at byte %zu", bad + 1);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, false);
    if (!j) {
        // cJSON leaves the failure position in end (or in its global error pointer)
        size_t at = end && end >= s && end <= s + n ? (size_t)(end - s) + 1 : 0;
        if (at) snprintf(why, cap, "invalid JSON at byte %zu", at);
        else snprintf(why, cap, "invalid JSON");
        return NULL;
    }
    for (const char *p = end; p && p < s + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r') {
            snprintf(why, cap, "extra text after the JSON value at byte %zu", (size_t)(p - s) + 1);
            cJSON_Delete(j);
            return NULL;
        }
    if (!cJSON_IsObject(j)) {
        snprintf(why, cap, "expected a JSON object, got %s",
                 cJSON_IsArray(j) ? "an array" : cJSON_IsString(j) ? "a string" : cJSON_IsNumber(j) ? "a number"
                 : cJSON_IsNull(j) ? "null" : "a boolean");
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}
