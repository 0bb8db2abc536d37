/*
 * server/text.h: a completion's text as tokens arrive: every byte checked as
 * UTF-8 (a token may end inside a character: the tail waits for the next
 * token; an invalid sequence becomes U+FFFD, as the JSON we send must be
 * UTF-8), stop strings found across token boundaries, and the "safe" length
 * that may be published: text that could still be the start of a stop string
 * is held back, so what a stream sends is never retracted and the stream's
 * concatenation is the non-stream text byte for byte. Pure: no locks, no I/O.
 */
#ifndef TS_SERVER_TEXT_H
#define TS_SERVER_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *s;           /* checked text, NUL-terminated */
    size_t len, cap;
    unsigned char pend[4]; /* an incomplete UTF-8 character's first bytes */
    int n_pend;
    size_t scanned;    /* stop strings were searched up to here */
} srv_text;

/* Appends n raw bytes; false when out of memory. */
bool srv_text_push(srv_text *t, const char *b, size_t n);
/* Ends the text: an incomplete character left becomes U+FFFD. */
bool srv_text_flush(srv_text *t);
/* Searches the stops (NUL-terminated, non-empty) in the text not yet
 * searched; on a match cuts the text at its start and returns true. */
bool srv_text_stop(srv_text *t, char *const *stops, int n_stops);
/* Bytes that may be published: all but a tail that is a proper prefix of a stop. */
size_t srv_text_safe(const srv_text *t, char *const *stops, int n_stops);
void srv_text_free(srv_text *t);

/* Length of the longest valid UTF-8 prefix of s (for checks elsewhere). */
size_t srv_utf8_valid_prefix(const char *s, size_t n);

#endif
