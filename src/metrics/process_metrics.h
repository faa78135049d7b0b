// The standard Prometheus process metrics, read from /proc/self at every Render().
//
// Registers, without labels: process_cpu_seconds_total (counter: user + system time),
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_max_fds (the soft RLIMIT_NOFILE), process_start_time_seconds (Unix time) and
// process_threads, plus one collector that refreshes them. The names and meanings are those
// of the official client libraries, so stock dashboards work.
//
// Call once per Registry (a second call aborts: the names are taken). Linux only. If a
// /proc read fails at render time, the affected series keep their previous values.
#pragma once

#include "metrics/metrics.h"

namespace automan::metrics {

void RegisterProcessMetrics(Registry& registry);

}  // namespace automan::metrics
