/*
 * version.h - the agent's version: -V, the start-up line and
 * spoe_cache_build_info. debian/changelog's first entry must name the same
 * one (tests/wire/test_metrics_prom.py compares them).
 */
#ifndef SC_VERSION_H
#define SC_VERSION_H

#define SC_VERSION	"0.1.0"

#endif
