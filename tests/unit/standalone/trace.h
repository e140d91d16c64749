/*
 * Standalone stand-in for the trace events of system/trace-events that
 * the project's files call: no tracing.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef STANDALONE_TRACE_H
#define STANDALONE_TRACE_H

static inline void trace_memory_region_coalesced_interleave(const char *name,
                                                            unsigned entries,
                                                            uint64_t chunk)
{
}

#endif
