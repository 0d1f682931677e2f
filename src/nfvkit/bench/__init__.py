"""Benchmark support: CPU clock, Mpps and cycles-per-packet figures."""
