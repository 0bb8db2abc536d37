/*
 * server/text.c: see text.h. UTF-8 as RFC 3629 defines it: no overlong
 * forms, no surrogates (U+D800-DFFF), nothing above U+10FFFF.
 */
#include "text.h"

#include <stdlib.h>
#include <string.h>

static bool reserve(srv_text *t, size_t add)
{
    if (t->len + add + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + add + 1)
        cap *= 2;
    char *p = realloc(t->s, cap);
    if (!p)
        return false;
    t->s = p;
    t->cap = cap;
    return true;
}

static void put(srv_text *t, const void *b, size_t n)
{
    memcpy(t->s + t->len, b, n);
    t->len += n;
    t->s[t->len] = 0;
}

/* The length of the valid character starting s[0..n): 1-4; 0 if the bytes
 * so far are a valid start that needs more; -1 if invalid. */
static int char_len(const unsigned char *s, size_t n)
{
    const unsigned char c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c == 0)
        return -1; /* NUL: our strings are C strings (a <0x00> byte token becomes U+FFFD) */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return -1;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n)
            return 0;
        const unsigned lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (s[i] < lo_i || s[i] > hi_i)
            return -1;
    }
    return need;
}

size_t srv_utf8_valid_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int l = char_len((const unsigned char *)s + i, n - i);
        if (l <= 0)
            break;
        i += (size_t)l;
    }
    return i;
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

bool srv_text_push(srv_text *t, const char *b, size_t n)
{
    /* Worst case every byte becomes 3, plus the pending ones. */
    if (!reserve(t, 3 * (n + sizeof(t->pend))))
        return false;
    unsigned char buf[4];
    size_t i = 0;
    while (i < n || t->n_pend) {
        /* The next candidate: the pending bytes, then the input. */
        size_t k = 0;
        for (; k < (size_t)t->n_pend; k++)
            buf[k] = t->pend[k];
        size_t from_in = 0;
        while (k < 4 && i + from_in < n)
            buf[k++] = (unsigned char)b[i + from_in++];
        int l = char_len(buf, k);
        if (l == 0) { /* valid so far, incomplete: everything waits */
            memcpy(t->pend, buf, k);
            t->n_pend = (int)k;
            return true;
        }
        const int used_pend = t->n_pend;
        if (l < 0) {
            put(t, REPLACEMENT, 3);
            l = 1;
        } else
            put(t, buf, (size_t)l);
        /* Consume l bytes: pending ones first. */
        if (l <= used_pend) {
            memmove(t->pend, t->pend + l, (size_t)(used_pend - l));
            t->n_pend = used_pend - l;
        } else {
            i += (size_t)(l - used_pend);
            t->n_pend = 0;
        }
    }
    return true;
}

bool srv_text_flush(srv_text *t)
{
    if (!t->n_pend)
        return true;
    if (!reserve(t, 3))
        return false;
    put(t, REPLACEMENT, 3);
    t->n_pend = 0;
    return true;
}

static size_t max_stop_len(char *const *stops, int n)
{
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(stops[i]);
        m = l > m ? l : m;
    }
    return m;
}

bool srv_text_stop(srv_text *t, char *const *stops, int n_stops)
{
    if (!n_stops || !t->len)
        return false;
    /* A match may start up to (longest stop - 1) bytes before the new text. */
    const size_t ml = max_stop_len(stops, n_stops);
    size_t from = t->scanned + 1 > ml ? t->scanned + 1 - ml : 0;
    size_t best = (size_t)-1;
    for (int i = 0; i < n_stops; i++) {
        const char *hit = t->len > from ? strstr(t->s + from, stops[i]) : NULL;
        if (hit && (size_t)(hit - t->s) < best)
            best = (size_t)(hit - t->s);
    }
    t->scanned = t->len;
    if (best == (size_t)-1)
        return false;
    t->len = best;
    t->s[best] = 0;
    return true;
}

size_t srv_text_safe(const srv_text *t, char *const *stops, int n_stops)
{
    size_t hold = 0;
    for (int i = 0; i < n_stops; i++) {
        const size_t l = strlen(stops[i]);
        /* The longest proper prefix of this stop that ends the text. */
        for (size_t k = l - 1 < t->len ? l - 1 : t->len; k > hold; k--)
            if (!memcmp(t->s + t->len - k, stops[i], k)) {
                hold = k;
                break;
            }
    }
    return t->len - hold;
}

void srv_text_free(srv_text *t)
{
    free(t->s);
    memset(t, 0, sizeof(*t));
}
