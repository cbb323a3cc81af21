/* router/tunnel.c: see tunnel.h. */
#include "router/tunnel.h"

#include <event2/buffer.h>

#include "router/conn.h"

size_t mr_tunnel_pump(struct mr_conn *from, struct mr_conn *to)
{
    size_t n = evbuffer_get_length(from->in);

    if (n == 0)
        return 0;
    evbuffer_add_buffer(to->out, from->in);
    mr_conn_flush(to);
    if (evbuffer_get_length(to->out) >= MR_CONN_OUT_HIGH) {
        mr_conn_read_stop(from);
        to->out_low = MR_CONN_OUT_LOW;
    }
    return n;
}

bool mr_tunnel_drained(const struct mr_snapshot *snap, const char *cluster, int64_t now_s)
{
    const struct mr_cluster *cl = mr_snap_cluster(snap, cluster);

    if (cl == NULL || cl->drain != MR_DRAIN_HARD)
        return false;
    return cl->drain_deadline_s == 0 || now_s >= cl->drain_deadline_s;
}

int mr_tunnel_next_check_ms(int64_t idle_ms, int limit_ms)
{
    if (idle_ms >= limit_ms)
        return 0;
    return limit_ms - idle_ms < MR_TUNNEL_CHECK_MS ? (int)(limit_ms - idle_ms) : MR_TUNNEL_CHECK_MS;
}
