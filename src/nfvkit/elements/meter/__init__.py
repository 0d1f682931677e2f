"""Metering helpers of the ``flow_monitor`` and ``policer`` elements.

:mod:`.flowmon` is the flow monitor's per-flow table kernel, :mod:`.ipfix` turns retired flow
records into IPFIX-named JSON lines or CSV rows, :mod:`.buckets` holds the token-bucket
(single-rate and RFC 2697 srTCM) kernels of the policer and :mod:`.rates` its rate units.
"""
