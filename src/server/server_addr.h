/*
 * server_addr.h: what the HTTP and gRPC front ends share about their listen address: turning
 * --http-bind / --grpc-bind ("host:port", "[v6]:port") into a socket address.
 */
#ifndef INGOT_SERVER_ADDR_H
#define INGOT_SERVER_ADDR_H

#include <netdb.h>
#include <stddef.h>

/*
 * Resolve bind for a passive TCP socket. Returns 0 and *out (free with freeaddrinfo; the first
 * entry is the one to use), or INGOT_E_INVALID with "bad bind address '…'" or "cannot resolve
 * '…': …" in err.
 */
int server_resolve_bind(const char *bind, struct addrinfo **out, char *err, size_t errlen);

#endif
