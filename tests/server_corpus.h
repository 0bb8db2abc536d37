/*
 * tests/server_corpus.h: request bodies for tessera serve, shared by the request parser's
 * unit test (tests/test_request.c, straight into srv_request_parse) and the HTTP tests (the
 * same bodies POSTed to path, where the answer must be the same status).
 * Bad cases are malformed or out-of-range bodies, each a 400 with an OpenAI error object.
 * Good cases must parse; expect lists the parsed values they must give, as "key=value"
 * items separated by ';' in the form tests/test_request.c's describe() writes a request
 * (keys not listed are not checked: test_request_defaults checks those).
 */
#ifndef TS_TESTS_SERVER_CORPUS_H
#define TS_TESTS_SERVER_CORPUS_H

#include <stddef.h>

typedef struct {
    const char *name;
    const char *path; /* "/v1/completions" "/v1/chat/completions" "/tokenize" "/detokenize" */
    int kind;         /* srv_req_kind */
    const char *body;
    size_t len; /* 0 = strlen(body) */
    int http;   /* expected status, 400 here */
} srv_bad_case;

typedef struct {
    const char *name;
    const char *path;
    int kind;
    const char *body;
    size_t len;         /* 0 = strlen(body) */
    const char *expect; /* "key=value;..." as describe() in tests/test_request.c writes them */
} srv_good_case;

extern const srv_bad_case SRV_BAD_CASES[];
extern const size_t SRV_N_BAD_CASES;
extern const srv_good_case SRV_GOOD_CASES[];
extern const size_t SRV_N_GOOD_CASES;

#endif
