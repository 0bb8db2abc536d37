/*
 * server/route.h: what each endpoint does, apart from HTTP (server/http.c
 * calls these with a complete body): the route table, turning a completion
 * or chat body into a queued srv_task, and the small JSON endpoints.
 */
#ifndef TS_SERVER_ROUTE_H
#define TS_SERVER_ROUTE_H

#include <stddef.h>

#include "state.h"

enum {
    SRV_ROUTE_HEALTH = 0,
    SRV_ROUTE_MODELS,
    SRV_ROUTE_METRICS,
    SRV_ROUTE_SLOTS,
    SRV_ROUTE_COMPLETIONS,
    SRV_ROUTE_CHAT,
    SRV_ROUTE_TOKENIZE,
    SRV_ROUTE_DETOKENIZE
};

/* The route of (url, method); -1 if none, *allowed = 1 when the path exists
 * under another method (405 rather than 404). */
int srv_route_find(const char *url, const char *method, int *allowed);
/* Reachable without the API key. */
int srv_route_public(int route);
/* Parses and checks a completion or chat body, tokenizes it and queues the
 * task (refs: the caller's and the queue's). 0, or -1 with *e set. */
int srv_route_make_task(srv_state *st, int route, const char *body, size_t len,
                        srv_task **out, srv_error *e);
/* /v1/models, /slots, /tokenize, /detokenize: the JSON and its status. */
char *srv_route_simple(srv_state *st, int route, const char *body, size_t len, int *code);
char *srv_route_metrics(srv_state *st);

#endif
