/*
 * server_addr.c: listen addresses of the front ends (see server_addr.h). Brackets around an IPv6
 * literal are removed before getaddrinfo, which does not take them.
 */
#include "server/server_addr.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "util/error.h"

int server_resolve_bind(const char *bind, struct addrinfo **out, char *err, size_t errlen)
{
    char host[256], port_s[8];
    uint16_t port;
    if (config_split_bind(bind, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "bad bind address '%s'", bind);
        return INGOT_E_INVALID;
    }
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h[hl - 1] = '\0', h++;
    snprintf(port_s, sizeof port_s, "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    int gr = getaddrinfo(h, port_s, &hints, out);
    if (gr != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", h, gai_strerror(gr));
        return INGOT_E_INVALID;
    }
    return 0;
}
